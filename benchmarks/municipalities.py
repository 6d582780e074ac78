"""Cost of the real municipalities: a run with and without the per-municipality Q4 tallies.

The municipality of each person is computed outside the kernel (utenforsk/pilots/municipalities.py),
so the kernel itself is unchanged; this measures the model's policy horizon with the Q4 tallies
(three months a year) against the same model without real municipalities.

    UTENFORSK_KERNEL_CACHE=.kcache .venv/bin/python -m benchmarks.municipalities [--scale 0.02] [--years 10]
"""

from __future__ import annotations

import argparse
import json
import time

from utenforsk.model import UtenforskModel
from utenforsk.pilots import municipalities as km


def horizon_seconds(scale: float, years: int, real: bool, seed: int = 1) -> float:
    saved = km.TYPES
    if not real:
        km.TYPES = ("none",)  # the model then has no real municipalities
    try:
        m = UtenforskModel("configs/norway/baseline.yaml", seed=seed, scale=scale, horizon_years=years)
    finally:
        km.TYPES = saved
    t0 = time.process_time()
    m.run_model()
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    horizon_seconds(a.scale, 1, True)  # warm the kernel cache
    with_m = min(horizon_seconds(a.scale, a.years, True) for _ in range(a.repeats))
    without = min(horizon_seconds(a.scale, a.years, False) for _ in range(a.repeats))
    print(json.dumps({"scale": a.scale, "years": a.years, "cpu_s_with_municipalities": round(with_m, 3),
                      "cpu_s_without": round(without, 3), "ratio": round(with_m / without, 3)}))


if __name__ == "__main__":
    main()
