"""Training-side code (needs the ``train`` extra: torch, onnx, onnxscript, onnxruntime).

Nothing the engine imports at run time may import this package. The model
definitions are in `oxidize_ml.training.torch_models`, export in
`oxidize_ml.training.export`; import those modules directly (this package
file deliberately imports nothing, so ``import oxidize_ml.training.x`` for a
torch-free submodule never pulls in torch).
"""
