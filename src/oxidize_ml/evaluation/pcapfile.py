"""Reading IP packets out of capture files (classic pcap and pcapng) with dpkt.

`read_ip_packets` returns the IP packets of a capture as a tunnel sees them
(`oxidize_ml.compression.packet.strip_link_layer`: Ethernet, Linux cooked
SLL/SLL2, raw IP, BSD loopback), in capture order, and counts what it left
out (frames without an IP packet, such as ARP).

Bounds: nothing read from the file is trusted. Every read dpkt asks for is
capped at `MAX_RECORD_BYTES` (a record header claiming more is refused
before anything is allocated), at most ``max_packets`` packets are kept,
and a truncated record raises ``ValueError`` naming the file, as does an
unreadable, unknown-format or unsupported-link-type file. Needs the
``pcap`` extra (``pip install 'oxidize-ml[pcap]'``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from oxidize_ml._validate import check_int
from oxidize_ml.compression.packet import SUPPORTED_LINKTYPES, strip_link_layer

MAX_RECORD_BYTES = 256 * 1024 + 64
"""largest read allowed (pcap's largest snaplen, 262144, plus block framing)"""
_PCAP_MAGICS = frozenset((0xA1B2C3D4, 0xD4C3B2A1, 0xA1B23C4D, 0x4D3CB2A1))
_PCAPNG_MAGIC = 0x0A0D0D0A
_HEADER_READS = frozenset((8, 16))
"""read sizes with which dpkt asks for the next record header (pcapng block header: 8,
pcap record header: 16); an empty answer to one of them is the end of the file"""


class _BoundedFile:
    """A file wrapper that refuses oversized reads and reports truncated records."""

    def __init__(self, f: IO[bytes], name: str) -> None:
        self._f = f
        self.name = name

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > MAX_RECORD_BYTES:
            raise ValueError(
                f"{self.name}: a record asks for {n} bytes, above {MAX_RECORD_BYTES} "
                "(corrupt or hostile capture)"
            )
        buf = self._f.read(n)
        if len(buf) < n and (buf or n not in _HEADER_READS):
            raise ValueError(
                f"{self.name}: truncated capture (a record wants {n} bytes, {len(buf)} remain)"
            )
        return buf

    def __getattr__(self, attr: str) -> Any:  # fileno, seek, tell for dpkt
        return getattr(self._f, attr)


@dataclass
class CaptureStats:
    """What `read_ip_packets` saw in one file."""

    path: str
    linktype: int
    frames: int = 0
    ip_packets: int = 0
    non_ip_frames: int = 0
    kept: int = 0
    """IP packets returned (at most ``max_packets`` over all files)"""
    formats: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "linktype": self.linktype,
            "frames": self.frames,
            "ip_packets": self.ip_packets,
            "non_ip_frames": self.non_ip_frames,
            "kept": self.kept,
            "format": self.formats[0] if self.formats else "",
        }


def read_ip_packets(path: str | Path, *, max_packets: int) -> tuple[list[bytes], CaptureStats]:
    """The IP packets of a pcap/pcapng capture, in order, at most ``max_packets``.

    Raises
    ------
    ValueError
        Unreadable, truncated, unknown-format or unsupported-link-type file
        (the message names the file).
    ImportError
        dpkt is not installed (the ``pcap`` extra).
    """
    check_int("max_packets", max_packets, lo=0)
    import dpkt

    p = Path(path)
    name = str(p)
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed below, wrapped for dpkt
    except OSError as exc:
        raise ValueError(f"{name}: cannot read the capture: {exc.strerror or exc}") from None
    with f:
        head = f.read(4)
        if len(head) < 4:
            raise ValueError(f"{name}: not a capture file (only {len(head)} bytes)")
        f.seek(0)
        magic_le = struct.unpack("<I", head)[0]
        magic_be = struct.unpack(">I", head)[0]
        bounded = _BoundedFile(f, name)
        try:
            if magic_le == _PCAPNG_MAGIC:
                reader: Any = dpkt.pcapng.Reader(bounded)
                fmt = "pcapng"
            elif magic_le in _PCAP_MAGICS or magic_be in _PCAP_MAGICS:
                reader = dpkt.pcap.Reader(bounded)
                fmt = "pcap"
            else:
                raise ValueError(f"{name}: not a pcap or pcapng file (magic 0x{magic_le:08x})")
            linktype = int(reader.datalink())
            if linktype not in SUPPORTED_LINKTYPES:
                raise ValueError(
                    f"{name}: link type {linktype} is not supported; known: "
                    f"{sorted(SUPPORTED_LINKTYPES)}"
                )
            stats = CaptureStats(path=name, linktype=linktype, formats=[fmt])
            out: list[bytes] = []
            for _ts, frame in reader:
                stats.frames += 1
                ip = strip_link_layer(frame, linktype)
                if ip is None:
                    stats.non_ip_frames += 1
                    continue
                stats.ip_packets += 1
                if len(out) < max_packets:
                    out.append(ip)
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if msg.startswith(name) else f"{name}: {msg}") from None
        except (dpkt.dpkt.Error, struct.error, EOFError, OSError, IndexError, KeyError) as exc:
            raise ValueError(f"{name}: unreadable capture ({type(exc).__name__}: {exc})") from None
    stats.kept = len(out)
    return out, stats
