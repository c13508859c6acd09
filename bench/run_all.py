"""Run every benchmark in this folder, one after the other (`make bench`).

Each prints its own figures as ratios to a baseline measured in the same run. Options after
`--` go to every benchmark (e.g. `--events 20000`); by default each uses its own defaults.

Usage: python bench/run_all.py [-- --events N]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = ("bench_core.py", "bench_http.py", "bench_backtest.py",
              "bench_backtest_summary.py", "bench_sweep.py", "bench_late.py",
              "bench_ingest_memory.py")


def main() -> int:
    here = Path(__file__).resolve().parent
    extra = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(here / name), *extra]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
