"""The report's header-compression section: what ``RohcOnly`` saves on real-time UDP
flows and how it survives loss and reordering.

`oxidize_ml.compression.rohc` compresses IPv4/IPv6 + UDP (+ RTP) headers with
per-flow contexts (RFC 2508 / RFC 3095 U-mode ideas; not wire-compatible with
ROHC). This section runs the corpus's interleaved real-time flows
(`oxidize_ml.evaluation.corpus.real_time_flows`) through a sending and a
receiving `PacketCodec`:

- **saving**: per flow kind, mean bytes on the wire as IP packets and as RohcOnly
  frames (the frame's own header included);
- **robustness**: a channel that drops each frame with probability ``loss`` and
  swaps neighbours (up to 3 apart) with probability ``reorder``; per setting, the
  share of delivered frames that fail to decode (a damaged context is caught by
  the CRC and the packet dropped) and the number decoded *wrong* (must be 0).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oxidize_ml._validate import check_int
from oxidize_ml.compression.codec import PacketCodec
from oxidize_ml.evaluation.corpus import real_time_flows
from oxidize_ml.types import MlCompressionDecision

CHANNELS: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    (0.05, 0.0),
    (0.0, 0.05),
    (0.05, 0.05),
    (0.10, 0.10),
)
"""(loss, reorder) settings of the robustness table"""


@dataclass(frozen=True, slots=True)
class HeaderCompressionResult:
    saving: dict[str, dict[str, float]]
    """flow kind -> packets, mean IP packet bytes, mean RohcOnly frame bytes, saved bytes"""
    channels: list[dict[str, float]]
    """per (loss, reorder): delivered, decode errors, error rate, wrong"""
    packets: int
    seeds: int

    def markdown(self) -> str:
        lines = [
            (
                f"{self.packets} packets of interleaved real-time flows per run; RohcOnly "
                "frames (frame header included) against the IP packets; robustness over "
                f"{self.seeds} seeds per channel setting."
            ),
            "",
            "| flow | packets | IP packet B | RohcOnly frame B | saved B/packet | saved % |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for kind, s in self.saving.items():
            lines.append(
                f"| {kind} | {int(s['packets'])} | {s['ip_bytes']:.1f} | {s['frame_bytes']:.1f} "
                f"| {s['saved_bytes']:.1f} | {100 * s['saved_share']:.1f} % |"
            )
        lines += [
            "",
            "| loss | reorder | delivered | decode failures | failure rate | decoded wrong |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for c in self.channels:
            lines.append(
                f"| {100 * c['loss']:.0f} % | {100 * c['reorder']:.0f} % | {int(c['delivered'])} "
                f"| {int(c['errors'])} | {100 * c['error_rate']:.3f} % | {int(c['wrong'])} |"
            )
        return "\n".join(lines) + "\n"

    def headline(self) -> list[str]:
        saved = ", ".join(f"{k} {v['saved_bytes']:.1f} B" for k, v in self.saving.items())
        worst = max(self.channels, key=lambda c: c["error_rate"])
        wrong = sum(int(c["wrong"]) for c in self.channels)
        line = (
            f"Header compression (RohcOnly): saved per packet {saved}; decode failures at most "
            f"{100 * worst['error_rate']:.3f} % (loss {100 * worst['loss']:.0f} %, reorder "
            f"{100 * worst['reorder']:.0f} %), {wrong} packets decoded wrong"
        )
        return [line]

    def to_dict(self) -> dict[str, Any]:
        return {
            "saving": self.saving,
            "channels": self.channels,
            "packets": self.packets,
            "seeds": self.seeds,
        }


def _channel(packets: list[bytes], loss: float, reorder: float, seed: int) -> tuple[int, int, int]:
    """(delivered, decode errors, wrong) through a lossy, reordering channel."""
    rng = random.Random(seed)
    tx, rx = PacketCodec(), PacketCodec()
    frames = [tx.encode(p, MlCompressionDecision.RohcOnly) for p in packets]
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
        try:
            out = rx.decode(frames[i])
        except ValueError:
            errors += 1
            continue
        wrong += out != packets[i]
    return delivered, errors, wrong


def run(
    *,
    seed: int = 0,
    quick: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> HeaderCompressionResult:
    """Measure saving and robustness (see the module docstring)."""
    check_int("seed", seed)
    n = 1500 if quick else 4000
    seeds = 2 if quick else 5
    flows = real_time_flows(seed, n)
    packets = [p.data for p in flows]
    tx = PacketCodec()
    saving: dict[str, dict[str, float]] = {}
    for p in flows:
        frame = tx.encode(p.data, MlCompressionDecision.RohcOnly)
        kind = p.source.removeprefix("generated:")
        s = saving.setdefault(kind, {"packets": 0.0, "ip_bytes": 0.0, "frame_bytes": 0.0})
        s["packets"] += 1
        s["ip_bytes"] += len(p.data)
        s["frame_bytes"] += len(frame)
    for s in saving.values():
        s["ip_bytes"] /= s["packets"]
        s["frame_bytes"] /= s["packets"]
        s["saved_bytes"] = s["ip_bytes"] - s["frame_bytes"]
        s["saved_share"] = s["saved_bytes"] / s["ip_bytes"]
    channels = []
    for k, (loss, reorder) in enumerate(CHANNELS):
        delivered = errors = wrong = 0
        for s_ in range(seeds):
            d, e, w = _channel(packets, loss, reorder, seed * 1000 + 10 * k + s_)
            delivered, errors, wrong = delivered + d, errors + e, wrong + w
        channels.append(
            {
                "loss": loss,
                "reorder": reorder,
                "delivered": float(delivered),
                "errors": float(errors),
                "error_rate": errors / max(1, delivered),
                "wrong": float(wrong),
            }
        )
        if progress is not None:
            progress(k + 1, len(CHANNELS), f"loss {loss:.0%} reorder {reorder:.0%}")
    return HeaderCompressionResult(dict(sorted(saving.items())), channels, n, seeds)


def plot(result: HeaderCompressionResult, out_dir: str | Path) -> list[Path]:
    """No figure: two small tables say it."""
    return []
