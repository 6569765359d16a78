"""One engine shared by eight threads: compress/decompress/compression_decision (issue 8.1).

Sharing python-zstandard contexts between threads crashed the interpreter
(exit 139) or raised ZstdError; the run happens in a subprocess so that a
segfault fails this test instead of killing pytest.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import random, struct, sys, threading
    from oxidize_ml import MlEngine
    from oxidize_ml.engine import EngineConfig
    from oxidize_ml.types import MlCompressionDecision as D

    engine = MlEngine(EngineConfig(load_default_models=False))
    rng = random.Random(int(sys.argv[2]))
    text = b'{"user": "alice", "ok": true, "score": 12} ' * 60
    packets = (
        [text[: rng.randrange(40, 2500)] for _ in range(40)]      # Light and Aggressive
        + [rng.randbytes(rng.randrange(1, 1500)) for _ in range(10)]  # Skip
    )

    def rtp_over_udp(thread, seq):                               # RohcOnly (header compression)
        rtp = struct.pack(">BBHII", 0x80, 0, seq & 0xFFFF, 160 * seq, 0x1234ABCD) + bytes(100)
        udp = struct.pack(">HHHH", 40000 + thread, 5004, 8 + len(rtp), 0) + rtp
        return (
            struct.pack(">IHBB16s16s", 0x60000000, len(udp), 17, 64, bytes(15) + b"\x01",
                        bytes(15) + b"\x02") + udp)
    n = int(sys.argv[1])
    failures = []
    seen = set()

    def work(i):
        try:
            for j in range(n):
                p = packets[(i * 7 + j) % len(packets)] if j % 4 else rtp_over_udp(i, j)
                seen.add(engine.compression_decision(p))
                frame = engine.compress(p)
                if engine.decompress(frame) != p:
                    failures.append("round trip mismatch")
        except BaseException as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    missing = set(D) - seen
    print(len(failures), failures[:3], sorted(d.name for d in missing))
    sys.exit(1 if failures or missing else 0)
    """
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eight_threads_share_one_engine(seed: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, "3000", str(seed)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
