"""A Prometheus scrape endpoint for one `MlEngine`, on prometheus_client's threaded WSGI server.

Each connection gets its own thread (prometheus_client's
``ThreadingWSGIServer``), so an idle or slow client never delays another
scrape. What one misbehaving client can take is bounded three ways:

* ``REQUEST_TIMEOUT_S``: a socket read or write that makes no progress for
  this long ends the connection;
* ``CONNECTION_DEADLINE_S``: a connection still open this long after it was
  accepted is shut down by a watchdog, whatever it is doing (a client
  trickling one byte every few seconds defeats a per-read timeout, not this);
* ``max_connections``: connections beyond it are closed at once, so a flood
  cannot create unbounded threads; the deadline frees the slots again.

It binds ``127.0.0.1`` by default; exposing it beyond the host is a choice
the caller makes (the figures describe the traffic a server carries).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Self
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, ThreadingWSGIServer

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.prometheus.collector import EngineCollector

log = logging.getLogger("oxidize_ml.prometheus")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 9464
"""the port OpenTelemetry's Prometheus exporter uses by convention"""
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
"""what a scrape without an Accept header gets (text format 0.0.4)"""
REQUEST_TIMEOUT_S: Final = 5.0
"""a read or write with no progress for this long ends the connection"""
CONNECTION_DEADLINE_S: Final = 10.0
"""no connection stays open longer than this (a scrape takes milliseconds)"""
MAX_CONNECTIONS: Final = 64
"""concurrent connections (one thread each); further ones are closed at once"""
WATCHDOG_PERIOD_S: Final = 0.25
"""how often overdue connections are looked for"""
METRICS_PATH: Final = "/metrics"

_Environ = dict[str, Any]
_StartResponse = Callable[..., Any]


def make_registry(
    engine: Any, sync: Any | None = None, *, package_version: str | None = None
) -> CollectorRegistry:
    """A private registry holding one `EngineCollector` (never the global default one)."""
    # support_collectors_without_names: our collector's describe() is empty (it must
    # not scrape at registration), and ?name[]= filtering must still find it.
    registry = CollectorRegistry(auto_describe=False, support_collectors_without_names=True)
    registry.register(EngineCollector(engine, sync, package_version=package_version))
    return registry


def render_metrics(engine: Any, sync: Any | None = None) -> str:
    """The text exposition (0.0.4) a scrape returns: the engine's stats and a sync's."""
    from oxidize_ml import __version__

    return generate_latest(make_registry(engine, sync, package_version=__version__)).decode("utf-8")


def _metrics_app(
    registry: CollectorRegistry,
) -> Callable[[_Environ, _StartResponse], Iterable[bytes]]:
    """prometheus_client's WSGI app at ``/metrics``, a hint at ``/``, 404 elsewhere."""
    prom = make_wsgi_app(registry)

    def app(environ: _Environ, start_response: _StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == METRICS_PATH:
            try:
                # The collector runs before start_response is called, so a failure
                # here can still become a clean 500.
                return list(prom(environ, start_response))
            except Exception:
                log.exception("rendering metrics failed")
                body = b"rendering metrics failed; see the server log\n"
                start_response(
                    "500 Internal Server Error",
                    [
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("Content-Length", str(len(body))),
                    ],
                )
                return [body]
        if path == "/":
            body = b"oxidize-ml metrics: GET /metrics\n"
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [body]
        body = b"not found; metrics are at /metrics\n"
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [body]

    return app


class _Handler(WSGIRequestHandler):
    # StreamRequestHandler.setup applies it to the connection's socket.
    timeout = REQUEST_TIMEOUT_S
    server_version = "oxidize-ml-metrics"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingWSGIServer):
    """Thread per connection, at most ``max_connections``, each shut down at its deadline."""

    daemon_threads = True
    # server_close must not wait for a slow client's thread: the watchdog ends it.
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], *, max_connections: int, deadline_s: float
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._deadline_s = deadline_s
        self._open: dict[socket.socket, float] = {}
        self._open_lock = threading.Lock()
        self._closing = threading.Event()
        self.rejected = 0
        self.expired = 0
        super().__init__(address, _Handler)
        self._watchdog = threading.Thread(
            target=self._watch, name="oxidize-ml-metrics-watchdog", daemon=True
        )
        self._watchdog.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # Full: refusing is what keeps threads bounded; scrapers retry.
            self.rejected += 1
            self.shutdown_request(request)
            return
        with self._open_lock:
            self._open[request] = time.monotonic() + self._deadline_s
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request: Any) -> None:
        with self._open_lock:
            known = self._open.pop(request, None) is not None
        if known:
            self._slots.release()

    def _watch(self) -> None:
        while not self._closing.wait(WATCHDOG_PERIOD_S):
            now = time.monotonic()
            with self._open_lock:
                overdue = [s for s, t in self._open.items() if t <= now]
            for s in overdue:
                self.expired += 1
                # shutdown() wakes the handler thread blocked in recv/send with an
                # error or EOF; it then closes the socket and frees its slot.
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Called from socketserver's except clause. Timeouts and resets are what
        # misbehaving clients cause: a debug line, not a traceback on stderr.
        exc = sys.exc_info()[1]
        log.debug("metrics connection from %s ended: %r", client_address, exc)

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()
        with self._open_lock:
            sockets = list(self._open)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _ServerV6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """A running metrics endpoint; `stop` shuts it down. Use `start_metrics_server`."""

    def __init__(self, httpd: _Server) -> None:
        self._httpd = httpd
        host = httpd.server_address[0]  # str for AF_INET/AF_INET6; typeshed also allows bytes
        self.host: str = host if isinstance(host, str) else host.decode()
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

    @property
    def rejected_connections(self) -> int:
        """Connections closed at once because ``max_connections`` were open."""
        return self._httpd.rejected

    @property
    def expired_connections(self) -> int:
        """Connections shut down at ``deadline_s``."""
        return self._httpd.expired

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
    max_connections: int = MAX_CONNECTIONS,
    deadline_s: float = CONNECTION_DEADLINE_S,
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
    max_connections
        Concurrent connections served (one thread each); more are closed at once.
    deadline_s
        Longest any connection stays open, seconds.

    Returns
    -------
    MetricsServer
        With ``.port``, ``.url`` and ``.stop()``.
    """
    from oxidize_ml import __version__

    check_int("port", port, lo=0, hi=65535)
    check_int("max_connections", max_connections, lo=1, hi=4096)
    if check_number("deadline_s", deadline_s, hi=3600.0) <= 0.0:
        raise ValueError(f"deadline_s must be > 0, got {deadline_s!r}")
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be a non-empty address, got {host!r}")
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("metrics endpoint bound to %s: reachable beyond this host", host)
    registry = make_registry(engine, sync, package_version=__version__)
    cls = _ServerV6 if ":" in host else _Server
    httpd = cls((host, port), max_connections=max_connections, deadline_s=deadline_s)
    httpd.set_app(_metrics_app(registry))
    return MetricsServer(httpd)
