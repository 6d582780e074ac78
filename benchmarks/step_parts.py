"""Where the whole monthly step's time goes: ``python -m benchmarks.step_parts [--scale S]
[--months M] [--rounds R] [--threads T] [--profile]`` (default 0.52: about 10^6 alive).

Runs ``UtenforskModel._advance`` with every piece wrapped in a timer that reads the process's
CPU time (``time.process_time``; with one thread this is the thread's time) and prints, per
month, the CPU milliseconds of each piece and their sum against the step's own total: the
entry kernel (births and arrivals separately), the bounds, the month kernel, the tallies'
reset and sums, the service agents, the type sums kept in the history, and the rest. Also
prints the live id window against the people alive (the kernel visits every slot of the
window). ``--profile``: a cProfile of the same months instead, sorted by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import defaultdict

import numpy as np

from benchmarks import BASELINE
from utenforsk.core import kernel
from utenforsk.core.tables import MAX_MONTHS


def _wrap(obj, name, acc, label=None):
    fn = getattr(obj, name)

    def timed(*a, **k):
        t0 = time.process_time()
        try:
            return fn(*a, **k)
        finally:
            acc[label or name] += time.process_time() - t0

    setattr(obj, name, timed)
    return fn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.step_parts", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.52)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    from utenforsk.model import UtenforskModel

    m = UtenforskModel(BASELINE, seed=1, scale=args.scale, horizon_years=80, threads=args.threads)
    for _ in range(12):  # warm-up: first months after the burn-in
        m._advance()
    if args.profile:
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(args.months):
            m._advance()
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(25)
        return 0
    acc: dict = defaultdict(float)
    g = m._gen
    # the kernels by who calls them: run_chunks with the month kernel, the entry kernel, the Q4 tally
    run_chunks = kernel.run_chunks

    def chunks(fn, n, threads, make):
        t0 = time.process_time()
        try:
            return run_chunks(fn, n, threads, make)
        finally:
            if fn is g.enter_chunk:  # (enter_args: ..., arrival, month, seed_key, cap, cum_entries, births_sched)
                label = "entry kernel, " + ("arrivals" if make(0, 0, 0)[-6] else "births")
            else:
                label = "month kernel" if fn is g.month_chunk else "Q4 tally"
            acc[label] += time.process_time() - t0

    kernel.run_chunks = chunks
    _wrap(kernel, "index_births", acc, "index_births")
    _wrap(g, "bounds", acc, "bounds")
    _wrap(g, "params", acc, "params (F)")
    _wrap(m.service_areas, "step", acc, "service agents")
    _wrap(m, "_by_type", acc, "_by_type (history)")
    _wrap(m, "_apply_interventions", acc, "_apply_interventions")
    import utenforsk.model as model_mod
    _wrap(model_mod, "arrival_birth_months", acc, "arrival_birth_months")
    per_round = []
    alive, window = [], []
    for _ in range(args.rounds):
        acc.clear()
        total = 0.0
        for _ in range(args.months):
            mo = m.month
            alive.append(int(m.pop.alive.sum()))  # (outside the timer: ~1 ms at 10^6)
            window.append(int(m.cum_entries[mo + 1] - m.cum_entries[max(0, mo - MAX_MONTHS)]))
            t0 = time.process_time()
            m._advance()
            total += time.process_time() - t0
        per_round.append((total, dict(acc)))
    kernel.run_chunks = run_chunks
    total = float(np.median([t for t, _ in per_round]))
    total, best = min(per_round, key=lambda r: abs(r[0] - total))
    n = args.months
    print(f"scale {args.scale}, {args.threads} thread(s), alive {np.mean(alive):,.0f}, "
          f"id window {np.mean(window):,.0f} ({np.mean(window) / np.mean(alive):.3f} slots per person alive)")
    print(f"whole step: {total / n * 1e3:.2f} CPU ms a month (the median of {args.rounds} rounds of {n} months), "
          f"{np.mean(alive) * n / total / 1e6:.2f} M pm per CPU s, {total / n / np.mean(alive) * 1e9:.1f} ns/pm")
    shown = 0.0
    for k, v in sorted(best.items(), key=lambda kv: -kv[1]):
        print(f"  {k:24s} {v / n * 1e3:7.3f} ms")
        shown += v
    print(f"  {'(not wrapped)':24s} {(total - shown) / n * 1e3:7.3f} ms  (tallies' reset and sums, _enter's own Python, the timers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
