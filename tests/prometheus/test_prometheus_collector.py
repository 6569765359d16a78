"""The prometheus_client collector of MlEngine.stats(): names, types and values per scrape."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

pytest.importorskip("prometheus_client")
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_openmetrics,
)
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.prometheus import EngineCollector, make_registry
from oxidize_ml.prometheus.demo import DemoDriver

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_strict(text: str) -> dict[str, dict]:
    """A strict reader of the 0.0.4 text format as we write it.

    Returns ``{family: {"type", "help", "samples": {(name, labels): value}}}``;
    fails on anything out of order, unknown, duplicated or malformed.
    """
    assert text.endswith("\n")
    fams: dict[str, dict] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in fams, f"family {name} repeated"
            assert help_text, f"{name} has an empty HELP"
            fams[name] = {"help": help_text, "type": None, "samples": {}}
            current = name
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current and fams[name]["type"] is None, f"TYPE out of place: {line}"
            assert kind in ("counter", "gauge", "summary", "histogram", "untyped")
            fams[name]["type"] = kind
            continue
        assert not line.startswith("#"), line
        m = _SAMPLE_RE.match(line)
        assert m, f"malformed sample line {line!r}"
        name, _, label_text, value = m.groups()
        assert current is not None and fams[current]["type"] is not None
        allowed = {current}
        if fams[current]["type"] == "histogram":
            allowed |= {current + "_bucket", current + "_sum", current + "_count"}
        assert name in allowed, f"sample {name} outside its family {current}"
        labels: list[tuple[str, str]] = []
        pos = 0
        while label_text and pos < len(label_text):
            lm = _LABEL_RE.match(label_text, pos)
            assert lm, f"bad labels {label_text!r}"
            labels.append((lm.group(1), lm.group(2)))
            pos = lm.end()
        key = (name, tuple(sorted(labels)))
        assert key not in fams[current]["samples"], f"duplicate sample {key}"
        v = float(value.replace("+Inf", "inf").replace("-Inf", "-inf"))
        fams[current]["samples"][key] = v
    for name, fam in fams.items():
        assert name.startswith("oxidize_ml_")
        if fam["type"] == "counter":
            assert name.endswith("_total"), name
            assert all(v >= 0 for v in fam["samples"].values()), name
        else:
            assert not name.endswith("_total"), name
    return fams


def value(fams: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    family = name
    for suffix in ("_bucket", "_sum", "_count"):
        if name not in fams and name.endswith(suffix):
            family = name[: -len(suffix)]
    return fams[family]["samples"][key]


@pytest.fixture(scope="module")
def driven_engine() -> MlEngine:
    engine = MlEngine(
        EngineConfig(load_default_models=False, collect_training=True, latency_sample_every=1)
    )
    driver = DemoDriver(engine)
    for i in range(300):
        driver.step(1_000.0 + i * 0.01)
    return engine


class FixedStats:
    """Stands for an engine: stats() returns what it was given."""

    def __init__(self, stats: object) -> None:
        self._stats = stats

    def stats(self) -> object:
        return self._stats


def render_engine_stats(stats: object, *, package_version: str | None = None) -> str:
    """The text a scrape of an engine with these stats returns."""
    registry = make_registry(FixedStats(stats), package_version=package_version)
    return generate_latest(registry).decode("utf-8")


def test_values_match_engine_stats(driven_engine: MlEngine) -> None:
    stats = driven_engine.stats()
    fams = parse_strict(render_engine_stats(stats, package_version="9.9.9"))
    lp, cc, co, ps = (
        stats.loss_predictor,
        stats.congestion_controller,
        stats.compression_oracle,
        stats.path_selector,
    )
    d = "oxidize_ml_decisions_total"
    assert value(fams, d, component="loss_predictor", source="model") == lp.model_decisions
    assert value(fams, d, component="loss_predictor", source="fallback") == 300
    assert value(fams, d, component="congestion_controller", source="fallback") == 300
    assert value(fams, d, component="compression_oracle", source="fallback") == co.decisions
    assert value(fams, d, component="path_selector", source="bandit") == ps.decisions == 300
    assert value(fams, "oxidize_ml_cwnd_bytes") == cc.cwnd
    assert value(fams, "oxidize_ml_loss_prediction_ratio") == pytest.approx(lp.last_prediction)
    assert value(fams, "oxidize_ml_fec_injections_total") == lp.fec_injections
    assert value(fams, "oxidize_ml_observations_total") == 300
    for a, n in cc.action_counts.items():
        assert value(fams, "oxidize_ml_congestion_actions_total", action=a) == n
    assert sum(fams["oxidize_ml_congestion_actions_total"]["samples"].values()) == 300
    for k, n in co.decision_counts.items():
        assert value(fams, "oxidize_ml_compression_decisions_total", decision=k) == n
    assert value(fams, "oxidize_ml_compression_input_bytes_total") == co.bytes_in > 0
    assert value(fams, "oxidize_ml_compression_output_bytes_total") == co.bytes_out
    assert value(fams, "oxidize_ml_compression_saved_bytes") == co.bytes_in - co.bytes_out
    for p, n in ps.selections.items():
        assert value(fams, "oxidize_ml_path_selections_total", path=p) == n
    for p, r in ps.mean_reward.items():
        key = ("oxidize_ml_path_mean_reward", (("path", p),))
        assert (key in fams["oxidize_ml_path_mean_reward"]["samples"]) == (r is not None)
    for comp in ("loss_predictor", "congestion_controller", "compression_oracle", "path_selector"):
        lat = getattr(stats, comp).latency
        assert lat.samples > 0
        q = "oxidize_ml_decision_latency_recent_seconds"
        assert value(fams, q, component=comp, quantile="0.5") == pytest.approx(lat.p50_us / 1e6)
        assert value(fams, q, component=comp, quantile="0.99") == pytest.approx(lat.p99_us / 1e6)
        assert value(fams, q, component=comp, quantile="1") == pytest.approx(lat.max_us / 1e6)
        assert value(fams, "oxidize_ml_model_loaded", component=comp) == 0
        policy = getattr(stats, comp).policy
        assert value(fams, "oxidize_ml_policy_info", component=comp, policy=policy) == 1
    assert fams["oxidize_ml_decision_latency_recent_seconds"]["type"] == "summary"
    hist = "oxidize_ml_decision_latency_seconds"
    assert fams[hist]["type"] == "histogram"
    for comp in ("loss_predictor", "congestion_controller", "compression_oracle", "path_selector"):
        lat = getattr(stats, comp).latency
        inf = fams[hist]["samples"][(hist + "_bucket", (("component", comp), ("le", "+Inf")))]
        assert inf == lat.count > 0
        assert value(fams, hist + "_count", component=comp) == lat.count
        buckets = [
            v
            for (n, labels), v in fams[hist]["samples"].items()
            if n == hist + "_bucket" and labels[0] == ("component", comp)
        ]
        assert buckets == sorted(buckets)  # cumulative
    assert value(fams, "oxidize_ml_build_info", version="9.9.9", feature_schema="1") == 1
    assert value(fams, "oxidize_ml_training_collection_enabled") == 1
    for table, t in stats.telemetry["tables"].items():
        assert value(fams, "oxidize_ml_telemetry_buffered_rows", table=table) == t["rows"]
        assert value(fams, "oxidize_ml_telemetry_dropped_rows_total", table=table) == t["dropped"]
    # The BBR fallback has no epsilon: the family is declared, without a sample.
    assert cc.epsilon is None and fams["oxidize_ml_epsilon"]["samples"] == {}


def test_epsilon_and_missing_values(driven_engine: MlEngine) -> None:
    stats = driven_engine.stats()
    cc = replace(stats.congestion_controller, epsilon=0.05)
    lp = replace(stats.loss_predictor, last_prediction=None)
    fams = parse_strict(
        render_engine_stats(
            replace(
                stats,
                congestion_controller=cc,
                loss_predictor=lp,
                telemetry=None,
                training_collection=False,
            )
        )
    )
    assert value(fams, "oxidize_ml_epsilon") == 0.05
    assert fams["oxidize_ml_loss_prediction_ratio"]["samples"] == {}
    assert fams["oxidize_ml_telemetry_buffered_rows"]["samples"] == {}
    assert value(fams, "oxidize_ml_training_collection_enabled") == 0
    assert "oxidize_ml_build_info" not in fams


def test_fresh_engine_renders() -> None:
    fams = parse_strict(
        render_engine_stats(MlEngine(EngineConfig(load_default_models=False)).stats())
    )
    assert (
        value(fams, "oxidize_ml_decisions_total", component="path_selector", source="bandit") == 0
    )
    assert fams["oxidize_ml_decision_latency_recent_seconds"]["samples"] == {}
    zero = "oxidize_ml_decision_latency_seconds_count"
    assert value(fams, zero, component="path_selector") == 0


def test_label_values_are_escaped(driven_engine: MlEngine) -> None:
    stats = driven_engine.stats()
    odd = 'a"b\\c\nd'
    cc = replace(stats.congestion_controller, policy=odd)
    text = render_engine_stats(replace(stats, congestion_controller=cc))
    assert 'policy="a\\"b\\\\c\\nd"' in text
    fams = parse_strict(text)
    key = (("component", "congestion_controller"), ("policy", 'a\\"b\\\\c\\nd'))
    assert fams["oxidize_ml_policy_info"]["samples"][("oxidize_ml_policy_info", key)] == 1


def test_collector_reads_stats_at_each_scrape() -> None:
    calls = 0
    engine = MlEngine(EngineConfig(load_default_models=False))

    class Counting:
        def stats(self) -> object:
            nonlocal calls
            calls += 1
            return engine.stats()

    registry = make_registry(Counting())
    assert calls == 0  # registering does not scrape
    generate_latest(registry)
    generate_latest(registry)
    assert calls == 2  # one stats() snapshot per scrape, never cached
    with pytest.raises(TypeError, match="engine"):
        EngineCollector(object())
    with pytest.raises(TypeError, match="sync"):
        EngineCollector(engine, sync=object())


def test_openmetrics_exposition_parses(driven_engine: MlEngine) -> None:
    # Prometheus asks for OpenMetrics when it can: that output must parse too.
    registry = make_registry(FixedStats(driven_engine.stats()), package_version="1.0")
    text = generate_openmetrics(registry).decode("utf-8")
    fams = {f.name: f for f in parse_openmetrics(text)}
    assert fams["oxidize_ml_decisions"].type == "counter"
    assert fams["oxidize_ml_decision_latency_seconds"].type == "histogram"
    cwnd = fams["oxidize_ml_cwnd_bytes"].samples[0].value
    assert cwnd == driven_engine.stats().congestion_controller.cwnd


def test_prometheus_client_parser_reads_it(driven_engine: MlEngine) -> None:
    from prometheus_client import parser

    stats = driven_engine.stats()
    text = render_engine_stats(stats, package_version="1.0")
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}
    # prometheus_client names counter families without the _total suffix.
    decisions = fams["oxidize_ml_decisions"]
    assert decisions.type == "counter"
    got = {(s.labels["component"], s.labels["source"]): s.value for s in decisions.samples}
    assert got[("congestion_controller", "fallback")] == stats.congestion_controller.decisions
    assert fams["oxidize_ml_decision_latency_seconds"].type == "histogram"
    lat = fams["oxidize_ml_decision_latency_recent_seconds"]
    assert lat.type == "summary"
    p99 = {s.labels["component"]: s.value for s in lat.samples if s.labels["quantile"] == "0.99"}
    assert p99["compression_oracle"] == pytest.approx(stats.compression_oracle.latency.p99_us / 1e6)
    assert fams["oxidize_ml_cwnd_bytes"].samples[0].value == stats.congestion_controller.cwnd
