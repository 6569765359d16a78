"""Realistic packet payloads for the compression tests (built, never loaded).

Imported by the test modules in this folder (pytest puts the folder on
``sys.path`` because there is no ``__init__.py``).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import random
import struct
import zlib

import lz4.frame
import zstandard

ENGLISH = (
    "The network stack of a modern operating system moves packets between "
    "applications and the wire with as little copying as it can manage. Each "
    "layer adds its own header: the transport protocol numbers the bytes so "
    "that the receiver can put them back in order, the internet protocol "
    "carries the addresses that routers use to forward the packet, and the "
    "link layer frames it for the medium. When a path is congested, queues "
    "build up in the routers along the way, and the delay that every packet "
    "experiences grows with them. A sender that keeps its window small enough "
    "avoids the queue, but a sender that keeps it too small leaves capacity "
    "unused. Compression changes that balance: fewer bytes on the wire mean "
    "less time in every queue, but the processor has to do more work before "
    "the packet can leave and after it arrives. Text, logs and structured "
    "records shrink well because they repeat words and field names, while "
    "images, video and anything encrypted look random and do not shrink at "
    "all. Whether compressing a given packet is worth the effort therefore "
    "depends on what the packet contains, how fast the link is, and how busy "
    "the processors at both ends already are. A good decision has to be made "
    "in less time than the compression itself would take, or it is cheaper to "
    "simply try. "
)


def english(size: int = 1400) -> bytes:
    """English prose, ``size`` bytes (the paragraph repeats beyond ~1.5 KB)."""
    text = ENGLISH.encode()
    return (text * (size // len(text) + 1))[:size]


def json_records(size: int = 1400, seed: int = 0) -> bytes:
    """A JSON array of API-style records cut to ``size`` bytes."""
    rng = random.Random(seed)
    records = [
        {
            "id": rng.randrange(10**6),
            "user": rng.choice(["alice", "bob", "carol", "dave", "erin"]),
            "ts": 1_700_000_000 + rng.randrange(10**5),
            "score": round(rng.random(), 4),
            "active": rng.random() < 0.5,
            "tags": rng.sample(["web", "api", "mobile", "batch", "beta"], 2),
        }
        for _ in range(size // 60 + 10)
    ]
    return json.dumps(records).encode()[:size]


def random_bytes(size: int = 1400, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def compressed_outputs() -> dict[str, bytes]:
    """The same large text compressed by every common codec (each starts with its magic)."""
    text = english(8000) + json_records(8000)
    return {
        "gzip": gzip.compress(text),
        "zlib": zlib.compress(text),
        "zstd": zstandard.ZstdCompressor(level=3).compress(text),
        "lz4": lz4.frame.compress(text),
        "bzip2": bz2.compress(text),
        "xz": lzma.compress(text),
    }


def png_file(size: int = 1400, seed: int = 1) -> bytes:
    """PNG signature + IHDR chunk + an IDAT chunk of deflated (random-looking) data."""
    ihdr = struct.pack(">IIBBBBB", 640, 480, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    head = b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", size) + b"IDAT"
    return (head + random_bytes(size, seed))[:size]


def jpeg_file(size: int = 1400, seed: int = 2) -> bytes:
    """JPEG SOI + JFIF APP0 segment + entropy-coded (random-looking) data."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return (b"\xff\xd8" + app0 + random_bytes(size, seed))[:size]


def mp4_file(size: int = 1400, seed: int = 3) -> bytes:
    ftyp = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isomiso2"
    return (ftyp + random_bytes(size, seed))[:size]


def tls_application_data(payload_len: int = 1395, seed: int = 4) -> bytes:
    """A TLS 1.3 record: type 23, legacy version 0x0303, length, ciphertext."""
    return b"\x17\x03\x03" + struct.pack(">H", payload_len) + random_bytes(payload_len, seed)


def quic_initial(size: int = 1200, seed: int = 5) -> bytes:
    """QUIC v1 long-header Initial packet (first byte 0xC3, version 1, CIDs, then ciphertext)."""
    dcid = random_bytes(8, seed)
    head = b"\xc3\x00\x00\x00\x01" + bytes([8]) + dcid + b"\x00" + b"\x00" + b"\x44\xd0"
    return (head + random_bytes(size, seed + 1))[:size]


def rtp_packet(
    payload: bytes, *, payload_type: int = 0, seq: int = 1, marker: bool = False
) -> bytes:
    """RTP v2 header (RFC 3550, no CSRC) + payload."""
    b1 = (0x80 if marker else 0) | payload_type
    return struct.pack(">BBHII", 0x80, b1, seq, 160 * seq, 0x1234ABCD) + payload


def udp_ipv4_rtp(payload: bytes) -> bytes:
    """IPv4 (20 B) + UDP (8 B) + RTP (12 B) + payload, with consistent lengths."""
    rtp = rtp_packet(payload, payload_type=111)
    udp = struct.pack(">HHHH", 50000, 5004, 8 + len(rtp), 0) + rtp
    total = 20 + len(udp)
    ip = struct.pack(
        ">BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    )
    return ip + udp


def udp_ipv6(payload: bytes) -> bytes:
    """IPv6 (40 B) + UDP (8 B) + payload."""
    udp = struct.pack(">HHHH", 443, 50000, 8 + len(payload), 0) + payload
    ip = struct.pack(
        ">IHBB16s16s",
        0x60000000,
        len(udp),
        17,
        64,
        b"\x20\x01" + bytes(14),
        b"\x20\x01" + bytes(13) + b"\x01",
    )
    return ip + udp


def tcp_ipv4(payload: bytes, *, ident: int = 1) -> bytes:
    """IPv4 (20 B) + TCP (20 B, ACK) + payload, with a consistent total length."""
    tcp = struct.pack(">HHIIBBHHH", 443, 50000, 1000, 2000, 0x50, 0x10, 65535, 0, 0) + payload
    total = 20 + len(tcp)
    ip = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,
        0,
        total,
        ident,
        0x4000,
        64,
        6,
        0,
        b"\x0a\x00\x00\x01",
        b"\x0a\x00\x00\x02",
    )
    return ip + tcp
