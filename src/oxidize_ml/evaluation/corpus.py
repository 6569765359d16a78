"""A corpus of real packet payloads, built at run time from files on this machine.

Compression decisions are judged on what a tunnel actually carries: text,
executables, already-compressed files, images, encrypted records, JSON/HTML
API traffic and small real-time media packets. Shipping such a corpus would
bloat the repository, so it is cut at run time from files every Linux machine
has, with generated content standing in for what cannot be found.

Categories (`CATEGORIES`)
-------------------------
==============  ==========================================================  =========================
category        real source (searched in order)                             generated fallback
==============  ==========================================================  =========================
``text``        /usr/share/common-licenses, /usr/share/doc (plain files),   seeded English-like prose
                Python stdlib ``*.py`` (``sysconfig.get_paths()["stdlib"]``)
``binary``      ELF executables in /usr/bin, /usr/sbin                      seeded ELF-like image
``compressed``  ``*.gz`` under /usr/share/doc, ``*.whl`` in the stdlib's     gzip / zlib / zstd output
                ensurepip, ``*.zip`` / ``*.whl`` in site-packages           of generated text
``image``       PNG / JPEG under matplotlib's mpl-data, /usr/share/icons,   seeded PNG (zlib IDAT)
                /usr/share/pixmaps, /usr/share/doc
``json``        always generated (seeded NDJSON API records)
``html``        always generated (seeded HTML page)
``random``      always generated: uniform random bytes standing for encrypted payloads
``tls``         always generated: TLS 1.3 application-data records (5-byte header + random)
``rtp``         always generated: real-time UDP flows as whole IPv4/IPv6 packets, in
                sending order (header compression needs them): RTP (RFC 3550) PCMU
                audio, Opus-like audio and video, plus UDP without RTP (game state
                structs, a QUIC-like encrypted flow)
==============  ==========================================================  =========================

Packet sizes
------------
Payload sizes are drawn from a three-part mixture (`draw_packet_size`),
the bimodal shape measured on Internet links for decades (small control and
interactive packets, full-MTU bulk packets, a thin middle):
40 % in [1200, 1400] B, 35 % in [64, 300] B, 25 % in (300, 1200) B. The RTP
category uses its own media sizes.

Files are cut into consecutive packets starting at a seeded offset (so most
packets of an image do not start with its magic number, as on the wire),
at most `MAX_FILE_READ_BYTES` read per file, at most ``max_read_bytes`` in
total, and the directory walks visit at most `MAX_SCAN_ENTRIES` entries per
root in sorted order.

Determinism: the same ``seed`` on the same machine (same files) gives the same
corpus; each category has its own ``random.Random`` seeded from
``(seed, category)``, so asking for fewer categories does not change the
packets of the others. A missing folder, an unreadable file or an empty search
never raises: the category falls back to generated content (each packet's
``source`` says which).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import random
import stat
import struct
import sysconfig
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from oxidize_ml._validate import check_int

CATEGORIES: tuple[str, ...] = (
    "text",
    "json",
    "html",
    "binary",
    "compressed",
    "image",
    "random",
    "tls",
    "rtp",
)
"""every corpus category, in report order"""

FILE_CATEGORIES: tuple[str, ...] = ("text", "binary", "compressed", "image")
"""categories read from files when they exist (the others are always generated)"""

MAX_CORPUS_PACKETS = 5_000
"""upper bound on ``max_packets`` (keeps an evaluation's measuring time bounded)"""
MIN_PACKET_BYTES = 64
"""smallest payload drawn by `draw_packet_size`"""
MAX_PACKET_BYTES = 1_400
"""largest payload: a 1500-byte MTU less IP/UDP/QUIC/tunnel headers"""
MAX_FILE_READ_BYTES = 32 * 1024
"""bytes read from any one file (a seeded window of large files)"""
DEFAULT_MAX_READ_BYTES = 4 * 1024 * 1024
"""default bound on bytes read from disk for one corpus"""
MAX_SCAN_ENTRIES = 8_000
"""directory entries visited per search root (bounded walk of big trees)"""
MIN_FILE_BYTES = 256
"""files smaller than this are not worth cutting into packets"""
_FILES_PER_CATEGORY = 48
"""packets of a category are spread over about this many files (variety against depth)"""
_MIN_TAIL_BYTES = 16
"""a file's last piece is kept as a (short) packet when at least this long"""

_SIZE_MIX: tuple[tuple[float, int, int], ...] = (
    (0.40, 1200, MAX_PACKET_BYTES),
    (0.35, MIN_PACKET_BYTES, 300),
    (0.25, 301, 1199),
)
"""(share, low, high) of the payload size mixture, inclusive bounds"""


@dataclass(frozen=True, slots=True)
class CorpusPacket:
    """One payload of the corpus."""

    category: str
    """one of `CATEGORIES`"""
    data: bytes
    """the payload"""
    source: str
    """file it was cut from, or ``"generated:<kind>"``"""

    @property
    def generated(self) -> bool:
        """True when the payload was generated rather than read from a file."""
        return self.source.startswith("generated:")


def _stdlib_dir() -> Path | None:
    try:
        return Path(sysconfig.get_paths()["stdlib"])
    except (KeyError, OSError):
        return None


def _purelib_dir() -> Path | None:
    try:
        return Path(sysconfig.get_paths()["purelib"])
    except (KeyError, OSError):
        return None


@dataclass(frozen=True, slots=True)
class CorpusSources:
    """Where the file-backed categories look, as (directory, max depth) pairs.

    Depth 0 lists the directory's own files only. Use `CorpusSources.default`
    for this machine's usual locations, or point every category at a folder of
    your own (an empty one forces the generated fallbacks, which tests use).
    """

    text: tuple[tuple[Path, int], ...] = ()
    """plain text files (licences, docs, Python sources)"""
    binary: tuple[tuple[Path, int], ...] = ()
    """ELF executables"""
    compressed: tuple[tuple[Path, int], ...] = ()
    """gzip, zip and wheel files"""
    image: tuple[tuple[Path, int], ...] = ()
    """PNG and JPEG files"""

    def __post_init__(self) -> None:
        for name in FILE_CATEGORIES:
            items = tuple((Path(d), int(depth)) for d, depth in getattr(self, name))
            for d, depth in items:
                if depth < 0:
                    raise ValueError(f"{name} depth for {str(d)!r} must be >= 0, got {depth}")
            object.__setattr__(self, name, items)

    @classmethod
    def default(cls) -> CorpusSources:
        """The usual Linux and Python locations (any of them may be missing)."""
        stdlib = _stdlib_dir()
        purelib = _purelib_dir()
        text: list[tuple[Path, int]] = [
            (Path("/usr/share/common-licenses"), 0),
            (Path("/usr/share/doc"), 2),
        ]
        compressed: list[tuple[Path, int]] = [(Path("/usr/share/doc"), 2)]
        image: list[tuple[Path, int]] = []
        if stdlib is not None:
            text.append((stdlib, 1))
            compressed.append((stdlib / "ensurepip" / "_bundled", 0))
        if purelib is not None:
            image.append((purelib / "matplotlib" / "mpl-data", 2))
            compressed.append((purelib, 0))
        image += [
            (Path("/usr/share/pixmaps"), 1),
            (Path("/usr/share/icons"), 3),
            (Path("/usr/share/doc"), 2),
        ]
        return cls(
            text=tuple(text),
            binary=((Path("/usr/bin"), 0), (Path("/usr/sbin"), 0)),
            compressed=tuple(compressed),
            image=tuple(image),
        )

    @classmethod
    def under(cls, root: str | os.PathLike[str]) -> CorpusSources:
        """Every category searches only ``root`` (recursively, depth 3)."""
        r = ((Path(root), 3),)
        return cls(text=r, binary=r, compressed=r, image=r)


# ---------------------------------------------------------------------------- sizes


def draw_packet_size(rng: random.Random) -> int:
    """One payload size in [`MIN_PACKET_BYTES`, `MAX_PACKET_BYTES`] from the mixture."""
    u = rng.random()
    acc = 0.0
    for share, lo, hi in _SIZE_MIX:
        acc += share
        if u < acc:
            return rng.randint(lo, hi)
    share, lo, hi = _SIZE_MIX[-1]
    return rng.randint(lo, hi)


# ---------------------------------------------------------------------------- file search

_TEXT_SKIP_SUFFIXES = frozenset(
    {
        ".gz",
        ".bz2",
        ".xz",
        ".zst",
        ".zip",
        ".whl",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".ico",
        ".svg",
        ".pdf",
        ".so",
        ".pyc",
        ".npz",
        ".npy",
        ".dat",
        ".ima",
        ".ttf",
        ".otf",
        ".afm",
        ".pfb",
        ".woff",
        ".woff2",
        ".mo",
        ".db",
        ".bin",
    }
)


def _suffix(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _is_text_name(name: str) -> bool:
    return _suffix(name) not in _TEXT_SKIP_SUFFIXES


def _is_compressed_name(name: str) -> bool:
    return _suffix(name) in (".gz", ".whl", ".zip")


def _is_image_name(name: str) -> bool:
    return _suffix(name) in (".png", ".jpg", ".jpeg")


def _any_name(name: str) -> bool:
    return True


_NAME_FILTERS: dict[str, Callable[[str], bool]] = {
    "text": _is_text_name,
    "binary": _any_name,
    "compressed": _is_compressed_name,
    "image": _is_image_name,
}


def _check_head(category: str, head: bytes) -> bool:
    """Does the file's first bytes fit the category (magic numbers, text check)?"""
    if category == "binary":
        return head.startswith(b"\x7fELF")
    if category == "compressed":
        return head.startswith((b"\x1f\x8b", b"PK\x03\x04"))
    if category == "image":
        return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))
    # text: valid UTF-8 (allowing a cut multi-byte character at the end), mostly printable
    if not head or b"\x00" in head:
        return False
    try:
        s = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            return False
        s = head[: exc.start].decode("utf-8", errors="ignore")
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in s)
    return printable >= 0.95 * max(len(s), 1)


def _walk(root: str, max_depth: int, budget: list[int]) -> Iterator[os.DirEntry[str]]:
    """Regular files under ``root`` (sorted, breadth-first, bounded by ``budget[0]`` entries)."""
    level = [root]
    for _depth in range(max_depth + 1):
        nxt: list[str] = []
        for d in level:
            try:
                with os.scandir(d) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
                try:
                    if e.is_dir(follow_symlinks=False):
                        nxt.append(e.path)
                    elif e.is_file(follow_symlinks=True):
                        yield e
                except OSError:
                    continue
        level = nxt


def find_files(category: str, sources: CorpusSources) -> list[list[Path]]:
    """Candidate files of a file-backed ``category``, one sorted list per search root.

    A file reached twice (through a symlink or an overlapping root) is listed
    once, under the first root that reached it. Only names, sizes and (for
    ``binary``) the executable bit are checked here; contents are checked
    when read.
    """
    if category not in FILE_CATEGORIES:
        raise ValueError(f"category {category!r} is not file-backed; choose from {FILE_CATEGORIES}")
    name_ok = _NAME_FILTERS[category]
    seen: set[tuple[int, int]] = set()
    out: list[list[Path]] = []
    for root, depth in getattr(sources, category):
        budget = [MAX_SCAN_ENTRIES]
        found: list[Path] = []
        for e in _walk(str(root), depth, budget):
            if not name_ok(e.name):
                continue
            try:
                st = e.stat(follow_symlinks=True)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size < MIN_FILE_BYTES:
                continue
            if category == "binary" and not st.st_mode & 0o111:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            found.append(Path(e.path))
        if found:
            out.append(found)
    return out


def _read_window(
    path: Path, rng: random.Random, max_bytes: int, category: str
) -> tuple[bytes, bool]:
    """Check the file's head, then read a seeded window of at most ``max_bytes``.

    Returns the bytes (b"" on any failure) and whether the whole file was read.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(512)
            if not _check_head(category, head):
                return b"", False
            size = os.fstat(f.fileno()).st_size
            if size <= max_bytes:
                f.seek(0)
                return f.read(max_bytes), True
            # Text starts at the top half the time (a document's opening is sent
            # too); everything else from a random window anywhere in the file.
            if category == "text" and rng.random() < 0.5:
                offset = 0
            else:
                offset = rng.randrange(0, size - max_bytes + 1)
            f.seek(offset)
            data = f.read(max_bytes)
    except OSError:
        return b"", False
    if category == "text":
        # Keep whole characters: drop a cut UTF-8 sequence at either end.
        data = data.decode("utf-8", errors="ignore").encode("utf-8")
    return data, False


def _cut(data: bytes, rng: random.Random, limit: int) -> list[bytes]:
    """Consecutive packets of drawn sizes from ``data`` (a short last piece is kept)."""
    out: list[bytes] = []
    pos = 0
    n = len(data)
    while pos < n and len(out) < limit:
        size = draw_packet_size(rng)
        piece = data[pos : pos + size]
        if len(piece) < _MIN_TAIL_BYTES:
            break
        out.append(piece)
        pos += size
    return out


def _from_files(
    category: str,
    files_by_root: Sequence[Sequence[Path]],
    n: int,
    rng: random.Random,
    read_budget: int,
) -> list[CorpusPacket]:
    """Up to ``n`` packets: files shuffled within each root, roots interleaved (so one
    big tree does not crowd out the others), a few packets per file for variety."""
    if not files_by_root or n <= 0:
        return []
    shuffled = []
    for files in files_by_root:
        f = list(files)
        rng.shuffle(f)
        shuffled.append(f)
    order = [f[i] for i in range(max(map(len, shuffled))) for f in shuffled if i < len(f)]
    out: list[CorpusPacket] = []
    read = 0
    for k, path in enumerate(order):
        left = n - len(out)
        if left <= 0 or read >= read_budget:
            break
        # Spread what is still missing over the files still to come (at most
        # `_FILES_PER_CATEGORY` of them), so rejected files shift the load on.
        want = min(left, max(2, math.ceil(left / min(len(order) - k, _FILES_PER_CATEGORY))))
        max_bytes = min(MAX_FILE_READ_BYTES, want * MAX_PACKET_BYTES, read_budget - read)
        data, whole = _read_window(path, rng, max_bytes, category)
        read += len(data)
        if len(data) < MIN_FILE_BYTES:
            continue
        # A small file read whole starts at a seeded offset in its first quarter, so
        # not every packet sequence starts at the file's magic number; a window of a
        # large file already starts at a seeded offset.
        start = rng.randrange(0, len(data) // 4 + 1) if whole else 0
        for piece in _cut(data[start:], rng, want):
            out.append(CorpusPacket(category, piece, str(path)))
    return out


# ---------------------------------------------------------------------------- generators

_WORDS: tuple[str, ...] = (
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "from",
    "at",
    "or",
    "an",
    "which",
    "network",
    "packet",
    "sender",
    "receiver",
    "queue",
    "delay",
    "loss",
    "window",
    "congestion",
    "link",
    "path",
    "route",
    "server",
    "client",
    "request",
    "response",
    "header",
    "payload",
    "buffer",
    "stream",
    "connection",
    "protocol",
    "data",
    "file",
    "system",
    "user",
    "process",
    "memory",
    "kernel",
    "device",
    "driver",
    "config",
    "option",
    "value",
    "error",
    "warning",
    "message",
    "time",
    "rate",
    "bandwidth",
    "latency",
    "jitter",
    "throughput",
    "measure",
    "report",
    "license",
    "software",
    "copyright",
    "permission",
    "notice",
    "warranty",
    "condition",
    "source",
    "binary",
    "distribution",
    "modify",
    "redistribute",
    "provided",
    "without",
    "limitation",
    "implied",
    "fitness",
    "purpose",
    "merchantability",
    "liability",
    "damages",
    "contract",
    "tort",
    "otherwise",
    "arising",
    "function",
    "return",
    "class",
    "import",
    "module",
    "object",
    "string",
    "number",
    "list",
    "table",
    "index",
    "key",
    "first",
    "second",
    "next",
    "last",
    "each",
    "every",
    "some",
    "many",
    "more",
    "most",
    "few",
    "other",
    "same",
    "different",
    "can",
    "may",
    "must",
    "should",
    "will",
    "would",
    "could",
    "not",
    "only",
    "also",
    "very",
    "much",
    "well",
    "still",
    "even",
    "new",
    "old",
    "large",
    "small",
    "high",
    "low",
    "fast",
    "slow",
    "good",
    "bad",
    "long",
    "short",
    "early",
    "late",
    "open",
    "close",
)


def _prose(rng: random.Random, nbytes: int) -> bytes:
    """English-like text: sentences from a fixed vocabulary, paragraphs, some code lines."""
    parts: list[str] = []
    total = 0
    while total < nbytes:
        if rng.random() < 0.15:
            name = rng.choice(_WORDS)
            line = (
                f"    {name}_{rng.randrange(100)} = {rng.choice(_WORDS)}({rng.randrange(1000)})\n"
            )
        else:
            words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
            words[0] = words[0].capitalize()
            line = " ".join(words) + rng.choice((". ", ". ", ", and ", ".\n\n", "; "))
        parts.append(line)
        total += len(line)
    return "".join(parts).encode()[:nbytes]


def _gen_text(rng: random.Random, n: int) -> list[CorpusPacket]:
    return _cut_generated("text", "prose", lambda: _prose(rng, 16 * 1024), rng, n)


def _gen_binary(rng: random.Random, n: int) -> list[CorpusPacket]:
    """An ELF-like image: real 64-byte ELF header, code-like bytes, zero runs, a string table."""

    def image() -> bytes:
        hdr = (
            b"\x7fELF\x02\x01\x01"
            + bytes(9)
            + struct.pack(
                "<HHIQQQIHHHHHH",
                3,
                0x3E,
                1,
                0x1000 + rng.randrange(1 << 12),
                64,
                0,
                0,
                64,
                56,
                rng.randint(4, 12),
                64,
                rng.randint(20, 30),
                rng.randint(18, 29),
            )
        )
        body = bytearray(hdr)
        # x86-64-like instruction fragments with random immediates and displacements
        ops = (
            b"\x48\x89\xe5",
            b"\x48\x83\xec",
            b"\xe8",
            b"\x48\x8b\x45",
            b"\x89\x7d",
            b"\x0f\x1f\x44\x00\x00",
            b"\xc3",
            b"\x55",
            b"\x5d",
            b"\x48\x8d\x3d",
            b"\x74",
            b"\x75",
            b"\xeb",
            b"\x31\xc0",
            b"\x48\x85\xc0",
            b"\xff\x15",
        )
        while len(body) < 12 * 1024:
            r = rng.random()
            if r < 0.75:
                body += rng.choice(ops) + rng.randbytes(rng.choice((0, 1, 1, 4)))
            elif r < 0.85:
                body += bytes(rng.randint(4, 64))
            else:
                body += (rng.choice(_WORDS) + "_" + rng.choice(_WORDS)).encode() + b"\x00"
        return bytes(body)

    return _cut_generated("binary", "elf", image, rng, n)


def _gen_compressed(rng: random.Random, n: int) -> list[CorpusPacket]:
    cctx = zstandard.ZstdCompressor(level=3)

    def blob() -> bytes:
        text = _prose(rng, 48 * 1024) + _ndjson(rng, 16 * 1024)
        kind = rng.randrange(3)
        if kind == 0:
            return gzip.compress(text, mtime=0)
        if kind == 1:
            return zlib.compress(text, 6)
        return cctx.compress(text)

    return _cut_generated("compressed", "gzip-zlib-zstd", blob, rng, n)


def _png(width: int, height: int, pixels: bytes) -> bytes:
    """A real RGB PNG (filter 0 scanlines, one zlib IDAT chunk)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    row = width * 3
    raw = b"".join(b"\x00" + pixels[y * row : (y + 1) * row] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def _gen_image(rng: random.Random, n: int) -> list[CorpusPacket]:
    def image() -> bytes:
        w, h = rng.choice(((96, 96), (128, 96), (160, 120)))
        fx, fy = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0)
        noise = rng.randint(4, 40)
        px = bytearray()
        for y in range(h):
            for x in range(w):
                base = 128 + 100 * math.sin(fx * x / w * math.pi) * math.cos(fy * y / h * math.pi)
                for c in range(3):
                    v = int(base * (0.6 + 0.2 * c)) + rng.randint(-noise, noise)
                    px.append(min(255, max(0, v)))
        return _png(w, h, bytes(px))

    return _cut_generated("image", "png", image, rng, n)


_JSON_USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
_JSON_EVENTS = ("login", "logout", "click", "view", "purchase", "search", "error", "upload")


def _ndjson(rng: random.Random, nbytes: int) -> bytes:
    """Newline-delimited JSON API records / telemetry events."""
    lines: list[str] = []
    total = 0
    ts = 1_700_000_000_000 + rng.randrange(10**9)
    while total < nbytes:
        ts += rng.randrange(1, 5000)
        if rng.random() < 0.5:
            rec: dict[str, object] = {
                "id": rng.randrange(10**8),
                "user": rng.choice(_JSON_USERS),
                "event": rng.choice(_JSON_EVENTS),
                "ts": ts,
                "ok": rng.random() < 0.9,
                "latency_ms": round(rng.lognormvariate(3.0, 0.7), 2),
            }
        else:
            rec = {
                "type": "metrics",
                "host": f"node-{rng.randrange(64):02d}",
                "ts": ts,
                "cpu": round(rng.random(), 3),
                "mem_mb": rng.randrange(256, 65536),
                "tags": rng.sample(["prod", "eu", "us", "canary", "web", "db", "cache"], 2),
                "values": [round(rng.gauss(50, 15), 1) for _ in range(rng.randint(2, 6))],
            }
        line = json.dumps(rec, separators=(",", ":") if rng.random() < 0.5 else None) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:nbytes]


def _gen_json(rng: random.Random, n: int) -> list[CorpusPacket]:
    return _cut_generated("json", "ndjson", lambda: _ndjson(rng, 16 * 1024), rng, n)


def _html(rng: random.Random, nbytes: int) -> bytes:
    title = " ".join(rng.choice(_WORDS) for _ in range(4)).title()
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>{title}</title>\n<link rel="stylesheet" href="/static/site.css">\n'
        '</head>\n<body>\n<div class="container">\n'
    )
    parts = [head]
    total = len(parts[0])
    while total < nbytes:
        r = rng.random()
        if r < 0.4:
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(10, 40)))
            s = f'  <p class="text-{rng.choice(("body", "muted", "lead"))}">{words}.</p>\n'
        elif r < 0.7:
            items = "".join(
                f'    <li><a href="/{rng.choice(_WORDS)}/{rng.randrange(1000)}">'
                f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS)}</a></li>\n"
                for _ in range(rng.randint(3, 8))
            )
            s = f'  <ul class="nav nav-{rng.choice(("pills", "tabs"))}">\n{items}  </ul>\n'
        else:
            cells = "".join(
                f"<td>{rng.randrange(10**5)}</td><td>{rng.choice(_WORDS)}</td>"
                for _ in range(rng.randint(2, 4))
            )
            s = f'  <table class="table"><tr>{cells}</tr></table>\n'
        parts.append(s)
        total += len(s)
    parts.append("</div>\n</body>\n</html>\n")
    return "".join(parts).encode()[:nbytes]


def _gen_html(rng: random.Random, n: int) -> list[CorpusPacket]:
    return _cut_generated("html", "html", lambda: _html(rng, 16 * 1024), rng, n)


def _gen_random(rng: random.Random, n: int) -> list[CorpusPacket]:
    return [
        CorpusPacket("random", rng.randbytes(draw_packet_size(rng)), "generated:random")
        for _ in range(n)
    ]


def _gen_tls(rng: random.Random, n: int) -> list[CorpusPacket]:
    """TLS 1.3 application-data records (RFC 8446 5.2): 0x17 0x0303 length, then ciphertext."""
    out: list[CorpusPacket] = []
    for _ in range(n):
        size = max(draw_packet_size(rng), 5 + 17)  # at least a 16-byte tag and 1 byte
        body = rng.randbytes(size - 5)
        out.append(
            CorpusPacket(
                "tls", b"\x17\x03\x03" + struct.pack(">H", len(body)) + body, "generated:tls-record"
            )
        )
    return out


def _mulaw(sample: float) -> int:
    """G.711 mu-law encoding of a sample in [-1, 1] (continuous formula, mu = 255)."""
    s = max(-1.0, min(1.0, sample))
    y = math.copysign(math.log1p(255.0 * abs(s)) / math.log1p(255.0), s)
    return (int((y + 1.0) * 127.5) ^ 0xFF) & 0xFF


_V4_SRC, _V4_DST = bytes((10, 0, 0, 2)), bytes((10, 0, 0, 1))
_V6_SRC = bytes.fromhex("20010db8000000000000000000000002")
_V6_DST = bytes.fromhex("20010db8000000000000000000000001")


def _ip_udp(payload: bytes, *, v6: bool, sport: int, dport: int, ipid: int, checksum: int) -> bytes:
    """``payload`` in UDP in IPv4 (DF, TTL 64, valid header checksum) or IPv6 (hop limit 64).

    The UDP checksum is a stand-in value (what the transport computed is opaque
    to a tunnel: header compression carries it as is).
    """
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), checksum) + payload
    if v6:
        return struct.pack(">IHBB16s16s", 0x60000000, len(udp), 17, 64, _V6_SRC, _V6_DST) + udp
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
            _V4_SRC,
            _V4_DST,
        )
    )
    total = sum(struct.unpack(">10H", hdr))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    hdr[10:12] = struct.pack(">H", ~total & 0xFFFF)
    return bytes(hdr) + udp


def _gen_rtp(rng: random.Random, n: int) -> list[CorpusPacket]:
    """Real-time UDP flows as a tunnel reads them: RTP audio/video, game state, QUIC-like.

    Five interleaved flows: RTP (RFC 3550 12-byte header in UDP) PCMU 20 ms
    and Opus-like audio over IPv4 and video over IPv6, game-state structs
    over IPv4 and a QUIC-like short-header flow over IPv6; sequence numbers,
    timestamps and IPv4 identifications advance per flow, in sending order,
    so header compression (``RohcOnly``) sees real flows.
    """
    out: list[CorpusPacket] = []
    streams = [
        {
            "pt": 0,
            "ssrc": rng.getrandbits(32),
            "seq": rng.getrandbits(16),
            "ts": rng.getrandbits(32),
            "step": 160,
            "phase": 0.0,
            "v6": False,
            "sport": rng.randrange(10_000, 60_000, 2),
            "ipid": rng.getrandbits(16),
        },
        {
            "pt": 111,
            "ssrc": rng.getrandbits(32),
            "seq": rng.getrandbits(16),
            "ts": rng.getrandbits(32),
            "step": 960,
            "phase": 0.0,
            "v6": False,
            "sport": rng.randrange(10_000, 60_000, 2),
            "ipid": rng.getrandbits(16),
        },
        {
            "pt": 96,
            "ssrc": rng.getrandbits(32),
            "seq": rng.getrandbits(16),
            "ts": rng.getrandbits(32),
            "step": 3000,
            "phase": 0.0,
            "v6": True,
            "sport": rng.randrange(10_000, 60_000, 2),
            "ipid": 0,
        },
    ]
    # Two UDP flows without RTP: game state (small structs) over IPv4 and a
    # QUIC-like flow (short header, encrypted payload) over IPv6.
    game = {"sport": rng.randrange(10_000, 60_000), "ipid": rng.getrandbits(16), "tick": 0}
    quic_sport, quic_dcid = rng.randrange(10_000, 60_000), rng.randbytes(8)
    freq = rng.uniform(200.0, 600.0)
    for _ in range(n):
        which = rng.choices((0, 1, 2, 3, 4), weights=(0.3, 0.2, 0.2, 0.15, 0.15))[0]
        if which == 3:
            game["tick"] = int(game["tick"]) + 1
            game["ipid"] = int(game["ipid"]) + 1
            body = b"\x01" + b"".join(  # message type, then one struct per entity
                struct.pack(
                    "<IHhhhB",
                    int(game["tick"]),
                    e,
                    rng.randrange(-300, 300),
                    rng.randrange(-300, 300),
                    rng.randrange(-50, 50),
                    rng.randrange(4),
                )
                for e in range(rng.randint(2, 8))
            )
            packet = _ip_udp(
                body,
                v6=False,
                sport=int(game["sport"]),
                dport=27015,
                ipid=int(game["ipid"]),
                checksum=rng.randrange(1, 1 << 16),
            )
            out.append(CorpusPacket("rtp", packet, "generated:udp-game"))
            continue
        if which == 4:
            body = (
                bytes((0x40 | rng.getrandbits(6),))
                + quic_dcid
                + rng.randbytes(rng.choice((rng.randint(30, 120), rng.randint(1000, 1300))))
            )
            packet = _ip_udp(
                body,
                v6=True,
                sport=quic_sport,
                dport=443,
                ipid=0,
                checksum=rng.randrange(1, 1 << 16),
            )
            out.append(CorpusPacket("rtp", packet, "generated:udp-quic"))
            continue
        st = streams[which]
        pt = int(st["pt"])
        marker = pt == 96 and rng.random() < 0.1
        hdr = struct.pack(
            ">BBHII",
            0x80,
            (0x80 if marker else 0) | pt,
            int(st["seq"]) & 0xFFFF,
            int(st["ts"]) & 0xFFFFFFFF,
            int(st["ssrc"]),
        )
        if pt == 0:  # 160 mu-law samples of a tone plus noise
            ph = float(st["phase"])
            payload = bytes(
                _mulaw(0.4 * math.sin(ph + 2 * math.pi * freq * i / 8000) + rng.gauss(0, 0.03))
                for i in range(160)
            )
            st["phase"] = ph + 2 * math.pi * freq * 160 / 8000
        elif pt == 111:  # compressed audio: high entropy, 40-160 bytes
            payload = rng.randbytes(rng.randint(40, 160))
        else:  # video slice: high entropy, up to the MTU budget (IPv6 + UDP + RTP = 60 B)
            payload = rng.randbytes(rng.randint(600, MAX_PACKET_BYTES - 60))
        st["seq"] = int(st["seq"]) + 1
        st["ts"] = int(st["ts"]) + int(st["step"])
        st["ipid"] = int(st["ipid"]) + 1
        packet = _ip_udp(
            hdr + payload,
            v6=bool(st["v6"]),
            sport=int(st["sport"]),
            dport=5004 + 2 * pt % 64,
            ipid=int(st["ipid"]),
            checksum=rng.randrange(1, 1 << 16),
        )
        out.append(CorpusPacket("rtp", packet, f"generated:rtp-pt{pt}"))
    return out


def _cut_generated(
    category: str, kind: str, make: Callable[[], bytes], rng: random.Random, n: int
) -> list[CorpusPacket]:
    """Packets cut from freshly generated documents until ``n`` are collected."""
    out: list[CorpusPacket] = []
    source = f"generated:{kind}"
    while len(out) < n:
        for piece in _cut(make(), rng, n - len(out)):
            out.append(CorpusPacket(category, piece, source))
    return out


_GENERATORS: dict[str, Callable[[random.Random, int], list[CorpusPacket]]] = {
    "text": _gen_text,
    "json": _gen_json,
    "html": _gen_html,
    "binary": _gen_binary,
    "compressed": _gen_compressed,
    "image": _gen_image,
    "random": _gen_random,
    "tls": _gen_tls,
    "rtp": _gen_rtp,
}


# ---------------------------------------------------------------------------- public API


@dataclass(frozen=True, slots=True)
class CorpusSummary:
    """Counts per category (for reports)."""

    packets: dict[str, int] = field(default_factory=dict)
    """packets per category"""
    bytes: dict[str, int] = field(default_factory=dict)
    """payload bytes per category"""
    from_files: dict[str, int] = field(default_factory=dict)
    """packets per category cut from real files (the rest were generated)"""
    files: dict[str, int] = field(default_factory=dict)
    """distinct files used per category"""

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {
            "packets": dict(self.packets),
            "bytes": dict(self.bytes),
            "from_files": dict(self.from_files),
            "files": dict(self.files),
        }


def summarize(corpus: Sequence[CorpusPacket]) -> CorpusSummary:
    """Packets, bytes, real-file packets and distinct files per category."""
    s = CorpusSummary()
    files: dict[str, set[str]] = {}
    for p in corpus:
        s.packets[p.category] = s.packets.get(p.category, 0) + 1
        s.bytes[p.category] = s.bytes.get(p.category, 0) + len(p.data)
        real = 0 if p.generated else 1
        s.from_files[p.category] = s.from_files.get(p.category, 0) + real
        if real:
            files.setdefault(p.category, set()).add(p.source)
    for c in s.packets:
        s.files[c] = len(files.get(c, ()))
    return s


def build_corpus(
    *,
    seed: int,
    max_packets: int = 2_000,
    categories: Sequence[str] | None = None,
    sources: CorpusSources | None = None,
    max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
) -> list[CorpusPacket]:
    """Build the corpus: ``max_packets`` payloads split evenly over ``categories``.

    Parameters
    ----------
    seed
        Seeds every choice (files, offsets, sizes, generated content).
    max_packets
        Total packets, 1 to `MAX_CORPUS_PACKETS`; each category gets
        ``max_packets // len(categories)`` (the first ``max_packets % len``
        categories one more). A category with no share gets nothing.
    categories
        Subset of `CATEGORIES` (default: all), in any order; the result keeps
        `CATEGORIES` order.
    sources
        Where file-backed categories look (default `CorpusSources.default`).
    max_read_bytes
        Bound on bytes read from files, shared evenly by the file-backed
        categories requested.

    Returns
    -------
    list of CorpusPacket
        Grouped by category in `CATEGORIES` order; within a category, in
        the order they were cut. Exactly ``max_packets`` packets.

    Examples
    --------
    >>> c = build_corpus(seed=0, max_packets=18)
    >>> sorted({p.category for p in c}) == sorted(CATEGORIES)
    True
    >>> all(1 <= len(p.data) <= MAX_PACKET_BYTES for p in c)
    True
    """
    check_int("seed", seed, lo=None)
    check_int("max_packets", max_packets, lo=1, hi=MAX_CORPUS_PACKETS)
    check_int("max_read_bytes", max_read_bytes, lo=0)
    if categories is None:
        wanted = list(CATEGORIES)
    else:
        if isinstance(categories, str):
            raise TypeError("categories must be a sequence of names, not a string")
        unknown = sorted(set(categories) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown corpus categories {unknown}; choose from {list(CATEGORIES)}")
        if not categories:
            raise ValueError(f"categories must not be empty; choose from {list(CATEGORIES)}")
        wanted = [c for c in CATEGORIES if c in set(categories)]
    if sources is None:
        sources = CorpusSources.default()
    n_file_cats = sum(c in FILE_CATEGORIES for c in wanted)
    read_budget = max_read_bytes // max(n_file_cats, 1)
    base, extra = divmod(max_packets, len(wanted))
    out: list[CorpusPacket] = []
    for i, cat in enumerate(wanted):
        n = base + (1 if i < extra else 0)
        if n == 0:
            continue
        rng = random.Random(f"oxidize-corpus:{seed}:{cat}")
        packets: list[CorpusPacket] = []
        if cat in FILE_CATEGORIES:
            packets = _from_files(cat, find_files(cat, sources), n, rng, read_budget)
        if len(packets) < n:
            packets += _GENERATORS[cat](rng, n - len(packets))
        out.extend(packets[:n])
    return out


def real_time_flows(seed: int, n: int) -> list[CorpusPacket]:
    """``n`` packets of the corpus's interleaved real-time UDP flows (RTP audio and
    video over IPv4/IPv6, game state, QUIC-like), in sending order, seeded."""
    check_int("n", n, lo=1, hi=1_000_000)
    return _gen_rtp(random.Random(seed), n)


# ---------------------------------------------------------------- train / held-out split

HELDOUT_FILE_SHARE = 0.25
"""default share of real source files reserved for the held-out side"""


def heldout_source(source: str, share: float) -> bool | None:
    """Which side a packet's source file is on: True held out, False training, None generated.

    A file is held out when the first byte of SHA-256 of its path is below
    ``256 * share``: stable across runs and machines, independent of seeds.
    """
    if source.startswith("generated:"):
        return None
    return hashlib.sha256(source.encode("utf-8", "surrogateescape")).digest()[0] < 256 * share


def corpus_side(
    *, seed: int, max_packets: int, heldout: bool, file_share: float
) -> tuple[list[CorpusPacket], dict[str, Any]]:
    """A corpus restricted to one side of the file split: (`CorpusPacket` list, counts).

    ``max_packets`` is split evenly over the corpus categories as in
    `build_corpus`. A file-backed category is asked for enough extra packets
    that, after dropping the other side's files, it still fills its quota
    when the files allow (at most `MAX_CORPUS_PACKETS` per category), so the
    file split does not starve the real-file categories.
    """
    keep_share = file_share if heldout else 1.0 - file_share
    base, extra = divmod(max_packets, len(CATEGORIES))
    packets: list[CorpusPacket] = []
    counts: dict[str, Any] = {"kept": 0, "dropped_other_side_files": 0, "per_category": {}}
    for i, cat in enumerate(CATEGORIES):
        quota = base + (1 if i < extra else 0)
        if quota == 0:
            continue
        ask = quota
        if cat in FILE_CATEGORIES:
            # 25 % headroom over the expected keep rate; files are uneven in packets.
            ask = min(MAX_CORPUS_PACKETS, math.ceil(quota * 1.25 / max(keep_share, 0.05)))
        kept = 0
        for p in build_corpus(seed=seed, max_packets=ask, categories=[cat]):
            side = heldout_source(p.source, file_share)
            if side is not None and side != heldout:
                counts["dropped_other_side_files"] += 1
                continue
            if kept < quota:
                packets.append(p)
                kept += 1
        counts["per_category"][cat] = kept
    counts["kept"] = len(packets)
    return packets, counts
