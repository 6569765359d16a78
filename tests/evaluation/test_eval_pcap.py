"""evaluate_pcaps / read_ip_packets on pcap and pcapng files written at run time (dpkt)."""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path

import pytest

dpkt = pytest.importorskip("dpkt")

from oxidize_ml.compression.packet import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    parse_ip,
    strip_link_layer,
)
from oxidize_ml.evaluation.compression import PCAP_ORACLES, evaluate_pcaps
from oxidize_ml.evaluation.pcapfile import read_ip_packets


def _ip4(proto: int, payload: bytes, ident: int) -> bytes:
    hdr = bytearray(
        struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(payload),
            ident & 0xFFFF,
            0x4000,
            64,
            proto,
            0,
            b"\x0a\0\0\x01",
            b"\x0a\0\0\x02",
        )
    )
    s = sum(struct.unpack(">10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    hdr[10:12] = struct.pack(">H", ~s & 0xFFFF)
    return bytes(hdr) + payload


def _ip6_udp(payload: bytes, sport: int) -> bytes:
    udp = struct.pack(">HHHH", sport, 443, 8 + len(payload), 0x1234) + payload
    return (
        struct.pack(
            ">IHBB16s16s", 0x60000000, len(udp), 17, 64, bytes(15) + b"\x01", bytes(15) + b"\x02"
        )
        + udp
    )


def ip_packets(n: int, seed: int) -> list[bytes]:
    """A mix a tunnel carries: an RTP call, IPv6 UDP, TCP text, TCP random, ICMP."""
    rng = random.Random(seed)
    out = []
    text = (
        b"GET /api/v1/items?page=3 HTTP/1.1\r\nHost: example.com\r\nAccept: "
        b"application/json\r\n\r\n" + b'{"id": 1, "name": "widget", "ok": true} ' * 30
    )
    for i in range(n):
        k = i % 5
        if k == 0:
            rtp = struct.pack(">BBHII", 0x80, 0, 100 + i, 160 * i, 0xABCDEF01) + rng.randbytes(80)
            out.append(_ip4(17, struct.pack(">HHHH", 40000, 5004, 8 + len(rtp), 0) + rtp, i))
        elif k == 1:
            out.append(_ip6_udp(b"\x17" + rng.randbytes(rng.randrange(40, 150)), 50000))
        elif k == 2:
            body = text[: rng.randrange(200, len(text))]
            tcp = struct.pack(">HHIIBBHHH", 443, 50000, i, 0, 0x50, 0x18, 65535, 0, 0)
            out.append(_ip4(6, tcp + body, i))
        elif k == 3:
            tcp = struct.pack(">HHIIBBHHH", 443, 50001, i, 0, 0x50, 0x18, 65535, 0, 0)
            out.append(_ip4(6, tcp + rng.randbytes(rng.randrange(60, 1400)), i))
        else:
            out.append(_ip4(1, b"\x08\x00\x00\x00" + struct.pack(">HH", 7, i) + bytes(56), i))
    return out


ARP = (
    b"\xff" * 6
    + b"\x02\x00\x00\x00\x00\x01"
    + b"\x08\x06"
    + bytes.fromhex("0001080006040001")
    + b"\x02\0\0\0\0\x01"
    + b"\x0a\0\0\x01"
    + bytes(10)
)


def frame(ip: bytes, linktype: int) -> bytes:
    ethertype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    if linktype == LINKTYPE_ETHERNET:
        f = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + struct.pack(">H", ethertype) + ip
        return f + bytes(max(0, 60 - len(f)))  # Ethernet padding of short frames
    if linktype == LINKTYPE_LINUX_SLL:
        return struct.pack(">HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x01\0\0", ethertype) + ip
    if linktype == LINKTYPE_LINUX_SLL2:
        return struct.pack(">HHIHBB8s", ethertype, 0, 2, 1, 0, 6, b"\x02\0\0\0\0\x01\0\0") + ip
    return ip


def write_capture(
    path: Path, packets: list[bytes], linktype: int, *, ng: bool, arp: bool = False
) -> Path:
    with open(path, "wb") as f:
        w = (dpkt.pcapng.Writer if ng else dpkt.pcap.Writer)(f, snaplen=65535, linktype=linktype)
        for i, ip in enumerate(packets):
            w.writepkt(frame(ip, linktype), ts=1_700_000_000 + i * 0.02)
            if arp and i % 10 == 0:
                w.writepkt(ARP, ts=1_700_000_000 + i * 0.02 + 0.001)
    return path


@pytest.mark.parametrize("ng", [False, True], ids=["pcap", "pcapng"])
@pytest.mark.parametrize(
    "linktype",
    [LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW],
    ids=["ethernet", "sll", "sll2", "raw"],
)
def test_read_ip_packets_strips_the_link_layer(tmp_path: Path, linktype: int, ng: bool) -> None:
    packets = ip_packets(40, seed=1)
    arp = linktype == LINKTYPE_ETHERNET
    path = write_capture(tmp_path / "c.cap", packets, linktype, ng=ng, arp=arp)
    got, stats = read_ip_packets(path, max_packets=1000)
    assert got == packets  # padding cut, headers stripped, order kept
    assert stats.linktype == linktype and stats.ip_packets == 40
    assert stats.non_ip_frames == (4 if arp else 0)
    got, stats = read_ip_packets(path, max_packets=7)
    assert got == packets[:7] and stats.kept == 7


def test_strip_link_layer_cases() -> None:
    ip = ip_packets(1, seed=2)[0]
    vlan = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01" + b"\x81\x00\x00\x05" + b"\x08\x00" + ip
    assert strip_link_layer(vlan, LINKTYPE_ETHERNET) == ip
    assert strip_link_layer(ARP, LINKTYPE_ETHERNET) is None
    assert strip_link_layer(b"\x01\x02", LINKTYPE_ETHERNET) is None
    assert strip_link_layer(b"", LINKTYPE_RAW) is None
    with pytest.raises(ValueError, match="linktype 147"):
        strip_link_layer(ip, 147)
    assert parse_ip(ip).udp and parse_ip(ip).rtp


def test_evaluate_pcaps_summary(tmp_path: Path) -> None:
    a = write_capture(
        tmp_path / "a.pcap", ip_packets(60, seed=3), LINKTYPE_ETHERNET, ng=False, arp=True
    )
    b = write_capture(tmp_path / "b.pcapng", ip_packets(40, seed=4), LINKTYPE_LINUX_SLL, ng=True)
    res = evaluate_pcaps([a, b], rates_mbps=(5, 20, 100), seed=0, progress=False)
    summary = res["summary"]
    assert set(summary) == {"oracles", "rohc_only_non_udp"}
    assert set(summary["oracles"]) == set(PCAP_ORACLES)
    for name, v in summary["oracles"].items():
        assert set(v) == {"net_share"} and set(v["net_share"]) == {"5", "20", "100"}, name
    assert summary["oracles"]["never"]["net_share"]["5"] == 0.0
    for name in ("heuristic", "always_lz4", "always_zstd"):
        share = summary["oracles"][name]["net_share"]["5"]
        assert share is not None and -5.0 < share <= 1.0 + 1e-9
    assert summary["rohc_only_non_udp"] == 0  # RohcOnly never goes to TCP or ICMP
    assert res["packets"]["evaluated"] == 100
    assert res["packets"]["per_kind"]["udp_rtp"] == 20
    assert [c["non_ip_frames"] for c in res["captures"]] == [6, 0]
    for row in res["per_rate"]:
        lo, hi = row["heuristic"]["net_share_ci95"]
        assert lo <= row["heuristic"]["utility_share_net"] <= hi
        assert math.isclose(sum(row["heuristic"]["decision_mix"].values()), 1.0)
        lo, hi = row["heuristic_minus_always_zstd_ci95"]
        diff = row["heuristic"]["utility_share_net"] - row["always_zstd"]["utility_share_net"]
        assert lo - 1e-9 <= diff <= hi + 1e-9
    json.dumps(res, allow_nan=False)  # strict JSON


def test_unreadable_and_truncated_files_name_the_file(tmp_path: Path) -> None:
    good = write_capture(tmp_path / "good.pcap", ip_packets(20, seed=5), LINKTYPE_RAW, ng=False)
    data = good.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-7])
    with pytest.raises(ValueError, match="cut.pcap.*truncated"):
        read_ip_packets(cut, max_packets=100)
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture at all")
    with pytest.raises(ValueError, match="junk.pcap.*not a pcap"):
        evaluate_pcaps([junk], progress=False)
    short = tmp_path / "short.pcap"
    short.write_bytes(data[:10])
    with pytest.raises(ValueError, match="short.pcap"):
        read_ip_packets(short, max_packets=100)
    with pytest.raises(ValueError, match="missing.pcap"):
        read_ip_packets(tmp_path / "missing.pcap", max_packets=100)
    # a record header claiming 3 GB is refused before anything is allocated
    huge = bytearray(data)
    struct.pack_into("<I", huge, 24 + 8, 3_000_000_000)
    big = tmp_path / "huge.pcap"
    big.write_bytes(bytes(huge))
    with pytest.raises(ValueError, match="huge.pcap"):
        read_ip_packets(big, max_packets=100)
    ng = write_capture(tmp_path / "cut.pcapng", ip_packets(20, seed=6), LINKTYPE_RAW, ng=True)
    raw = ng.read_bytes()
    ng.write_bytes(raw[:-9])
    with pytest.raises(ValueError, match="cut.pcapng"):
        read_ip_packets(ng, max_packets=100)
    with pytest.raises(ValueError, match="paths"):
        evaluate_pcaps([], progress=False)
    with pytest.raises(ValueError, match="rates_mbps"):
        evaluate_pcaps([good], rates_mbps=(0,), progress=False)


def test_unsupported_link_type(tmp_path: Path) -> None:
    path = tmp_path / "wifi.pcap"
    with open(path, "wb") as f:
        dpkt.pcap.Writer(f, linktype=105).writepkt(b"\x00" * 40, ts=0)
    with pytest.raises(ValueError, match="wifi.pcap.*link type 105"):
        read_ip_packets(path, max_packets=10)
