"""`MlEngine.stats()` in the Prometheus text exposition format (version 0.0.4).

Every family has ``# HELP`` and ``# TYPE`` lines; names carry the
``oxidize_ml_`` prefix and Prometheus unit suffixes (``_seconds``, ``_bytes``,
``_total`` for counters, ``_ratio`` for 0..1 values). Component labels use the
`EngineStats` field names: ``loss_predictor``, ``congestion_controller``,
``compression_oracle``, ``path_selector``.

Two deliberate departures from a naive mapping:

* The net compression saving is a *gauge* (``oxidize_ml_compression_saved_bytes``),
  not a ``_total`` counter: a skipped packet still gains a frame header, so
  the saving can shrink, and PromQL's ``rate()`` reads any decrease of a
  counter as a process restart. The monotonic ``..._input_bytes_total`` and
  ``..._output_bytes_total`` counters give the saving rate as
  ``rate(in) - rate(out)``.
* Decision latency is a *histogram* (``oxidize_ml_decision_latency_seconds``)
  of the sampled calls since start (the engine times one call in N), plus a
  summary of recent quantiles (``..._recent_seconds``: 0.5, 0.99 and 1 = max)
  over the engine's ring, without ``_sum``/``_count`` since the ring holds only
  recent samples.

Reference: https://prometheus.io/docs/instrumenting/exposition_formats/ and
https://prometheus.io/docs/practices/naming/.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
PREFIX: Final = "oxidize_ml_"
COMPONENTS: Final = (
    "loss_predictor",
    "congestion_controller",
    "compression_oracle",
    "path_selector",
)
LATENCY_QUANTILES: Final = (("0.5", "p50_us"), ("0.99", "p99_us"), ("1", "max_us"))
US_PER_S: Final = 1_000_000.0

_NAME_RE: Final = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE: Final = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TYPES: Final = ("counter", "gauge", "summary", "histogram", "untyped")


def format_value(value: float | bool) -> str:
    """A sample value as the text format writes it (``+Inf``, ``NaN``, ints exact)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class ExpositionWriter:
    """Accumulates metric families; `text` joins them. Families must not repeat."""

    __slots__ = ("_lines", "_names")

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._names: set[str] = set()

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float | bool | None]] = (),
        *,
        suffix: str = "",
    ) -> None:
        """One family: HELP, TYPE, then ``name+suffix{labels} value`` per sample.

        ``suffix`` is for summaries' ``_sum``/``_count`` style samples; most
        families leave it empty. Samples whose value is None are skipped.
        """
        if not _NAME_RE.match(name) or name in self._names:
            raise ValueError(f"bad or repeated metric name {name!r}")
        if kind not in _TYPES:
            raise ValueError(f"metric type {kind!r} is not one of {list(_TYPES)}")
        self._names.add(name)
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            self._lines.append(f"{name}{suffix}{_labels(labels)} {format_value(value)}")

    def histogram(
        self,
        name: str,
        help_text: str,
        series: Iterable[tuple[Mapping[str, str], Any]],
    ) -> None:
        """A histogram family: ``_bucket{le}``, ``_sum`` and ``_count`` per labelled series.

        Each series value is a `oxidize_ml.stats.LatencySummary` (cumulative
        ``buckets``, ``sum_s`` and ``count``).
        """
        self.family(name, "histogram", help_text)
        for labels, lat in series:
            for le, cum in lat.buckets:
                lab = {**labels, "le": format_value(le)}
                self._lines.append(f"{name}_bucket{_labels(lab)} {format_value(cum)}")
            lab = {**labels, "le": "+Inf"}
            self._lines.append(f"{name}_bucket{_labels(lab)} {format_value(lat.count)}")
            self._lines.append(f"{name}_sum{_labels(labels)} {format_value(lat.sum_s)}")
            self._lines.append(f"{name}_count{_labels(labels)} {format_value(lat.count)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    parts = []
    for k, v in labels.items():
        if not _LABEL_RE.match(k) or k.startswith("__"):
            raise ValueError(f"bad label name {k!r}")
        parts.append(f'{k}="{_escape_label(str(v))}"')
    return "{" + ",".join(parts) + "}"


def _one(value: Any) -> list[tuple[dict[str, str], Any]]:
    return [({}, value)]


def render_engine_stats(stats: Any, *, package_version: str | None = None) -> str:
    """The exposition text of an `EngineStats` (from `MlEngine.stats()`)."""
    w = ExpositionWriter()
    write_engine_stats(w, stats, package_version=package_version)
    return w.text()


def write_engine_stats(
    w: ExpositionWriter, stats: Any, *, package_version: str | None = None
) -> None:
    """Append every engine family to ``w`` (see the module docstring for the names)."""
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
    p = PREFIX
    if package_version is not None:
        w.family(
            f"{p}build_info",
            "gauge",
            "oxidize-ml package and feature-schema versions (value is always 1)",
            [({"version": package_version, "feature_schema": str(FEATURE_SCHEMA_VERSION)}, 1)],
        )

    decisions: list[tuple[dict[str, str], int]] = []
    for name, s in comps.items():
        if name == "path_selector":
            # No offline model exists for it: its decisions come from the online
            # bandit itself, neither a loaded model nor a fallback.
            decisions.append(({"component": name, "source": "bandit"}, s.decisions))
            continue
        decisions.append(({"component": name, "source": "model"}, s.model_decisions))
        decisions.append(({"component": name, "source": "fallback"}, s.fallback_decisions))
    w.family(
        f"{p}decisions_total",
        "counter",
        "Decisions made, by component and by what made them (learned model, "
        "heuristic fallback, or the online path bandit)",
        decisions,
    )
    w.family(
        f"{p}model_loaded",
        "gauge",
        "1 when the component runs a learned model, 0 when it runs its heuristic",
        [({"component": n}, s.model_loaded) for n, s in comps.items()],
    )
    w.family(
        f"{p}policy_info",
        "gauge",
        "The policy each component runs (value is always 1)",
        [({"component": n, "policy": s.policy}, 1) for n, s in comps.items()],
    )

    # -- loss predictor / FEC
    w.family(
        f"{p}observations_total",
        "counter",
        "Network observations fed to the engine",
        _one(lp.observations),
    )
    w.family(
        f"{p}fec_injections_total",
        "counter",
        "FEC decisions that asked for repair packets",
        _one(lp.fec_injections),
    )
    w.family(
        f"{p}loss_prediction_ratio",
        "gauge",
        "Last predicted loss probability for the next 50-100 ms",
        _one(lp.last_prediction),
    )
    w.family(
        f"{p}fec_redundancy_ratio",
        "gauge",
        "Last FEC redundancy ratio chosen",
        _one(lp.last_redundancy_ratio),
    )

    # -- congestion controller
    w.family(f"{p}cwnd_bytes", "gauge", "Current congestion window", _one(cc.cwnd))
    w.family(
        f"{p}epsilon",
        "gauge",
        "Exploration rate of the DQN congestion controller (absent for heuristics)",
        _one(cc.epsilon),
    )
    w.family(
        f"{p}congestion_actions_total",
        "counter",
        "Congestion window actions taken, by action",
        [({"action": a}, n) for a, n in sorted(cc.action_counts.items())],
    )

    # -- compression oracle
    w.family(
        f"{p}compression_decisions_total",
        "counter",
        "Compression decisions, by decision",
        [({"decision": d}, n) for d, n in co.decision_counts.items()],
    )
    w.family(
        f"{p}compression_input_bytes_total",
        "counter",
        "Payload bytes given to compress()",
        _one(co.bytes_in),
    )
    w.family(
        f"{p}compression_output_bytes_total",
        "counter",
        "Frame bytes produced by compress()",
        _one(co.bytes_out),
    )
    w.family(
        f"{p}compression_saved_bytes",
        "gauge",
        "Net bytes saved by compression since start (input - output; can fall, hence a gauge)",
        _one(co.bytes_saved),
    )

    # -- path selector
    w.family(
        f"{p}path_selections_total",
        "counter",
        "Paths chosen, by path",
        [({"path": path}, n) for path, n in ps.selections.items()],
    )
    w.family(
        f"{p}path_mean_reward",
        "gauge",
        "Mean reward (0..1) observed per path (absent before the first reward)",
        [({"path": path}, r) for path, r in ps.mean_reward.items()],
    )

    # -- latency
    w.histogram(
        f"{p}decision_latency_seconds",
        "Decision latency of the sampled calls since start (one call in N is timed)",
        [({"component": n}, s.latency) for n, s in comps.items()],
    )
    w.family(
        f"{p}decision_latency_recent_seconds",
        "summary",
        "Decision latency quantiles over the most recent sampled calls (one call in N is "
        "timed; quantile 1 is the maximum)",
        [
            ({"component": n, "quantile": q}, _us_to_s(getattr(s.latency, field)))
            for n, s in comps.items()
            for q, field in LATENCY_QUANTILES
        ],
    )
    w.family(
        f"{p}decision_latency_window_samples",
        "gauge",
        "Timed calls the latency quantiles are computed over",
        [({"component": n}, s.latency.samples) for n, s in comps.items()],
    )

    # -- training telemetry
    w.family(
        f"{p}training_collection_enabled",
        "gauge",
        "1 when training telemetry is being collected",
        _one(stats.training_collection),
    )
    _write_telemetry(w, stats.telemetry)


def _us_to_s(us: float | None) -> float | None:
    return None if us is None else us / US_PER_S


def _write_telemetry(w: ExpositionWriter, tel: Mapping[str, Any] | None) -> None:
    p = PREFIX
    tables = tel.get("tables", {}) if isinstance(tel, Mapping) else {}
    if not isinstance(tables, Mapping):
        tables = {}

    def per_table(key: str) -> list[tuple[dict[str, str], Any]]:
        out = []
        for name, t in sorted(tables.items()):
            value = t.get(key) if isinstance(t, Mapping) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.append(({"table": str(name)}, value))
        return out

    w.family(
        f"{p}telemetry_buffered_rows",
        "gauge",
        "Training rows waiting in the bounded buffers",
        per_table("rows"),
    )
    w.family(
        f"{p}telemetry_capacity_rows",
        "gauge",
        "Capacity of each bounded training buffer",
        per_table("capacity"),
    )
    w.family(
        f"{p}telemetry_appended_rows_total",
        "counter",
        "Training rows recorded",
        per_table("appended"),
    )
    w.family(
        f"{p}telemetry_dropped_rows_total",
        "counter",
        "Training rows dropped because a buffer was full",
        per_table("dropped"),
    )
    exports = tel.get("exports") if isinstance(tel, Mapping) else None
    w.family(
        f"{p}telemetry_exports_total",
        "counter",
        "Successful training-data exports",
        _one(exports if isinstance(exports, int) and not isinstance(exports, bool) else None),
    )


def write_sync_stats(w: ExpositionWriter, stats: Any) -> None:
    """Families of a background model sync (`oxidize_ml.hub.SyncStats`)."""
    p = PREFIX
    w.family(f"{p}hub_sync_attempts_total", "counter", "Model sync attempts", _one(stats.attempts))
    w.family(f"{p}hub_sync_failures_total", "counter", "Failed model syncs", _one(stats.failures))
    w.family(
        f"{p}hub_model_updates_total",
        "counter",
        "Syncs that gave the engine a new model version",
        _one(stats.updates),
    )
    w.family(
        f"{p}hub_last_sync_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful sync (absent before the first)",
        _one(stats.last_success_unix_s),
    )
