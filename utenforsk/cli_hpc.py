"""HPC commands (``utenforsk slurm``, ``utenforsk status``): registered on :data:`utenforsk.cli.app`.

See docs/hpc.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from utenforsk.cli import _fail, app, out
from utenforsk.errors import UserError


@app.command()
def slurm(file: Path = typer.Argument(..., help="experiment YAML"),
          out_dir: Path = typer.Option(..., "--out", help="output directory, on a file system every node shares"),
          array: int = typer.Option(..., "--array", help="array tasks N: task i runs shard i+1/N"),
          max_running: Optional[int] = typer.Option(None, "--max-running", help="array tasks running at once (%M)"),
          partition: Optional[str] = typer.Option(None, "--partition", help="SLURM partition"),
          time_limit: Optional[str] = typer.Option(None, "--time", help="time limit per array task, e.g. 2:00:00"),
          mem: Optional[str] = typer.Option(None, "--mem", help="memory per array task, e.g. 4G"),
          cpus: int = typer.Option(1, "--cpus", help="CPUs per array task (= worker processes)"),
          replicates: Optional[int] = typer.Option(None, "--replicates", help="override the replicate count"),
          requeue: bool = typer.Option(False, "--requeue/--no-requeue",
                                       help="requeue an array task after a clean stop on SIGTERM"),
          submit: bool = typer.Option(False, "--submit", help="submit with sbatch and record the job ids")):
    """Write DIR/slurm/experiment.sbatch (one job array) and report.sbatch; --submit submits both."""
    try:
        from utenforsk.experiment.runner import Plan, check_store, write_marker
        from utenforsk.hpc import slurm as sl
        from utenforsk.outputs import check_output_path

        sl.validate(array, max_running, partition, time_limit, mem, cpus)  # flags first: quick
        plan = Plan(file, replicates)
        sl.validate(array, max_running, partition, time_limit, mem, cpus, plan.exp.replicates)
        check_output_path(out_dir)
        check_store(out_dir, plan)
        write_marker(out_dir, plan)  # so that `utenforsk status DIR` works before the first task starts
        paths = sl.write_scripts(plan, out_dir, array, max_running, partition, time_limit, mem, cpus,
                                 requeue, replicates)
        n_tasks = len(plan.tasks())
        out.print(f"wrote {paths['experiment']} ({array} array tasks, {n_tasks} tasks: "
                  f"{len(plan.exp.scenarios)} scenarios x {plan.exp.replicates} replicates), "
                  f"{paths['report'].name} and {paths['submit'].name}")
        if not submit:
            out.print(f"submit with: bash {paths['submit']}   (or rerun with --submit)")
            return
        todo = sl.missing_shards(plan, out_dir.resolve(), array)
        if not todo:
            out.print(f"every task is done; nothing submitted (results: utenforsk report {out_dir})")
            return
        rec = sl.submit(out_dir, paths, todo, array, max_running)
        out.print(f"submitted array job {rec['array_job']} (--array={rec['array']}) and report job "
                  f"{rec['report_job']} (afterok); follow with: utenforsk status {out_dir}")
    except UserError as exc:
        _fail(exc)


@app.command()
def status(out_dir: Path = typer.Argument(..., help="an experiment's output directory"),
           as_json: bool = typer.Option(False, "--json", help="print the status as JSON")):
    """Tasks done / missing / running / failed per scenario, with an ETA from measured task times."""
    try:
        from utenforsk.hpc.status import duration, status as get_status

        st = get_status(out_dir)
    except UserError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(st, indent=2))
        return
    tot = st["total"]
    t = Table(title=f"{st['experiment']} in {st['dir']}: {tot['done']} of {tot['tasks']} tasks done")
    for col in ("scenario", "tasks", "done", "missing", "running", "failed"):
        t.add_column(col, justify="left" if col == "scenario" else "right")
    for r in st["scenarios"]:
        t.add_row(escape(r["scenario"]), *(str(r[k]) for k in ("tasks", "done", "missing", "running", "failed")))
    t.add_row("total", *(str(tot[k]) for k in ("tasks", "done", "missing", "running", "failed")))
    out.print(t)
    med = st["median_task_seconds"]
    line = f"median {med:.2f} s per task" if med is not None else "no task time measured yet"
    if tot["missing"] == 0:
        line += "; every task is done" + ("" if (out_dir / "runs.parquet").exists()
                                         else f" (results: utenforsk report {out_dir})")
    elif st["eta_seconds"] is not None:
        line += f"; ETA {duration(st['eta_seconds'])} at {st['running_workers']} running worker(s)"
    else:
        line += "; nothing running" + (f" (at 1 worker: {duration(tot['missing'] * med)})" if med else "")
    out.print(line, highlight=False)
    if tot["unreadable"]:
        out.print(f"{tot['unreadable']} unreadable task files (truncated or corrupt): the next run recomputes them")
    for f in st["failures"][:5]:
        out.print(f"failed: {f['scenario']} replicate {f['replicate']}: {escape(f['why'])}", highlight=False)
    if len(st["failures"]) > 5:
        out.print(f"... and {len(st['failures']) - 5} more failed tasks")
    if st["failures"] or (tot["missing"] and not tot["running"]):
        out.print("to run what is missing: rerun the same `utenforsk experiment` command, or resubmit "
                  "with `utenforsk slurm ... --submit`", highlight=False)
    if st["slurm"]:
        s = st["slurm"]
        queue = ", ".join(f"{v} {k}" for k, v in sorted(s["queue"].items())) or "none in the queue"
        out.print(f"slurm: array job {s['array_job']} (--array={s['array']}; {queue}), "
                  f"report job {s['report_job']}", highlight=False)
