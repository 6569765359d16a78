"""Header compression (RohcOnly): round trips, loss and reordering, eviction, hostile input."""

from __future__ import annotations

import random
import struct

import pytest
from compression_payloads import tcp_ipv4
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxidize_ml.compression.codec import CodecConfig, CodecMethod, PacketCodec, frame_method
from oxidize_ml.compression.rohc import RohcCompressor, RohcConfig, RohcDecompressor
from oxidize_ml.types import MlCompressionDecision as D


def _ip4_checksum(hdr: bytes) -> int:
    s = sum(struct.unpack(">10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_udp(
    payload: bytes,
    *,
    v6: bool = False,
    sport: int = 50000,
    ipid: int = 0,
    csum: int = 0,
    good_checksum: bool = True,
) -> bytes:
    udp = struct.pack(">HHHH", sport, 5004, 8 + len(payload), csum) + payload
    if v6:
        return (
            struct.pack(
                ">IHBB16s16s",
                0x6000ABCD,
                len(udp),
                17,
                64,
                b"\x20\x01" + bytes(14),
                b"\x20\x01" + bytes(13) + b"\x01",
            )
            + udp
        )
    hdr = bytearray(
        struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            ipid & 0xFFFF,
            0x4000,
            64,
            17,
            0,
            b"\x0a\x00\x00\x01",
            b"\x0a\x00\x00\x02",
        )
    )
    c = _ip4_checksum(bytes(hdr))
    hdr[10:12] = struct.pack(">H", c if good_checksum else c ^ 0x5A5A)
    return bytes(hdr) + udp


def rtp(
    seq: int, ts: int, payload: bytes, *, marker: bool = False, ssrc: int = 0x1234ABCD
) -> bytes:
    b1 = (0x80 if marker else 0) | 111
    return struct.pack(">BBHII", 0x80, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def rtp_flow(
    n: int,
    *,
    v6: bool = False,
    seed: int = 0,
    payload_bytes: int = 60,
    csum: bool = True,
    sport: int = 50000,
) -> list[bytes]:
    """An audio-like RTP flow: SN +1, TS +160, IP-ID +1, a talk spurt gap every 50 packets."""
    rng = random.Random(seed)
    out = []
    ts = rng.randrange(1 << 32)
    for i in range(n):
        if i and i % 50 == 0:
            ts += 160 * rng.randrange(5, 40)  # silence: TS jumps, SN does not
        ts += 160
        body = rtp(1000 + i, ts, rng.randbytes(payload_bytes), marker=(i % 50 == 0))
        out.append(
            ip_udp(
                body, v6=v6, sport=sport, ipid=7 + i, csum=rng.randrange(1, 65536) if csum else 0
            )
        )
    return out


def udp_flow(n: int, *, v6: bool = False, seed: int = 0, random_ipid: bool = False) -> list[bytes]:
    rng = random.Random(seed)
    return [
        # first byte 0x17: a payload that does not look like RTP (see rtp_flow)
        ip_udp(
            b"\x17" + rng.randbytes(rng.randrange(20, 120)),
            v6=v6,
            ipid=rng.randrange(1 << 16) if random_ipid else 300 + i,
            csum=0,
        )
        for i in range(n)
    ]


def _through(codec_tx: PacketCodec, codec_rx: PacketCodec, packets: list[bytes]) -> list[bytes]:
    frames = [codec_tx.encode(p, D.RohcOnly) for p in packets]
    assert [codec_rx.decode(f) for f in frames] == packets
    return frames


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_rtp_flow_round_trip_and_savings(v6: bool) -> None:
    packets = rtp_flow(600, v6=v6)
    frames = _through(PacketCodec(), PacketCodec(), packets)
    assert all(frame_method(f) is CodecMethod.ROHC for f in frames)
    hdr = (40 if v6 else 20) + 8 + 12
    saved = sum(len(p) + 1 - len(f) for p, f in zip(packets, frames, strict=True)) / len(packets)
    # 1 codec byte + flags, CID, MSN, CRC, UDP checksum = 7 bytes for a 40/60-byte header;
    # IRs (start, refresh every 64) and TS updates after talk spurts cost some back.
    assert saved > hdr - 12


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("random_ipid", [False, True])
def test_plain_udp_flow_round_trip(v6: bool, random_ipid: bool) -> None:
    packets = udp_flow(300, v6=v6, random_ipid=random_ipid)
    frames = _through(PacketCodec(), PacketCodec(), packets)
    saved = sum(len(p) - len(f) for p, f in zip(packets, frames, strict=True)) / len(packets)
    assert saved > (12 if random_ipid or not v6 else 30)


def test_packets_outside_the_model_are_exact() -> None:
    # A wrong IPv4 header checksum cannot be rebuilt: the compressor sends it whole.
    packets = [ip_udp(bytes(40), ipid=i, good_checksum=(i % 3 != 0)) for i in range(60)]
    _through(PacketCodec(), PacketCodec(), packets)
    # Non-UDP and non-IP packets are sent raw under RohcOnly.
    for pkt in (tcp_ipv4(bytes(60)), b"\x45" + bytes(30), b"hello world" * 4):
        frame = PacketCodec().encode(pkt, D.RohcOnly)
        assert frame_method(frame) is CodecMethod.RAW and PacketCodec().decode(frame) == pkt


def _lossy_run(
    packets: list[bytes], loss: float, reorder: float, seed: int
) -> tuple[int, int, int]:
    """(delivered, decode errors, wrong packets) through a lossy, reordering channel."""
    rng = random.Random(seed)
    tx, rx = PacketCodec(), PacketCodec()
    frames = [(p, tx.encode(p, D.RohcOnly)) for p in packets]
    order = list(range(len(frames)))
    for i in range(len(order) - 3):
        if rng.random() < reorder:
            j = i + rng.randrange(1, 4)
            order[i], order[j] = order[j], order[i]
    delivered = errors = wrong = 0
    for i in order:
        if rng.random() < loss:
            continue
        delivered += 1
        pkt, frame = frames[i]
        try:
            out = rx.decode(frame)
        except ValueError:
            errors += 1
            continue
        wrong += out != pkt
    return delivered, errors, wrong


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_and_reordering(seed: int) -> None:
    packets = rtp_flow(3000, seed=seed) + udp_flow(1000, seed=seed)
    delivered, errors, wrong = _lossy_run(packets, loss=0.05, reorder=0.05, seed=seed)
    assert wrong == 0  # a stale context is caught by the CRC, never delivered wrong
    assert errors / delivered < 0.005  # measured ~0.05 % (10 seeds of 7,000 packets)


def test_interleaved_flows_and_eviction() -> None:
    cfg = CodecConfig(rohc=RohcConfig(max_contexts=2))
    tx, rx = PacketCodec(cfg), PacketCodec()
    flows = [rtp_flow(200, sport=40000 + k, seed=k) for k in range(3)]
    packets = [flows[i % 3][i // 3] for i in range(600)]
    _through(tx, rx, packets)
    assert tx._rohc_tx.n_contexts == 2 and tx._rohc_tx.evictions > 0
    # Two flows fit: after their IRs, every packet is compressed.
    tx2, rx2 = PacketCodec(cfg), PacketCodec()
    two = [flows[i % 2][i // 2] for i in range(400)]
    frames = _through(tx2, rx2, two)
    assert tx2._rohc_tx.evictions == 0
    assert sum(len(f) < len(p) for p, f in zip(two, frames, strict=True)) > 330


def test_frames_from_another_peer_or_without_ir_fail_cleanly() -> None:
    packets = rtp_flow(40)
    tx = PacketCodec()
    frames = [tx.encode(p, D.RohcOnly) for p in packets]
    fresh = PacketCodec()
    with pytest.raises(ValueError, match="does not hold"):
        fresh.decode(frames[-1])  # context never established
    assert fresh.decode(frames[0]) == packets[0]  # IR establishes it


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_contexts"):
        RohcConfig(max_contexts=0)
    with pytest.raises(ValueError, match="max_contexts"):
        RohcConfig(max_contexts=257)
    with pytest.raises(ValueError, match="refresh_interval"):
        RohcConfig(refresh_interval=0)
    with pytest.raises(TypeError, match="rohc"):
        CodecConfig(rohc=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        RohcCompressor("x")  # type: ignore[arg-type]


def test_decompressor_bounds_rebuilt_size() -> None:
    tx = RohcCompressor()
    frames = [tx.compress(p) for p in rtp_flow(10, payload_bytes=200)]
    rx = RohcDecompressor()
    with pytest.raises(ValueError, match="max_payload_bytes"):
        rx.decompress(frames[0], 100)


_FLOW = rtp_flow(30, seed=9) + udp_flow(10, seed=9)
_TX = PacketCodec()
_FRAMES = [_TX.encode(p, D.RohcOnly) for p in _FLOW]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, len(_FRAMES) - 1),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    cut=st.integers(1, 300),
    prefix=st.integers(0, len(_FRAMES)),
)
def test_mutated_rohc_frames_only_raise_value_error(
    index: int, edits: list[tuple[int, int]], cut: int, prefix: int
) -> None:
    rx = PacketCodec()
    for f in _FRAMES[:prefix]:
        rx.decode(f)
    frame = bytearray(_FRAMES[index])
    for pos, value in edits:
        if pos < len(frame):
            frame[pos] = value
    try:
        out = rx.decode(bytes(frame[:cut]))
    except ValueError:
        return
    assert isinstance(out, bytes) and len(out) <= len(frame) + 64


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=120))
def test_random_rohc_frames_only_raise_value_error(body: bytes) -> None:
    rx = PacketCodec()
    rx.decode(_FRAMES[0])  # a context exists for CID 0
    try:
        rx.decode(b"\x84" + body)
    except ValueError:
        pass
