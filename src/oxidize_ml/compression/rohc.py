"""Header compression for IPv4/IPv6 + UDP (+ RTP) flows: the codec's ``RohcOnly`` method.

Follows the ideas of RFC 2508 (CRTP) and RFC 3095 (ROHC, unidirectional
mode): per-flow contexts on both ends, static fields sent once, dynamic
fields sent as small deltas against a context, periodic refreshes, and a
CRC over the reconstructed header that catches a context gone stale after
loss. It is **not** wire-compatible with ROHC (RFC 3095/5795) or CRTP: the
packet formats below are our own, carried inside `PacketCodec` frames
(method ``ROHC``, frame version 2), so both ends must run this module.

Which packets
-------------
IPv4 without options and not fragmented, or IPv6 without extension
headers, carrying UDP; RTP v2 on the UDP payload is recognised by
`oxidize_ml.compression.packet.parse_ip`. Anything else is not compressed
(`RohcCompressor.compress` returns None and the codec sends it raw).

Fields
------
* **static** (the flow key; a change opens a new context): every header
  byte except the dynamic fields below (addresses, ports, TOS/traffic class,
  flow label, TTL/hop limit, DF, RTP version/padding/extension/CSRC count,
  payload type, SSRC, CSRC list) and whether the UDP checksum is zero.
* **inferred**: IPv4 total length, IPv6 payload length, UDP length (from
  the frame length) and the IPv4 header checksum (recomputed).
* **MSN**, the master sequence number: the RTP sequence number for RTP
  flows, a per-context counter kept by the compressor otherwise (as in
  ROHCv2, RFC 5225). Sent as its 8 least significant bits (W-LSB, RFC 3095
  section 4.5.1, interpretation interval ``[ref - 64, ref + 191]``), or all
  16 bits when the compressor cannot be sure the short form decodes.
* **linear fields**: the RTP timestamp and the IPv4 identification are
  modelled as ``anchor + (MSN - anchor_msn) * stride``. When a packet does
  not fit the model, the compressor sends the field and its stride
  explicitly, and repeats that update in the next ``ir_repeats - 1`` packets
  (the U-mode "optimistic approach") so one loss does not desynchronise.
* **sent every packet**: the RTP marker bit (a flag bit) and a non-zero
  UDP checksum (2 bytes, as in RFC 3095).

Packet formats (after the codec's frame header)::

    IR   type | cid | MSN (2) | [TS stride (4)] | [IP-ID stride (2)] | packet
    CO   flags | cid | MSN (1 or 2) | [TS (4) stride (4)] | [IP-ID (2) stride (2)]
         | [UDP checksum (2)] | CRC-8 | payload

IR type: 0x80, | 0x02 for RTP (TS stride present), | 0x01 for IPv4 (IP-ID
stride present). CO flags: bit 7 = 0, bit 6 = 16-bit MSN, bit 5 = RTP marker, bit 4 = TS
update present, bit 3 = IP-ID update present, bits 2-0 zero. The CRC-8 is
the low byte of the CRC-32 of the reconstructed header; a mismatch makes
the decompressor raise ``ValueError`` (the packet is lost, as with any
corrupt frame) rather than deliver a wrong header.

Refresh and recovery (U-mode): a new context, a changed flow key or every
``refresh_interval``-th packet sends an IR (the whole packet plus 4-9
bytes), the first ``ir_repeats`` packets of a context too. After losses the
decompressor recovers on the next packet whose MSN falls in its window and
whose model has not changed in the meantime, at the latest on the next IR.
Reordering up to 64 packets back decodes.

Contexts: the compressor keeps at most ``max_contexts`` flows (least
recently used is evicted; its CID goes to the new flow, which starts with
IRs). The decompressor keeps one context per CID (CIDs are one byte, so at
most 256). Both sides are stateful per peer: one `PacketCodec` (one
`oxidize_ml.MlEngine`, e.g. one ``fork()`` per connection) per peer; each
side serialises its own context updates with a lock taken only for
``RohcOnly`` packets.

Hostile input: every malformed, truncated or unknown-context packet raises
``ValueError`` naming the problem; memory is bounded by 256 contexts of at
most 60 header bytes each.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Final

from oxidize_ml._validate import check_int
from oxidize_ml.compression.features import HeaderKind, header_kind

MAX_CIDS: Final = 256
"""CIDs are one byte"""
MSN_WINDOW_BACK: Final = 64
"""how far behind the reference MSN a 1-byte MSN is interpreted (reordering depth)"""
_LSB_SPAN: Final = 256
_MSN_REFS: Final = 16
"""MSNs of the last packets sent; a 1-byte MSN must decode against each of them"""

_IR: Final = 0x80
_IR_RTP: Final = 0x02
_IR_V4: Final = 0x01
_F_MSN16: Final = 0x40
_F_MARKER: Final = 0x20
_F_TS: Final = 0x10
_F_ID: Final = 0x08
_F_RESERVED: Final = 0x07


@dataclass(frozen=True, slots=True)
class RohcConfig:
    """Settings of the header compressor (the decompressor needs none)."""

    max_contexts: int = 16
    """flows the compressor keeps contexts for (1-256, least recently used evicted)"""
    refresh_interval: int = 64
    """every this many packets of a flow is sent as IR (U-mode context refresh)"""
    ir_repeats: int = 3
    """IRs at the start of a context, and repeats of each model update"""

    def __post_init__(self) -> None:
        check_int("max_contexts", self.max_contexts, lo=1, hi=MAX_CIDS)
        check_int("refresh_interval", self.refresh_interval, lo=1, hi=1 << 20)
        check_int("ir_repeats", self.ir_repeats, lo=1, hi=64)


class _Layout:
    """Offsets of the compressible headers of one packet."""

    __slots__ = ("hdr_len", "rtp", "udp", "v4")

    def __init__(self, v4: bool, udp: int, rtp: int, hdr_len: int) -> None:
        self.v4 = v4
        self.udp = udp  # offset of the UDP header
        self.rtp = rtp  # offset of the RTP header, -1 without RTP
        self.hdr_len = hdr_len


_LAYOUTS: Final = {
    (v4, cc): _Layout(
        v4,
        20 if v4 else 40,
        (28 if v4 else 48) if cc >= 0 else -1,
        (28 if v4 else 48) + (12 + 4 * cc if cc >= 0 else 0),
    )
    for v4 in (True, False)
    for cc in range(-1, 16)
}
"""every layout: (IPv4?, RTP CSRC count or -1 without RTP) -> offsets"""


def _layout(packet: bytes) -> _Layout | None:
    """Offsets of a header-compressible packet (`header_kind` RTP or UDP), else None."""
    kind = header_kind(packet, len(packet))
    if kind is HeaderKind.UDP:
        return _LAYOUTS[(packet[0] == 0x45, -1)]
    if kind is HeaderKind.RTP:
        v4 = packet[0] == 0x45
        return _LAYOUTS[(v4, packet[28 if v4 else 48] & 0x0F)]
    return None


def _static_key(hdr: bytes, lay: _Layout) -> bytes:
    """The header with every dynamic field zeroed, plus the checksum-present flag."""
    k = bytearray(hdr)
    u = lay.udp
    csum_present = k[u + 6] | k[u + 7]
    if lay.v4:
        k[2:6] = b"\0\0\0\0"  # total length, identification
        k[10:12] = b"\0\0"  # header checksum
    else:
        k[4:6] = b"\0\0"  # payload length
    k[u + 4 : u + 8] = b"\0\0\0\0"  # UDP length, checksum
    r = lay.rtp
    if r >= 0:
        k[r + 1] &= 0x7F  # marker
        k[r + 2 : r + 8] = b"\0\0\0\0\0\0"  # sequence number, timestamp
    k.append(1 if csum_present else 0)
    return bytes(k)


_WORDS10 = struct.Struct(">10H").unpack_from


def _ones_sum(hdr: bytes | bytearray) -> int:
    """One's-complement sum of the 10 words of an IPv4 header (RFC 1071)."""
    s = sum(_WORDS10(hdr))
    s = (s & 0xFFFF) + (s >> 16)
    return (s & 0xFFFF) + (s >> 16)


def _ipv4_checksum(hdr: bytearray) -> int:
    return ~_ones_sum(hdr) & 0xFFFF


def _rebuild(
    template: bytes,
    lay: _Layout,
    total: int,
    msn: int,
    ts: int,
    ipid: int,
    marker: int,
    csum: int,
) -> bytearray:
    """The header of a ``total``-byte packet from a context template and dynamic fields."""
    h = bytearray(template)
    u = lay.udp
    if lay.v4:
        h[2] = total >> 8
        h[3] = total & 0xFF
        h[4] = ipid >> 8
        h[5] = ipid & 0xFF
        h[10] = h[11] = 0
        c = _ipv4_checksum(h)
        h[10] = c >> 8
        h[11] = c & 0xFF
    else:
        plen = total - 40
        h[4] = plen >> 8
        h[5] = plen & 0xFF
    ulen = total - u
    h[u + 4] = ulen >> 8
    h[u + 5] = ulen & 0xFF
    h[u + 6] = csum >> 8
    h[u + 7] = csum & 0xFF
    r = lay.rtp
    if r >= 0:
        h[r + 1] = (h[r + 1] & 0x7F) | (0x80 if marker else 0)
        h[r + 2 : r + 4] = (msn & 0xFFFF).to_bytes(2, "big")
        h[r + 4 : r + 8] = (ts & 0xFFFFFFFF).to_bytes(4, "big")
    return h


def _crc8(hdr: bytes | bytearray) -> int:
    return zlib.crc32(hdr) & 0xFF


def _sdiff16(a: int, b: int) -> int:
    """``a - b`` as a signed 16-bit difference."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


class _Linear:
    """``value = anchor + (msn - anchor_msn) * stride`` modulo ``2**bits``."""

    __slots__ = ("anchor", "anchor_msn", "mask", "stride")

    def __init__(self, bits: int, msn: int, value: int, stride: int) -> None:
        self.mask = (1 << bits) - 1
        self.anchor_msn = msn
        self.anchor = value
        self.stride = stride

    def predict(self, msn: int) -> int:
        d = (msn - self.anchor_msn) & 0xFFFF
        if d >= 0x8000:
            d -= 0x10000
        return (self.anchor + d * self.stride) & self.mask

    def same_line(self, other: _Linear) -> bool:
        """Both predict the same value for every MSN (a repeated update)."""
        return self.stride == other.stride and self.predict(other.anchor_msn) == other.anchor


class _TxContext:
    __slots__ = (
        "cid",
        "id_left",
        "ipid",
        "ir_left",
        "key",
        "last_id",
        "last_msn",
        "last_ts",
        "lay",
        "msn",
        "refs",
        "since_ir",
        "template",
        "ts",
        "ts_left",
    )

    def __init__(self, cid: int, key: bytes, lay: _Layout) -> None:
        self.cid = cid
        self.key = key
        self.lay = lay
        self.template = b""
        self.msn = 0
        self.refs: deque[int] = deque(maxlen=_MSN_REFS)
        self.since_ir = 0
        self.ir_left = 0
        self.ts: _Linear | None = None
        self.ts_left = 0
        self.ipid: _Linear | None = None
        self.id_left = 0
        self.last_msn = 0
        self.last_ts = 0
        self.last_id = 0


def _stride(value: int, last: int, msn: int, last_msn: int, bits: int, old: int) -> int:
    """Per-MSN increment between two packets, or ``old`` when it is not a whole number."""
    dm = _sdiff16(msn, last_msn)
    if dm <= 0:
        return old
    half = 1 << (bits - 1)
    dv = (value - last) & ((1 << bits) - 1)
    if dv >= half:
        dv -= 1 << bits
    q, r = divmod(dv, dm)
    return q if r == 0 and -half <= q < half else old


def _new_stride(
    model: _Linear | None, value: int, last: int, msn: int, last_msn: int, bits: int
) -> int:
    """Stride of the model that replaces ``model`` when ``value`` does not fit it.

    A field that kept its stride until the previous packet and then jumped
    (an RTP timestamp after a silence) keeps the stride: only the anchor
    moves, so the next packet fits again. Otherwise the stride is the
    per-MSN increment since the previous packet.
    """
    old = model.stride if model is not None else 0
    if model is not None and old != 0 and model.predict(last_msn) == last:
        return old
    return _stride(value, last, msn, last_msn, bits, old)


class RohcCompressor:
    """Sender side: header-compresses packets of many flows (see module docstring).

    Thread-safe (one lock, taken per packet). Stateful: packets must reach
    the peer's `RohcDecompressor` over the same path, in (mostly) the same
    order.
    """

    def __init__(self, config: RohcConfig | None = None) -> None:
        if config is None:
            config = RohcConfig()
        if not isinstance(config, RohcConfig):
            raise TypeError(f"config must be a RohcConfig, got {type(config).__name__}")
        self.config = config
        self._flows: OrderedDict[bytes, _TxContext] = OrderedDict()
        self._free = list(range(config.max_contexts - 1, -1, -1))
        self._lock = threading.Lock()
        self.evictions = 0
        """contexts evicted to make room for a new flow"""

    @property
    def n_contexts(self) -> int:
        return len(self._flows)

    def compress(self, packet: bytes) -> bytes | None:
        """The ROHC packet for ``packet``, or None when it is not a compressible IP/UDP packet."""
        lay = _layout(packet)
        if lay is None:
            return None
        hdr = packet[: lay.hdr_len]
        key = _static_key(hdr, lay)
        with self._lock:
            ctx = self._flows.get(key)
            if ctx is None:
                ctx = self._open(key, lay)
            else:
                self._flows.move_to_end(key)
            return self._compress(ctx, packet, hdr, lay)

    def _open(self, key: bytes, lay: _Layout) -> _TxContext:
        if self._free:
            cid = self._free.pop()
        else:
            _, old = self._flows.popitem(last=False)
            cid = old.cid
            self.evictions += 1
        ctx = _TxContext(cid, key, lay)
        ctx.ir_left = self.config.ir_repeats
        self._flows[key] = ctx
        return ctx

    def _compress(self, ctx: _TxContext, packet: bytes, hdr: bytes, lay: _Layout) -> bytes:
        cfg = self.config
        r, u = lay.rtp, lay.udp
        if r >= 0:
            msn = hdr[r + 2] << 8 | hdr[r + 3]
            ts = int.from_bytes(hdr[r + 4 : r + 8], "big")
            marker = hdr[r + 1] >> 7
        else:
            msn = (ctx.msn + 1) & 0xFFFF
            ts = marker = 0
        ctx.msn = msn
        ipid = (hdr[4] << 8 | hdr[5]) if lay.v4 else 0
        first = not ctx.template
        # Strides follow the previous packet of the flow; a model only changes
        # when a packet does not fit it (then it is re-anchored on this packet).
        ts_stride = 0 if first else _new_stride(ctx.ts, ts, ctx.last_ts, msn, ctx.last_msn, 32)
        id_stride = 0 if first else _new_stride(ctx.ipid, ipid, ctx.last_id, msn, ctx.last_msn, 16)
        ctx.last_msn, ctx.last_ts, ctx.last_id = msn, ts, ipid
        ctx.since_ir += 1
        if ctx.ir_left > 0 or ctx.since_ir >= cfg.refresh_interval or first:
            return self._ir(ctx, packet, hdr, lay, msn, ts, ipid, ts_stride, id_stride)
        flags = 0
        parts: list[bytes] = []
        if r >= 0:
            if marker:
                flags |= _F_MARKER
            model = ctx.ts
            assert model is not None
            if model.predict(msn) != ts:
                ctx.ts = model = _Linear(32, msn, ts, ts_stride)
                ctx.ts_left = cfg.ir_repeats
            if ctx.ts_left > 0:
                ctx.ts_left -= 1
                flags |= _F_TS
                parts.append(ts.to_bytes(4, "big"))
                parts.append((model.stride & 0xFFFFFFFF).to_bytes(4, "big"))
        if lay.v4:
            idm = ctx.ipid
            assert idm is not None
            if idm.predict(msn) != ipid:
                ctx.ipid = idm = _Linear(16, msn, ipid, id_stride)
                ctx.id_left = cfg.ir_repeats
            if ctx.id_left > 0:
                ctx.id_left -= 1
                flags |= _F_ID
                parts.append(ipid.to_bytes(2, "big"))
                parts.append((idm.stride & 0xFFFF).to_bytes(2, "big"))
        # The decompressor rebuilds every field from the template (same static
        # fields: same flow key), the dynamic fields sent or modelled above,
        # the lengths (checked by the parse) and a recomputed IPv4 header
        # checksum: only a wrong checksum in the packet would not round-trip,
        # so such a packet goes whole.
        if lay.v4 and _ones_sum(hdr) != 0xFFFF:
            return self._ir(ctx, packet, hdr, lay, msn, ts, ipid, ts_stride, id_stride)
        # W-LSB: the 1-byte MSN must decode against the oldest and the newest
        # of the recent references (between them for a monotonic sequence;
        # anything else is caught by the CRC).
        refs = ctx.refs
        short = ((msn - refs[0] + MSN_WINDOW_BACK) & 0xFFFF) < _LSB_SPAN and (
            (msn - refs[-1] + MSN_WINDOW_BACK) & 0xFFFF
        ) < _LSB_SPAN
        refs.append(msn)
        if short:
            msn_bytes = bytes((msn & 0xFF,))
        else:
            flags |= _F_MSN16
            msn_bytes = msn.to_bytes(2, "big")
        if ctx.key[-1]:
            parts.append(hdr[u + 6 : u + 8])
        parts.append(bytes((_crc8(hdr),)))
        return b"".join((bytes((flags, ctx.cid)), msn_bytes, *parts, packet[lay.hdr_len :]))

    def _ir(
        self,
        ctx: _TxContext,
        packet: bytes,
        hdr: bytes,
        lay: _Layout,
        msn: int,
        ts: int,
        ipid: int,
        ts_stride: int,
        id_stride: int,
    ) -> bytes:
        ctx.template = hdr
        ctx.since_ir = 0
        if ctx.ir_left > 0:
            ctx.ir_left -= 1
        ctx.refs.clear()
        ctx.refs.append(msn)
        ts_model = _Linear(32, msn, ts, ts_stride)
        id_model = _Linear(16, msn, ipid, id_stride)
        # An IR that changes a model (a refresh falling on a timestamp jump)
        # may be lost like any packet: repeat the change in the next packets
        # as a model update would, unless the context is new anyway.
        repeat = self.config.ir_repeats - 1
        old_ts, old_id = ctx.ts, ctx.ipid
        ctx.ts_left = repeat if old_ts is not None and not ts_model.same_line(old_ts) else 0
        ctx.id_left = repeat if old_id is not None and not id_model.same_line(old_id) else 0
        ctx.ts, ctx.ipid = ts_model, id_model
        kind = _IR | (_IR_RTP if lay.rtp >= 0 else 0) | (_IR_V4 if lay.v4 else 0)
        out = [bytes((kind, ctx.cid)), msn.to_bytes(2, "big")]
        if lay.rtp >= 0:
            out.append((ts_stride & 0xFFFFFFFF).to_bytes(4, "big"))
        if lay.v4:
            out.append((id_stride & 0xFFFF).to_bytes(2, "big"))
        out.append(packet)
        return b"".join(out)


class _RxContext:
    __slots__ = ("csum", "ipid", "lay", "prev_ipid", "prev_ts", "ref", "template", "ts")

    def __init__(self, template: bytes, lay: _Layout, msn: int, ts: _Linear, ipid: _Linear) -> None:
        self.template = template
        self.lay = lay
        self.ref = msn
        self.ts = ts
        self.ipid = ipid
        # The models in force before the current ones: a late packet sent
        # before a model change (reordering) is decoded with them.
        self.prev_ts = ts
        self.prev_ipid = ipid
        u = lay.udp
        self.csum = bool(template[u + 6] | template[u + 7])


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


class RohcDecompressor:
    """Receiver side: rebuilds packets from `RohcCompressor` output (thread-safe)."""

    def __init__(self) -> None:
        self._contexts: dict[int, _RxContext] = {}
        self._lock = threading.Lock()
        self.crc_failures = 0
        """packets dropped because the reconstructed header failed its CRC"""

    @property
    def n_contexts(self) -> int:
        return len(self._contexts)

    def decompress(self, data: bytes | bytearray | memoryview, max_bytes: int) -> bytes:
        """The original packet; ``ValueError`` for anything malformed or undecodable.

        ``max_bytes`` bounds the rebuilt packet (the codec's ``max_payload_bytes``).
        """
        buf = bytes(data)
        if len(buf) < 2:
            raise ValueError("truncated ROHC packet: fewer than 2 bytes")
        flags, cid = buf[0], buf[1]
        with self._lock:
            if flags & _IR:
                return self._ir(buf, cid, max_bytes)
            return self._co(buf, flags, cid, max_bytes)

    def _ir(self, buf: bytes, cid: int, max_bytes: int) -> bytes:
        kind = buf[0]
        if kind & ~(_IR | _IR_RTP | _IR_V4):
            raise ValueError(f"corrupt ROHC IR packet: type byte 0x{kind:02x}")
        is_rtp, is_v4 = bool(kind & _IR_RTP), bool(kind & _IR_V4)
        p = 4 + (4 if is_rtp else 0) + (2 if is_v4 else 0)
        if len(buf) < p:
            raise ValueError("truncated ROHC IR packet")
        packet = buf[p:]
        if len(packet) > max_bytes:
            raise ValueError(
                f"ROHC IR packet of {len(packet)} bytes exceeds max_payload_bytes={max_bytes}"
            )
        lay = _layout(packet)
        if lay is None or (lay.rtp >= 0) != is_rtp or lay.v4 != is_v4:
            raise ValueError(
                "corrupt ROHC IR packet: no IPv4/IPv6 + UDP packet of the announced kind inside"
            )
        msn = buf[2] << 8 | buf[3]
        p = 4
        ts_stride = id_stride = 0
        if is_rtp:
            ts_stride = _signed(int.from_bytes(buf[p : p + 4], "big"), 32)
            p += 4
        if is_v4:
            id_stride = _signed(buf[p] << 8 | buf[p + 1], 16)
        hdr = packet[: lay.hdr_len]
        old = self._contexts.get(cid)
        if (
            old is not None
            and _sdiff16(msn, old.ref) < 0
            and _static_key(old.template, old.lay) == _static_key(hdr, lay)
        ):
            # A late IR of the same flow (reordering): its models are older
            # than the context's, so deliver it and keep the context.
            return packet
        r = lay.rtp
        ts = int.from_bytes(hdr[r + 4 : r + 8], "big") if r >= 0 else 0
        ipid = (hdr[4] << 8 | hdr[5]) if is_v4 else 0
        self._contexts[cid] = _RxContext(
            hdr, lay, msn, _Linear(32, msn, ts, ts_stride), _Linear(16, msn, ipid, id_stride)
        )
        return packet

    def _co(self, buf: bytes, flags: int, cid: int, max_bytes: int) -> bytes:
        if flags & _F_RESERVED:
            raise ValueError(f"corrupt ROHC packet: reserved flag bits set (0x{flags:02x})")
        ctx = self._contexts.get(cid)
        if ctx is None:
            raise ValueError(
                f"ROHC packet for context {cid}, which this decompressor does not hold "
                "(its IR was lost, or the frame comes from another peer)"
            )
        lay = ctx.lay
        n = len(buf)
        p = 2
        if flags & _F_MSN16:
            if n < p + 2:
                raise ValueError("truncated ROHC packet: 16-bit MSN")
            msn = buf[p] << 8 | buf[p + 1]
            p += 2
        else:
            if n < p + 1:
                raise ValueError("truncated ROHC packet: MSN")
            base = (ctx.ref - MSN_WINDOW_BACK) & 0xFFFF
            msn = (base + ((buf[p] - base) & 0xFF)) & 0xFFFF
            p += 1
        ts_model = ctx.ts if _sdiff16(msn, ctx.ts.anchor_msn) >= 0 else ctx.prev_ts
        id_model = ctx.ipid if _sdiff16(msn, ctx.ipid.anchor_msn) >= 0 else ctx.prev_ipid
        if flags & _F_TS:
            if lay.rtp < 0:
                raise ValueError("corrupt ROHC packet: timestamp update in a non-RTP context")
            if n < p + 8:
                raise ValueError("truncated ROHC packet: timestamp update")
            ts = int.from_bytes(buf[p : p + 4], "big")
            ts_model = _Linear(32, msn, ts, _signed(int.from_bytes(buf[p + 4 : p + 8], "big"), 32))
            p += 8
        else:
            ts = ts_model.predict(msn)
        if flags & _F_ID:
            if not lay.v4:
                raise ValueError("corrupt ROHC packet: IP-ID update in an IPv6 context")
            if n < p + 4:
                raise ValueError("truncated ROHC packet: IP-ID update")
            ipid = buf[p] << 8 | buf[p + 1]
            id_model = _Linear(16, msn, ipid, _signed(buf[p + 2] << 8 | buf[p + 3], 16))
            p += 4
        else:
            ipid = id_model.predict(msn)
        csum = 0
        if ctx.csum:
            if n < p + 2:
                raise ValueError("truncated ROHC packet: UDP checksum")
            csum = buf[p] << 8 | buf[p + 1]
            p += 2
        if n < p + 1:
            raise ValueError("truncated ROHC packet: CRC")
        crc = buf[p]
        payload = buf[p + 1 :]
        total = lay.hdr_len + len(payload)
        if total > max_bytes or total > 0xFFFF:
            raise ValueError(
                f"ROHC packet rebuilds to {total} bytes, above max_payload_bytes={max_bytes}"
            )
        if flags & _F_MARKER and lay.rtp < 0:
            raise ValueError("corrupt ROHC packet: RTP marker in a non-RTP context")
        hdr = _rebuild(ctx.template, lay, total, msn, ts, ipid, (flags & _F_MARKER) >> 5, csum)
        if _crc8(hdr) != crc:
            self.crc_failures += 1
            raise ValueError(
                f"ROHC header CRC mismatch in context {cid}: context out of date after loss "
                "(recovers at the next refresh) or corrupt frame"
            )
        # Adopt the packet's models only when it is not older than them (reordering).
        if ts_model is not ctx.ts and _sdiff16(msn, ctx.ts.anchor_msn) >= 0:
            if not ts_model.same_line(ctx.ts):
                ctx.prev_ts = ctx.ts
            ctx.ts = ts_model
        if id_model is not ctx.ipid and _sdiff16(msn, ctx.ipid.anchor_msn) >= 0:
            if not id_model.same_line(ctx.ipid):
                ctx.prev_ipid = ctx.ipid
            ctx.ipid = id_model
        if _sdiff16(msn, ctx.ref) > 0:
            ctx.ref = msn
        return bytes(hdr) + payload
