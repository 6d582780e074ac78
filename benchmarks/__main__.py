"""Benchmarks: ``python -m benchmarks [--quick] [--out DIR] [--national]`` (or ``make bench``).

(All options: ``--help``.)

Measures, on the full Norway baseline:

- ``kernel_person_months_per_s_{1,2}threads`` at 10^4, 10^5 (and 10^6 unless --quick) persons
  alive: the whole monthly step (entries, service agents, kernel, tallies), median of repeated
  12-month blocks after a warm-up block;
- ``parallel_speedup_2threads`` at the largest size;
- ``scaling_exponent``: log-log slope of time per month against population size;
- ``bytes_per_person`` of simulation state (all person arrays / people alive);
- ``mesa_reference_ratio``: engine speed / speed of the per-agent Mesa reference
  (``benchmarks/reference_mesa.py``) on the same population in the same run, one thread each,
  the engine's time without compilation (CPU seconds of this process; wall-clock in
  ``mesa_reference_ratio_wall``);
- ``time_to_first_step_cold_s`` and ``..._cached_s``: a fresh process from ``import`` to the end of
  the first month, with an empty numba cache and with the filled cache; ``compile_cold_s`` is
  their difference (the compilation alone);
- ``new_scenario_first_month_s``: a scenario with an intervention set never run before, on the
  model's already-compiled kernel, from ``UtenforskModel(...)`` to the end of its first month
  (``benchmarks/scenario_start.py``, the slowest of three new sets; also
  ``new_forked_scenario_first_month_s``, forked from a shared burn-in as in an experiment,
  ``first_scenario_first_month_s`` and ``kernel_sources_generated``);
- ``toy_ceiling_ratio``: engine person-months/s on one thread at the largest size ÷ the toy kernel
  of ``../shared/tools/toy_ceiling.py`` (3 counter-hash draws + 1 logistic per person-month) at
  the same number of people, run in the same benchmark (skipped when the tool is absent);
  ``toy_ceiling_ratio_cpu``: the same ratio with both in one process, alternating, in CPU
  seconds (``benchmarks/toy_ratio.py``), which other load on a shared machine distorts far less;
- ``pool_efficiency_2workers``: the local experiment pool's speed-up from 1 to 2 worker
  processes, divided by 2: the quickstart experiment at scale 0.02 (``--quick``: 0.002), 6
  replicates x 5 scenarios (``--quick``: 4), run on 1 and then on 2 workers;
- ``experiment_tasks_per_minute``: the 2-worker run's steady throughput, and the projected minutes
  for 1,000 replicates x 5 scenarios (the pool's start-up plus the steady rate); also
  ``pool_efficiency_2workers_steady`` and ``_cpu`` (see :func:`pool_efficiency`);
- ``task_*``: where one replicate's CPU seconds go (``benchmarks/experiment_task.py``: config,
  model build, kernel, Python per month, metrics, writing, pickling), its kernel share and
  ``task_cpu_1000x5_minutes_2cores``, the CPU-only floor of the projection;
- full mode (unless ``--no-national``): one run at scale 1.0 (≈2 million alive, 30-year burn-in
  + 20 years), its wall time and peak memory (max RSS).

Writes ``DIR/latest.json`` (default ``results/benchmarks``) with machine info, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from benchmarks import ALIVE_AT_SCALE_1, BASELINE, ROOT


def machine() -> dict:
    import mesa
    import numba

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numba": numba.__version__, "numpy": np.__version__, "mesa": mesa.__version__,
            "platform": platform.platform()}


def throughput(alive: float, months: int, reps: int, seed: int = 1) -> dict:
    """Person-months per second of the full monthly step, 1 and 2 threads, same model.

    The legs alternate block by block (1 thread, 2 threads, 1 thread, ...), so a
    shared VM's drift in speed falls on all of them alike and their ratios stay fair."""
    from utenforsk.model import UtenforskModel

    scale = min(1.0, alive / ALIVE_AT_SCALE_1)
    model = UtenforskModel(BASELINE, seed=seed, scale=scale, horizon_years=80)
    out = {"scale": scale, "alive": int(len(model.alive_slots())),
           "bytes_per_person": model.bytes_per_person}
    legs = [1, 2]
    rates: dict = {leg: [] for leg in legs}
    for rep in range(reps + 1):  # the first round warms up (thread pool, caches) and is not kept
        for threads in legs:
            model.n_threads = threads
            pm = 0
            t0 = time.perf_counter()
            for _ in range(months):
                pm += int(model.pop.alive.sum())
                model._advance()
            if rep > 0:
                rates[threads].append(pm / (time.perf_counter() - t0))
    for threads, r in rates.items():
        out[f"pm_per_s_{threads}t"] = statistics.median(r)
    return out


def reference_ratio(alive: float, months: int) -> dict:
    """Engine vs the per-agent Mesa reference on the same population, same process, one thread."""
    from benchmarks.reference_mesa import speed

    r = speed(alive, months)
    return {"mesa_reference_ratio": r["speedup_cpu_time"], "mesa_reference_ratio_wall": r["speedup_engine_over_reference"],
            "mesa_reference": r}


COMPILE_PROBE = textwrap.dedent("""
    import time, json
    t0 = time.perf_counter()
    from utenforsk.model import UtenforskModel
    m = UtenforskModel({path!r}, seed=1, scale=0.001, burn_in_years=0, horizon_years=1)
    m.step()
    print(json.dumps({{"first_step_s": time.perf_counter() - t0}}))
""")


def compile_times() -> dict:
    """Time to first step in fresh processes: empty numba cache, then the filled cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "UTENFORSK_KERNEL_CACHE"}  # else not cold
        env["NUMBA_CACHE_DIR"] = cache
        out = {}
        for label in ("time_to_first_step_cold_s", "time_to_first_step_cached_s"):
            res = subprocess.run([sys.executable, "-c", COMPILE_PROBE.format(path=str(BASELINE))],
                                 env=env, capture_output=True, text=True, check=True, cwd=ROOT)
            out[label] = json.loads(res.stdout.strip().splitlines()[-1])["first_step_s"]
        out["compile_cold_s"] = out["time_to_first_step_cold_s"] - out["time_to_first_step_cached_s"]
        return out


TOY = ROOT.parent / "shared" / "tools" / "toy_ceiling.py"


def toy_ceiling(alive: float) -> dict:
    """The toy kernel's person-months/s at ``alive`` people, 1 and 2 threads (its own process)."""
    if not TOY.exists():
        return {}
    res = subprocess.run([sys.executable, str(TOY), str(int(alive))], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    m = re.search(r"([\d.]+) M pm/s 1 thread, ([\d.]+) M pm/s 2 threads", res.stdout)
    return {"toy_alive": int(alive), "toy_pm_per_s_1thread": float(m[1]) * 1e6,
            "toy_pm_per_s_2threads": float(m[2]) * 1e6}


def toy_ratio_cpu(alive: float, rounds: int) -> dict:
    """The engine's whole step and the toy kernel alternating in one process, in CPU seconds
    (``benchmarks/toy_ratio.py``; fairer than ``toy_ceiling_ratio`` on a shared machine)."""
    if not TOY.exists():
        return {}
    res = subprocess.run([sys.executable, "-m", "benchmarks.toy_ratio", "--alive", str(int(alive)),
                          "--rounds", str(rounds)], capture_output=True, text=True, check=True, cwd=ROOT)
    data = json.loads(res.stdout.strip().splitlines()[-1])
    return {"toy_ceiling_ratio_cpu": data["toy_ceiling_ratio_cpu"],
            "engine_pm_per_cpu_s_1thread": data["engine_pm_per_cpu_s_1thread"],
            "toy_pm_per_cpu_s_1thread": data["toy_pm_per_cpu_s_1thread"]}


NATIONAL_PROBE = textwrap.dedent("""
    import json, resource, time
    t0 = time.perf_counter()
    from utenforsk.model import UtenforskModel
    m = UtenforskModel({path!r}, seed=1, scale=1.0)
    m.run_model()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({{"national_run_s": time.perf_counter() - t0, "national_peak_rss_bytes": rss,
                      "national_alive": int(len(m.alive_slots())),
                      "national_person_months": int(sum(h["age_state"].sum() for h in m.history)),
                      "national_timings": m.timings}}))
""")


def national() -> dict:
    res = subprocess.run([sys.executable, "-c", NATIONAL_PROBE.format(path=str(BASELINE))],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _experiment_run(scale: float, replicates: int, workers: int) -> dict:
    """Run the quickstart experiment at ``scale`` in a scratch directory: tasks, wall seconds,
    the times (s since the start) at which each replicate finished, and the tasks' own wall and
    CPU seconds from their files' metadata (``runner._finish_task``)."""
    from utenforsk.experiment.runner import Plan, run, task_info

    done_at: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        plan = Plan(ROOT / "experiments" / "quickstart.yaml", replicates)
        plan.exp = plan.exp.model_copy(update={"scale": scale})
        t0 = time.perf_counter()
        counts = run(plan, Path(tmp), workers=workers,
                     progress=lambda done, total, s: done and done_at.append(time.perf_counter() - t0))
        wall = time.perf_counter() - t0
        infos = [task_info(t.path(Path(tmp))) for t in plan.tasks()]
    return {"tasks": counts["ran"], "wall_s": wall, "done_at": done_at,
            "task_s": sum(i["seconds"] for i in infos), "task_cpu_s": sum(i["cpu_seconds"] for i in infos)}


def _interval(run: dict, workers: int) -> float:
    """Seconds per replicate in steady state: from the first wave's end (the ``workers``-th
    finished replicate, which also paid for starting the workers) to the last one."""
    t = run["done_at"]
    return (t[-1] - t[workers - 1]) / (len(t) - workers)


def pool_efficiency(scale: float, replicates: int = 6) -> dict:
    """The local pool's efficiency from 1 to 2 worker processes and the experiment throughput,
    from the quickstart experiment at ``scale`` (5 scenarios; the horizon follows the treated
    cohorts to age 21, 27 years), ``replicates`` replicates run on 1 and then on 2 workers.

    Replicates, not scenarios, are the pool's unit (a replicate's scenarios share the burn-in and
    the months before the programmes start), so ``replicates`` must be a multiple of 2 (a steady
    pipeline of two workers). Each worker runs its kernels on one thread; the 1-worker run (in
    this process) is held to one thread too, so the ratio is processes, not threads. A small
    untimed run first compiles (or loads) the model's kernel. Figures:

    - ``pool_efficiency_2workers``: (wall time on 1 worker / wall time on 2 workers) / 2, whole
      runs; the 2-worker run also pays for spawning its workers (``pool_startup_s``), which a
      short run cannot amortise;
    - ``pool_efficiency_2workers_steady``: the same from the steady-state seconds per replicate
      (after the first replicate of each worker);
    - ``pool_efficiency_2workers_cpu``: CPU seconds per task on 1 worker / on 2 workers: how much
      the two processes slow each other down (shared caches, memory bandwidth) whatever the load;
    - ``experiment_tasks_per_minute`` (steady, 2 workers) and
      ``experiment_1000x5_minutes_projected``: the pool's start-up plus 1,000 replicates at the
      steady rate.
    """
    if replicates % 2:
        raise ValueError("replicates must be a multiple of 2")
    _experiment_run(min(scale, 0.0005), 2, 1)  # warm-up: compile or load the model's kernel
    saved = os.environ.get("UTENFORSK_THREADS")
    os.environ["UTENFORSK_THREADS"] = "1"
    try:
        one = _experiment_run(scale, replicates, 1)
    finally:
        if saved is None:
            os.environ.pop("UTENFORSK_THREADS")
        else:
            os.environ["UTENFORSK_THREADS"] = saved
    two = _experiment_run(scale, replicates, 2)
    tasks_per_rep = two["tasks"] / replicates
    per_rep_1, per_rep_2 = _interval(one, 1), _interval(two, 2)
    startup = max(0.0, two["done_at"][1] - 2 * per_rep_2)  # first wave: start-up + one replicate each
    per_min = tasks_per_rep / per_rep_2 * 60.0
    return {"pool_seconds_1worker": one["wall_s"], "pool_seconds_2workers": two["wall_s"], "pool_scale": scale,
            "pool_replicates": replicates, "pool_efficiency_2workers": one["wall_s"] / two["wall_s"] / 2.0,
            "pool_efficiency_2workers_steady": per_rep_1 / per_rep_2 / 2.0,
            "pool_efficiency_2workers_cpu": (one["task_cpu_s"] / one["tasks"]) / (two["task_cpu_s"] / two["tasks"]),
            "pool_startup_s": startup, "pool_task_cpu_s_1worker": one["task_cpu_s"] / one["tasks"],
            "pool_task_cpu_s_2workers": two["task_cpu_s"] / two["tasks"],
            "experiment_tasks_per_minute": per_min, "experiment_scale": scale, "experiment_workers": 2,
            "experiment_1000x5_minutes_projected": (startup + 1000 * per_rep_2) / 60.0}


def experiment_task(scale: float, replicates: int) -> dict:
    """Where one replicate's CPU time goes (``benchmarks/experiment_task.py``, its own process:
    it wraps the engine's functions to meter them); keys prefixed ``task_``."""
    res = subprocess.run([sys.executable, "-m", "benchmarks.experiment_task", "--scale", str(scale),
                          "--replicates", str(replicates)], capture_output=True, text=True, check=True, cwd=ROOT)
    data = json.loads(res.stdout.strip().splitlines()[-1])
    return {f"task_{k}": v for k, v in data.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (< 2 minutes)")
    ap.add_argument("--national", action="store_true", help="the national-scale run also with --quick")
    ap.add_argument("--experiment-scale", type=float,
                    help="scale of the experiment throughput and pool runs (default 0.02; --quick 0.002)")
    ap.add_argument("--no-national", action="store_true", help="skip the national-scale run (full mode)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    ap.add_argument("--sizes", type=float, nargs="*", help="override population sizes (people alive)")
    ap.add_argument("--no-compile-times", action="store_true",
                    help="skip the cold/cached compile and new-scenario measurements (fresh processes)")
    ap.add_argument("--no-toy", action="store_true", help="skip the toy-kernel ceiling ratio")
    args = ap.parse_args(argv)

    sizes = args.sizes or ([1e4, 1e5] if args.quick else [1e4, 1e5, 1e6])
    months, reps = (6, 2) if args.quick else (12, 3)
    result: dict = {"machine": machine(), "command": "python -m benchmarks " + " ".join(argv or sys.argv[1:]),
                    "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if not args.no_compile_times:
        from benchmarks.scenario_start import scenario_start

        result.update(compile_times())
        result.update(scenario_start(0.002 if args.quick else 0.02))
    rows = []
    for n in sizes:
        r = throughput(n, months, reps)
        rows.append(r)
        print(f"  {r['alive']:>9,} alive: {r['pm_per_s_1t'] / 1e6:6.2f} M pm/s (1 thread), "
              f"{r['pm_per_s_2t'] / 1e6:6.2f} M pm/s (2 threads)", flush=True)
    result["sizes"] = rows
    ref_alive = min(sizes[0], 1e4)
    result.update(reference_ratio(ref_alive, 3 if args.quick else 12))
    print(f"  Mesa reference at {result['mesa_reference']['alive']:,} alive: "
          f"{result['mesa_reference']['reference_pm_per_cpu_s'] / 1e3:.1f} k pm/s; engine "
          f"{result['mesa_reference']['engine_pm_per_cpu_s'] / 1e6:.2f} M pm/s (per CPU second)", flush=True)
    top = rows[-1]
    result["kernel_person_months_per_s_1thread"] = top["pm_per_s_1t"]
    result["kernel_person_months_per_s_2threads"] = top["pm_per_s_2t"]
    result["parallel_speedup_2threads"] = top["pm_per_s_2t"] / top["pm_per_s_1t"]
    result["bytes_per_person"] = top["bytes_per_person"]
    if not args.no_toy:
        toy = toy_ceiling(top["alive"])
        if toy:
            result.update(toy)
            result["toy_ceiling_ratio"] = top["pm_per_s_1t"] / toy["toy_pm_per_s_1thread"]
            result["toy_parallel_speedup_2threads"] = toy["toy_pm_per_s_2threads"] / toy["toy_pm_per_s_1thread"]
            result.update(toy_ratio_cpu(top["alive"], 2 if args.quick else 4))
    if len(rows) >= 2:  # time per month ~ alive^k  <=>  log(alive / rate) vs log(alive)
        x = np.log([r["alive"] for r in rows])
        y = np.log([r["alive"] / r["pm_per_s_1t"] for r in rows])
        result["scaling_exponent"] = float(np.polyfit(x, y, 1)[0])
    exp_scale = args.experiment_scale or (0.002 if args.quick else 0.02)
    result.update(pool_efficiency(scale=exp_scale, replicates=4 if args.quick else 6))
    result.update(experiment_task(exp_scale, 1 if args.quick else 2))
    if args.national or not (args.quick or args.no_national):
        result.update(national())

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2))
    print()
    print(f"{'figure':45s} value")
    for key in ("kernel_person_months_per_s_1thread", "kernel_person_months_per_s_2threads",
                "parallel_speedup_2threads", "scaling_exponent",
                "mesa_reference_ratio",
                "mesa_reference_ratio_wall", "bytes_per_person", "time_to_first_step_cold_s",
                "time_to_first_step_cached_s", "compile_cold_s", "new_scenario_first_month_s",
                "new_forked_scenario_first_month_s",
                "first_scenario_first_month_s", "kernel_sources_generated", "toy_ceiling_ratio",
                "toy_ceiling_ratio_cpu", "toy_parallel_speedup_2threads", "pool_efficiency_2workers",
                "pool_efficiency_2workers_steady", "pool_efficiency_2workers_cpu", "pool_startup_s",
                "experiment_tasks_per_minute", "experiment_1000x5_minutes_projected",
                "task_cpu_s_per_replicate", "task_kernel_share", "task_cpu_1000x5_minutes_2cores",
                "national_run_s", "national_peak_rss_bytes"):
        if key in result:
            print(f"{key:45s} {result[key]:,.3f}")
    print(f"\nwrote {args.out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
