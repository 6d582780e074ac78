"""A/B of generated month kernels on one population: ``python -m benchmarks.kernel_ab SOURCE ...
[--scale X] [--iv NAME ...] [--warm N] [--rounds R]``.

Each ``SOURCE`` is a generated kernel module (``UtenforskModel(...)._gen.source`` written to a
file, from this checkout or another commit's, possibly edited by hand). All of them run the same
month on copies of the same population (the Norway baseline after a 30-year burn-in and ``warm``
policy months, with the interventions ``--iv``): first once each, to check every field and tally
against the first source's bit for bit (``EXACT``), then alternating for ``rounds`` rounds, timed
in thread CPU seconds (one thread). Prints ns per person-month (min / median) and each source's
speed relative to the first. The sources must take this checkout's kernel arguments.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import BASELINE
from utenforsk.core import kernel_cache
from utenforsk.model import UtenforskModel


class OneMonth:
    """One month of the Norway baseline (after a 30-year burn-in and ``warm`` policy months, with
    ``interventions``), its entries done and its bounds computed, for running month kernels on
    copies of its population (:meth:`fresh`, :meth:`run`)."""

    def __init__(self, scale: float, interventions=(), warm: int = 2):
        m = self.model = UtenforskModel(BASELINE, seed=1, scale=scale, burn_in_years=30, horizon_years=5,
                                        threads=1, interventions=list(interventions))
        for _ in range(warm):
            m.step()
        self.g = m._gen
        self.F = self.g.params()
        m._enter(m.month)
        self.B = self.g.bounds(m.pop, m.dyn, m.prog, self.F)
        self.lo, self.hi = int(m.cum_entries[max(0, m.month - 360)]), int(m.cum_entries[m.month + 1])
        self.alive = int(m.pop.alive.sum())

    def fresh(self):
        """Copies of the population and the tallies."""
        m = self.model
        return type(m.pop)(*[x.copy() for x in m.pop]), type(m.tally)(*[x.copy() for x in m.tally])

    def run(self, fn, pop, tal) -> None:
        """The month kernel ``fn`` on ``pop`` and ``tal`` (one thread)."""
        m = self.model
        fn(*self.g.month_args(self.lo, self.hi, 0, pop, self.F, self.B, m.dyn, m.prog, tal, m.month,
                              m.seed_key, m.capacity))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.kernel_ab", description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+")
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--months", type=int, default=2, help="kernel calls per timed block")
    ap.add_argument("--iv", nargs="*", default=[], help="interventions of the scenario")
    ap.add_argument("--warm", type=int, default=2, help="policy months simulated first")
    a = ap.parse_args(argv)
    mo = OneMonth(a.scale, a.iv, a.warm)
    m, alive, fresh, run = mo.model, mo.alive, mo.fresh, mo.run

    fns = []
    for path in a.sources:
        t0 = time.process_time()
        fn = kernel_cache.load(open(path).read()).month_chunk
        pop, tal = fresh()
        run(fn, pop, tal)
        print(f"{path}: loaded or compiled in {time.process_time() - t0:.1f} CPU s", flush=True)
        fns.append((path, fn, pop, tal))
    ref = fns[0]
    for path, _, pop, tal in fns[1:]:
        bad = [f for f, x, y in zip(m.pop._fields, ref[2], pop) if x.tobytes() != y.tobytes()]
        bad += [f for f, x, y in zip(m.tally._fields, ref[3], tal) if x.tobytes() != y.tobytes()]
        print(f"{path}: {'EXACT' if not bad else 'DIFFERS in ' + ', '.join(bad)}")
    times: dict = {path: [] for path, *_ in fns}
    for rnd in range(a.rounds):
        for path, fn, _, _ in (fns if rnd % 2 == 0 else fns[::-1]):
            pop, tal = fresh()
            t0 = time.thread_time()
            for _ in range(a.months):
                run(fn, pop, tal)
            times[path].append((time.thread_time() - t0) / a.months)
    print(f"{alive:,} alive; ns per person-month (min / median):")
    r0 = np.median(times[fns[0][0]])
    for path, v in times.items():
        print(f"  {path:40s} {min(v) / alive * 1e9:6.1f} / {np.median(v) / alive * 1e9:6.1f}"
              f"   speed relative to the first {r0 / np.median(v):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
