"""`MlEngine.stats()` as prometheus_client metric families, read at scrape time.

`EngineCollector` is a prometheus_client custom collector: nothing is copied
into client-side metric objects on the decision path; each scrape calls
``engine.stats()`` once and yields the families below. prometheus_client
writes the exposition (text 0.0.4 by default, OpenMetrics when the scraper
asks for it), so escaping and formatting are the reference implementation's.

Metric families (names are stable; ``_total`` is a counter's sample suffix)
--------------------------------------------------------------------------
==================================================  =========  ===================================
name                                                type       labels
==================================================  =========  ===================================
``oxidize_ml_build_info``                           gauge      version, feature_schema (value 1)
``oxidize_ml_decisions_total``                      counter    component, source
``oxidize_ml_model_loaded``                         gauge      component
``oxidize_ml_policy_info``                          gauge      component, policy (value 1)
``oxidize_ml_observations_total``                   counter
``oxidize_ml_fec_injections_total``                 counter
``oxidize_ml_loss_prediction_ratio``                gauge
``oxidize_ml_fec_redundancy_ratio``                 gauge
``oxidize_ml_cwnd_bytes``                           gauge
``oxidize_ml_epsilon``                              gauge      (absent for heuristics)
``oxidize_ml_congestion_actions_total``             counter    action
``oxidize_ml_compression_decisions_total``          counter    decision
``oxidize_ml_compression_input_bytes_total``        counter
``oxidize_ml_compression_output_bytes_total``       counter
``oxidize_ml_compression_saved_bytes``              gauge
``oxidize_ml_path_selections_total``                counter    path
``oxidize_ml_path_mean_reward``                     gauge      path
``oxidize_ml_decision_latency_seconds``             histogram  component
``oxidize_ml_decision_latency_recent_seconds``      summary    component, quantile
``oxidize_ml_decision_latency_window_samples``      gauge      component
``oxidize_ml_training_collection_enabled``          gauge
``oxidize_ml_telemetry_buffered_rows``              gauge      table
``oxidize_ml_telemetry_capacity_rows``              gauge      table
``oxidize_ml_telemetry_appended_rows_total``        counter    table
``oxidize_ml_telemetry_dropped_rows_total``         counter    table
``oxidize_ml_telemetry_exports_total``              counter
``oxidize_ml_hub_sync_attempts_total``              counter    (with a background sync)
``oxidize_ml_hub_sync_failures_total``              counter    (with a background sync)
``oxidize_ml_hub_model_updates_total``              counter    (with a background sync)
``oxidize_ml_hub_last_sync_success_timestamp_seconds``  gauge  (with a background sync)
==================================================  =========  ===================================

``component`` is an `EngineStats` field name (``loss_predictor``,
``congestion_controller``, ``compression_oracle``, ``path_selector``);
``source`` is ``model``, ``fallback``, or ``bandit`` for the path selector,
which has no offline model.

Two deliberate departures from a naive mapping:

* The net compression saving is a *gauge*, not a counter: a skipped packet
  still gains a frame header, so the saving can shrink, and PromQL's
  ``rate()`` reads any decrease of a counter as a restart. The monotonic
  input/output byte counters give the saving rate as ``rate(in) - rate(out)``.
* Decision latency is a *histogram* of the sampled calls since start (the
  engine times one call in N), plus a summary of recent quantiles (0.5, 0.99
  and 1 = max) over the engine's ring, without ``_sum``/``_count`` since the
  ring holds only recent samples.

A value the engine does not have yet (None) is left out: the family is
declared without that sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

PREFIX: Final = "oxidize_ml_"
COMPONENTS: Final = (
    "loss_predictor",
    "congestion_controller",
    "compression_oracle",
    "path_selector",
)
LATENCY_QUANTILES: Final = (("0.5", "p50_us"), ("0.99", "p99_us"), ("1", "max_us"))
US_PER_S: Final = 1_000_000.0


def _num(value: Any) -> float | None:
    """A sample value, or None when the engine has none (or a non-number slipped in)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def _gauge(name: str, doc: str, value: Any) -> GaugeMetricFamily:
    g = GaugeMetricFamily(PREFIX + name, doc)
    v = _num(value)
    if v is not None:
        g.add_metric([], v)
    return g


def _counter(name: str, doc: str, value: Any) -> CounterMetricFamily:
    c = CounterMetricFamily(PREFIX + name, doc)
    v = _num(value)
    if v is not None:
        c.add_metric([], v)
    return c


def _labelled(
    kind: type[GaugeMetricFamily | CounterMetricFamily],
    name: str,
    doc: str,
    labels: list[str],
    samples: list[tuple[list[str], Any]],
) -> GaugeMetricFamily | CounterMetricFamily:
    fam = kind(PREFIX + name, doc, labels=labels)
    for values, value in samples:
        v = _num(value)
        if v is not None:
            fam.add_metric(values, v)
    return fam


def _us_to_s(us: float | None) -> float | None:
    return None if us is None else us / US_PER_S


def engine_families(stats: Any, *, package_version: str | None = None) -> Iterator[Metric]:
    """Every engine family for an `EngineStats` (see the module docstring for the names)."""
    from oxidize_ml.features import FEATURE_SCHEMA_VERSION

    lp = stats.loss_predictor
    cc = stats.congestion_controller
    co = stats.compression_oracle
    ps = stats.path_selector
    comps = {
        "loss_predictor": lp,
        "congestion_controller": cc,
        "compression_oracle": co,
        "path_selector": ps,
    }
    if package_version is not None:
        yield _labelled(
            GaugeMetricFamily,
            "build_info",
            "oxidize-ml package and feature-schema versions (value is always 1)",
            ["version", "feature_schema"],
            [([package_version, str(FEATURE_SCHEMA_VERSION)], 1)],
        )

    decisions: list[tuple[list[str], Any]] = []
    for name, s in comps.items():
        if name == "path_selector":
            # No offline model exists for it: its decisions come from the online
            # bandit itself, neither a loaded model nor a fallback.
            decisions.append(([name, "bandit"], s.decisions))
            continue
        decisions.append(([name, "model"], s.model_decisions))
        decisions.append(([name, "fallback"], s.fallback_decisions))
    yield _labelled(
        CounterMetricFamily,
        "decisions",
        "Decisions made, by component and by what made them (learned model, "
        "heuristic fallback, or the online path bandit)",
        ["component", "source"],
        decisions,
    )
    yield _labelled(
        GaugeMetricFamily,
        "model_loaded",
        "1 when the component runs a learned model, 0 when it runs its heuristic",
        ["component"],
        [([n], s.model_loaded) for n, s in comps.items()],
    )
    yield _labelled(
        GaugeMetricFamily,
        "policy_info",
        "The policy each component runs (value is always 1)",
        ["component", "policy"],
        [([n, str(s.policy)], 1) for n, s in comps.items()],
    )

    # -- loss predictor / FEC
    yield _counter("observations", "Network observations fed to the engine", lp.observations)
    yield _counter(
        "fec_injections", "FEC decisions that asked for repair packets", lp.fec_injections
    )
    yield _gauge(
        "loss_prediction_ratio",
        "Last predicted loss probability for the next 50-100 ms",
        lp.last_prediction,
    )
    yield _gauge(
        "fec_redundancy_ratio", "Last FEC redundancy ratio chosen", lp.last_redundancy_ratio
    )

    # -- congestion controller
    yield _gauge("cwnd_bytes", "Current congestion window", cc.cwnd)
    yield _gauge(
        "epsilon",
        "Exploration rate of the DQN congestion controller (absent for heuristics)",
        cc.epsilon,
    )
    yield _labelled(
        CounterMetricFamily,
        "congestion_actions",
        "Congestion window actions taken, by action",
        ["action"],
        [([a], n) for a, n in sorted(cc.action_counts.items())],
    )

    # -- compression oracle
    yield _labelled(
        CounterMetricFamily,
        "compression_decisions",
        "Compression decisions, by decision",
        ["decision"],
        [([d], n) for d, n in co.decision_counts.items()],
    )
    yield _counter("compression_input_bytes", "Payload bytes given to compress()", co.bytes_in)
    yield _counter("compression_output_bytes", "Frame bytes produced by compress()", co.bytes_out)
    yield _gauge(
        "compression_saved_bytes",
        "Net bytes saved by compression since start (input - output; can fall, hence a gauge)",
        co.bytes_saved,
    )

    # -- path selector
    yield _labelled(
        CounterMetricFamily,
        "path_selections",
        "Paths chosen, by path",
        ["path"],
        [([str(p)], n) for p, n in ps.selections.items()],
    )
    yield _labelled(
        GaugeMetricFamily,
        "path_mean_reward",
        "Mean reward (0..1) observed per path (absent before the first reward)",
        ["path"],
        [([str(p)], r) for p, r in ps.mean_reward.items()],
    )

    # -- latency
    hist = HistogramMetricFamily(
        PREFIX + "decision_latency_seconds",
        "Decision latency of the sampled calls since start (one call in N is timed)",
        labels=["component"],
    )
    for n, s in comps.items():
        lat = s.latency
        buckets = [(floatToGoString(le), float(cum)) for le, cum in lat.buckets]
        buckets.append(("+Inf", float(lat.count)))
        hist.add_metric([n], buckets, float(lat.sum_s))
    yield hist
    # prometheus_client's SummaryMetricFamily only writes _count/_sum; the recent
    # ring has quantiles only, so the samples are added to a plain summary Metric.
    recent = Metric(
        PREFIX + "decision_latency_recent_seconds",
        "Decision latency quantiles over the most recent sampled calls (one call in N is "
        "timed; quantile 1 is the maximum)",
        "summary",
    )
    for n, s in comps.items():
        for q, attr in LATENCY_QUANTILES:
            v = _us_to_s(getattr(s.latency, attr))
            if v is not None:
                recent.add_sample(recent.name, {"component": n, "quantile": q}, v)
    yield recent
    yield _labelled(
        GaugeMetricFamily,
        "decision_latency_window_samples",
        "Timed calls the latency quantiles are computed over",
        ["component"],
        [([n], s.latency.samples) for n, s in comps.items()],
    )

    # -- training telemetry
    yield _gauge(
        "training_collection_enabled",
        "1 when training telemetry is being collected",
        stats.training_collection,
    )
    yield from _telemetry_families(stats.telemetry)


def _telemetry_families(tel: Mapping[str, Any] | None) -> Iterator[Metric]:
    tables = tel.get("tables", {}) if isinstance(tel, Mapping) else {}
    if not isinstance(tables, Mapping):
        tables = {}

    def per_table(key: str) -> list[tuple[list[str], Any]]:
        out: list[tuple[list[str], Any]] = []
        for name, t in sorted(tables.items()):
            value = t.get(key) if isinstance(t, Mapping) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.append(([str(name)], value))
        return out

    yield _labelled(
        GaugeMetricFamily,
        "telemetry_buffered_rows",
        "Training rows waiting in the bounded buffers",
        ["table"],
        per_table("rows"),
    )
    yield _labelled(
        GaugeMetricFamily,
        "telemetry_capacity_rows",
        "Capacity of each bounded training buffer",
        ["table"],
        per_table("capacity"),
    )
    yield _labelled(
        CounterMetricFamily,
        "telemetry_appended_rows",
        "Training rows recorded",
        ["table"],
        per_table("appended"),
    )
    yield _labelled(
        CounterMetricFamily,
        "telemetry_dropped_rows",
        "Training rows dropped because a buffer was full",
        ["table"],
        per_table("dropped"),
    )
    exports = tel.get("exports") if isinstance(tel, Mapping) else None
    yield _counter(
        "telemetry_exports",
        "Successful training-data exports",
        exports if isinstance(exports, int) and not isinstance(exports, bool) else None,
    )


def sync_families(stats: Any) -> Iterator[Metric]:
    """Families of a background model sync (`oxidize_ml.hub.SyncStats`)."""
    yield _counter("hub_sync_attempts", "Model sync attempts", stats.attempts)
    yield _counter("hub_sync_failures", "Failed model syncs", stats.failures)
    yield _counter(
        "hub_model_updates", "Syncs that gave the engine a new model version", stats.updates
    )
    last = stats.last_success_unix_s
    yield _gauge(
        "hub_last_sync_success_timestamp_seconds",
        "Unix time of the last successful sync (absent before the first)",
        last if last is None or math.isfinite(last) else None,
    )


class EngineCollector(Collector):
    """A prometheus_client collector reading ``engine.stats()`` (and a sync's) per scrape.

    Parameters
    ----------
    engine
        An `MlEngine` (anything with ``stats() -> EngineStats``).
    sync
        Optional `oxidize_ml.hub.SyncHandle` whose counters are exported too.
    package_version
        Written as ``oxidize_ml_build_info{version=...}``; None leaves the family out.
    """

    def __init__(
        self, engine: Any, sync: Any | None = None, *, package_version: str | None = None
    ) -> None:
        if not callable(getattr(engine, "stats", None)):
            raise TypeError(f"engine must have a stats() method, got {type(engine).__name__}")
        if sync is not None and not callable(getattr(sync, "stats", None)):
            raise TypeError(f"sync must have a stats() method, got {type(sync).__name__}")
        self.engine = engine
        self.sync = sync
        self.package_version = package_version

    def collect(self) -> Iterator[Metric]:
        # One stats() call per scrape: every family of a scrape comes from one snapshot.
        stats = self.engine.stats()
        sync_stats = self.sync.stats() if self.sync is not None else None
        yield from engine_families(stats, package_version=self.package_version)
        if sync_stats is not None:
            yield from sync_families(sync_stats)

    def describe(self) -> Iterator[Metric]:
        # Registration must not scrape the engine (it may not be ready, or may fail);
        # an empty describe() keeps prometheus_client from calling collect() early.
        return iter(())
