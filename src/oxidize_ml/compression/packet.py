"""IP packets as a tunnel sees them: link-layer stripping and IPv4/IPv6/UDP/RTP parsing.

The compression oracle and codec take **IP packets** (what a VPN/tunnel
endpoint reads from its TUN device), not link-layer frames. Callers holding
captured frames use `strip_link_layer` first; it understands the pcap link
types below and returns ``None`` for frames that carry no IP packet (ARP,
LLDP, ...).

==========================  =====  =================================================
link type                   DLT    header
==========================  =====  =================================================
``LINKTYPE_ETHERNET``           1  14 bytes (+4 per 802.1Q/802.1ad tag), EtherType
``LINKTYPE_RAW``              101  none (also DLT 12 and 14 on some systems)
``LINKTYPE_IPV4``             228  none
``LINKTYPE_IPV6``             229  none
``LINKTYPE_LINUX_SLL``        113  16 bytes, protocol in bytes 14-15
``LINKTYPE_LINUX_SLL2``       276  20 bytes, protocol in bytes 0-1
``LINKTYPE_NULL``               0  4-byte host-order address family (BSD loopback)
==========================  =====  =================================================

Trailing bytes after the IP datagram (Ethernet padding of short frames) are
cut off using the IP length field.

`parse_ip` reads the fields header compression needs. RTP is recognised by
heuristics on the UDP payload (there is no RTP port): version 2, a static or
dynamic payload type that is not an RTCP packet type (RFC 5761 section 4),
and room for the CSRC list. Parsing never raises on bytes: anything that is
not a well-formed IPv4/IPv6 packet has ``version == 0``.
"""

from __future__ import annotations

from typing import NamedTuple

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_RAW_ALIASES = frozenset((12, 14, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6))
SUPPORTED_LINKTYPES: frozenset[int] = frozenset(
    (LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, *_RAW_ALIASES)
)
"""pcap link types `strip_link_layer` understands"""

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
_VLAN_TAGS = frozenset((0x8100, 0x88A8, 0x9100))
_MAX_VLAN_TAGS = 4  # more stacked tags than this is not a frame anyone sends

IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPV4_MIN_HEADER = 20
IPV6_HEADER = 40
UDP_HEADER = 8
RTP_MIN_HEADER = 12

# RTP payload types (RFC 3551 tables 4/5): 0-34 static, 96-127 dynamic. 72-76
# collide with RTCP packet types 200-204 once the marker bit is masked off.
RTP_PAYLOAD_TYPES = frozenset((*range(35), *range(96, 128)))


class IpInfo(NamedTuple):
    """What `parse_ip` found in a packet (offsets in bytes from the packet start)."""

    version: int
    """4 or 6; 0 when the bytes are not a well-formed IP packet"""
    protocol: int
    """transport protocol number (IPv6: the first next-header), -1 when not IP"""
    ip_header_bytes: int
    """IPv4 IHL * 4, or 40 for IPv6"""
    fragment: bool
    """an IPv4 fragment (MF set or non-zero offset); IPv6 fragments have protocol 44"""
    udp: bool
    """a complete UDP header follows the IP header and its length matches"""
    rtp: bool
    """the UDP payload looks like an RTP v2 header (heuristic)"""
    rtp_header_bytes: int
    """12 + 4 * CSRC count when ``rtp``, else 0"""


NOT_IP = IpInfo(0, -1, 0, False, False, False, 0)


def parse_ip(packet: bytes | bytearray | memoryview) -> IpInfo:
    """Parse the IPv4/IPv6, UDP and RTP headers at the start of ``packet``.

    The whole packet must be the IP datagram: IPv4 total length and IPv6
    payload length must equal its size exactly (strip link-layer padding with
    `strip_link_layer`). Never raises on bytes-like input.
    """
    return parse_ip_head(packet, len(packet))


def parse_ip_head(packet: bytes | bytearray | memoryview, n: int) -> IpInfo:
    """`parse_ip` from the packet's first bytes and its full length ``n``.

    ``packet`` may be just a head of the packet (64 bytes cover IPv4 without
    options and IPv6 up to the RTP payload type); headers that run past the
    head count as absent.
    """
    h = len(packet)
    if n < IPV4_MIN_HEADER or h < IPV4_MIN_HEADER:
        return NOT_IP
    b0 = packet[0]
    version = b0 >> 4
    if version == 4:
        ihl = (b0 & 0x0F) * 4
        if ihl < IPV4_MIN_HEADER or ihl > n or (packet[2] << 8 | packet[3]) != n:
            return NOT_IP
        proto = packet[9]
        frag = bool((packet[6] & 0x3F) or packet[7])
        off = ihl
    elif version == 6:
        if h < IPV6_HEADER or (packet[4] << 8 | packet[5]) != n - IPV6_HEADER:
            return NOT_IP
        proto = packet[6]
        frag = False
        off = IPV6_HEADER
    else:
        return NOT_IP
    if proto != IPPROTO_UDP or frag or h < off + UDP_HEADER:
        return IpInfo(version, proto, off, frag, False, False, 0)
    if (packet[off + 4] << 8 | packet[off + 5]) != n - off:
        return IpInfo(version, proto, off, frag, False, False, 0)
    r = off + UDP_HEADER
    if n >= r + RTP_MIN_HEADER and h >= r + 2:
        c0 = packet[r]
        if 0x80 <= c0 <= 0xBF and (packet[r + 1] & 0x7F) in RTP_PAYLOAD_TYPES:
            rtp_len = RTP_MIN_HEADER + 4 * (c0 & 0x0F)
            if n >= r + rtp_len:
                return IpInfo(version, proto, off, False, True, True, rtp_len)
    return IpInfo(version, proto, off, False, True, False, 0)


def _trim_ip(buf: bytes) -> bytes | None:
    """``buf`` cut to its IP datagram length, or None when it is not IPv4/IPv6."""
    if not buf:
        return None
    version = buf[0] >> 4
    if version == 4 and len(buf) >= IPV4_MIN_HEADER:
        total = buf[2] << 8 | buf[3]
        if IPV4_MIN_HEADER <= total <= len(buf):
            return buf[:total]
        return buf  # truncated capture (snaplen) or offloaded length 0: as captured
    if version == 6 and len(buf) >= IPV6_HEADER:
        total = IPV6_HEADER + (buf[4] << 8 | buf[5])
        if total <= len(buf) and (buf[4] | buf[5]):
            return buf[:total]
        return buf  # jumbogram or truncated capture
    return None


def strip_link_layer(frame: bytes | bytearray | memoryview, linktype: int) -> bytes | None:
    """The IP packet inside a captured link-layer ``frame``, or None if it carries none.

    Parameters
    ----------
    frame : bytes-like
        One captured frame.
    linktype : int
        The capture's pcap link type (see the module table).

    Raises
    ------
    ValueError
        For a link type this module does not understand (names the type).
    """
    buf = bytes(frame)
    if linktype in _RAW_ALIASES:
        return _trim_ip(buf)
    if linktype == LINKTYPE_ETHERNET:
        pos = 12
        for _ in range(_MAX_VLAN_TAGS + 1):
            if len(buf) < pos + 2:
                return None
            ethertype = buf[pos] << 8 | buf[pos + 1]
            if ethertype not in _VLAN_TAGS:
                break
            pos += 4
        else:
            return None
        return _ip_by_ethertype(ethertype, buf[pos + 2 :])
    if linktype == LINKTYPE_LINUX_SLL:
        if len(buf) < 16:
            return None
        return _ip_by_ethertype(buf[14] << 8 | buf[15], buf[16:])
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(buf) < 20:
            return None
        return _ip_by_ethertype(buf[0] << 8 | buf[1], buf[20:])
    if linktype == LINKTYPE_NULL:
        if len(buf) < 4:
            return None
        return _trim_ip(buf[4:])
    raise ValueError(f"linktype {linktype} is not supported; known: {sorted(SUPPORTED_LINKTYPES)}")


def _ip_by_ethertype(ethertype: int, payload: bytes) -> bytes | None:
    if ethertype == ETHERTYPE_IPV4 or ethertype == ETHERTYPE_IPV6:
        ip = _trim_ip(payload)
        if ip is not None and (ip[0] >> 4) == (4 if ethertype == ETHERTYPE_IPV4 else 6):
            return ip
    return None
