"""Where the generated kernel's time goes: ``python -m benchmarks.stages [--scale S]``.

Builds variants of the baseline's generated source that each drop one more stage of a person's
month (tallies, then services, then the transition, then the traits), compiles them in this
process, and times one month of each on copies of the same population, alternating, one
thread (thread CPU time). Prints ns per person-month (min and median of 6 rounds). The figures
in benchmarks/README.md ("Where the time goes now") come from this script at scale 0.02.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from utenforsk.core import codegen, kernel_cache
from utenforsk.model import UtenforskModel

#: cumulative: each variant drops its stages and every stage above it in this list
VARIANTS = {
    "whole kernel": [],
    "- tallies": ["bookkeeping"],
    "- services": ["bookkeeping", "services", "handoffs", "referral"],
    "- transition": ["bookkeeping", "services", "referral", "transition", "handoffs"],
    "- traits": ["bookkeeping", "services", "referral", "transition", "handoffs",
                 "trait_dynamics", "init_traits"],
}


def variant_source(model, drop) -> str:
    gen = codegen._Generator
    saved = {name: getattr(gen, name) for name in drop}
    for name in drop:
        setattr(gen, name, lambda self, src, *a, **k: None)
    try:
        src = codegen.kernel_source(model.compiled, model.muni_attr, model.us_flag,
                                    model.us_states, model.hb_states)
    finally:
        for name, fn in saved.items():
            setattr(gen, name, fn)
    if "transition" in drop:  # later code reads `new`
        head = "        # ==== one activity transition: a scheduled event, else competing hazards\n"
        src = src.replace(head, head + "        new = -1\n")
    return src


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stages", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args(argv)
    m = UtenforskModel("configs/norway/baseline.yaml", seed=1, scale=args.scale, burn_in_years=30,
                       horizon_years=5, threads=1)
    for _ in range(3):
        m.step()
    g = m._gen
    F = g.params()
    B = g.bounds(m.pop, m.dyn, m.prog, F)
    lo, hi = int(m.cum_entries[max(0, m.month - 360)]), int(m.cum_entries[m.month + 1])
    alive = int(m.pop.alive.sum())
    fns = {k: kernel_cache.load(variant_source(m, drop)).month_chunk for k, drop in VARIANTS.items()}
    times: dict = {k: [] for k in fns}
    for rnd in range(args.rounds + 1):  # round 0 compiles each variant and is not kept
        for k, fn in fns.items():
            pop = type(m.pop)(*[a.copy() for a in m.pop])
            t0 = time.thread_time()
            fn(*g.month_args(lo, hi, 0, pop, F, B, m.dyn, m.prog, m.tally, m.month, m.seed_key, m.capacity))
            if rnd:
                times[k].append(time.thread_time() - t0)
    print(f"{alive:,} alive, ns per person-month:")
    for k, v in times.items():
        print(f"  {k:14s} min {min(v) / alive * 1e9:6.1f}   median {np.median(v) / alive * 1e9:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
