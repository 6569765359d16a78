"""The report's header-compression section: real saving, no wrong packet, seeded."""

from __future__ import annotations

import pytest

from oxidize_ml.evaluation import header_compression as hc


def test_rohc_saves_header_bytes_and_never_decodes_a_wrong_packet():
    res = hc.run(seed=3, quick=True)
    assert {"rtp-pt0", "rtp-pt96", "udp-game"} <= set(res.saving)
    for kind, s in res.saving.items():
        # IPv4/UDP/RTP carries 40 header bytes, IPv6 60: most of them go
        assert s["saved_bytes"] > 15.0, kind
        assert s["frame_bytes"] < s["ip_bytes"]
    assert [(c["loss"], c["reorder"]) for c in res.channels] == list(hc.CHANNELS)
    for c in res.channels:
        assert c["wrong"] == 0  # a damaged context is caught by the CRC, never delivered
        assert c["error_rate"] < 0.005
    lossless = res.channels[0]
    assert lossless["delivered"] == res.packets * res.seeds and lossless["errors"] == 0
    assert "saved B/packet" in res.markdown() and res.headline()
    assert hc.run(seed=3, quick=True).to_dict() == res.to_dict()  # seeded


def test_seed_is_validated():
    with pytest.raises(ValueError, match="seed"):
        hc.run(seed=-1, quick=True)
