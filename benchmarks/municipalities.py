"""Cost of the real municipalities in the month: services per municipality and their intercepts.

Person-months per second of the full monthly step (kernel, services, tallies; 1 thread) of the
Norway baseline, two legs alternating block by block on one machine (a shared VM's drift falls
on both alike): ``types`` (``service_areas: municipality_type``: services per type, intercepts
0) and ``municipality`` (as shipped: services and intercepts per municipality), for the whole
step and for the kernels alone (entry and month, timed around ``kernel.run_chunks``). With
``--legs shipped`` only the config as it is (to time another version of the code the same way).

    UTENFORSK_KERNEL_CACHE=.kcache .venv/bin/python -m benchmarks.municipalities [--scale 0.02] [--months 24] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from utenforsk.core import kernel
from utenforsk.model import UtenforskModel

BASELINE = "configs/norway/baseline.yaml"
LEGS = {"types": {"service_areas": "municipality_type"}, "municipality": {"service_areas": "municipality"},
        "shipped": {}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--legs", default="types,municipality")
    a = ap.parse_args()
    legs = a.legs.split(",")
    models = {leg: UtenforskModel(BASELINE, seed=1, scale=a.scale, horizon_years=80, threads=1,
                                  **({"overrides": LEGS[leg]} if LEGS[leg] else {})) for leg in legs}
    rates: dict = {leg: [] for leg in legs}
    krates: dict = {leg: [] for leg in legs}
    python_ms: dict = {leg: [] for leg in legs}  # the Python around the kernels, per month
    inner, spent = kernel.run_chunks, [0.0]

    def timed(*args, **kw):  # the kernels' own time (entry and month), without the Python around them
        t = time.perf_counter()
        inner(*args, **kw)
        spent[0] += time.perf_counter() - t

    kernel.run_chunks = timed
    for rep in range(a.reps + 1):  # the first round warms up and is not kept
        for leg, m in models.items():
            m.n_threads = 1
            pm, t0, spent[0] = 0, time.perf_counter(), 0.0
            for _ in range(a.months):
                pm += int(m.pop.alive.sum())
                m._advance()
            if rep > 0:
                rates[leg].append(pm / (time.perf_counter() - t0))
                krates[leg].append(pm / spent[0])
                python_ms[leg].append(1000 * (time.perf_counter() - t0 - spent[0]) / a.months)
    kernel.run_chunks = inner
    out = {"scale": a.scale, "months_per_block": a.months, "blocks": a.reps,
           **{f"pm_per_s_{leg}": round(statistics.median(r)) for leg, r in rates.items()},
           **{f"kernel_pm_per_s_{leg}": round(statistics.median(r)) for leg, r in krates.items()},
           **{f"python_ms_per_month_{leg}": round(statistics.median(r), 3) for leg, r in python_ms.items()},
           "bytes_per_person": round(next(iter(models.values())).bytes_per_person, 1)}
    if "types" in rates and "municipality" in rates:
        out["slowdown_municipality_vs_types"] = round(
            statistics.median(rates["types"]) / statistics.median(rates["municipality"]) - 1, 4)
        out["kernel_slowdown_municipality_vs_types"] = round(
            statistics.median(krates["types"]) / statistics.median(krates["municipality"]) - 1, 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
