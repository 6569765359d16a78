"""Forks (one per connection) share every read-only array and copy only mutable state."""

from __future__ import annotations

import threading

import numpy as np

from oxidize_ml.bench_models import random_tensors
from oxidize_ml.congestion.dqn import DqnCwndPolicy
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.loss.lstm import LstmLossPredictor
from oxidize_ml.runtime import DqnMlpConfig, LossLstmConfig, LstmLossModel, MlpModel
from oxidize_ml.runtime.kernels import MlpScratch, shared_constant

STATE = StateConfig()


def test_model_forks_share_weights_and_constants_not_buffers() -> None:
    cfg = LossLstmConfig()
    a = LstmLossModel.from_tensors(random_tensors(cfg), cfg)
    b = a.fork()
    assert b.weights is a.weights
    for arr in (a.weights.w, a.weights.head_w):
        assert not arr.flags.writeable
    assert b._s.half is a._s.half and not a._s.half.flags.writeable  # shared constant
    assert not np.shares_memory(a._s.xh, b._s.xh) and not np.shares_memory(a._c, b._c)
    dcfg = DqnMlpConfig(n_inputs=STATE.size)
    m = MlpModel.from_tensors(random_tensors(dcfg), dcfg)
    n = m.fork()
    assert n.weights is m.weights and all(not w.flags.writeable for w in m.weights.layers)
    x = np.linspace(-1, 1, STATE.size, dtype=np.float32)
    assert np.array_equal(np.array(m.forward(x)), np.array(n.forward(x)))


def _scratch(m: MlpModel) -> MlpScratch:
    m.forward(np.zeros(m.config.n_inputs, dtype=np.float32))
    return m._scratch.s  # type: ignore[no-any-return]


def test_mlp_forks_share_buffers_per_thread_not_across_threads() -> None:
    # A forward pass runs in one thread start to finish, so a model and its forks
    # (one per connection) share one set of buffers per thread: a fork allocates none.
    dcfg = DqnMlpConfig(n_inputs=STATE.size)
    m = MlpModel.from_tensors(random_tensors(dcfg), dcfg)
    n = m.fork()
    assert _scratch(n) is _scratch(m)
    other: list[MlpScratch] = []
    t = threading.Thread(target=lambda: other.append(_scratch(n)))
    t.start()
    t.join()
    assert other[0] is not _scratch(m)
    assert not np.shares_memory(other[0].x_aug, _scratch(m).x_aug)
    unrelated = MlpModel.from_tensors(random_tensors(dcfg), dcfg)  # other weights
    assert _scratch(unrelated) is not _scratch(m)


def test_mlp_forks_in_many_threads_give_the_batch_results() -> None:
    dcfg = DqnMlpConfig(n_inputs=STATE.size)
    m = MlpModel.from_tensors(random_tensors(dcfg, seed=3), dcfg)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(64, STATE.size)).astype(np.float32)
    want = m.forward_batch(xs)
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def work(k: int) -> None:
        forks = [m.fork() for _ in range(4)]
        barrier.wait()
        for rep in range(300):
            i = (k * 7 + rep) % len(xs)
            got = np.array(forks[rep % 4].forward(xs[i]))
            if not np.allclose(got, want[i], rtol=1e-5, atol=1e-6):
                errors.append(f"thread {k} row {i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]


def test_scratch_segments_are_separate_and_biased_by_one() -> None:
    dcfg = DqnMlpConfig(n_inputs=STATE.size)
    m = MlpModel.from_tensors(random_tensors(dcfg), dcfg)
    s = _scratch(m)
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
