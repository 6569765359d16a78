"""`NetworkFeatures.write_vector` writes exactly `to_vector`, bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from oxidize_ml.features import N_FEATURES, NetworkFeatures

_big = st.floats(min_value=0.0, max_value=1e12, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    rtt=_big,
    var=_big,
    bw=_big,
    loss=st.floats(0.0, 1.0),
    trend=st.floats(-1.0, 1.0),
    inflight=_big,
    cwnd=_big,
    occupancy=st.floats(0.0, 1.0),
)
def test_write_vector_equals_to_vector_including_clipped_values(
    rtt: float,
    var: float,
    bw: float,
    loss: float,
    trend: float,
    inflight: float,
    cwnd: float,
    occupancy: float,
) -> None:
    f = NetworkFeatures(
        rtt_us=rtt, rtt_var_us=var, bandwidth_bps=bw, loss_rate=loss, loss_trend=trend,
        inflight=inflight, cwnd=cwnd, buffer_occupancy=occupancy,
    )  # fmt: skip
    buf = np.full(N_FEATURES + 3, -7.0, dtype=np.float32)
    f.write_vector(buf)
    assert buf[:N_FEATURES].tobytes() == f.to_vector().tobytes()
    assert (buf[N_FEATURES:] == -7.0).all()  # nothing written past the 8 features
