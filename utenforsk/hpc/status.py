"""``utenforsk status DIR``: per scenario, tasks done / missing, and of the missing ones those
running (a live claim) and failed (a claim whose owner died without writing, or a recorded error);
an ETA from the measured task times.

Read-only: nothing under ``DIR`` is changed (an unreadable task file is counted as missing and
reported; the next run recomputes it).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from pathlib import Path

from utenforsk.errors import UserError


def load_plan(out: Path):
    """The plan recorded in ``DIR/experiment.json``, checked against the stored tasks."""
    from utenforsk.experiment.runner import Plan, check_store

    marker = out / "experiment.json"
    if not out.is_dir():
        raise UserError("no such directory", key="DIR", value=str(out),
                        allowed="a directory written by `utenforsk experiment` or `utenforsk slurm`")
    if not marker.is_file():
        raise UserError("not an experiment directory (no experiment.json)", key="DIR", value=str(out),
                        allowed="a directory written by `utenforsk experiment` or `utenforsk slurm`")
    try:
        info = json.loads(marker.read_text())
        file = info["file"]
    except (ValueError, KeyError, TypeError):
        raise UserError("experiment.json is unreadable", key="DIR", value=str(marker),
                        allowed="a directory written by `utenforsk experiment`") from None
    plan = Plan(file, info.get("replicates"))
    try:
        check_store(out, plan)
    except UserError as exc:
        raise UserError(exc.detail + f" than {file} describes now (its model or interventions were edited?)",
                        key="DIR", value=str(out), allowed=exc.allowed) from None
    return plan


def status(out: Path) -> dict:
    from utenforsk.experiment.runner import task_info
    from utenforsk.hpc import claims

    plan = load_plan(out)
    rows: dict[str, dict] = {s: {"scenario": s, "tasks": 0, "done": 0, "missing": 0, "running": 0,
                                 "failed": 0, "unreadable": 0} for s in plan.exp.scenarios}
    seconds, owners, failures = [], set(), []
    for t in plan.tasks():
        row = rows[t.scenario]
        row["tasks"] += 1
        path = t.path(out)
        info = task_info(path)
        if info is not None and info.get("experiment_hash") == plan.hash:
            row["done"] += 1
            if isinstance(info.get("seconds"), (int, float)):
                seconds.append(float(info["seconds"]))
            continue
        row["missing"] += 1
        if path.exists():
            row["unreadable"] += 1
        state, owner = claims.inspect(path)
        failed = claims.read_failure(path)
        if state == "live":
            row["running"] += 1
            owners.add(((owner or {}).get("host"), (owner or {}).get("pid")))
        elif state == "stale" or failed is not None:
            row["failed"] += 1
            why = (failed or {}).get("error") or (
                f"claimed by {(owner or {}).get('host')}:{(owner or {}).get('pid')}, which stopped without writing it")
            failures.append({"scenario": t.scenario, "replicate": t.replicate, "why": why})
    total = {k: sum(r[k] for r in rows.values()) for k in ("tasks", "done", "missing", "running", "failed",
                                                           "unreadable")}
    median = statistics.median(seconds) if seconds else None
    workers = len(owners)
    eta = total["missing"] * median / workers if (median is not None and workers) else None
    return {"dir": str(out), "experiment": plan.exp.name, "experiment_hash": plan.hash,
            "scenarios": list(rows.values()), "total": total, "median_task_seconds": median,
            "running_workers": workers, "eta_seconds": eta, "failures": failures,
            "slurm": slurm_jobs(out)}


def slurm_jobs(out: Path) -> dict | None:
    """The last submission recorded by ``utenforsk slurm --submit``, with squeue's view if it answers."""
    record = out / "slurm" / "jobs.json"
    if not record.is_file():
        return None
    try:
        last = json.loads(record.read_text())[-1]
    except (ValueError, IndexError, KeyError):
        return None
    states: dict[str, int] = {}
    if shutil.which("squeue") and last.get("array_job"):
        try:
            res = subprocess.run(["squeue", "-h", "-r", "-j", str(last["array_job"]), "-o", "%T"],
                                 capture_output=True, text=True, timeout=10)
            for line in res.stdout.split():
                states[line.lower()] = states.get(line.lower(), 0) + 1
        except (OSError, subprocess.SubprocessError):
            pass
    return {**last, "queue": states}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d {h}h {m:02d}m"
    if h:
        return f"{h}h {m:02d}m"
    return f"{m}m {s:02d}s" if m else f"{s}s"
