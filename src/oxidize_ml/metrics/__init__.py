"""Prometheus exporter for `MlEngine.stats()` (standard library only).

>>> server = start_metrics_server(engine, port=9464)   # doctest: +SKIP
>>> server.url                                        # doctest: +SKIP
'http://127.0.0.1:9464/metrics'
>>> server.stop()                                     # doctest: +SKIP
"""

from __future__ import annotations

from oxidize_ml.metrics.exposition import (
    CONTENT_TYPE,
    ExpositionWriter,
    render_engine_stats,
    write_engine_stats,
    write_sync_stats,
)
from oxidize_ml.metrics.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MetricsServer,
    render_metrics,
    start_metrics_server,
)

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ExpositionWriter",
    "MetricsServer",
    "render_engine_stats",
    "render_metrics",
    "start_metrics_server",
    "write_engine_stats",
    "write_sync_stats",
]
