"""The toy-ceiling ratio measured in CPU time, in one process: ``python -m benchmarks.toy_ratio
[--alive N] [--rounds R]``.

``toy_ceiling_ratio`` in ``python -m benchmarks`` divides the engine's wall-clock median by the
toy's best wall-clock block, measured in another process at another time; on a shared machine
the two see different loads. Here the engine's whole monthly step (``_advance``: entries, service
agents, bounds, the kernel, tallies; one thread) and the toy kernel of
``../shared/tools/toy_ceiling.py`` (3 counter-hash draws + 1 logistic per person-month, numba
set to one thread) run on the same number of people in one process, alternating block by block,
each timed in process CPU seconds. Prints one JSON line: person-months per CPU second of each
(median of ``rounds`` blocks) and their ratio, ``toy_ceiling_ratio_cpu``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time

import numpy as np

from benchmarks import ALIVE_AT_SCALE_1, BASELINE, ROOT

TOY = ROOT.parent / "shared" / "tools" / "toy_ceiling.py"


def _toy_step():
    """The toy's ``step`` kernel, imported without running its ``__main__`` part, and compiled
    without numba's on-disk cache: a cached function of this exec'd source cannot be loaded
    back (the second run on one NUMBA_CACHE_DIR failed: No module named '<dynamic>')."""
    src = TOY.read_text().split("\ndef bench(")[0].replace("cache=True", "cache=False")
    spec = importlib.util.spec_from_loader("toy_ceiling", loader=None)
    mod = importlib.util.module_from_spec(spec)
    exec(compile(src, str(TOY), "exec"), mod.__dict__)
    return mod.step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.toy_ratio", description=__doc__.splitlines()[0])
    ap.add_argument("--alive", type=float, default=1e6)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--months", type=int, default=12, help="months per engine block")
    args = ap.parse_args(argv)
    if not TOY.exists():
        print(f"no toy kernel at {TOY}", file=sys.stderr)
        return 1
    import numba

    from utenforsk.model import UtenforskModel

    numba.set_num_threads(1)
    step = _toy_step()
    scale = min(1.0, args.alive / ALIVE_AT_SCALE_1)
    model = UtenforskModel(BASELINE, seed=1, scale=scale, horizon_years=80, threads=1)
    n = int(model.pop.alive.sum())
    state, trait = np.zeros(n, np.int8), np.zeros(n, np.float32)
    step(state, trait, 0, np.uint64(7))
    engine, toy = [], []
    for rnd in range(args.rounds + 1):  # round 0 warms up
        pm, cpu = 0, 0.0
        for _ in range(args.months):
            pm += int(model.pop.alive.sum())  # outside the timer (~1 ms at 10^6 alive)
            t0 = time.process_time()
            model._advance()
            cpu += time.process_time() - t0
        e = pm / cpu
        t0 = time.process_time()
        for m in range(24):
            step(state, trait, m + 1, np.uint64(7))
        t = n * 24 / (time.process_time() - t0)
        if rnd:
            engine.append(e)
            toy.append(t)
    out = {"alive": n, "engine_pm_per_cpu_s_1thread": statistics.median(engine),
           "toy_pm_per_cpu_s_1thread": statistics.median(toy),
           "toy_ceiling_ratio_cpu": statistics.median(engine) / statistics.median(toy),
           "rounds": args.rounds, "engine_blocks": engine, "toy_blocks": toy}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
