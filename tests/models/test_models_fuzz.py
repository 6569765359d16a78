"""Fuzz: model directories mutated every way a disk, a download or an attacker can mutate
them never make `load_policies` raise, and never load a bad model (issue 8).

Each example copies a real model directory (the shipped defaults when present, with
their ONNX files, else random-weight models), applies one mutation (truncate, flip
bytes, replace with garbage, delete, rewrite the safetensors header with wrong
dtypes, wrong shapes, huge declared sizes or a huge header length, or rewrite a
manifest entry), optionally re-signs the manifest's SHA-256 sums so the mutation
reaches the parsers instead of stopping at the checksum, then loads it with both
backends. Bounded: ``max_examples`` per test, no deadline (loading runs the probes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.models import (
    MODEL_NAMES,
    PLAIN_DQN,
    candidate_dir,
    default_model_dir,
    load_policies,
)
from oxidize_ml.types import DrlAction, MlCompressionDecision

STATE = StateConfig()
# OXIDIZE_FUZZ_EXAMPLES raises the bound for a longer hunt; CI keeps the default.
FUZZ = settings(
    max_examples=int(os.environ.get("OXIDIZE_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIELDS = {
    "loss_predictor": "loss",
    "congestion_controller": "congestion",
    "compression_oracle": "compression",
}
_BASES: list[Path] = []


def bases() -> list[Path]:
    """The directories examples mutate copies of (built once per session): the shipped
    defaults (real weights, ONNX files) and the spec's DQN shipped as a candidate, when
    present, and random-weight models of the current layouts (so a shipped model stale
    for other reasons still gets fuzzed)."""
    if not _BASES:
        from test_models_probe import model_dir

        for shipped in (default_model_dir(), candidate_dir(PLAIN_DQN)):
            if shipped is not None:
                _BASES.append(shipped)
        _BASES.append(model_dir(Path(tempfile.mkdtemp(prefix="oxidize-fuzz-base-")) / "m"))
    return _BASES


def model_files(base: Path) -> list[str]:
    man = json.loads((base / "manifest.json").read_text())
    return sorted({f for e in man["models"].values() for f in e["files"].values()})


def owners(base: Path) -> dict[str, str]:
    """File name -> the model that reads it (the residual DQN's files are not named
    after their model)."""
    man = json.loads((base / "manifest.json").read_text())
    return {f: name for name, e in man["models"].items() for f in e["files"].values()}


# ----------------------------------------------------------------------------- mutations


def _header(data: bytes) -> tuple[dict[str, Any], bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _with_header(header: dict[str, Any], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def mutate_header(data: bytes, how: str, pick: int, value: int) -> bytes:
    if how == "header_len":  # a declared header length far beyond the file
        return struct.pack("<Q", 2**40 + value) + data[8:]
    header, body = _header(data)
    names = sorted(k for k in header if k != "__metadata__")
    t = header[names[pick % len(names)]]
    if how == "dtype":
        t["dtype"] = ["F64", "F16", "BF16", "I32", "I8", "U8", "BOOL"][value % 7]
    elif how == "shape":
        t["shape"] = [int(s) + 1 + value % 5 for s in t["shape"]] or [value + 2]
    elif how == "huge_shape":
        t["shape"] = [2**31 + value, 2**31]
    elif how == "huge_offsets":
        t["data_offsets"] = [t["data_offsets"][0], 2**62 + value]
    elif how == "metadata":
        meta = header.setdefault("__metadata__", {})
        key = ["format", "kind", "config", "feature_schema_version"][value % 4]
        meta[key] = ["", "x", "{}", "[1e999]", "99", "dqn", "lstm_loss"][pick % 7]
    return _with_header(header, body)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

mutations = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 2**20), st.floats(0.0, 1.0)),
    st.tuples(st.just("flip"), st.integers(0, 2**20), st.floats(0.0, 1.0), st.integers(1, 255)),
    st.tuples(st.just("garbage"), st.integers(0, 2**20), st.binary(max_size=300)),
    st.tuples(st.just("delete"), st.integers(0, 2**20)),
    st.tuples(
        st.just("header"),
        st.integers(0, 2**20),
        st.sampled_from(["dtype", "shape", "huge_shape", "huge_offsets", "metadata", "header_len"]),
        st.integers(0, 1000),
        st.integers(0, 1000),
    ),
    st.tuples(
        st.just("manifest"),
        st.sampled_from(MODEL_NAMES),
        st.sampled_from(["config", "files", "kind", "inputs", "version", "metrics", "training"]),
        json_values,
    ),
)


def apply(d: Path, base: Path, mutation: tuple[Any, ...]) -> str | None:
    """Mutate ``d``; return the file made structurally bad, if any."""
    kind = mutation[0]
    if kind == "manifest":
        _, name, key, value = mutation
        man = json.loads((d / "manifest.json").read_text())
        names = sorted(man["models"])  # a candidate directory holds one model
        name = name if name in names else names[MODEL_NAMES.index(name) % len(names)]
        man["models"][name][key] = value
        (d / "manifest.json").write_text(json.dumps(man))
        return None
    files = model_files(base)
    fname = files[mutation[1] % len(files)]
    p = d / fname
    data = p.read_bytes()
    if kind == "truncate":
        p.write_bytes(data[: int(mutation[2] * (len(data) - 1))])
    elif kind == "flip":
        b = bytearray(data)
        b[int(mutation[2] * (len(b) - 1))] ^= mutation[3]
        p.write_bytes(bytes(b))
    elif kind == "garbage":
        p.write_bytes(mutation[2])
    elif kind == "delete":
        p.unlink()
    elif kind == "header":
        if not fname.endswith(".safetensors"):
            return None
        mutated = mutate_header(data, mutation[2], mutation[3], mutation[4])
        p.write_bytes(mutated)
        if mutation[2] != "header_len" and _header(mutated)[0] == _header(data)[0]:
            return None  # a key set to the value it had (e.g. kind "dqn"): still a valid file
        return fname
    return fname if kind in ("truncate", "garbage", "delete") else None


def resign(d: Path) -> None:
    """Make the manifest's checksums match the (mutated) files, as a careless re-export would."""
    try:
        man = json.loads((d / "manifest.json").read_text())
        sha = man["sha256"]
        for fname in list(sha):
            if (d / fname).is_file():
                sha[fname] = hashlib.sha256((d / fname).read_bytes()).hexdigest()
        (d / "manifest.json").write_text(json.dumps(man))
    except (ValueError, KeyError, TypeError, OSError):
        pass  # a manifest mutated beyond repair stays as it is


# ----------------------------------------------------------------------------- checks


def _features(i: int) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=30_000 + 900 * (i % 9),
        rtt_var_us=3_000 * (i % 3),
        bandwidth_bps=20e6 * (1 + i % 4),
        loss_rate=0.03 * (i % 3),
        loss_trend=0.0,
        inflight=60 + i,
        cwnd=90_000,
        time_since_loss_ms=100.0 * (i % 5),
        buffer_occupancy=0.1 * (i % 10),
        recent_retx=i % 2,
    )


def exercise(res: Any) -> None:
    """A loaded policy must answer valid inputs with valid outputs, without raising."""
    if res.loss is not None:
        for i in range(25):
            res.loss.learn_one(_features(i), 0.0, now=0.01 * i)
            assert 0.0 <= res.loss.predict_one(_features(i), now=0.01 * i) <= 1.0
    if res.congestion is not None:
        for i in range(25):
            obs = CongestionObservation(
                features=_features(i), throughput_bps=15e6, cwnd_bytes=90_000
            )
            res.congestion.learn_one(obs, 0.0, now=0.01 * i)
            assert isinstance(res.congestion.predict_one(obs, now=0.01 * i), DrlAction)
    if res.compression is not None:
        for pkt in (b"", b"a", b"hello world " * 50, bytes(1400), np.arange(900).tobytes()):
            assert isinstance(res.compression.decide(pkt), MlCompressionDecision)


def check(
    d: Path, bad_file: str | None, resigned: bool, changed: set[str], owner: dict[str, str]
) -> None:
    for backend in ("numpy", "onnxruntime"):
        res = load_policies(d, backend=backend, limits=CwndLimits(), state_config=STATE, seed=0)
        # Every backend validates the safetensors file; the ONNX file is parsed only by
        # onnxruntime (the numpy runtime never reads it, so it cannot make it misbehave),
        # and the compression oracle always tabulates on numpy.
        bad_model = None if bad_file is None else owner[bad_file]
        if (
            bad_file is not None
            and bad_file.endswith(".onnx")
            and (backend == "numpy" or bad_model == "compression_oracle")
        ):
            bad_model = None
        assert set(res.status) == set(MODEL_NAMES)
        for name in MODEL_NAMES:
            status = res.status[name]
            policy = getattr(res, FIELDS[name])
            assert (policy is not None) == (status == "loaded"), (name, status)
            assert isinstance(status, str) and status
            if name == bad_model:
                assert status != "loaded", (name, status)
            if not resigned and name in changed:
                assert status != "loaded", (name, status)
        exercise(res)


def _run(mutation: tuple[Any, ...], pick: int, do_resign: bool) -> None:
    all_bases = bases()
    base = all_bases[pick % len(all_bases)]
    with tempfile.TemporaryDirectory(prefix="oxidize-fuzz-") as tmp:
        d = Path(tmp) / "m"
        shutil.copytree(base, d)
        before = {p.name: p.read_bytes() for p in d.iterdir()}
        bad = apply(d, base, mutation)
        if do_resign:
            resign(d)
        after = {p.name: p.read_bytes() for p in d.iterdir()}
        owner = owners(base)
        changed = {owner[n] for n in before if n in owner and before[n] != after.get(n)}
        check(d, bad, do_resign, changed, owner)


@FUZZ
@given(mutation=mutations, pick=st.integers(0, 5))
def test_mutated_directory_unsigned(mutation: tuple[Any, ...], pick: int) -> None:
    _run(mutation, pick, do_resign=False)


@FUZZ
@given(mutation=mutations, pick=st.integers(0, 5))
def test_mutated_directory_resigned(mutation: tuple[Any, ...], pick: int) -> None:
    pytest.importorskip("onnxruntime")
    _run(mutation, pick, do_resign=True)
