"""The metrics HTTP endpoint: scrape over loopback, values, errors, slow clients, shutdown, CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

parser = pytest.importorskip("prometheus_client.parser")

from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.hub import SyncStats
from oxidize_ml.prometheus import CONTENT_TYPE, start_metrics_server
from oxidize_ml.prometheus.demo import DemoDriver


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


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


class SlowLoris:
    """Trickles a never-ending request header, one byte every ``period_s``.

    The period is below the server's per-read timeout, so only a whole-connection
    deadline (or a thread per connection) keeps it from blocking anyone else.
    """

    def __init__(self, port: int, period_s: float = 0.5) -> None:
        self.sock = _connect(port)
        self.period_s = period_s
        self.closed_by_server = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        for b in request:
            if self._stop.wait(self.period_s):
                return
            try:
                self.sock.sendall(bytes([b]))
            except OSError:
                self.closed_by_server.set()
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _engine_with_traffic(rounds: int = 50) -> MlEngine:
    engine = MlEngine(EngineConfig(load_default_models=False))
    driver = DemoDriver(engine)
    for i in range(rounds):
        driver.step(2_000.0 + i * 0.01)
    return engine


def test_idle_and_slow_clients_do_not_block_concurrent_scrapes() -> None:
    """Issue 8 item 8: one idle connection or one trickling client blocked every scrape."""
    engine = _engine_with_traffic()
    with start_metrics_server(engine, port=0) as server:
        idle = _connect(server.port)  # connects, never sends a byte
        half = _connect(server.port)  # sends half a request line, then nothing
        half.sendall(b"GET /metr")
        loris = SlowLoris(server.port)
        time.sleep(0.3)  # the server has accepted all three and is waiting on them
        n = 8
        results: list[tuple[float, str] | BaseException] = [ValueError("not run")] * n

        def one(i: int) -> None:
            t0 = time.monotonic()
            try:
                # 3 s: the old single-threaded server made each wait >= 5 s.
                with urllib.request.urlopen(server.url, timeout=3) as resp:
                    results[i] = (time.monotonic() - t0, resp.read().decode("utf-8"))
            except BaseException as exc:  # noqa: BLE001 - reported below
                results[i] = exc

        t0 = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        elapsed = time.monotonic() - t0
        try:
            failures = [r for r in results if isinstance(r, BaseException)]
            assert not failures, failures
            assert elapsed < 3.0, elapsed
            for _, text in results:  # type: ignore[misc]
                fams = families(text)
                assert sample(fams, "oxidize_ml_observations") == 50
            # The slow clients were held open meanwhile, not dropped to make room.
            assert not loris.closed_by_server.is_set()
        finally:
            loris.close()
            idle.close()
            half.close()


def test_connection_deadline_and_connection_cap() -> None:
    engine = _engine_with_traffic(5)
    with start_metrics_server(engine, port=0, max_connections=2, deadline_s=1.0) as server:
        loris = SlowLoris(server.port, period_s=0.2)
        idle = _connect(server.port)
        time.sleep(0.3)
        # Both slots taken: a third connection is closed at once (no thread for it).
        extra = _connect(server.port)
        try:
            extra.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            assert extra.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            extra.close()
        assert server.rejected_connections >= 1
        # The deadline ends both slow connections, whatever they do, within ~1 s.
        assert idle.recv(100) == b""
        assert loris.closed_by_server.wait(3.0)
        assert server.expired_connections >= 2
        _, text = scrape(server.url)  # slots are free again
        assert sample(families(text), "oxidize_ml_observations") == 5
        loris.close()
        idle.close()


def test_name_filter_and_openmetrics_negotiation() -> None:
    engine = _engine_with_traffic(3)
    with start_metrics_server(engine, port=0) as server:
        url = server.url + "?name[]=oxidize_ml_cwnd_bytes&name[]=oxidize_ml_observations_total"
        fams = families(scrape(url)[1])
        assert set(fams) == {"oxidize_ml_cwnd_bytes", "oxidize_ml_observations"}
        req = urllib.request.Request(
            server.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            ctype = resp.headers["Content-Type"]
            text = resp.read().decode("utf-8")
        assert ctype.startswith("application/openmetrics-text")
        assert text.endswith("# EOF\n")


def test_bad_arguments() -> None:
    engine = MlEngine(EngineConfig(load_default_models=False))
    with pytest.raises(ValueError, match="port"):
        start_metrics_server(engine, port=70_000)
    with pytest.raises(TypeError, match="port"):
        start_metrics_server(engine, port="80")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="host"):
        start_metrics_server(engine, host="")
    with pytest.raises(ValueError, match="max_connections"):
        start_metrics_server(engine, max_connections=0)
    with pytest.raises(ValueError, match="deadline_s"):
        start_metrics_server(engine, deadline_s=0.0)
    with pytest.raises(TypeError, match="engine"):
        start_metrics_server(object())


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
