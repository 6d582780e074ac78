"""The monthly step on 1 and 2 threads, alternated in one process:
``python -m benchmarks.threads [--scale S]`` (default 0.52: about 10^6 alive).

Prints ms per month for the whole step, for the kernel calls alone (``run_chunks``) and for the
entrants' calls among them (births and arrivals, ``blocks_per_thread=1``), medians
over 3 rounds of 12 months after a warm-up round (a whole year per leg, so both thread counts
include one December, whose yearly municipal Q4 tally is a serial cost: with 6-month legs the
2-thread leg always took the Decembers and its whole-step figure read 1.31 instead of 1.5).
``--min-entrants N`` sets ``kernel.MIN_BIRTHS_PER_THREAD`` and ``MIN_ARRIVALS_PER_THREAD`` (1: the
entrants always split over the threads; 10**9: never), the A/B behind those two thresholds. The
direct speed-up figures in benchmarks/README.md (footnote 2) come from this script.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from utenforsk.core import kernel
from utenforsk.model import UtenforskModel


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.52)
    ap.add_argument("--min-entrants", type=int, help="fewest entrants per thread (default: the kernel's)")
    args = ap.parse_args(argv)
    if args.min_entrants:
        kernel.MIN_BIRTHS_PER_THREAD = kernel.MIN_ARRIVALS_PER_THREAD = args.min_entrants
    in_kernel = [0.0, 0.0]  # all kernel calls, the entrants' among them
    run_chunks = kernel.run_chunks

    def timed(*a, **kw):
        t0 = time.perf_counter()
        run_chunks(*a, **kw)
        dt = time.perf_counter() - t0
        in_kernel[0] += dt
        in_kernel[1] += dt if kw.get("blocks_per_thread") == 1 else 0.0

    kernel.run_chunks = timed
    m = UtenforskModel("configs/norway/baseline.yaml", seed=1, scale=args.scale, horizon_years=80)
    res: dict = {1: [], 2: []}
    for rnd in range(4):
        for threads in (1, 2):
            m.n_threads, in_kernel[:] = threads, [0.0, 0.0]
            t0 = time.perf_counter()
            for _ in range(12):
                m._advance()
            if rnd:
                res[threads].append(((time.perf_counter() - t0) / 12, in_kernel[0] / 12, in_kernel[1] / 12))
    med = {t: np.median(v, axis=0) for t, v in res.items()}
    for t, (step, kern, entries) in med.items():
        print(f"{t} thread(s): {step * 1e3:6.1f} ms per month, {kern * 1e3:6.1f} ms in kernels "
              f"({entries * 1e3:5.2f} ms of them the entrants')")
    print(f"speed-up: whole step {med[1][0] / med[2][0]:.2f}, kernels {med[1][1] / med[2][1]:.2f}, "
          f"entrants {med[1][2] / med[2][2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
