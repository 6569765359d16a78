"""Training-data collection and export.

A `TelemetryCollector` records what the engine saw and did into four bounded
in-memory tables; `TelemetryCollector.export` writes them as Parquet files
plus a ``manifest.json`` (layout: `oxidize_ml.telemetry.export`);
`read_exports` merges the exports of many servers for training.

Conventions
-----------
- ``timestamp`` (float64) in every table: absolute wall-clock seconds since
  the Unix epoch, supplied by the caller as ``now``. Absolute, so rows from
  different servers merge on one time axis (the earlier engine used time since
  process start, which could not be merged).
- ``source`` (string) in every table: the collector's source id
  (`TelemetryConfig.source`, default ``"local"``), e.g. an opaque server id.
  Keep host names and addresses out of it: exports are shared for training.
- Each table holds at most `TelemetryConfig.capacity` rows; when full, the
  oldest row is dropped and counted (``dropped`` in `stats` and the manifest).
- Column names and types below are stable; changing them bumps
  `TELEMETRY_SCHEMA_VERSION`. Columns are non-nullable.

Tables (schema version 1)
-------------------------
``loss``: one row per labelled network observation (`record_observation`)

    ==================== ======= ==================================================
    column               type    meaning
    ==================== ======= ==================================================
    timestamp            float64 observation time t (Unix seconds)
    source               string  collector source id
    f_rtt ... f_buffer_occupancy float32  the 8 normalised features
                                 (``f_`` + `oxidize_ml.features.FEATURE_NAMES`,
                                 i.e. ``NetworkFeatures.to_vector()``)
    loss_rate            float64 raw loss rate at t
    future_loss          float64 label: mean ``loss_rate`` of the observations
                                 with timestamps in (t + 0.05, t + 0.10]
                                 (`TelemetryConfig.loss_horizon_s`)
    future_loss_any      bool    label: some observation in that window had
                                 ``loss_rate`` > 0
    ==================== ======= ==================================================

    A sample is labelled once an observation (or `TelemetryCollector.advance`)
    later than t + 0.10 arrives. Samples whose window holds no observation
    are dropped and counted as ``unlabeled_dropped`` (a NaN label would only
    be filtered out later, and a guessed one would be wrong); samples still
    pending at export time stay pending for the next export.

``congestion``: one row per DQN transition (`record_transition`)

    =========== ============== ===============================================
    timestamp   float64        time of the transition
    source      string
    state       list<float32>  observation before the action (any length up
                               to ``max_vector_len``: the DQN observation
                               may extend the 8 features)
    action      int8           `oxidize_ml.types.DrlAction` index
    reward      float32        `oxidize_ml.congestion.reward.congestion_reward`
    next_state  list<float32>  observation after the action
    done        bool           episode ended with this transition
    =========== ============== ===============================================

``compression``: one row per compression decision (`record_compression`)

    =============== ============== =======================================
    timestamp       float64
    source          string
    features        list<float32>  the oracle's feature vector
    decision        string         `MlCompressionDecision` value
                                   (``skip``, ``light``, ``aggressive``,
                                   ``rohc_only``)
    size            int32          payload bytes before compression
    compressed_size int32          bytes after (== size when skipped)
    encode_ns       int64          time spent encoding, nanoseconds
    =============== ============== =======================================

``path``: one row per path-selection outcome (`record_path`)

    ============= ======= ================================================
    timestamp     float64
    source        string
    context       string  `TrafficContext` name (``Gaming``, ``VoIP``, ...)
    path          string  `PathId` name (``Primary``, ...)
    reward        float32 reward credited to the path
    rtt_us        float64 measured path RTT, microseconds
    loss_rate     float64 measured path loss rate in [0, 1]
    bandwidth_bps float64 measured path bandwidth, bits per second
    availability  float64 share of recent probes that succeeded, [0, 1]
    ============= ======= ================================================
"""

from __future__ import annotations

from oxidize_ml.telemetry.collector import (
    TIME_EPS_S,
    TelemetryCollector,
    TelemetryConfig,
)

# export.py imports pyarrow (~0.3 s) only inside its functions, so recording
# telemetry does not pay for it.
from oxidize_ml.telemetry.export import (
    ExportManifest,
    TableManifest,
    find_exports,
    read_export,
    read_exports,
    read_manifest,
    summarize_export,
)
from oxidize_ml.telemetry.schema import (
    LOSS_FEATURE_COLUMNS,
    TABLE_NAMES,
    TELEMETRY_SCHEMA_VERSION,
    arrow_schema,
    column_names,
)

__all__ = [
    "LOSS_FEATURE_COLUMNS",
    "TABLE_NAMES",
    "TELEMETRY_SCHEMA_VERSION",
    "TIME_EPS_S",
    "ExportManifest",
    "TableManifest",
    "TelemetryCollector",
    "TelemetryConfig",
    "arrow_schema",
    "column_names",
    "find_exports",
    "read_export",
    "read_exports",
    "read_manifest",
    "summarize_export",
]
