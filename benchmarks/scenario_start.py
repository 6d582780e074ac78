"""How long a new scenario of an already-compiled model takes to start: ``python -m
benchmarks.scenario_start [--scale X]``.

Interventions are values in the model's programme slots (utenforsk/interventions/slots.py), so a
scenario with interventions never seen before runs on the kernel the model has compiled. Measured
in a fresh process whose kernel cache holds the baseline's kernel (as an experiment worker after
the first task):

- ``new_scenario_first_month_s``: from ``UtenforskModel(...)`` with a new intervention set (no
  burn-in: the burn-in is simulation, not start-up) to the end of its first month, after another
  scenario has run in the process; the slowest of three new sets (``..._cpu_s``: its CPU
  seconds, which a loaded machine inflates less);
- ``new_forked_scenario_first_month_s``: the same for a scenario forked from a shared burn-in
  (``burn_in_from``, ``collect=False``), as an experiment worker starts each scenario of a
  replicate; the slowest of the three sets;
- ``first_scenario_first_month_s``: the same for the process's first scenario (loading the kernel
  from numba's on-disk cache included);
- ``kernel_sources_generated``: kernel files written to the (scratch) cache by the whole probe,
  which runs the baseline and three intervention sets: 1 means one kernel for all of them.

Prints one JSON line; ``python -m benchmarks`` includes these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks import BASELINE, ROOT

PROBE = textwrap.dedent("""
    import json, time
    from utenforsk.model import UtenforskModel
    kw = dict(seed=1, scale={scale}, burn_in_years=0, horizon_years=1)
    t0 = time.perf_counter()
    m = UtenforskModel({path!r}, interventions={first!r}, **kw)
    m.step()
    first = time.perf_counter() - t0
    new, cpu = [], []
    for ivs in {second!r}:
        t0, c0 = time.perf_counter(), time.process_time()
        m = UtenforskModel({path!r}, interventions=ivs, **kw)
        m.step()
        new.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # the experiment worker's case: a scenario forked from a replicate's shared burn-in
    fkw = dict(kw, burn_in_years=2, collect=False)
    donor = UtenforskModel({path!r}, **fkw)
    forked = []
    for ivs in {second!r}:
        t0 = time.perf_counter()
        m = UtenforskModel({path!r}, interventions=ivs, burn_in_from=donor, **fkw)
        m.step()
        forked.append(time.perf_counter() - t0)
    print(json.dumps({{"first_scenario_first_month_s": first, "new_scenario_first_month_s": max(new),
                      "new_scenario_first_month_s_each": new, "new_scenario_first_month_cpu_s": max(cpu),
                      "new_forked_scenario_first_month_s": max(forked)}}))
""")
#: the warm-up compiles the baseline; the probe then starts scenarios the cache never saw
WARM: list = []
FIRST = ["ips_youth", "thousand_days"]
#: three intervention sets new to the process; the figures are the slowest of them
SECOND = [["nav_youth_guarantee", "dropout_prevention", "cross_sector_coordination"],
          ["kindergarten_quality", "early_school_support"],
          ["ot_reengagement", "kindergarten_enrolment", "ips_youth", "thousand_days"]]


def _probe(env: dict, scale: float, first: list, second: list) -> dict:
    code = PROBE.format(path=str(BASELINE), scale=scale, first=first, second=second)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(res.stdout.strip().splitlines()[-1])


def scenario_start(scale: float = 0.02) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "UTENFORSK_KERNEL_CACHE"}
        env["UTENFORSK_KERNEL_CACHE"] = cache
        env["NUMBA_CACHE_DIR"] = cache
        _probe(env, 0.0005, WARM, [WARM])  # compile the model's kernel into the scratch cache
        out = _probe(env, scale, FIRST, SECOND)
        out["kernel_sources_generated"] = len(list(Path(cache).glob("kernel_*.py")))
        out["scenario_start_scale"] = scale
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scenario_start", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.02)
    args = ap.parse_args(argv)
    print(json.dumps(scenario_start(args.scale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
