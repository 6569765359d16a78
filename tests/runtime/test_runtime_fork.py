"""Forks (one per connection) share every read-only array and copy only mutable state."""

from __future__ import annotations

import numpy as np

from oxidize_ml.bench_models import random_tensors
from oxidize_ml.congestion.dqn import DqnCwndPolicy
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.loss.lstm import LstmLossPredictor
from oxidize_ml.runtime import DqnMlpConfig, LossLstmConfig, LstmLossModel, MlpModel
from oxidize_ml.runtime.kernels import shared_constant

STATE = StateConfig()


def test_model_forks_share_weights_and_constants_not_buffers() -> None:
    cfg = LossLstmConfig()
    a = LstmLossModel.from_tensors(random_tensors(cfg), cfg)
    b = a.fork()
    assert b.weights is a.weights
    for arr in (a.weights.w, a.weights.b, a.weights.head_w):
        assert not arr.flags.writeable
    assert b._s.half is a._s.half and not a._s.half.flags.writeable  # shared constant
    assert not np.shares_memory(a._s.xh, b._s.xh) and not np.shares_memory(a._c, b._c)
    dcfg = DqnMlpConfig(n_inputs=STATE.size)
    m = MlpModel.from_tensors(random_tensors(dcfg), dcfg)
    n = m.fork()
    assert n.weights is m.weights and all(not w.flags.writeable for w in m.weights.layers)
    assert all(x is y for x, y in zip(m._s.zeros, n._s.zeros, strict=True))
    assert not np.shares_memory(m._s.x_aug, n._s.x_aug)
    x = np.linspace(-1, 1, STATE.size, dtype=np.float32)
    assert np.array_equal(np.array(m.forward(x)), np.array(n.forward(x)))


def test_scratch_segments_are_separate_and_biased_by_one() -> None:
    dcfg = DqnMlpConfig(n_inputs=STATE.size)
    m = MlpModel.from_tensors(random_tensors(dcfg), dcfg)
    s = m._s
    assert s.x_aug[-1] == 1.0 and all(h[-1] == 1.0 for h in s.hidden_aug)
    segs = [s.x_aug, *s.hidden_aug, s.out]
    for i, p in enumerate(segs):
        assert p.flags.c_contiguous
        for q in segs[i + 1 :]:
            assert not np.shares_memory(p, q)
    ref = MlpModel.from_tensors(random_tensors(dcfg), dcfg).forward_batch
    x = np.linspace(-2, 2, STATE.size, dtype=np.float32)
    for _ in range(3):  # repeated calls reuse the buffers correctly
        np.testing.assert_allclose(m.forward(x), ref(x[None, :])[0], rtol=1e-5, atol=1e-6)


def test_shared_constant_is_read_only_and_cached() -> None:
    a = shared_constant(7, 0.5)
    assert a is shared_constant(7, 0.5) and not a.flags.writeable and (a == 0.5).all()


def test_dqn_fork_defers_its_rng_and_seed_reproducibly() -> None:
    dcfg = DqnMlpConfig(n_inputs=STATE.size)
    parent = DqnCwndPolicy(MlpModel.from_tensors(random_tensors(dcfg), dcfg), seed=7)
    child = parent.fork()
    assert child._rng is None and child._seed is None  # nothing derived yet
    expected = int(np.random.SeedSequence([7, 1]).generate_state(1)[0])
    assert child.seed == expected
    second = parent.fork()  # the second fork of the parent
    assert second.seed == int(np.random.SeedSequence([7, 2]).generate_state(1)[0])


def test_lstm_predictor_fork_has_fresh_state_and_its_own_fallback() -> None:
    cfg = LossLstmConfig()
    pred = LstmLossPredictor(LstmLossModel.from_tensors(random_tensors(cfg), cfg))
    fork = pred.fork()
    assert fork.model.weights is pred.model.weights
    assert fork.fallback is not pred.fallback and fork.fallback.config == pred.fallback.config
    assert fork.n_updates == 0 and fork.nonfinite_fallbacks == 0 and fork.last_prediction == 0.0
