"""Fit the burst-aware loss predictor (`oxidize_ml.loss.burst`) on the training split.

Data: every training trace of `oxidize_ml.evaluation.splits.TRAIN_TRACES`
(when the trace folder exists) in `BurstFitConfig.windows` windows at each
RTT of `BurstFitConfig.rtts_s` with CUBIC and BBR, 2-BDP buffer (the setting
of `oxidize_ml.evaluation.fec.evaluate_fec_traces`, on other traces), plus
the built-in `TRAIN_SCENARIOS` with both controllers (so the fit also runs
without the traces). Seeds ``TRAIN_SEED_BASE + i``. Each 10-ms observation,
as the simulator reports it (its ``buffer_occupancy`` is the sender-side
estimate of `oxidize_ml.interval_stats.IntervalStats`, the function the aioquic
plug-in uses too), goes through `oxidize_ml.loss.burst.BurstFeatures`, the very
class the predictor runs, so training and serving features are identical by
construction. Labels:
`oxidize_ml.evaluation.fec.horizon_labels`.

Fit (numpy only, deterministic):

1. q = P(label > 0): L2-regularised logistic regression by Newton's method
   (IRLS) on the feature vectors; the bias is not penalised.
2. Severity: `BurstFitConfig.n_severity` quantiles of the label given
   label > 0 (the per-packet loss rate of a lossy window).
3. Repair price of `oxidize_ml.loss.fec.BurstFecPolicy`: the price at which
   the burst policy (at severity scale 1) spends, on the training rows, the
   overhead the EWMA with the binomial `FecPolicy` spends there (bisection in
   log price). It only sets the default operating point; comparisons are made
   at equal overhead. On the held-out traces the q distribution is lower and
   the shipped price spends 1.2 % where the EWMA spends 3.6 %.

`write_weights` writes `oxidize_ml.loss.burst_weights` (a generated Python
module: packaged with the code, no file read at run time) atomically.
Run ``python -m oxidize_ml.training.loss_burst --out src/oxidize_ml/loss/burst_weights.py``.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.evaluation.splits import TRAIN_SCENARIOS, TRAIN_SEED_BASE, TRAIN_TRACES, trace_paths
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss.burst import FEATURE_VERSION, N_WEIGHTS, BurstFeatures, feature_names


@dataclass(frozen=True, slots=True)
class BurstFitConfig:
    """What shapes one fit of the burst predictor."""

    rtts_s: tuple[float, ...] = (0.040, 0.100)
    """base RTTs of the trace runs, seconds (the evaluation's)"""
    windows: int = 3
    """windows per training trace (starts at 0, 1/n, ... of the trace)"""
    duration_s: float = 30.0
    """simulated seconds per run"""
    controllers: tuple[str, ...] = ("cubic", "bbr")
    """controllers the data is collected under"""
    scenarios: tuple[str, ...] = TRAIN_SCENARIOS
    """built-in training scenarios added to the traces"""
    use_traces: bool = True
    """include the training traces when the folder exists"""
    random_links: int = 80
    """domain-randomised links (`oxidize_ml.sim.random_links.random_link_scenario`: RTT
    10-800 ms, Bernoulli / Gilbert-Elliott loss, steps, synthetic cellular), 20 s each.
    Validated on the training split (fit on TMobile traces + scenarios, scored on the
    Verizon-EVDO traces and 40 other randomised links): 80 links moved the FEC residual
    at the EWMA's overhead from 0.65 / 0.85 / 0.83 / 1.23x (40 ms, 100 ms, short-RTT
    links, RTT > 250 ms links) to 0.63 / 0.84 / 0.83 / 1.13x"""
    random_link_duration_s: float = 20.0
    """simulated seconds per randomised link"""
    l2: float = 1e-3
    """L2 penalty per row on the non-bias weights. Validation on the training split
    (fit on the TMobile traces + scenarios, scored on the Verizon-EVDO traces, FEC
    residual at the EWMA's overhead, 40 / 100 ms): with a long-RTT copy of every
    dense feature, 3e-4 / 3e-3 / 1e-2 gave 0.67 / 0.90, 0.69 / 0.86, 0.70 / 0.84x;
    the shipped layout (copies of three features) at 1e-3 gave 0.66 / 0.85x"""
    newton_steps: int = 50
    """IRLS iterations (converges in ~10)"""
    n_severity: int = 32
    """severity quantiles kept"""

    def __post_init__(self) -> None:
        if not self.rtts_s or not self.controllers:
            raise ValueError("rtts_s and controllers must not be empty")
        for i, r in enumerate(self.rtts_s):
            if check_number(f"rtts_s[{i}]", r, hi=10.0) <= 0.0:
                raise ValueError(f"rtts_s[{i}] must be > 0, got {r!r}")
        check_int("windows", self.windows, lo=1, hi=100)
        check_int("random_links", self.random_links, lo=0, hi=10_000)
        if check_number("random_link_duration_s", self.random_link_duration_s, hi=3600.0) < 1.0:
            raise ValueError(
                f"random_link_duration_s must be >= 1, got {self.random_link_duration_s!r}"
            )
        if check_number("duration_s", self.duration_s, hi=3600.0) < 1.0:
            raise ValueError(f"duration_s must be >= 1, got {self.duration_s!r}")
        bad = sorted(set(self.scenarios) - set(TRAIN_SCENARIOS))
        if bad:
            raise ValueError(f"scenarios {bad} are not in the training split")
        check_number("l2", self.l2)
        check_int("newton_steps", self.newton_steps, lo=1, hi=1000)
        check_int("n_severity", self.n_severity, lo=1, hi=256)

    @classmethod
    def quick(cls) -> BurstFitConfig:
        """A small fit for tests (seconds)."""
        return cls(
            rtts_s=(0.04,),
            windows=1,
            duration_s=5.0,
            scenarios=("burst-loss", "shallow-buffer"),
            use_traces=False,
            random_links=2,
            random_link_duration_s=3.0,
            newton_steps=20,
            n_severity=8,
        )


@dataclass(frozen=True, slots=True)
class BurstData:
    """Training rows: features, labels, EWMA predictions (for the price calibration)."""

    x: np.ndarray
    """float64 ``[n, N_WEIGHTS]``"""
    label: np.ndarray
    """float64 ``[n]``"""
    ewma: np.ndarray
    """float64 ``[n]``"""
    runs: tuple[str, ...]


def run_rows(
    scenario: Any, controller: str, seed: int, duration_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, labels, EWMA predictions) of the labelled rows of one run (flow 0)."""
    from oxidize_ml.evaluation.fec import horizon_labels
    from oxidize_ml.loss import EwmaLossPredictor
    from oxidize_ml.sim import simulate

    feats = BurstFeatures()
    ewma = EwmaLossPredictor()
    t: list[float] = []
    xs: list[list[float]] = []
    lr: list[float] = []
    pe: list[float] = []

    def hook(now: float, flow: int, f: NetworkFeatures, _thr: float, _cwnd: int) -> None:
        if flow != 0:
            return
        feats.update(f, now)
        ewma.learn_one(f, f.loss_rate, now=now)
        t.append(now)
        xs.append(feats.vector())
        lr.append(f.loss_rate)
        pe.append(ewma.predict_one(f, now=now))

    simulate(
        scenario,
        controller,
        seed=seed,
        duration_s=duration_s,
        record_series=False,
        on_interval=hook,
    )
    tt = np.asarray(t, dtype=np.float64)
    lab = horizon_labels(tt, np.asarray(lr, dtype=np.float64))
    ok = ~np.isnan(lab)
    x = np.asarray(xs, dtype=np.float64).reshape(-1, N_WEIGHTS)
    return x[ok], lab[ok], np.asarray(pe, dtype=np.float64)[ok]


def collect(config: BurstFitConfig, *, progress: bool = False) -> BurstData:
    """Simulate the training split (see the module docstring)."""
    from oxidize_ml.evaluation.fec import TRACE_BUFFER_BDP
    from oxidize_ml.sim import BufferSpec, get_scenario, scenario_from_trace
    from oxidize_ml.sim.links import TraceLink
    from oxidize_ml.sim.random_links import random_link_scenario

    plan: list[tuple[Any, str]] = []
    if config.use_traces:
        for p in trace_paths(TRAIN_TRACES):
            link = TraceLink(str(p))
            for w in range(config.windows):
                start = w * link.period_s / config.windows
                for rtt in config.rtts_s:
                    sc = scenario_from_trace(
                        p,
                        link=link,
                        start_s=start,
                        rtt_s=rtt,
                        buffer=BufferSpec(bdp=TRACE_BUFFER_BDP),
                        duration_s=config.duration_s,
                    )
                    plan += [(sc, c) for c in config.controllers]
    for name in config.scenarios:
        plan += [(get_scenario(name), c) for c in config.controllers]
    n_fixed = len(plan)
    for j in range(config.random_links):
        # the LSTM trainer's generator, its seed offset so the two never share a link
        rng = np.random.default_rng([TRAIN_SEED_BASE + 5_000 + j, 1])
        sc = random_link_scenario(rng, name=f"random-{j}", duration_s=config.random_link_duration_s)
        plan.append((sc, config.controllers[int(rng.integers(len(config.controllers)))]))
    xs, ys, es, names = [], [], [], []
    for i, (sc, ctrl) in enumerate(plan):
        if sc.name.startswith("trace-"):
            dur = config.duration_s
        elif i >= n_fixed:
            dur = config.random_link_duration_s
        else:
            dur = min(config.duration_s, sc.duration_s)
        x, y, e = run_rows(sc, ctrl, TRAIN_SEED_BASE + i, dur)
        xs.append(x)
        ys.append(y)
        es.append(e)
        names.append(f"{sc.name}/{ctrl}")
        if progress:
            print(f"  [{i + 1}/{len(plan)}] {sc.name} / {ctrl}: {y.size} rows", flush=True)
    return BurstData(np.concatenate(xs), np.concatenate(ys), np.concatenate(es), tuple(names))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float, steps: int) -> np.ndarray:
    """Weights minimising mean BCE(sigmoid(x w), y) + l2/2 |w[1:]|^2.

    Newton's method (IRLS) with backtracking: a full Newton step can overshoot
    when a rare one-hot bucket is nearly separable, so a step is halved until
    the objective falls.
    """
    n, d = x.shape
    w = np.zeros(d)
    base = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    w[0] = math.log(base / (1.0 - base))
    pen = np.full(d, l2)
    pen[0] = 0.0

    def objective(v: np.ndarray) -> float:
        z = x @ v
        return float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(pen * v * v))

    f = objective(w)
    for _ in range(steps):
        z = x @ w
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        g = x.T @ (p - y) / n + pen * w
        h = (x * (p * (1.0 - p))[:, None]).T @ x / n + np.diag(pen) + 1e-8 * np.eye(d)
        step = np.linalg.solve(h, g)
        t = 1.0
        while t > 1e-6:
            cand = w - t * step
            fc = objective(cand)
            if fc <= f:
                break
            t *= 0.5
        else:
            break
        w, f_old, f = cand, f, fc
        if f_old - f < 1e-12:
            break
    return w


def _overhead(r: np.ndarray, k: int) -> float:
    return float(r.sum() / (k * r.size + r.sum()))


def calibrate_price(
    q: np.ndarray, severity: tuple[float, ...], target_overhead: float, k: int
) -> float:
    """Repair price at which `BurstFecPolicy` spends ``target_overhead`` on ``q``."""
    from oxidize_ml.loss.fec import BurstFecConfig, BurstFecPolicy

    uq, inv = np.unique(np.clip(q, 0.0, 1.0), return_inverse=True)

    def overhead(price: float) -> float:
        pol = BurstFecPolicy(BurstFecConfig(severity, price, k_data_packets=k))
        r = np.fromiter(
            (pol.repair_for_block_probability(float(v)) for v in uq),
            dtype=np.float64,
            count=uq.size,
        )[inv]
        return _overhead(r, k)

    lo, hi = math.log(1e-7), math.log(1.0)
    for _ in range(40):  # overhead falls as the price rises
        mid = 0.5 * (lo + hi)
        if overhead(math.exp(mid)) > target_overhead:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def fit(config: BurstFitConfig, *, progress: bool = False) -> dict[str, Any]:
    """Collect the training split and fit weights, severity and repair price."""
    from oxidize_ml.evaluation.scores import pr_auc
    from oxidize_ml.loss.fec import FecConfig, FecPolicy

    t0 = time.perf_counter()
    data = collect(config, progress=progress)
    pos = (data.label > 0.0).astype(np.float64)
    if pos.sum() == 0 or pos.sum() == pos.size:
        raise ValueError("the training rows need both lossy and clean windows")
    w = fit_logistic(data.x, pos, l2=config.l2, steps=config.newton_steps)
    lossy = data.label[data.label > 0.0]
    qs = (np.arange(config.n_severity) + 0.5) / config.n_severity
    severity = tuple(float(v) for v in np.quantile(lossy, qs))
    fec = FecConfig()
    table = FecPolicy(fec)
    r_ewma = np.fromiter(
        (table.repair_packets(float(min(1.0, p))) for p in data.ewma),
        dtype=np.float64,
        count=data.ewma.size,
    )
    target = _overhead(r_ewma, fec.k_data_packets)
    q = 1.0 / (1.0 + np.exp(-(data.x @ w)))
    price = calibrate_price(q, severity, target, fec.k_data_packets)
    return {
        "weights": [float(v) for v in w],
        "severity": list(severity),
        "repair_price": price,
        "feature_version": FEATURE_VERSION,
        "provenance": {
            "config": {
                k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()
            },
            "rows": int(data.label.size),
            "positive_rate": float(pos.mean()),
            "runs": len(data.runs),
            "traces": [p.name for p in trace_paths(TRAIN_TRACES)] if config.use_traces else [],
            "train_pr_auc": pr_auc(pos > 0, q),
            "train_pr_auc_ewma": pr_auc(pos > 0, data.ewma),
            "ewma_overhead": target,
            "wall_s": time.perf_counter() - t0,
        },
    }


def weights_source(result: dict[str, Any]) -> str:
    """The `oxidize_ml.loss.burst_weights` module text for a `fit` result."""
    names = feature_names()
    w = result["weights"]
    if len(w) != len(names):
        raise ValueError(f"weights must have {len(names)} entries, got {len(w)}")
    lines = [
        '"""Fitted parameters of the burst-aware loss predictor: GENERATED, do not edit.',
        "",
        (
            "Regenerate with ``python -m oxidize_ml.training.loss_burst --out "
            "src/oxidize_ml/loss/burst_weights.py``"
        ),
        "(`oxidize_ml.training.loss_burst`: training split only). Provenance:",
        "",
    ]
    prov = result.get("provenance", {})
    for key in (
        "rows",
        "positive_rate",
        "runs",
        "traces",
        "train_pr_auc",
        "train_pr_auc_ewma",
        "ewma_overhead",
    ):
        if key in prov:
            lines.append(f"- {key}: {prov[key]!r}")
    lines += [
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"FEATURE_VERSION = {int(result['feature_version'])}",
        "",
        "WEIGHTS: tuple[float, ...] = (",
    ]
    lines += [f"    {float(v)!r},  # {n}" for v, n in zip(w, names, strict=True)]
    lines += [")", "", "SEVERITY: tuple[float, ...] = ("]
    lines += [f"    {float(v)!r}," for v in result["severity"]]
    lines += [")", "", f"REPAIR_PRICE = {float(result['repair_price'])!r}", ""]
    return "\n".join(lines)


def write_weights(result: dict[str, Any], path: str | Path) -> Path:
    """Write `weights_source` to ``path`` atomically."""
    from oxidize_ml._atomic import atomic_write_text

    p = Path(path)
    atomic_write_text(p, weights_source(result), mode=0o644)
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="burst_weights.py to write")
    ap.add_argument("--quick", action="store_true", help="tiny fit (tests)")
    args = ap.parse_args(argv)
    cfg = BurstFitConfig.quick() if args.quick else BurstFitConfig()
    res = fit(cfg, progress=True)
    write_weights(res, args.out)
    print(f"wrote {args.out}: {res['provenance']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "BurstData",
    "BurstFitConfig",
    "calibrate_price",
    "collect",
    "fit",
    "fit_logistic",
    "main",
    "run_rows",
    "weights_source",
    "write_weights",
]
