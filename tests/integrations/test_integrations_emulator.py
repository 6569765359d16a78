"""The user-space link emulator on loopback: capacity, drop-tail, loss, relaying, validation."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from oxidize_ml.integrations.emulator import (
    EmulatorConfig,
    LinkConfig,
    LinkEmulator,
    parse_host_port,
)
from oxidize_ml.sim.links import ConstantLink, TraceLink
from oxidize_ml.sim.random_loss import BernoulliLoss, GilbertElliottLoss
from oxidize_ml.sim.traces import OpportunitySchedule

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "mahimahi"
PAYLOAD = 1472  # + 28 header bytes = one 1500-byte opportunity


class Sink:
    """A UDP socket on loopback that timestamps what it receives (and can echo it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, echo: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.loop = loop
        self.echo = echo
        self.got: list[tuple[float, bytes, Any]] = []
        loop.add_reader(self.sock.fileno(), self._read)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _read(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            self.got.append((self.loop.time(), data, addr))
            if self.echo:
                self.sock.sendto(data, addr)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def _cfg(port: int, link: LinkConfig, **kw: Any) -> EmulatorConfig:
    return EmulatorConfig(target=("127.0.0.1", port), uplink=link, downlink=link, **kw)


async def _burst(link: LinkConfig, n: int, wait_s: float, **kw: Any) -> tuple[Any, Any, float]:
    loop = asyncio.get_running_loop()
    sink = Sink(loop)
    emu = LinkEmulator(_cfg(sink.port, link, **kw))
    await emu.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t_send = loop.time()
    try:
        for i in range(n):
            client.sendto(i.to_bytes(4, "big") + bytes(PAYLOAD - 4), emu.listen_address)
        await asyncio.sleep(wait_s)
    finally:
        await emu.stop()
        client.close()
        sink.close()
    return emu, sink, t_send


def test_burst_is_cut_to_the_queue_and_paced_at_the_capacity() -> None:
    rate = 4e6  # 3 ms per 1500-byte packet
    link = LinkConfig(ConstantLink(rate), delay_s=0.010, queue_bytes=20 * 1500)
    emu, sink, t_send = asyncio.run(_burst(link, 100, 0.25))
    rep = emu.report().uplink
    assert rep.received == 100
    assert rep.delivered == len(sink.got)
    assert rep.delivered + rep.dropped_queue == 100 and rep.pending == 0
    # The burst arrives within a fraction of a packet time: the 20-packet queue (plus at
    # most a packet or two that left while the burst was still arriving) passes.
    assert 20 <= rep.delivered <= 23
    assert rep.dropped_queue >= 77
    # FIFO order, nothing reordered.
    seq = [int.from_bytes(d[:4], "big") for _, d, _ in sink.got]
    assert seq == sorted(seq)
    # Never faster than the capacity: packet k cannot leave before k packet times after
    # the first (the first may itself be late by the measured event-loop lateness).
    spacing = 1500 * 8 / rate
    times = [t for t, _, _ in sink.got]
    for k, t in enumerate(times):
        assert t - times[0] >= k * spacing - rep.late_max_s - 1e-6
    # And never before the propagation delay.
    assert times[0] - t_send >= 0.010
    assert rep.queue_delay_p95_s <= 21 * spacing
    assert rep.bytes_delivered == rep.delivered * 1500


def test_seeded_bernoulli_loss_matches_the_simulator_sampler() -> None:
    p = 0.2
    link = LinkConfig(
        ConstantLink(40e6), delay_s=0.0, queue_bytes=400 * 1500, loss=BernoulliLoss(p)
    )
    emu, sink, _ = asyncio.run(_burst(link, 120, 0.15, seed=7))
    rep = emu.report().uplink
    assert rep.dropped_queue == 0
    # The uplink draws from default_rng([seed, 1]) one decision per admitted packet.
    expected = BernoulliLoss(p).sampler(np.random.default_rng([7, 1])).draw(120)
    assert rep.dropped_loss == sum(expected) > 0
    assert rep.delivered == 120 - sum(expected) == len(sink.got)
    lost_ids = {i for i, lost in enumerate(expected) if lost}
    got_ids = {int.from_bytes(d[:4], "big") for _, d, _ in sink.got}
    assert got_ids == set(range(120)) - lost_ids


def test_gilbert_elliott_loss_drops_in_bursts() -> None:
    link = LinkConfig(
        ConstantLink(40e6),
        queue_bytes=400 * 1500,
        loss=GilbertElliottLoss(p=0.05, r=0.3, k=1.0, h=0.0),
    )
    emu, sink, _ = asyncio.run(_burst(link, 120, 0.15, seed=3))
    rep = emu.report().uplink
    assert rep.dropped_loss > 0 and rep.delivered + rep.dropped_loss == 120
    got_ids = sorted(int.from_bytes(d[:4], "big") for _, d, _ in sink.got)
    gaps = [b - a - 1 for a, b in itertools.pairwise(got_ids) if b - a > 1]
    assert max(gaps) >= 2  # a Bad state spans several packets


def test_relay_both_ways_one_upstream_per_client() -> None:
    async def run() -> tuple[Any, list[bytes], list[bytes], set[Any]]:
        loop = asyncio.get_running_loop()
        echo = Sink(loop, echo=True)
        link = LinkConfig(ConstantLink(20e6), delay_s=0.005, queue_bytes=50 * 1500)
        emu = LinkEmulator(_cfg(echo.port, link))
        await emu.start()
        a = Sink(loop)
        b = Sink(loop)
        try:
            for i in range(5):
                a.sock.sendto(b"a%d" % i, emu.listen_address)
                b.sock.sendto(b"b%d" % i, emu.listen_address)
            await asyncio.sleep(0.1)
        finally:
            await emu.stop()
            for s in (a, b, echo):
                s.close()
        return emu, [d for _, d, _ in a.got], [d for _, d, _ in b.got], {x for _, _, x in echo.got}

    emu, got_a, got_b, sources = asyncio.run(run())
    assert got_a == [b"a%d" % i for i in range(5)]
    assert got_b == [b"b%d" % i for i in range(5)]
    assert len(sources) == 2  # the target saw one address per client
    rep = emu.report()
    assert rep.clients == 2 and rep.uplink.delivered == rep.downlink.delivered == 10


def test_offered_bytes_follows_the_schedule() -> None:
    async def run() -> tuple[int, int]:
        link = LinkConfig(ConstantLink(12e6))  # one opportunity per ms
        emu = LinkEmulator(_cfg(9, link))
        await emu.start()
        t0 = emu.start_time
        out = emu.offered_bytes("downlink", t0, t0 + 1.0), emu.offered_bytes("uplink", t0, t0)
        await emu.stop()
        return out

    one_s, zero = asyncio.run(run())
    assert one_s == 1000 * 1500 and zero == 0


@pytest.mark.skipif(not TRACES.is_dir(), reason="shared Mahimahi traces not present")
def test_mahimahi_trace_burst_never_exceeds_the_trace() -> None:
    path = TRACES / "Verizon-LTE-short.down"
    link = LinkConfig(TraceLink(str(path)), delay_s=0.005, queue_bytes=60 * 1500)
    emu, sink, _ = asyncio.run(_burst(link, 80, 0.3))
    rep = emu.report().uplink
    assert rep.delivered == len(sink.got) > 0
    assert rep.delivered + rep.dropped_queue == 80
    # Packets leave only at the trace's opportunities: k packets need k opportunities.
    sched = OpportunitySchedule.from_file(path)
    times = [t - emu.start_time for t, _, _ in sink.got]
    for k, t in enumerate(times):
        assert sched.count_until(t) >= k + 1


def test_validation() -> None:
    link = LinkConfig(ConstantLink(1e6))
    with pytest.raises(ValueError, match="loopback"):
        LinkEmulator(EmulatorConfig(target=("8.8.8.8", 53), uplink=link, downlink=link))
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_host_port("localhost")
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_host_port("localhost:70000")
    assert parse_host_port("localhost:4433") == ("localhost", 4433)
    with pytest.raises(ValueError, match="queue_bytes"):
        LinkConfig(ConstantLink(1e6), queue_bytes=0)
    with pytest.raises(TypeError, match="capacity"):
        LinkConfig("12mbit")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay_s"):
        LinkConfig(ConstantLink(1e6), delay_s=-1.0)
    with pytest.raises(RuntimeError, match="start"):
        LinkEmulator(_cfg(9, link)).report()


# ---- issue 8 item 9: bounded client table, byte-bounded pipe, report on SIGTERM -----------
async def _until(cond: Any, timeout_s: float = 5.0) -> None:
    """Wait for ``cond()`` (bounded): a loaded machine may run the loop late."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond() and loop.time() < deadline:
        await asyncio.sleep(0.01)


def test_throwaway_source_ports_never_lock_out_a_new_client() -> None:
    """70 single-datagram clients used to fill the 64-entry table for good."""

    async def run() -> tuple[Any, Sink, list[bytes]]:
        loop = asyncio.get_running_loop()
        sink = Sink(loop, echo=True)
        link = LinkConfig(ConstantLink(50e6), queue_bytes=200 * 1500)
        emu = LinkEmulator(_cfg(sink.port, link, max_clients=64))
        await emu.start()
        # Every throwaway socket stays open until the end: a closed one's port may be
        # handed to the next socket, which the emulator then rightly sees as the same
        # client (70 draws from ~28,000 ephemeral ports collide about 8 % of the time).
        throwaway = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(70)]
        try:
            for i, s in enumerate(throwaway):
                s.sendto(b"throwaway %d" % i, emu.listen_address)
                await asyncio.sleep(0.001)
            await _until(lambda: len(sink.got) >= 70)
            late = Sink(loop)
            late.sock.sendto(b"newcomer", emu.listen_address)
            await _until(lambda: len(late.got) >= 1)
            await asyncio.sleep(0.05)  # nothing else may arrive
            answers = [d for _, d, _ in late.got]
            late.close()
        finally:
            await emu.stop()
            sink.close()
            for s in throwaway:
                s.close()
        return emu, sink, answers

    emu, sink, answers = asyncio.run(run())
    got = [d for _, d, _ in sink.got]
    assert len(got) == 71 and got[-1] == b"newcomer"
    assert answers == [b"newcomer"]  # the echo came back through its new binding
    rep = emu.report()
    assert rep.clients == 71 and rep.active_clients == 64
    assert rep.evicted_clients == 7  # least recently active first


def test_idle_clients_expire_and_active_ones_stay() -> None:
    async def run() -> tuple[Any, list[bytes]]:
        loop = asyncio.get_running_loop()
        sink = Sink(loop, echo=True)
        link = LinkConfig(ConstantLink(50e6))
        emu = LinkEmulator(_cfg(sink.port, link, client_idle_timeout_s=0.5))
        await emu.start()
        idle, busy = Sink(loop), Sink(loop)
        try:
            idle.sock.sendto(b"once", emu.listen_address)
            # Every 50 ms for 0.8 s: never silent for 0.5 s (a 10x margin for a loaded
            # machine's late wake-ups), while the idle client is.
            for i in range(16):
                busy.sock.sendto(b"tick %d" % i, emu.listen_address)
                await asyncio.sleep(0.05)
            mid = emu.report()
            await asyncio.sleep(1.0)
            end = emu.report()
            busy_got = [d for _, d, _ in busy.got]
        finally:
            await emu.stop()
            for s in (sink, idle, busy):
                s.close()
        return (mid, end), busy_got

    (mid, end), busy_got = asyncio.run(run())
    assert mid.active_clients == 1 and mid.expired_clients == 1  # the idle one went
    assert end.active_clients == 0 and end.expired_clients == 2  # then the busy one
    assert end.evicted_clients == 0
    assert busy_got == [b"tick %d" % i for i in range(16)]


def test_pending_link_bytes_are_bounded_not_just_packets() -> None:
    """6,078 x 60-KB datagrams pending used to reach 412 MB: the bound counted packets."""
    size = 60_000
    cap = 1_000_000
    # A fast link with a long delay: everything admitted waits in the delay line.
    link = LinkConfig(ConstantLink(1e9), delay_s=2.0, queue_bytes=100_000_000)

    async def run() -> Any:
        loop = asyncio.get_running_loop()
        sink = Sink(loop)
        emu = LinkEmulator(_cfg(sink.port, link, max_pipe_bytes=cap, max_datagram_bytes=size))
        await emu.start()
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        try:
            for _ in range(60):
                client.sendto(bytes(size), emu.listen_address)
                await asyncio.sleep(0)  # let the emulator read: the kernel buffer is finite
            client.sendto(bytes(size + 1), emu.listen_address)  # one byte over the limit
            await asyncio.sleep(0.05)
            return emu.report().uplink
        finally:
            await emu.stop()
            client.close()
            sink.close()

    rep = asyncio.run(run())
    per_packet = size + 28
    assert rep.received >= 30  # enough arrived to exceed the bound many times over
    assert rep.dropped_oversize == 1
    assert rep.max_pending_bytes <= cap and rep.pending_bytes <= cap
    assert rep.pending == cap // per_packet  # as many as fit, no more
    assert rep.dropped_overflow == rep.received - rep.pending - rep.dropped_oversize
    assert rep.dropped_queue == 0


def test_emulate_writes_its_json_report_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM (what supervisors and harnesses send) used to lose the --json report."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(5.0)
    js = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXIDIZE_")}
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "oxidize_ml.cli",
        "emulate",
        "--listen",
        "0",
        "--target",
        f"127.0.0.1:{sink.getsockname()[1]}",
        "--rate-mbps",
        "20",
        "--delay-ms",
        "2",
        "--json",
        str(js),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("relaying 127.0.0.1:"), line + (
            proc.stderr.read() if proc.poll() is not None else ""
        )
        port = int(line.split()[1].rsplit(":", 1)[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            for i in range(5):
                client.sendto(b"datagram %d" % i, ("127.0.0.1", port))
        got = [sink.recvfrom(100)[0] for _ in range(5)]
        assert got == [b"datagram %d" % i for i in range(5)]
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sink.close()
    assert proc.returncode == 0, err
    assert "stopped (SIGTERM)" in out
    data = json.loads(js.read_text())
    assert data["stop_reason"] == "SIGTERM"
    assert data["uplink"]["received"] == data["uplink"]["delivered"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left


def test_new_bounds_are_validated() -> None:
    link = LinkConfig(ConstantLink(1e6))
    with pytest.raises(ValueError, match="client_idle_timeout_s"):
        _cfg(9, link, client_idle_timeout_s=0.0)
    with pytest.raises(ValueError, match="max_pipe_bytes"):
        _cfg(9, link, max_pipe_bytes=0)
    with pytest.raises(ValueError, match="max_datagram_bytes"):
        _cfg(9, link, max_datagram_bytes=70_000)
    with pytest.raises(TypeError, match="max_clients"):
        _cfg(9, link, max_clients=1.5)
