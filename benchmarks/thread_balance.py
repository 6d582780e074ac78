"""How evenly the month kernel's worker threads share a month: ``python -m benchmarks.thread_balance
[--scale S] [--months N]`` (default 0.52: about 10^6 alive, 18 months, 2 threads).

Times each month-kernel call inside ``kernel.run_chunks`` and prints, as medians (and maxima)
over the months in ms: the whole step, the month kernel's span (the ``run_chunks`` call), half
the workers' summed busy time (the span if they were perfectly balanced), the gap between the
workers' last finishes, the lag from the call to the first block's start, and the other
``run_chunks`` calls of the month (the entry kernel; in December the municipal Q4 tally).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np

from utenforsk.core import kernel
from utenforsk.model import UtenforskModel


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.thread_balance", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.52)
    ap.add_argument("--months", type=int, default=18)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    m = UtenforskModel("configs/norway/baseline.yaml", seed=1, scale=a.scale, horizon_years=80)
    for _ in range(12):  # warm up (compile or load, first months)
        m._advance()
    inner, calls, spans = m._gen.month_chunk, [], []

    def month_chunk(*args):
        t0 = time.perf_counter()
        inner(*args)
        calls.append((threading.get_ident(), t0, time.perf_counter()))

    m._gen.month_chunk = month_chunk
    run_chunks = kernel.run_chunks

    def timed(fn, *args, **kw):
        t0 = time.perf_counter()
        run_chunks(fn, *args, **kw)
        spans.append((fn is month_chunk, t0, time.perf_counter()))

    kernel.run_chunks = timed
    m.n_threads = a.threads
    rows = []
    try:
        for _ in range(a.months):
            calls.clear()
            spans.clear()
            t0 = time.perf_counter()
            m._advance()
            step = time.perf_counter() - t0
            _, s0, s1 = next(s for s in spans if s[0])
            ends: dict = {}
            for tid, _, b in calls:
                ends[tid] = max(ends.get(tid, 0.0), b)
            busy = sum(b - c for _, c, b in calls)
            rows.append({"step_ms": step, "span_ms": s1 - s0, "half_busy_ms": busy / a.threads,
                         "finish_gap_ms": max(ends.values()) - min(ends.values()),
                         "start_lag_ms": min(c for _, c, _ in calls) - s0,
                         "other_calls_ms": sum(e - b for f, b, e in spans if not f)})
    finally:
        kernel.run_chunks = run_chunks
    out = {"alive": int(m.pop.alive.sum()), "threads": a.threads, "months": a.months}
    for k in rows[0]:
        v = [r[k] * 1e3 for r in rows]
        out[k] = round(float(np.median(v)), 3)
        out[k.replace("_ms", "_max_ms")] = round(float(np.max(v)), 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
