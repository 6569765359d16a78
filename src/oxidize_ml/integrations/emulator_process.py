"""The link emulator in a child process, driven from an asyncio parent (the e2e harness).

Why a process: aioquic is CPU-bound Python. In one event loop with the
endpoints, the emulator's timers fire late whenever a burst of packets is
being encrypted or parsed, which adds queueing the emulated link never had;
in its own process (on its own core when there is one) its timing depends
only on its own load.

Protocol (JSON lines, nothing pickled)
--------------------------------------
* The parent starts ``python -m oxidize_ml.integrations.emulator_process``
  and writes one line to its stdin: the `EmulatorConfig` as `config_to_json`
  gives it (at most `MAX_CONFIG_BYTES`).
* The child starts the emulator and prints
  ``{"ready": {"listen": [host, port], "t0": <monotonic seconds>, "pid": <pid>}}``: ``t0``
  is schedule time 0 on ``time.monotonic()``, which asyncio's ``loop.time()``
  uses and which is one clock for every process of the machine, so the
  parent can compute the capacity the link offered over any window.
* SIGTERM (or SIGINT, or the parent closing stdin, so that an orphan never
  lingers) stops it; it prints ``{"report": <EmulatorReport.to_dict()>,
  "cpu_s": <process CPU seconds>}`` and exits 0. Errors go to stderr with
  exit status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
from typing import Any, Final, Self

from oxidize_ml.integrations.emulator import (
    EmulatorConfig,
    LinkConfig,
    LinkEmulator,
    direction_rng,
)
from oxidize_ml.sim.links import ConstantLink, StepLink, TraceLink
from oxidize_ml.sim.random_loss import BernoulliLoss, GilbertElliottLoss
from oxidize_ml.sim.traces import MTU_BYTES, OpportunitySchedule

__all__ = [
    "EmulatorProcess",
    "config_from_json",
    "config_to_json",
    "schedule_of",
]

MAX_CONFIG_BYTES: Final = 64 * 1024
"""longest config line the child reads"""
MAX_REPLY_BYTES: Final = 1024 * 1024
"""longest line the parent reads from the child (a report is a few KB)"""
MAX_STDERR_BYTES: Final = 16 * 1024
"""stderr kept for an error message"""
READY_TIMEOUT_S: Final = 30.0
"""bound on the child's start-up (interpreter, numpy, trace parsing)"""
STOP_TIMEOUT_S: Final = 10.0
"""bound on the child's orderly exit after SIGTERM; then it is killed"""


# ---- config as JSON ------------------------------------------------------------------
def _capacity_to_json(cap: Any) -> dict[str, Any]:
    if isinstance(cap, ConstantLink | TraceLink | StepLink):
        return cap.to_dict()
    raise ValueError(
        f"capacity {type(cap).__name__} cannot be sent to the emulator process; use a "
        "ConstantLink, StepLink or a TraceLink (write a synthetic trace to a file first)"
    )


def _number(d: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
    """``d[key]`` as a JSON number (the link/loss classes check its range), else TypeError."""
    v = d.get(key, default)
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise TypeError(f"{where}.{key} must be a number, got {v!r}")
    return float(v)


def _capacity_from_json(d: Any) -> ConstantLink | TraceLink | StepLink:
    if not isinstance(d, dict):
        raise TypeError(f"capacity must be an object, got {type(d).__name__}")
    model = d.get("model")
    if model == "constant":
        return ConstantLink(_number(d, "rate_bps", "capacity"))
    if model == "mahimahi":
        path = d.get("path")
        if not isinstance(path, str):
            raise TypeError("capacity.path must be a string")
        return TraceLink(path)
    if model == "steps":
        steps = d.get("steps")
        if not isinstance(steps, list) or len(steps) > 100_000:
            raise ValueError("capacity.steps must be a list of at most 100000 [time_s, rate_bps]")
        return StepLink(tuple((s[0], s[1]) for s in steps if isinstance(s, list) and len(s) == 2))
    raise ValueError(f"capacity.model must be constant, mahimahi or steps, got {model!r}")


def _loss_from_json(d: Any) -> BernoulliLoss | GilbertElliottLoss | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise TypeError(f"loss must be an object or null, got {type(d).__name__}")
    model = d.get("model")
    if model == "bernoulli":
        return BernoulliLoss(_number(d, "p", "loss"))
    if model == "gilbert-elliott":
        return GilbertElliottLoss(
            _number(d, "p", "loss"),
            _number(d, "r", "loss"),
            _number(d, "k", "loss", 1.0),
            _number(d, "h", "loss", 0.0),
        )
    raise ValueError(f"loss.model must be bernoulli or gilbert-elliott, got {model!r}")


def _link_to_json(link: LinkConfig) -> dict[str, Any]:
    return {
        "capacity": _capacity_to_json(link.capacity),
        "delay_s": link.delay_s,
        "queue_bytes": link.queue_bytes,
        "loss": None if link.loss is None else link.loss.to_dict(),
        "horizon_s": link.horizon_s,
    }


def _link_from_json(d: Any, name: str) -> LinkConfig:
    if not isinstance(d, dict):
        raise TypeError(f"{name} must be an object, got {type(d).__name__}")
    return LinkConfig(
        _capacity_from_json(d.get("capacity")),
        delay_s=d.get("delay_s", 0.0),
        queue_bytes=d.get("queue_bytes", 100 * MTU_BYTES),
        loss=_loss_from_json(d.get("loss")),
        horizon_s=d.get("horizon_s", 3600.0),
    )


_SCALARS: Final = (
    "listen_port",
    "seed",
    "header_bytes",
    "max_clients",
    "client_idle_timeout_s",
    "max_pipe_packets",
    "max_pipe_bytes",
    "max_datagram_bytes",
    "max_delay_samples",
)


def config_to_json(config: EmulatorConfig) -> dict[str, Any]:
    """``config`` as a JSON-able dict that `config_from_json` reads back."""
    out: dict[str, Any] = {
        "target": list(config.target),
        "downlink": _link_to_json(config.downlink),
        "uplink": _link_to_json(config.uplink),
    }
    for k in _SCALARS:
        out[k] = getattr(config, k)
    return out


def config_from_json(d: Any) -> EmulatorConfig:
    """An `EmulatorConfig` from `config_to_json`'s dict; every value is validated."""
    if not isinstance(d, dict):
        raise TypeError(f"emulator config must be an object, got {type(d).__name__}")
    target = d.get("target")
    if not isinstance(target, list) or len(target) != 2:
        raise ValueError("target must be [host, port]")
    kw = {k: d[k] for k in _SCALARS if k in d}
    return EmulatorConfig(
        target=(target[0], target[1]),
        downlink=_link_from_json(d.get("downlink"), "downlink"),
        uplink=_link_from_json(d.get("uplink"), "uplink"),
        **kw,
    )


def schedule_of(config: EmulatorConfig, direction: str) -> OpportunitySchedule:
    """The opportunity schedule the emulator builds for ``direction`` (same seed, same draw)."""
    link = config.downlink if direction == "downlink" else config.uplink
    if direction not in ("uplink", "downlink"):
        raise ValueError(f"direction must be 'uplink' or 'downlink', got {direction!r}")
    return link.capacity.schedule(link.horizon_s, direction_rng(config.seed, direction))


# ---- parent side ---------------------------------------------------------------------
def _object(msg: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """``msg[key]`` when it is a JSON object, else None (the child said something else)."""
    value = None if msg is None else msg.get(key)
    return value if isinstance(value, dict) else None


class EmulatorProcess:
    """A `LinkEmulator` in a child process; use ``async with`` or `start` / `stop`.

    Parameters
    ----------
    config
        What the emulator runs (capacity must be constant, steps or a trace file).
    """

    def __init__(self, config: EmulatorConfig) -> None:
        if not isinstance(config, EmulatorConfig):
            raise TypeError(f"config must be an EmulatorConfig, got {type(config).__name__}")
        self.config = config
        self._line = json.dumps(config_to_json(config)).encode() + b"\n"
        if len(self._line) > MAX_CONFIG_BYTES:
            raise ValueError(f"emulator config is larger than {MAX_CONFIG_BYTES} bytes")
        self._proc: asyncio.subprocess.Process | None = None
        self._down_schedule = schedule_of(config, "downlink")
        self.listen_address: tuple[str, int] = ("", 0)
        self.pid = 0
        """the child's process id (after `start`)"""
        self.start_time = math.nan
        """schedule time 0 on ``time.monotonic()`` (= the parent's ``loop.time()``)"""
        self.report: dict[str, Any] | None = None
        self.cpu_s = math.nan
        """the emulator process's CPU time over its run, seconds"""

    async def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("EmulatorProcess.start was already called")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "oxidize_ml.integrations.emulator_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=MAX_REPLY_BYTES,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(self._line)
        await self._proc.stdin.drain()
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                msg = await self._read()
        except TimeoutError:
            await self._kill()
            raise RuntimeError(f"emulator process not ready within {READY_TIMEOUT_S:g} s") from None
        ready = _object(msg, "ready")
        if ready is None:
            err = await self._kill()
            raise RuntimeError(f"emulator process failed to start: {err or msg}")
        try:
            host, port = ready["listen"]
            self.listen_address = (str(host), int(port))
            self.start_time = float(ready["t0"])
            self.pid = int(ready["pid"])
        except (KeyError, TypeError, ValueError):
            await self._kill()
            raise RuntimeError(f"emulator process sent a malformed ready line: {ready}") from None

    async def _read(self) -> dict[str, Any] | None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            line = await self._proc.stdout.readline()
        except (ValueError, asyncio.LimitOverrunError):
            return None
        if not line:
            return None
        try:
            msg = json.loads(line)
        except ValueError:
            return None
        return msg if isinstance(msg, dict) else None

    async def _kill(self) -> str:
        proc = self._proc
        if proc is None:
            return ""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        assert proc.stderr is not None
        return (await proc.stderr.read(MAX_STDERR_BYTES)).decode(errors="replace").strip()

    async def stop(self) -> dict[str, Any]:
        """SIGTERM the child and return its report (``EmulatorReport.to_dict()``)."""
        proc = self._proc
        if proc is None:
            raise RuntimeError("call EmulatorProcess.start() first")
        if self.report is not None:
            return self.report
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        msg: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                msg = await self._read()
                await proc.wait()
        except TimeoutError:
            pass
        err = await self._kill()
        report = _object(msg, "report")
        if report is None:
            raise RuntimeError(f"emulator process gave no report: {err or msg}")
        self.report = report
        cpu = msg.get("cpu_s") if msg is not None else None
        self.cpu_s = float(cpu) if isinstance(cpu, int | float) else math.nan
        return report

    def offered_bytes(self, t_start: float, t_end: float) -> int:
        """Link bytes the downlink could carry in ``(t_start, t_end]`` (monotonic times)."""
        t0 = self.start_time
        return self._down_schedule.count_between(t_start - t0, t_end - t0) * MTU_BYTES

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self.report is None:
            try:
                await self.stop()
            except RuntimeError:
                pass


# ---- child side ----------------------------------------------------------------------
async def _child(config: EmulatorConfig) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    stdin_fd = sys.stdin.fileno()
    os.set_blocking(stdin_fd, False)

    def on_stdin() -> None:
        # The parent has nothing more to say; EOF means it closed the pipe or died.
        try:
            data = os.read(stdin_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin_fd)
            stopped.set()

    emu = LinkEmulator(config)
    await emu.start()
    loop.add_reader(stdin_fd, on_stdin)
    host, port = emu.listen_address
    ready = {"ready": {"listen": [host, port], "t0": emu.start_time, "pid": os.getpid()}}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    cpu0 = time.process_time()
    try:
        await stopped.wait()
    finally:
        await emu.stop()
    return {
        "report": emu.report(stop_reason="stopped").to_dict(),
        "cpu_s": time.process_time() - cpu0,
    }


def main() -> int:
    """Entry point of the child: config line on stdin, JSON lines on stdout."""
    raw = sys.stdin.buffer.readline(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        print(f"config line longer than {MAX_CONFIG_BYTES} bytes", file=sys.stderr)
        return 2
    try:
        config = config_from_json(json.loads(raw))
    except (ValueError, TypeError) as exc:
        print(f"bad emulator config: {exc}", file=sys.stderr)
        return 2
    try:
        out = asyncio.run(_child(config))
    except OSError as exc:
        print(f"emulator failed: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process
    raise SystemExit(main())
