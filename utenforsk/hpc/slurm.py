"""``utenforsk slurm``: an experiment as one SLURM job array plus a dependent report job.

Array task ``i`` runs ``utenforsk experiment ... --shard i+1/N`` (replicates with
``r % N == i``); tasks write their own files into the shared ``DIR``, claimed and published
atomically, so any number of array tasks, resubmissions and local runs can share it. The report
job (``--dependency=afterok:ARRAY``, which waits for every task of the array) runs
``utenforsk report DIR``.

Files written under ``DIR/slurm/``: ``experiment.sbatch`` (the array), ``report.sbatch``,
``submit.sh`` (the two ``sbatch`` calls, for submitting by hand), ``logs/`` (one log per array
task, ``%A_%a.out``), and with ``--submit`` ``jobs.json`` (every submission's job ids).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from utenforsk.errors import UserError

_TIME = re.compile(r"^(\d+-\d{1,2}(:\d{1,2}){0,2}|\d+(:\d{1,2}){0,2})$")
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)
_PARTITION = re.compile(r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$")
MAX_REQUEUES = 5
TIME_FORMATS = ("minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes, "
                "days-hours:minutes:seconds, or UNLIMITED")


def parse_time(value: str | None) -> int | None:
    """Seconds of a SLURM ``--time`` value (None: no limit given, or UNLIMITED)."""
    if value is None:
        return None
    v = value.strip()
    if v.upper() in ("UNLIMITED", "INFINITE"):
        return None
    if not _TIME.match(v):
        raise UserError("not a SLURM time limit", key="--time", value=value, allowed=TIME_FORMATS)
    days = 0
    if "-" in v:
        d, v = v.split("-", 1)
        days = int(d)
        parts = [int(x) for x in v.split(":")] + [0] * (3 - len(v.split(":")))
        h, m, s = parts
    else:
        parts = [int(x) for x in v.split(":")]
        h, m, s = {1: (0, parts[0], 0), 2: (0, parts[0], parts[1]), 3: tuple(parts)}[len(parts)]
    seconds = ((days * 24 + h) * 60 + m) * 60 + s
    if seconds <= 0:
        raise UserError("the time limit must be positive", key="--time", value=value, allowed=TIME_FORMATS)
    return seconds


def grace_seconds(limit: int | None) -> int:
    """How long before the time limit SLURM sends SIGTERM: 120 s, less for limits under 10 minutes.
    (SLURM may send it up to 60 s early; a task in flight is then abandoned and redone later.)"""
    if limit is None or limit >= 600:
        return 120
    return max(10, limit // 5)


def validate(n: int, max_running: int | None, partition: str | None, time_limit: str | None,
             mem: str | None, cpus: int, replicates: int | None = None) -> int | None:
    """Check the flags (the array size against ``replicates`` once the experiment is read)."""
    if n < 1:
        raise UserError("the array needs at least one task", key="--array", value=n,
                        allowed="an integer from 1 to the replicate count")
    if replicates is not None and n > replicates:
        raise UserError(f"more array tasks than replicates ({replicates}): some shards would be empty",
                        key="--array", value=n, allowed=f"an integer 1..{replicates}")
    if max_running is not None and max_running < 1:
        raise UserError("must be at least 1", key="--max-running", value=max_running,
                        allowed="an integer >= 1 (array tasks running at once)")
    if cpus < 1:
        raise UserError("must be at least 1", key="--cpus", value=cpus, allowed="an integer >= 1")
    if partition is not None and not _PARTITION.match(partition):
        raise UserError("not a partition name", key="--partition", value=partition,
                        allowed="a name (letters, digits, _ . -), or a comma-separated list")
    if mem is not None and not _MEM.match(mem):
        raise UserError("not a SLURM memory size", key="--mem", value=mem,
                        allowed="an integer with an optional unit K, M, G or T, e.g. 4G (per node)")
    return parse_time(time_limit)


def _environment(submit_dir: Path) -> str:
    """Shell lines that reproduce this process's environment in the job."""
    q = shlex.quote
    lines = [f"cd {q(str(submit_dir))} || {{ echo 'utenforsk: cannot cd to {submit_dir}'; exit 1; }}"]
    prefix = Path(sys.prefix)
    if sys.prefix != sys.base_prefix and (prefix / "bin" / "activate").is_file():
        lines.append(f"source {q(str(prefix / 'bin' / 'activate'))}")
    else:
        lines.append(f"export PATH={q(str(Path(sys.executable).parent))}:\"$PATH\"")
    lines.append("export UTENFORSK_THREADS=1 PYTHONUNBUFFERED=1 NO_COLOR=1 COLUMNS=160")
    return "\n".join(lines)


def _directives(name: str, log: str, partition, time_limit, mem, cpus: int) -> list[str]:
    d = [f"--job-name={name}", f"--output={log}", "--open-mode=append", "--ntasks=1", f"--cpus-per-task={cpus}"]
    if partition:
        d.append(f"--partition={partition}")
    if time_limit:
        d.append(f"--time={time_limit}")
    if mem:
        d.append(f"--mem={mem}")
    return d


def write_scripts(plan, out: Path, n: int, max_running: int | None = None, partition: str | None = None,
                  time_limit: str | None = None, mem: str | None = None, cpus: int = 1,
                  requeue: bool = False, replicates: int | None = None) -> dict[str, Path]:
    """Write ``experiment.sbatch``, ``report.sbatch`` and ``submit.sh`` under ``DIR/slurm``."""
    limit = parse_time(time_limit)
    out = out.resolve()
    sdir = out / "slurm"
    (sdir / "logs").mkdir(parents=True, exist_ok=True)
    q = shlex.quote
    py = q(sys.executable)
    exp = q(str(Path(plan.file).resolve()))
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", plan.exp.name)
    array = f"0-{n - 1}" + (f"%{max_running}" if max_running else "")
    grace = grace_seconds(limit)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    rep = f" --replicates {replicates}" if replicates is not None else ""
    env = _environment(Path.cwd())

    head = [f"#SBATCH {d}" for d in _directives(f"utenforsk-{name}", str(sdir / "logs" / "%A_%a.out"),
                                                 partition, time_limit, mem, cpus)]
    head += [f"#SBATCH --array={array}", f"#SBATCH --signal=B:TERM@{grace}",
             "#SBATCH --requeue" if requeue else "#SBATCH --no-requeue"]
    requeue_block = ""
    if requeue:
        requeue_block = f"""
# --requeue: after a clean stop (walltime warning, preemption) put this array task back in the
# queue; it resumes where it stopped. At most {MAX_REQUEUES} times, so a task that cannot finish
# within the time limit does not loop for ever.
if [ "$status" -eq 143 ] && [ "${{SLURM_RESTART_COUNT:-0}}" -lt {MAX_REQUEUES} ]; then
  echo "utenforsk: requeueing ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
fi
"""
    experiment = f"""#!/bin/bash
# Experiment {plan.exp.name!r} as a SLURM job array: array task i runs shard i+1/{n}.
# Written by `utenforsk slurm` on {stamp}. Submit with {sdir}/submit.sh or `utenforsk slurm ... --submit`;
# resubmitting runs only the tasks still missing. Progress: utenforsk status {q(str(out))}
{chr(10).join(head)}
set -uo pipefail
{env}
shard="$(( SLURM_ARRAY_TASK_ID + 1 ))/{n}"
echo "utenforsk: array task ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} (shard $shard) on $(hostname) at $(date -Is), restart ${{SLURM_RESTART_COUNT:-0}}"
# In the background, so that this shell can pass SLURM's SIGTERM (--signal=B:TERM@{grace}) on to it:
{py} -m utenforsk.cli experiment {exp} --out {q(str(out))} --shard "$shard" --workers {cpus}{rep} &
child=$!
trap 'echo "utenforsk: SIGTERM (time limit, preemption or scancel): stopping shard $shard"; kill -TERM "$child" 2>/dev/null' TERM
wait "$child"; status=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
wait "$child" 2>/dev/null; last=$?
[ "$last" -ne 127 ] && status=$last
echo "utenforsk: shard $shard exited with status $status at $(date -Is)"{requeue_block}
exit "$status"
"""
    rhead = [f"#SBATCH {d}" for d in _directives(f"utenforsk-{name}-report", str(sdir / "logs" / "report_%j.out"),
                                                  partition, time_limit, mem, 1)]
    report = f"""#!/bin/bash
# Results of experiment {plan.exp.name!r} once every array task has finished: submitted with
# --dependency=afterok:ARRAY_JOB_ID (see submit.sh). Written by `utenforsk slurm` on {stamp}.
{chr(10).join(rhead)}
set -euo pipefail
{env}
exec {py} -m utenforsk.cli report {q(str(out))}
"""
    submit = f"""#!/bin/bash
# Submit the array and the report job that waits for all of it (what `utenforsk slurm --submit` does).
set -euo pipefail
array="$(sbatch --parsable {q(str(sdir / 'experiment.sbatch'))} "$@")"
array="${{array%%;*}}"
report="$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes {q(str(sdir / 'report.sbatch'))})"
report="${{report%%;*}}"
echo "array job $array, report job $report"
"""
    paths = {"experiment": sdir / "experiment.sbatch", "report": sdir / "report.sbatch", "submit": sdir / "submit.sh"}
    for key, text in (("experiment", experiment), ("report", report), ("submit", submit)):
        tmp = paths[key].with_name(f".{paths[key].name}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(paths[key])
    return paths


def missing_shards(plan, out: Path, n: int) -> list[int]:
    """Array indices (0-based) whose shard still has a task without a finished file: shard
    ``i+1/N`` (array task ``i``) holds the replicates with ``r % N == i``."""
    from utenforsk.experiment.runner import missing

    return sorted({t.replicate % n for t in missing(out, plan)})


def array_spec(indices: list[int], max_running: int | None) -> str:
    """``0-3,5,7-9%M`` from sorted indices."""
    runs, start = [], None
    for i, x in enumerate(indices):
        if start is None:
            start = x
        if i + 1 == len(indices) or indices[i + 1] != x + 1:
            runs.append(f"{start}" if start == x else f"{start}-{x}")
            start = None
    return ",".join(runs) + (f"%{max_running}" if max_running else "")


def _sbatch(args: list[str]) -> str:
    try:
        res = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, timeout=120)
    except OSError as exc:
        raise UserError(f"cannot run sbatch ({exc})", key="--submit", allowed="a machine with SLURM's sbatch") from None
    if res.returncode != 0:
        msg = " ".join((res.stderr or res.stdout).split())[:300]
        raise UserError(f"sbatch failed: {msg}", key="--submit", value=" ".join(args),
                        allowed="options your cluster accepts (--partition, --time, --mem, --cpus)")
    return res.stdout.strip().split(";")[0]


def submit(out: Path, paths: dict[str, Path], indices: list[int], n: int, max_running: int | None) -> dict:
    """Submit the array (only ``indices``) and the dependent report job; record both in jobs.json."""
    from utenforsk.outputs import write_json

    if shutil.which("sbatch") is None:
        raise UserError("sbatch not found on PATH", key="--submit",
                        allowed=f"a SLURM login node, or submit {paths['submit']} there")
    extra = [] if len(indices) == n else [f"--array={array_spec(indices, max_running)}"]
    array_job = _sbatch([*extra, str(paths["experiment"])])
    report_job = _sbatch([f"--dependency=afterok:{array_job}", "--kill-on-invalid-dep=yes", str(paths["report"])])
    rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "array_job": array_job, "report_job": report_job,
           "array": extra[0].split("=", 1)[1] if extra else f"0-{n - 1}" + (f"%{max_running}" if max_running else ""),
           "shards": n}
    record = out / "slurm" / "jobs.json"
    jobs = []
    if record.is_file():
        try:
            jobs = json.loads(record.read_text())
        except ValueError:
            jobs = []
    jobs.append(rec)
    write_json(jobs, record)
    return rec
