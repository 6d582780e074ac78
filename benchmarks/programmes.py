"""What programme slots cost: ``python -m benchmarks.programmes [--scale X]``.

Times the monthly step (``_advance``) of the baseline and of a scenario with all nine library
interventions at once, alternating twice, one thread, thread CPU time: 12 months after 14 warm-up
months (the interventions start in the second policy year). Prints person-months per CPU second.
Run the same script on another commit (e.g. ``PYTHONPATH=<checkout>``) to compare kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks import BASELINE

ALL = ["thousand_days", "kindergarten_enrolment", "kindergarten_quality", "early_school_support",
       "dropout_prevention", "ot_reengagement", "nav_youth_guarantee", "ips_youth",
       "cross_sector_coordination"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.programmes", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.05)
    args = ap.parse_args(argv)
    os.environ.setdefault("UTENFORSK_THREADS", "1")
    from utenforsk.model import UtenforskModel

    out: dict = {}
    for label, ivs in (("baseline", []), ("all_nine", ALL), ("baseline_2", []), ("all_nine_2", ALL)):
        m = UtenforskModel(BASELINE, seed=1, scale=args.scale, horizon_years=10, threads=1, interventions=ivs)
        for _ in range(14):
            m._advance()
        pm, t0 = 0, time.thread_time()
        for _ in range(12):
            pm += int(m.pop.alive.sum())
            m._advance()
        out[label] = pm / (time.thread_time() - t0)
    out["alive"] = int(m.pop.alive.sum())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
