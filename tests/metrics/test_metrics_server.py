"""The metrics HTTP endpoint: scrape over loopback, values, errors, shutdown, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.hub import SyncStats
from oxidize_ml.metrics import CONTENT_TYPE, start_metrics_server
from oxidize_ml.metrics.demo import DemoDriver

parser = pytest.importorskip("prometheus_client.parser")


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read().decode("utf-8")


def families(text: str) -> dict:
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def sample(fams: dict, family: str, **labels: str) -> float:
    (s,) = [s for s in fams[family].samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return s.value


class FakeSync:
    """Stands for a SyncHandle: the server only calls .stats()."""

    def stats(self) -> SyncStats:
        return SyncStats(
            attempts=5,
            failures=2,
            updates=1,
            last_success_unix_s=1.7e9,
            last_error="boom",
            running=True,
        )


def test_scrape_matches_stats_and_stops() -> None:
    engine = MlEngine(EngineConfig(load_default_models=False))
    driver = DemoDriver(engine)
    for i in range(120):
        driver.step(2_000.0 + i * 0.01)
    server = start_metrics_server(engine, port=0, sync=FakeSync())
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        ctype, text = scrape(server.url)
        assert ctype == CONTENT_TYPE
        stats = engine.stats()
        fams = families(text)
        assert (
            sample(fams, "oxidize_ml_decisions", component="loss_predictor", source="fallback")
            == stats.loss_predictor.fallback_decisions
            == 120
        )
        assert sample(fams, "oxidize_ml_cwnd_bytes") == stats.congestion_controller.cwnd
        assert (
            sample(fams, "oxidize_ml_compression_input_bytes") == stats.compression_oracle.bytes_in
        )
        assert sample(fams, "oxidize_ml_hub_sync_failures") == 2
        assert sample(fams, "oxidize_ml_hub_last_sync_success_timestamp_seconds") == 1.7e9
        # More traffic shows up in the next scrape.
        for i in range(30):
            driver.step(3_000.0 + i * 0.01)
        fams = families(scrape(server.url)[1])
        assert (
            sample(fams, "oxidize_ml_decisions", component="path_selector", source="bandit") == 150
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url.replace("/metrics", "/nope"), timeout=10)
        assert info.value.code == 404
        assert "metrics" in scrape(server.url.replace("/metrics", "/"))[1]
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=5)
    server.stop()  # idempotent


def test_bad_arguments() -> None:
    engine = MlEngine(EngineConfig(load_default_models=False))
    with pytest.raises(ValueError, match="port"):
        start_metrics_server(engine, port=70_000)
    with pytest.raises(TypeError, match="port"):
        start_metrics_server(engine, port="80")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="host"):
        start_metrics_server(engine, host="")


def test_render_failure_is_a_500() -> None:
    class Broken:
        def stats(self) -> None:
            raise RuntimeError("no stats")

    with start_metrics_server(Broken(), port=0) as server:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url, timeout=10)
        assert info.value.code == 500
        # The server survives and answers the next request.
        assert scrape(server.url.replace("/metrics", "/"))[1]


def test_cli_serve_metrics_demo() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXIDIZE_")}
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [sys.executable, "-m", "oxidize_ml.cli", "serve-metrics", "--port", "0", "--demo"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "serving Prometheus metrics on http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split(" on ", 1)[1].split()[0]
        deadline = time.monotonic() + 30.0
        n = 0.0
        while n < 5 and time.monotonic() < deadline:
            fams = families(scrape(url)[1])
            n = sample(fams, "oxidize_ml_decisions", component="path_selector", source="bandit")
            time.sleep(0.1)
        assert n >= 5  # the demo drives the engine
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
