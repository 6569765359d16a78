"""A Prometheus scrape endpoint for one `MlEngine`, on the standard library's HTTP server.

The server answers ``GET /metrics`` in one background thread, one request at
a time with a socket timeout: scrapes come every few seconds, so sequential
handling bounds the threads and memory a misbehaving client can take.
It binds ``127.0.0.1`` by default; exposing it beyond the host is a choice
the caller makes (the figures describe the traffic a server carries).
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Final, Self

from oxidize_ml._validate import check_int
from oxidize_ml.metrics.exposition import (
    CONTENT_TYPE,
    ExpositionWriter,
    write_engine_stats,
    write_sync_stats,
)

log = logging.getLogger("oxidize_ml.metrics")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 9464
"""the port OpenTelemetry's Prometheus exporter uses by convention"""
REQUEST_TIMEOUT_S: Final = 5.0
"""a client that sends nothing for this long is dropped (one request at a time)"""
METRICS_PATH: Final = "/metrics"


def render_metrics(engine: Any, sync: Any | None = None) -> str:
    """The full exposition text: the engine's stats (and a background sync's, if given)."""
    from oxidize_ml import __version__

    w = ExpositionWriter()
    write_engine_stats(w, engine.stats(), package_version=__version__)
    if sync is not None:
        write_sync_stats(w, sync.stats())
    return w.text()


class _Handler(BaseHTTPRequestHandler):
    server: _MetricsHTTPServer
    timeout = REQUEST_TIMEOUT_S
    server_version = "oxidize-ml-metrics"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == METRICS_PATH:
            try:
                body = render_metrics(self.server.engine, self.server.sync).encode("utf-8")
            except Exception:
                log.exception("rendering metrics failed")
                self._send(500, b"rendering metrics failed; see the server log\n", "text/plain")
                return
            self._send(200, body, CONTENT_TYPE)
        elif path == "/":
            self._send(200, b"oxidize-ml metrics: GET /metrics\n", "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found; metrics are at /metrics\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _MetricsHTTPServer(HTTPServer):
    def __init__(self, address: tuple[str, int], engine: Any, sync: Any | None) -> None:
        self.engine = engine
        self.sync = sync
        super().__init__(address, _Handler)


class MetricsServer:
    """A running metrics endpoint; `stop` shuts it down. Use `start_metrics_server`."""

    def __init__(self, httpd: _MetricsHTTPServer) -> None:
        self._httpd = httpd
        self.host: str = httpd.server_address[0]  # type: ignore[assignment]
        self.port: int = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="oxidize-ml-metrics",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{METRICS_PATH}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout)
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_metrics_server(
    engine: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    sync: Any | None = None,
) -> MetricsServer:
    """Serve ``engine.stats()`` as Prometheus metrics at ``http://host:port/metrics``.

    Parameters
    ----------
    engine
        An `MlEngine` (anything with ``stats() -> EngineStats``).
    host
        Address to bind; loopback by default.
    port
        TCP port; 0 picks a free one (read it from ``.port``).
    sync
        Optional `oxidize_ml.hub.SyncHandle` whose counters are exported too.

    Returns
    -------
    MetricsServer
        With ``.port``, ``.url`` and ``.stop()``.
    """
    check_int("port", port, lo=0, hi=65535)
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be a non-empty address, got {host!r}")
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("metrics endpoint bound to %s: reachable beyond this host", host)
    if ":" in host:
        import socket

        class _V6(_MetricsHTTPServer):
            address_family = socket.AF_INET6

        return MetricsServer(_V6((host, port), engine, sync))
    return MetricsServer(_MetricsHTTPServer((host, port), engine, sync))
