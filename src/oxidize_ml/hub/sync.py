"""Background model sync: a daemon thread that keeps an engine on the source's newest
version (`SyncHandle`, started by `oxidize_ml.hub.ModelHub.start_background_sync`)."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

from oxidize_ml.hub.config import SYNC_JITTER_FRACTION
from oxidize_ml.hub.store import HubError

log = logging.getLogger("oxidize_ml.hub")


class SyncTarget(Protocol):
    """What the sync thread calls (`oxidize_ml.hub.ModelHub`)."""

    def load_active(self, engine: Any, dest_dir: Path | None = None) -> bool: ...

    def sync(self, engine: Any, dest_dir: Path | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class SyncStats:
    """Counters of a background sync (`SyncHandle.stats`)."""

    attempts: int
    failures: int
    updates: int
    """syncs that gave the engine a new version"""
    last_success_unix_s: float | None
    last_error: str | None
    running: bool


class SyncHandle:
    """A running background sync (`ModelHub.start_background_sync`); `stop` ends it."""

    def __init__(
        self, hub: SyncTarget, engine: Any, dest: Path, interval_s: float, seed: int | None
    ) -> None:
        self._hub = hub
        self._engine = engine
        self._dest = dest
        self.interval_s = interval_s
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._attempts = 0
        self._failures = 0
        self._updates = 0
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="oxidize-ml-hub-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._hub.load_active(self._engine, self._dest)
        except Exception as exc:  # noqa: BLE001 - the thread must survive and report
            log.warning("loading the cached models failed: %s", exc)
        while not self._stop.is_set():
            self._attempts += 1
            try:
                if self._hub.sync(self._engine, self._dest):
                    self._updates += 1
                self._last_success = time.time()
                self._last_error = None
            except Exception as exc:
                self._failures += 1
                self._last_error = str(exc)
                if isinstance(exc, HubError):
                    log.warning("model sync failed: %s", exc)
                else:
                    log.exception("model sync failed unexpectedly")
            jitter = 1.0 + SYNC_JITTER_FRACTION * (2.0 * self._rng.random() - 1.0)
            self._stop.wait(self.interval_s * jitter)

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout`` s; True when it has ended.

        A sync in progress finishes first (a download is never cut in half;
        it is atomic anyway).
        """
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stats(self) -> SyncStats:
        return SyncStats(
            attempts=self._attempts,
            failures=self._failures,
            updates=self._updates,
            last_success_unix_s=self._last_success,
            last_error=self._last_error,
            running=self.running,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
