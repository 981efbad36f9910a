"""Wall time of the default `cxrfail analyze` on the demo: cold (empty cache) and warm (cache reused).

Targets on the 2-core machine: under 5 minutes cold, under 20 seconds warm. Run: .venv/bin/python bench/report_bench.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_analyze(cache_dir: Path, out_dir: Path) -> float:
    env = {**os.environ, "CXRFAIL_CACHE_DIR": str(cache_dir)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cxrfail.cli", "analyze", "--out", str(out_dir)],
        env=env,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        cold = timed_analyze(scratch / "cache", scratch / "cold")
        warm = timed_analyze(scratch / "cache", scratch / "warm")
    print(f"cold analyze (empty cache): {cold:7.1f} s   target < 300 s  {'ok' if cold < 300 else 'MISSED'}")
    print(f"warm analyze (cache reused): {warm:7.1f} s   target < 20 s   {'ok' if warm < 20 else 'MISSED'}")
    print(f"warm_speedup: {cold / warm:.1f}")


if __name__ == "__main__":
    main()
