"""Adapters between oxidize-ml and real transports, and the tools to test them on loopback.

- `oxidize_ml.integrations.aioquic`: `register_oxidize` registers an aioquic
  congestion controller driven by an `MlEngine` (needs the ``aioquic`` extra).
- `oxidize_ml.integrations.emulator`: `LinkEmulator`, a Mahimahi-style
  bottleneck (trace or constant rate, delay, drop-tail queue, seeded loss)
  as an asyncio UDP relay on 127.0.0.1 (no extra needed).
- `oxidize_ml.integrations.e2e`: aioquic server and client through the
  emulator, reno / cubic / oxidize side by side with the simulator's numbers.

Importing this package imports neither aioquic nor the simulator: the names
below load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "register_oxidize": "oxidize_ml.integrations.aioquic",
    "OxidizeCongestionControl": "oxidize_ml.integrations.aioquic",
    "controller_of": "oxidize_ml.integrations.aioquic",
    "LinkEmulator": "oxidize_ml.integrations.emulator",
    "EmulatorConfig": "oxidize_ml.integrations.emulator",
    "LinkConfig": "oxidize_ml.integrations.emulator",
    "EmulatorReport": "oxidize_ml.integrations.emulator",
    "LinkReport": "oxidize_ml.integrations.emulator",
    "EmulatorProcess": "oxidize_ml.integrations.emulator_process",
    "E2eConfig": "oxidize_ml.integrations.e2e",
    "E2eReport": "oxidize_ml.integrations.e2e",
    "run_e2e": "oxidize_ml.integrations.e2e",
}

__all__ = [  # noqa: RUF022 - grouped by module like _LAZY
    "register_oxidize",
    "OxidizeCongestionControl",
    "controller_of",
    "LinkEmulator",
    "EmulatorConfig",
    "LinkConfig",
    "EmulatorReport",
    "LinkReport",
    "EmulatorProcess",
    "E2eConfig",
    "E2eReport",
    "run_e2e",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
