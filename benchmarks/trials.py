"""Wall time of ``utenforsk trial --all`` at the specs' default scales and replicates.

    .venv/bin/python -m benchmarks.trials [--out DIR]

Runs the real command in a fresh process (kernels from UTENFORSK_KERNEL_CACHE if set) and prints
one JSON line: seconds, the number of trials, CPU count, and the trial.csv it wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/bench_trials")
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "utenforsk.cli", "trial", "--all", "--out", args.out],
                         cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode not in (0, 1):
        sys.exit(res.stderr)
    n = len((ROOT / args.out / "trial.csv").read_text().splitlines()) - 1
    print(json.dumps({"trial_all_wall_s": round(seconds, 1), "trials": n, "cpus": os.cpu_count(),
                      "exit": res.returncode, "csv": str(Path(args.out) / "trial.csv")}))


if __name__ == "__main__":
    main()
