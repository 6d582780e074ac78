"""Where an experiment task's time goes: ``python -m benchmarks.experiment_task [--scale X]
[--experiment FILE] [--replicates N]``.

Runs replicates of an experiment (default: the quickstart, 5 scenarios, at scale 0.02) in this
process, one kernel thread, as a pool worker does (``runner.run_replicate``), and splits each
replicate's CPU seconds into:

- ``config``: reading and validating the model YAML (once per replicate, see ``runner._Configs``);
- ``build``: constructing the models (population arrays, service agents, forking the shared months);
- ``kernel``: the compiled kernels (``kernel.run_chunks``: entries and the month), burn-in included;
- ``step_python``: the rest of each simulated month in Python (service agents, bounds, tallies,
  interventions' monthly values, history);
- ``metrics``: computing the task's metrics (``experiment.metrics``);
- ``write``: writing the task's Parquet file (``outputs.write_parquet``);
- ``ipc``: pickling and unpickling the replicate's task specs (what the pool sends a worker);
- ``other``: the rest (the run loop, the task's DataFrame, claims are not used here).

The first replicate warms up (kernel load from the cache, imports) and is not counted. Also
prints ``cpu_s_per_replicate`` and ``cpu_1000x5_minutes_2cores``: the minutes 1,000 replicates
would take on 2 cores at a perfect pool efficiency, from CPU seconds alone (a load-independent
floor for the projection ``python -m benchmarks`` measures on the pool). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import ROOT

PHASES = ("config", "build", "kernel", "step_python", "metrics", "write", "ipc")


class Meter:
    """CPU seconds per phase; nested phases are subtracted from the enclosing one."""

    def __init__(self):
        self.total = dict.fromkeys(PHASES, 0.0)
        self._stack: list[list] = []

    @contextlib.contextmanager
    def phase(self, name: str):
        self._stack.append([name, time.process_time(), 0.0])
        try:
            yield
        finally:
            _, t0, inner = self._stack.pop()
            spent = time.process_time() - t0
            self.total[name] += spent - inner
            if self._stack:
                self._stack[-1][2] += spent


def _instrument(meter: Meter) -> None:
    """Wrap the functions a replicate calls, so each phase's CPU time is metered."""
    import utenforsk.experiment.metrics as metrics
    import utenforsk.experiment.runner as runner
    import utenforsk.model as model
    import utenforsk.outputs as outputs
    from utenforsk.core import kernel

    def wrap(owner, attr: str, phase: str):
        fn = getattr(owner, attr)

        def timed(*a, **k):
            with meter.phase(phase):
                return fn(*a, **k)
        setattr(owner, attr, timed)

    wrap(kernel, "run_chunks", "kernel")  # model.py calls kernel.run_chunks through the module
    wrap(model.UtenforskModel, "__init__", "build")
    wrap(model.UtenforskModel, "_advance", "step_python")
    wrap(runner._Configs, "__call__", "config")
    for name in ("task_metrics", "pathway_shares", "group_metrics", "participant_metrics", "cohort_metrics"):
        wrap(metrics, name, "metrics")
    wrap(outputs, "write_parquet", "write")


def profile(experiment: Path, scale: float, replicates: int) -> dict:
    from utenforsk.experiment.runner import Plan, Task, run_replicate

    plan = Plan(experiment, replicates + 1)
    plan.exp = plan.exp.model_copy(update={"scale": scale})
    meter = Meter()
    _instrument(meter)
    out: dict = {"experiment": Path(experiment).name, "scale": scale,
                 "scenarios": len(plan.exp.scenarios), "replicates_timed": replicates}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(replicates + 1):
            if r == 1:  # the first replicate warmed up: count from here
                meter.total = dict.fromkeys(PHASES, 0.0)
                c0, w0 = time.process_time(), time.perf_counter()
            tasks = [Task(s, r) for s in plan.exp.scenarios]
            items = [(plan.task_spec(t), str(t.path(Path(tmp)))) for t in tasks]
            with meter.phase("ipc"):
                items = pickle.loads(pickle.dumps(items))
            run_replicate(items, threads=1)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    per = {k: v / replicates for k, v in meter.total.items()}
    out.update({f"{k}_cpu_s": v for k, v in per.items()})
    out["other_cpu_s"] = cpu / replicates - sum(per.values())
    out["cpu_s_per_replicate"] = cpu / replicates
    out["wall_s_per_replicate"] = wall / replicates
    out["kernel_share"] = per["kernel"] / out["cpu_s_per_replicate"]
    out["cpu_1000x5_minutes_2cores"] = out["cpu_s_per_replicate"] * 1000 / 2 / 60
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.experiment_task", description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", type=Path, default=ROOT / "experiments" / "quickstart.yaml")
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--replicates", type=int, default=2, help="replicates timed after the warm-up one")
    args = ap.parse_args(argv)
    if args.replicates < 1 or args.scale <= 0:
        print("error: --replicates must be at least 1 and --scale positive", file=sys.stderr)
        return 2
    from utenforsk.errors import UserError

    try:
        res = profile(args.experiment, args.scale, args.replicates)
    except UserError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
