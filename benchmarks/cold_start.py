"""Where the cold first step's time goes: ``python -m benchmarks.cold_start [--cached] [--one-process [--live-maps]]``.

One fresh process, an empty numba and kernel cache (``--cached``: the cache the previous cold run
filled), the Norway baseline at scale 0.001: wall seconds for importing the package, building the
model (config, tables, population, service agents, writing the kernel source), compiling (or
loading) the two kernels, and the first month itself; and the CPU seconds of this process up to
the compiled kernels (``cpu_to_compiled_s``) and of the helper process that compiles the entry
kernel alongside (``helper_cpu_s``). On a loaded machine wall time overstates the work: compare
the CPU seconds. ``--one-process`` adds ``one_process``: a second fresh process on another empty
cache that compiles both kernels, ``month_chunk`` and ``enter_chunk``, itself (no forked child, no
helper; the bounds' pass and the small helpers are not compiled in this probe) and reports those
CPU seconds, ``compile_cpu_s``: the two kernels' compile work in one figure, which the overlap of
the two compiles cannot hide. ``--live-maps`` makes that probe compute every live-variable map
twice, with numba's function and with ``utenforsk.core.liveness``'s, check they are equal, and
report the calls, the most blocks a function had and each one's CPU seconds (its
``compile_cpu_s`` then includes both). Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = 'UtenforskModel("configs/norway/baseline.yaml", seed=1, scale=0.001, burn_in_years=0, horizon_years=1)'
COMPILE = "m._gen.compile(m.pop, m.dyn, m.prog, m.tally, m.seed_key, m.cum_entries, m.births)"
PROBE = textwrap.dedent(f"""
    import json, resource, time
    t0 = time.perf_counter()
    from utenforsk.model import UtenforskModel
    t1 = time.perf_counter()
    m = {MODEL}
    t2 = time.perf_counter()
    {COMPILE}
    t3 = time.perf_counter()
    c3 = time.process_time()
    m.step()
    t4 = time.perf_counter()
    print(json.dumps({{"import_s": t1 - t0, "model_build_s": t2 - t1, "compile_s": t3 - t2,
                      "first_month_s": t4 - t3, "first_step_s": t4 - t0,
                      "cpu_to_compiled_s": c3,
                      "helper_cpu_s": resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime,
                      "kernel_source_lines": m._gen.source.count(chr(10))}}))
""")
ONE_PROCESS = textwrap.dedent(f"""
    import json, sys, time
    from utenforsk.core import kernel_cache, liveness
    kernel_cache._fork_compile = lambda *a, **k: None  # compile here, not in a forked child
    kernel_cache._compile_elsewhere = lambda *a, **k: None  # nor in a helper process
    maps = {{"calls": 0, "numba_s": 0.0, "liveness_s": 0.0, "most_blocks": 0}}
    if "--live-maps" in sys.argv:
        ours = liveness.compute_live_map

        def both(*args):
            t = time.process_time()
            a = liveness.NUMBA_COMPUTE_LIVE_MAP(*args)
            u = time.process_time()
            b = ours(*args)
            maps["numba_s"] += u - t
            maps["liveness_s"] += time.process_time() - u
            maps["calls"] += 1
            maps["most_blocks"] = max(maps["most_blocks"], len(args[1]))
            assert a == b, "the live maps differ"
            return b

        liveness.compute_live_map = both
    from utenforsk.model import UtenforskModel
    m = {MODEL}
    c0 = time.process_time()
    {COMPILE}
    out = {{"compile_cpu_s": time.process_time() - c0}}
    print(json.dumps({{**out, **maps}} if maps["calls"] else out))
""")


def run(cache: str, probe: str = PROBE, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "UTENFORSK_KERNEL_CACHE"}
    env["NUMBA_CACHE_DIR"] = cache
    res = subprocess.run([sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        out = {"cold": run(cache)}
        if "--cached" in sys.argv:
            out["cached"] = run(cache)
    if "--one-process" in sys.argv:
        with tempfile.TemporaryDirectory() as cache:
            out["one_process"] = run(cache, ONE_PROCESS, *(a for a in sys.argv[1:] if a == "--live-maps"))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
