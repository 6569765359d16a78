"""Prometheus exporter for `MlEngine.stats()` (needs the ``metrics`` extra: prometheus_client).

>>> server = start_metrics_server(engine, port=9464)   # doctest: +SKIP
>>> server.url                                        # doctest: +SKIP
'http://127.0.0.1:9464/metrics'
>>> server.stop()                                     # doctest: +SKIP

The metric names are listed in `oxidize_ml.prometheus.collector`.
"""

from __future__ import annotations

try:
    import prometheus_client  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "oxidize_ml.prometheus needs prometheus_client: install the 'metrics' extra "
        "(pip install 'oxidize-ml[metrics]')"
    ) from exc

from oxidize_ml.prometheus.collector import EngineCollector, engine_families, sync_families
from oxidize_ml.prometheus.server import (
    CONTENT_TYPE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    MetricsServer,
    make_registry,
    render_metrics,
    start_metrics_server,
)

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EngineCollector",
    "MetricsServer",
    "engine_families",
    "make_registry",
    "render_metrics",
    "start_metrics_server",
    "sync_families",
]
