"""Benchmark: the oracle's per-packet decision against lz4 on the same packet.

The oracle is only worth running if deciding costs less than simply trying
the cheapest compressor. This measures, in one process and interleaved round
by round (so machine load hits both alike), the median time per call of

* ``lz4.block.compress(pkt, store_size=False)`` (the budget),
* ``HeuristicCompressionOracle.decide(pkt)`` (must be below the budget),
* ``feature_vector(pkt)`` (the full feature vector, for learned models),

on 1400-byte text, random and JSON packets, and reports the ratio
decide / lz4 as the median of the per-round ratios.

Run ``python -m oxidize_ml.compression.bench [rounds] [calls_per_round]
[--codec]``; ``--codec`` adds encode/decode times and frame sizes of every
decision through `PacketCodec`.
"""

from __future__ import annotations

import argparse
import collections
import email
import http.client
import json
import logging
import random
import statistics
import sys
import timeit
import typing
from typing import NamedTuple

import lz4.block

from oxidize_ml.compression.codec import PacketCodec
from oxidize_ml.compression.features import feature_vector
from oxidize_ml.compression.oracle import HeuristicCompressionOracle
from oxidize_ml.types import MlCompressionDecision


class BenchRow(NamedTuple):
    """Median microseconds per call for one packet kind."""

    lz4_us: float
    decide_us: float
    features_us: float
    ratio: float
    """median over rounds of decide_us / lz4_us"""
    decision: str


def standard_packets(size: int = 1400, seed: int = 0) -> dict[str, bytes]:
    """Text, random and JSON packets of ``size`` bytes (REFERENCES section 4 kinds).

    Text is English prose from standard-library module docstrings; JSON is
    an array of API-style records from a seeded generator.
    """
    modules = (collections, email, http.client, argparse, logging, typing, json)
    text = "".join(m.__doc__ or "" for m in modules).encode()
    rng = random.Random(seed)
    records = [
        {
            "id": rng.randrange(10**6),
            "user": rng.choice(["alice", "bob", "carol", "dave"]),
            "ts": 1_700_000_000 + rng.randrange(10**5),
            "score": round(rng.random(), 4),
            "ok": rng.random() < 0.5,
        }
        for _ in range(size // 40 + 10)
    ]
    return {
        "text": (text * (size // max(len(text), 1) + 1))[:size],
        "random": rng.randbytes(size),
        "json": json.dumps(records).encode()[:size],
    }


def interleaved_us(
    pkt: bytes, calls: dict[str, typing.Callable[[bytes], object]], *, rounds: int, number: int
) -> dict[str, list[float]]:
    """Microseconds per call of lz4 (key ``"lz4"``) and of each of ``calls`` on ``pkt``,
    one sample per round, the calls interleaved within each round so that a load change
    during the measurement hits them all alike (compare per-round ratios)."""
    env: dict[str, object] = {"compress": lz4.block.compress, "pkt": pkt, **calls}
    timers = {"lz4": timeit.Timer("compress(pkt, store_size=False)", globals=env)}
    timers.update({k: timeit.Timer(f"{k}(pkt)", globals=env) for k in calls})
    samples: dict[str, list[float]] = {k: [] for k in timers}
    for _ in range(rounds):
        for key, timer in timers.items():
            samples[key].append(timer.timeit(number) / number * 1e6)
    return samples


def decision_cost(
    packets: dict[str, bytes], *, rounds: int = 21, number: int = 2000
) -> dict[str, BenchRow]:
    """Interleaved timing of lz4, decide and feature_vector per packet kind."""
    oracle = HeuristicCompressionOracle()
    out: dict[str, BenchRow] = {}
    for name, pkt in packets.items():
        samples = interleaved_us(
            pkt, {"decide": oracle.decide, "features": feature_vector}, rounds=rounds, number=number
        )
        ratios = [d / c for d, c in zip(samples["decide"], samples["lz4"], strict=True)]
        out[name] = BenchRow(
            lz4_us=statistics.median(samples["lz4"]),
            decide_us=statistics.median(samples["decide"]),
            features_us=statistics.median(samples["features"]),
            ratio=statistics.median(ratios),
            decision=oracle.decide(pkt).name,
        )
    return out


class CodecRow(NamedTuple):
    """Median cost of one decision through `PacketCodec` on one packet kind."""

    frame_bytes: int
    encode_us: float
    decode_us: float


def codec_cost(
    packets: dict[str, bytes], *, rounds: int = 11, number: int = 500
) -> dict[tuple[str, str], CodecRow]:
    """Median encode/decode time and frame size per (packet kind, decision)."""
    codec = PacketCodec()
    out: dict[tuple[str, str], CodecRow] = {}
    for name, pkt in packets.items():
        for decision in MlCompressionDecision:
            frame = codec.encode(pkt, decision)
            env = {"enc": codec.encode, "dec": codec.decode, "pkt": pkt, "d": decision, "f": frame}
            enc = timeit.Timer("enc(pkt, d)", globals=env)
            dec = timeit.Timer("dec(f)", globals=env)
            e_us: list[float] = []
            d_us: list[float] = []
            for _ in range(rounds):
                e_us.append(enc.timeit(number) / number * 1e6)
                d_us.append(dec.timeit(number) / number * 1e6)
            out[(name, decision.name)] = CodecRow(
                len(frame), statistics.median(e_us), statistics.median(d_us)
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("rounds", nargs="?", type=int, default=21)
    parser.add_argument("number", nargs="?", type=int, default=2000)
    parser.add_argument("--codec", action="store_true", help="also time PacketCodec per decision")
    args = parser.parse_args(argv)
    rows = decision_cost(standard_packets(), rounds=args.rounds, number=args.number)
    print(
        f"{'packet':8s} {'lz4 us':>8s} {'decide us':>10s} {'ratio':>6s} {'features us':>12s}  decision"
    )
    for name, r in rows.items():
        print(
            f"{name:8s} {r.lz4_us:8.2f} {r.decide_us:10.2f} {r.ratio:6.2f} "
            f"{r.features_us:12.2f}  {r.decision}"
        )
    if args.codec:
        print(
            f"\n{'packet':8s} {'decision':11s} {'frame B':>8s} {'encode us':>10s} {'decode us':>10s}"
        )
        for (name, decision), c in codec_cost(standard_packets()).items():
            print(
                f"{name:8s} {decision:11s} {c.frame_bytes:8d} {c.encode_us:10.2f} {c.decode_us:10.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
