"""Tests of the run-time payload corpus (oxidize_ml.evaluation.corpus)."""

from __future__ import annotations

import gzip
import itertools
import random
import struct
import zlib

import pytest

from oxidize_ml.compression.packet import parse_ip
from oxidize_ml.evaluation.corpus import (
    CATEGORIES,
    FILE_CATEGORIES,
    MAX_CORPUS_PACKETS,
    MAX_PACKET_BYTES,
    MIN_PACKET_BYTES,
    CorpusSources,
    build_corpus,
    draw_packet_size,
    find_files,
    summarize,
)


def test_same_seed_same_corpus_and_every_category_present():
    a = build_corpus(seed=3, max_packets=180)
    b = build_corpus(seed=3, max_packets=180)
    assert a == b
    assert len(a) == 180
    counts = summarize(a).packets
    assert set(counts) == set(CATEGORIES)
    assert all(v == 20 for v in counts.values())


def test_different_seed_changes_content():
    a = build_corpus(seed=0, max_packets=90)
    b = build_corpus(seed=1, max_packets=90)
    assert [p.data for p in a] != [p.data for p in b]


def test_empty_folder_falls_back_to_generated_content(tmp_path):
    corpus = build_corpus(seed=0, max_packets=90, sources=CorpusSources.under(tmp_path))
    s = summarize(corpus)
    assert set(s.packets) == set(CATEGORIES)
    assert all(v == 0 for v in s.from_files.values())
    assert all(p.generated for p in corpus)
    # Fallbacks are real formats, not filler: the generated image is a valid PNG stream.
    img = [p for p in corpus if p.category == "image"]
    assert img and all(p.source == "generated:png" for p in img)


def test_missing_folder_never_raises():
    sources = CorpusSources.under("/nonexistent/oxidize-corpus-test")
    corpus = build_corpus(seed=5, max_packets=27, sources=sources)
    assert len(corpus) == 27


def test_files_are_found_and_checked(tmp_path):
    # One file per file-backed category; names and contents must both fit.
    rng = random.Random(0)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "packet", "queue"]
    text = " ".join(rng.choice(words) for _ in range(20000)).encode()
    (tmp_path / "notes.txt").write_bytes(text)
    (tmp_path / "doc.txt.gz").write_bytes(gzip.compress(text, mtime=0))
    elf = b"\x7fELF" + rng.randbytes(30000)
    exe = tmp_path / "tool"
    exe.write_bytes(elf)
    exe.chmod(0o755)
    (tmp_path / "fake.png").write_bytes(b"not a png at all" * 100)  # wrong magic: rejected
    sources = CorpusSources.under(tmp_path)
    corpus = build_corpus(seed=0, max_packets=40, categories=FILE_CATEGORIES, sources=sources)
    by_cat = {c: [p for p in corpus if p.category == c] for c in FILE_CATEGORIES}
    assert all(not p.generated for p in by_cat["text"]), [(p.source, len(p.data)) for p in corpus]
    assert all(p.data in text for p in by_cat["text"])
    assert all(not p.generated and p.data in elf for p in by_cat["binary"])
    assert all(not p.generated for p in by_cat["compressed"])
    # The only "image" has the wrong magic number: the category is generated.
    assert all(p.generated for p in by_cat["image"])
    files = find_files("binary", sources)
    assert [[f.name for f in group] for group in files] == [["tool"]]


def test_categories_subset_keeps_order_and_other_categories_unchanged():
    full = build_corpus(seed=2, max_packets=90)
    sub = build_corpus(seed=2, max_packets=20, categories=["tls", "random"])
    assert [p.category for p in sub] == ["random"] * 10 + ["tls"] * 10
    # each category has its own stream: the first 10 random packets are the same
    assert [p.data for p in sub[:10]] == [p.data for p in full if p.category == "random"][:10]


def test_generated_categories_have_their_formats():
    corpus = build_corpus(seed=0, max_packets=90, categories=["tls", "rtp", "json", "html"])
    for p in corpus:
        if p.category == "tls":
            assert p.data[:3] == b"\x17\x03\x03"
            assert struct.unpack(">H", p.data[3:5])[0] == len(p.data) - 5
        elif p.category == "rtp":
            # whole IP packets (IPv4 for audio, IPv6 for video) carrying UDP + RTP
            info = parse_ip(p.data)
            assert info.udp and len(p.data) <= MAX_PACKET_BYTES, p.source
            if p.source.startswith("generated:udp-"):  # game state, QUIC-like: no RTP
                assert not info.rtp, p.source
                continue
            assert info.rtp, p.source
            r = info.ip_header_bytes + 8
            assert p.data[r] == 0x80 and (p.data[r + 1] & 0x7F) in (0, 96, 111)
        elif p.category == "html":
            assert b"<" in p.data
    # PCMU packets: IPv4 (20) + UDP (8) + RTP (12) + 160 samples
    pcmu = [p for p in corpus if p.source == "generated:rtp-pt0"]
    assert pcmu and all(len(p.data) == 200 for p in pcmu)
    # sequence numbers of a flow advance by one, in order (header compression sees flows)
    seqs = [struct.unpack(">H", p.data[30:32])[0] for p in pcmu]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))


def test_sizes_bounded_and_bimodal():
    rng = random.Random(0)
    sizes = [draw_packet_size(rng) for _ in range(5000)]
    assert min(sizes) >= MIN_PACKET_BYTES and max(sizes) <= MAX_PACKET_BYTES
    big = sum(s >= 1200 for s in sizes) / len(sizes)
    small = sum(s <= 300 for s in sizes) / len(sizes)
    assert 0.35 < big < 0.45 and 0.30 < small < 0.40
    corpus = build_corpus(seed=1, max_packets=90)
    assert all(0 < len(p.data) <= MAX_PACKET_BYTES for p in corpus)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown corpus categories"):
        build_corpus(seed=0, max_packets=10, categories=["text", "video"])
    with pytest.raises(ValueError, match="max_packets"):
        build_corpus(seed=0, max_packets=MAX_CORPUS_PACKETS + 1)
    with pytest.raises(TypeError):
        build_corpus(seed=0, max_packets=10, categories="text")
    with pytest.raises(ValueError, match="not file-backed"):
        find_files("json", CorpusSources.default())


def test_generated_png_is_a_valid_png(tmp_path):
    corpus = build_corpus(
        seed=0, max_packets=30, categories=["image"], sources=CorpusSources.under(tmp_path)
    )
    # The first packet of the first generated image starts at a seeded offset, so rebuild
    # the stream from consecutive packets of one image and check it parses as PNG chunks.
    stream = b"".join(p.data for p in corpus)
    start = stream.find(b"\x89PNG\r\n\x1a\n")
    assert start >= 0
    pos = start + 8
    kinds = []
    while pos + 8 <= len(stream):
        (length,) = struct.unpack(">I", stream[pos : pos + 4])
        kind = stream[pos + 4 : pos + 8]
        body = stream[pos + 8 : pos + 8 + length]
        crc = stream[pos + 8 + length : pos + 12 + length]
        if len(crc) < 4:
            break
        assert struct.unpack(">I", crc)[0] == zlib.crc32(kind + body) & 0xFFFFFFFF
        kinds.append(kind)
        pos += 12 + length
        if kind == b"IEND":
            break
    assert kinds[0] == b"IHDR"
