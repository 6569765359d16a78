"""The link emulator in a child process: config over JSON, relaying, report, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from oxidize_ml.integrations.emulator import EmulatorConfig, LinkConfig
from oxidize_ml.integrations.emulator_process import (
    EmulatorProcess,
    config_from_json,
    config_to_json,
    schedule_of,
)
from oxidize_ml.sim.links import CellularLink, ConstantLink, StepLink, TraceLink
from oxidize_ml.sim.random_loss import BernoulliLoss, GilbertElliottLoss

CHILD = [sys.executable, "-m", "oxidize_ml.integrations.emulator_process"]


def _trace(tmp_path: Path) -> Path:
    path = tmp_path / "t.down"
    path.write_text("\n".join(str(i) for i in (1, 1, 2, 3, 5, 8, 13, 21)) + "\n")
    return path


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    cfg = EmulatorConfig(
        target=("127.0.0.1", 4433),
        downlink=LinkConfig(
            TraceLink(str(_trace(tmp_path))),
            delay_s=0.03,
            queue_bytes=9000,
            loss=GilbertElliottLoss(p=0.01, r=0.3, k=0.9, h=0.1),
        ),
        uplink=LinkConfig(
            StepLink(((0.0, 1e6), (2.0, 3e6))),
            delay_s=0.01,
            loss=BernoulliLoss(0.02),
            horizon_s=10.0,
        ),
        seed=5,
        max_clients=3,
        client_idle_timeout_s=2.5,
        max_pipe_bytes=123_456,
        max_datagram_bytes=1500,
    )
    back = config_from_json(json.loads(json.dumps(config_to_json(cfg))))
    assert back == cfg
    assert config_to_json(back) == config_to_json(cfg)


def test_config_errors_name_the_field() -> None:
    link = LinkConfig(ConstantLink(1e6))
    good = config_to_json(EmulatorConfig(target=("127.0.0.1", 9), uplink=link, downlink=link))
    with pytest.raises(ValueError, match="capacity.model"):
        config_from_json({**good, "uplink": {**good["uplink"], "capacity": {"model": "x"}}})
    with pytest.raises(ValueError, match="queue_bytes"):
        config_from_json({**good, "downlink": {**good["downlink"], "queue_bytes": 0}})
    with pytest.raises(ValueError, match="max_pipe_bytes"):
        config_from_json({**good, "max_pipe_bytes": -1})
    with pytest.raises(ValueError, match="target"):
        config_from_json({**good, "target": "127.0.0.1:9"})
    with pytest.raises(TypeError, match="config"):
        config_from_json([])
    with pytest.raises(ValueError, match="file first"):
        config_to_json(
            EmulatorConfig(
                target=("127.0.0.1", 9), uplink=link, downlink=LinkConfig(CellularLink())
            )
        )


def test_child_rejects_a_bad_config_line() -> None:
    out = subprocess.run(
        CHILD, check=False, input=b'{"target": 7}\n', capture_output=True, timeout=60
    )
    assert out.returncode == 2
    assert b"bad emulator config" in out.stderr and out.stdout == b""
    out = subprocess.run(CHILD, check=False, input=b"x" * 70_000, capture_output=True, timeout=60)
    assert out.returncode == 2 and b"longer than" in out.stderr


def test_relays_from_another_process_and_reports(tmp_path: Path) -> None:
    async def run() -> tuple[EmulatorProcess, list[bytes], dict[str, object], int]:
        loop = asyncio.get_running_loop()
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.setblocking(False)
        link = LinkConfig(ConstantLink(12e6), delay_s=0.005)  # one opportunity per ms
        cfg = EmulatorConfig(
            target=("127.0.0.1", sink.getsockname()[1]), uplink=link, downlink=link
        )
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            async with EmulatorProcess(cfg) as emu:
                for i in range(5):
                    client.sendto(b"d%d" % i, emu.listen_address)
                got = [await asyncio.wait_for(loop.sock_recv(sink, 100), 5.0) for _ in range(5)]
                offered = emu.offered_bytes(emu.start_time, emu.start_time + 1.0)
                report = await emu.stop()
        finally:
            client.close()
            sink.close()
        return emu, got, report, offered

    emu, got, report, offered = asyncio.run(run())
    assert emu.pid != os.getpid() and emu.pid > 0
    assert got == [b"d%d" % i for i in range(5)]
    up = report["uplink"]
    assert isinstance(up, dict) and up["received"] == up["delivered"] == 5
    assert report["stop_reason"] == "stopped" and report["clients"] == 1
    assert offered == 1000 * 1500
    assert emu.cpu_s >= 0.0


def test_schedule_is_rebuilt_identically_in_the_parent(tmp_path: Path) -> None:
    link = LinkConfig(TraceLink(str(_trace(tmp_path))))
    cfg = EmulatorConfig(target=("127.0.0.1", 9), uplink=link, downlink=link, seed=3)
    a, b = schedule_of(cfg, "downlink"), schedule_of(cfg, "downlink")
    assert a.count_between(0.0, 0.021) == 8 and b.count_between(0.0, 0.021) == 8
    with pytest.raises(ValueError, match="direction"):
        schedule_of(cfg, "sideways")


def test_child_exits_when_its_parent_goes_away() -> None:
    """An orphan must not linger: EOF on stdin stops the child with its report."""
    link = LinkConfig(ConstantLink(1e6))
    line = (
        json.dumps(
            config_to_json(EmulatorConfig(target=("127.0.0.1", 9), uplink=link, downlink=link))
        )
        + "\n"
    )
    proc = subprocess.Popen(
        CHILD, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line.encode())
        proc.stdin.flush()
        ready = json.loads(proc.stdout.readline())
        assert ready["ready"]["listen"][0] == "127.0.0.1"
        proc.stdin.close()
        proc.wait(timeout=10)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
    assert proc.returncode == 0
    assert json.loads(out)["report"]["stop_reason"] == "stopped"
