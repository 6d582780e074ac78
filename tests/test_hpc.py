"""HPC: SLURM job arrays, Dask, claims, SIGTERM, status — and experiments that survive faults.

The experiment is the tiny one of tests/test_experiment.py (scale 0.002, 10 burn-in + 2 policy
years, 2 scenarios x 4 replicates = 8 tasks of about a second). One uninterrupted local run with
``--workers 1`` is the reference; every other way of producing the results (SIGTERM + rerun,
``kill -9`` of a worker + rerun, two runners at once, Dask, Dask + local pool, the sbatch script,
a real SLURM job array) must reproduce its ``runs.parquet`` byte for byte.

The SLURM cluster tests need a running cluster (``tests/slurm/setup.sh``, as root; ``.ci/run``
starts one) and skip, saying why, without one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from test_experiment import ROOT, assert_bad, cli, ok, task_files

N_TASKS = 8
STOP_LINE = re.compile(r"stopped by SIGTERM: (\d+) tasks done, (\d+) left")
COUNTS = re.compile(r"(\d+) tasks run, (\d+) already done(?:, (\d+) run by other runners)?")


def env(**extra) -> dict:
    return dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb", UTENFORSK_THREADS="1", **extra)


def popen(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "utenforsk.cli", *map(str, args)], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, stdout, stderr


def wait_for(predicate, proc: subprocess.Popen | None, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc is None or proc.poll() is None, f"the process ended (status {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)


def leftovers(out: Path) -> list[str]:
    """Temp files, claims and failure records: a clean stop leaves none of them."""
    pats = ("runs/*/.*.tmp", "claims/*/*.claim", "claims/*/.*", "claims/*/*.failed")
    return sorted(str(p.relative_to(out)) for pat in pats for p in out.glob(pat))


def assert_identical(out: Path, ref: Path) -> None:
    """runs.parquet and effects.csv byte for byte, and one task file per task."""
    assert len(task_files(out)) == N_TASKS
    assert (out / "runs.parquet").read_bytes() == (ref / "runs.parquet").read_bytes()
    assert (out / "effects.csv").read_bytes() == (ref / "effects.csv").read_bytes()


def status_json(out: Path) -> dict:
    return json.loads(ok(cli("status", out, "--json")))


@pytest.fixture(scope="module")
def reference(exp_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hpc_ref") / "out"
    assert f"{N_TASKS} tasks run, 0 already done" in ok(cli("experiment", exp_file, "--out", out))
    assert leftovers(out) == []
    return out


# ---- claims ---------------------------------------------------------------------------------

def _write_claim(task_file: Path, host: str, pid: int, age_s: float = 0.0) -> Path:
    from utenforsk.hpc import claims

    path = claims.claim_path(task_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "time": time.time() - age_s, "token": "x"}))
    if age_s:
        os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claims_live_stale_and_release(tmp_path, monkeypatch):
    from utenforsk.hpc import claims

    monkeypatch.setenv("UTENFORSK_CLAIM_STALE_S", "60")
    task = tmp_path / "runs" / "baseline" / "r000003.parquet"
    assert claims.claim_path(task) == tmp_path / "claims" / "baseline" / "r000003.claim"
    token = claims.try_claim(task)
    assert token and claims.inspect(task)[0] == "live"
    assert claims.try_claim(task) is None  # held by a live process (this one)
    claims.release(task, "not-my-token")
    assert claims.claim_path(task).exists()  # only the owner's token releases it
    claims.release(task, token)
    assert not claims.claim_path(task).exists()

    _write_claim(task, claims.HOST, _dead_pid())  # owner died on this host: stale at once
    assert claims.inspect(task)[0] == "stale"
    token = claims.try_claim(task)
    assert token and json.loads(claims.claim_path(task).read_text())["pid"] == os.getpid()
    claims.release(task, token)

    _write_claim(task, "some-other-node", 12345)  # another host: live while its heartbeat is fresh
    assert claims.inspect(task)[0] == "live" and claims.try_claim(task) is None
    _write_claim(task, "some-other-node", 12345, age_s=120)  # no heartbeat for 120 s > 60 s
    assert claims.inspect(task)[0] == "stale"
    assert claims.try_claim(task) is not None
    assert not list(claims.claim_path(task).parent.glob(".*"))  # the stale claim moved aside is gone


def test_a_zombie_owner_holds_no_claim(tmp_path, monkeypatch):
    """A worker killed with SIGKILL stays a zombie until its parent reaps it, and signal 0 still
    reaches a zombie: its claim must read as stale, not live."""
    from utenforsk.hpc import claims

    monkeypatch.setenv("UTENFORSK_CLAIM_STALE_S", "60")
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline, zombie = time.monotonic() + 10, False
        while not zombie and time.monotonic() < deadline:  # until it has exited (not reaped)
            with open(f"/proc/{pid}/stat", "rb") as f:
                zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
            time.sleep(0.01)
        assert zombie, "the child did not become a zombie within 10 s"
        os.kill(pid, 0)  # the zombie still takes signal 0
        task = tmp_path / "runs" / "baseline" / "r000001.parquet"
        _write_claim(task, claims.HOST, pid)
        assert claims.inspect(task)[0] == "stale"
    finally:
        os.waitpid(pid, 0)


def test_a_claim_interrupted_while_written_leaves_nothing(tmp_path, monkeypatch):
    """A SIGTERM (hpc.stop raises Stopped) while a claim is written must leave no claim: an empty
    one read as live, so `status` counted the task as running after the command returned (one
    failure of test_kill_9_of_a_worker_mid_task_then_rerun under load, where the pool's SIGTERM
    can reach the other worker at that moment), and no runner took it for 10 minutes."""
    from utenforsk.hpc import claims, stop

    task = tmp_path / "runs" / "baseline" / "r000002.parquet"
    dump = json.dump

    def interrupted(obj, f, *a, **k):
        f.write('{"host": ')
        raise stop.Stopped("SIGTERM")

    monkeypatch.setattr(claims.json, "dump", interrupted)
    with pytest.raises(stop.Stopped):
        claims.try_claim(task)
    monkeypatch.setattr(claims.json, "dump", dump)
    assert claims.inspect(task)[0] == "none"
    assert not list(claims.claim_path(task).parent.iterdir())  # and no half-written file either
    assert claims.try_claim(task) is not None


def test_heartbeat_keeps_a_claim_fresh(tmp_path, monkeypatch):
    from utenforsk.hpc import claims

    monkeypatch.setenv("UTENFORSK_CLAIM_STALE_S", "2.5")  # heartbeat every 0.5 s
    task = tmp_path / "runs" / "nav" / "r000000.parquet"
    claims.try_claim(task)
    os.utime(claims.claim_path(task), (time.time() - 100, time.time() - 100))
    with claims.Heartbeat([claims.claim_path(task)]):
        time.sleep(1.2)
    assert time.time() - claims.claim_path(task).stat().st_mtime < 2


# ---- bad input --------------------------------------------------------------------------------

SLURM_BAD = {
    "array_0": (["--array", "0"], ["--array", "0", "at least one"]),
    "array_above_replicates": (["--array", "5"], ["--array", "5", "more array tasks than replicates"]),
    "max_running_0": (["--array", "2", "--max-running", "0"], ["--max-running", "0"]),
    "time_malformed": (["--array", "2", "--time", "2h"], ["--time", "'2h'", "days-hours"]),
    "mem_malformed": (["--array", "2", "--mem", "lots"], ["--mem", "'lots'"]),
    "partition_malformed": (["--array", "2", "--partition", "a b"], ["--partition", "'a b'"]),
    "cpus_0": (["--array", "2", "--cpus", "0"], ["--cpus", "0"]),
}


@pytest.mark.parametrize("case", list(SLURM_BAD))
def test_slurm_bad_flags_exit_2_and_write_nothing(case, exp_file, tmp_path):
    flags, needles = SLURM_BAD[case]
    out = tmp_path / "out"
    assert_bad(cli("slurm", exp_file, "--out", out, *flags), *needles)
    assert not out.exists()


def test_slurm_missing_experiment_exits_2(tmp_path):
    out = tmp_path / "out"
    assert_bad(cli("slurm", tmp_path / "nope.yaml", "--out", out, "--array", "2"), "nope.yaml")
    assert not out.exists()


def test_status_of_a_non_experiment_dir_exits_2(tmp_path):
    assert_bad(cli("status", tmp_path / "nope"), "no such directory", "nope")
    (tmp_path / "plain").mkdir()
    assert_bad(cli("status", tmp_path / "plain"), "not an experiment directory", "plain")


@pytest.mark.parametrize("flags, needles", [
    (["--executor", "spark"], ["--executor", "spark", "local, dask"]),
    (["--executor", "dask"], ["--scheduler", "needs a scheduler"]),
    (["--scheduler", "tcp://127.0.0.1:8786"], ["--scheduler", "only used with --executor dask"]),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"], ["--scheduler", "cannot reach the Dask scheduler"]),
])
def test_executor_bad_input_exits_2_and_writes_nothing(flags, needles, exp_file, tmp_path, monkeypatch):
    monkeypatch.setenv("UTENFORSK_DASK_TIMEOUT", "2")
    out = tmp_path / "out"
    assert_bad(cli("experiment", exp_file, "--out", out, *flags), *needles)
    assert not out.exists()


# ---- the sbatch script (no cluster needed) ------------------------------------------------------

def test_slurm_writes_one_array_with_report_job(exp_file, tmp_path):
    out = tmp_path / "out"
    stdout = ok(cli("slurm", exp_file, "--out", out, "--array", "4", "--max-running", "2", "--partition",
                    "debug", "--time", "1-02:00:00", "--mem", "3G", "--cpus", "2", "--requeue"))
    assert "4 array tasks" in stdout and "submit with" in stdout
    sdir = out / "slurm"
    script = (sdir / "experiment.sbatch").read_text()
    for line in ("#SBATCH --array=0-3%2", "#SBATCH --signal=B:TERM@120", "#SBATCH --partition=debug",
                 "#SBATCH --time=1-02:00:00", "#SBATCH --mem=3G", "#SBATCH --cpus-per-task=2", "#SBATCH --requeue",
                 f"#SBATCH --output={out.resolve()}/slurm/logs/%A_%a.out",
                 f"source {Path(sys.prefix) / 'bin' / 'activate'}", f"cd {Path(ROOT)}",
                 'shard="$(( SLURM_ARRAY_TASK_ID + 1 ))/4"', "--workers 2", "trap ", "scontrol requeue"):
        assert line in script, line
    report = (sdir / "report.sbatch").read_text()
    assert f"-m utenforsk.cli report {out.resolve()}" in report and "--array" not in report
    submit = (sdir / "submit.sh").read_text()
    assert "--dependency=afterok:" in submit and "--kill-on-invalid-dep=yes" in submit
    for name in ("experiment.sbatch", "report.sbatch", "submit.sh"):
        subprocess.run(["bash", "-n", str(sdir / name)], check=True)
    assert (sdir / "logs").is_dir() and json.loads((out / "experiment.json").read_text())["name"] == "tiny"
    assert status_json(out)["total"] == {"tasks": 8, "done": 0, "missing": 8, "running": 0, "failed": 0,
                                         "unreadable": 0}
    # short limits get a shorter warning; no sbatch on PATH is one clear line
    ok(cli("slurm", exp_file, "--out", out, "--array", "2", "--time", "5:00"))
    assert "#SBATCH --signal=B:TERM@60" in (sdir / "experiment.sbatch").read_text()
    res = subprocess.run([sys.executable, "-m", "utenforsk.cli", "slurm", str(exp_file), "--out", str(out),
                          "--array", "2", "--submit"], cwd=ROOT, capture_output=True, text=True,
                         env=env(PATH=str(Path(sys.executable).parent)), timeout=120)
    assert_bad(res, "sbatch not found", "submit.sh")


def _sbatch_locally(script: Path, task_id: int, log: Path) -> subprocess.Popen:
    """Run an array task's batch script as SLURM would, without SLURM."""
    fake = env(SLURM_ARRAY_TASK_ID=str(task_id), SLURM_ARRAY_JOB_ID="4242", SLURM_JOB_ID=str(4243 + task_id))
    return subprocess.Popen(["bash", str(script)], cwd="/", env=fake, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.slow
def test_sbatch_script_forwards_sigterm_and_resumes(exp_file, reference, tmp_path):
    """SIGTERM to the batch shell only (what --signal=B:TERM does): the shell passes it on, the
    run stops cleanly with 143, and running the array task again finishes the experiment."""
    out = tmp_path / "out"
    ok(cli("slurm", exp_file, "--out", out, "--array", "1"))
    script, log = out / "slurm" / "experiment.sbatch", tmp_path / "task.log"
    proc = _sbatch_locally(script, 0, log)
    try:
        wait_for(lambda: task_files(out), proc, "task file")
        assert proc.poll() is None, "the run finished before it could be stopped; the test proves nothing"
        os.kill(proc.pid, signal.SIGTERM)  # the shell only, not its process group
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 143, text
    assert "SIGTERM (time limit, preemption or scancel): stopping shard 1/1" in text
    m = STOP_LINE.search(text)
    assert m, text
    done, left = map(int, m.groups())
    assert done == len(task_files(out)) and done + left == N_TASKS and left >= 1, text
    assert "exited with status 143" in text
    assert leftovers(out) == [] and not (out / "runs.parquet").exists()

    proc = _sbatch_locally(script, 0, log)
    assert proc.wait(timeout=240) == 0, log.read_text()
    assert f"{left} tasks run, {done} already done" in log.read_text()
    assert_identical(out, reference)


# ---- faults with the local pool -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("workers, group", [(1, False), (2, True)], ids=["serial-parent", "pool-group"])
def test_sigterm_stops_cleanly_then_rerun_completes(workers, group, exp_file, reference, tmp_path):
    """SIGTERM to the runner (or, as scancel does, to every process of it): exit 143, a clear
    line, no partial file, no claim left; the rerun does only what was left."""
    out = tmp_path / "out"
    proc = popen("experiment", exp_file, "--out", out, "--workers", workers)
    wait_for(lambda: task_files(out), proc, "task file")
    assert proc.poll() is None, "the run finished before it could be stopped; the test proves nothing"
    (os.killpg if group else os.kill)(proc.pid, signal.SIGTERM)
    code, stdout, stderr = finish(proc, timeout=120)
    assert code == 143, (code, stderr[-3000:])
    assert "Traceback" not in stderr, stderr
    m = STOP_LINE.search(stderr)
    assert m, stderr
    done, left = map(int, m.groups())
    assert "rerun or resubmit to continue" in stderr
    assert len(task_files(out)) == done and done + left == N_TASKS and left >= 1
    for rel in task_files(out):
        pq.read_table(out / rel)
    assert leftovers(out) == [] and not (out / "runs.parquet").exists()

    stdout = ok(cli("experiment", exp_file, "--out", out, "--workers", workers))
    assert f"{left} tasks run, {done} already done" in stdout, stdout
    assert_identical(out, reference)


@pytest.mark.slow
def test_kill_9_of_a_worker_mid_task_then_rerun(exp_file, reference, tmp_path):
    from utenforsk.hpc import claims

    out = tmp_path / "out"
    proc = popen("experiment", exp_file, "--out", out, "--workers", "2")

    def worker_claim():
        for p in (out / "claims").glob("*/*.claim"):
            info, _, _ = claims.read(p)
            if info and info["pid"] != proc.pid:
                task = out / "runs" / p.parent.name / p.name.replace(".claim", ".parquet")
                if not task.exists():
                    return info["pid"]
        return None

    victim = []  # the pid seen, kept: a second look could find the task already finished
    wait_for(lambda: victim.append(worker_claim()) or victim[-1] is not None, proc, "claim by a worker")
    os.kill(victim[-1], signal.SIGKILL)
    code, stdout, stderr = finish(proc, timeout=120)
    assert code == 1 and "a worker process died" in stderr and "rerun" in stderr, (code, stderr[-3000:])
    assert not (out / "runs.parquet").exists()
    st = status_json(out)
    assert st["total"]["failed"] >= 1 and st["total"]["running"] == 0, st  # the dead worker's claims
    assert any("stopped without writing" in f["why"] for f in st["failures"])

    stdout = ok(cli("experiment", exp_file, "--out", out, "--workers", "2"))
    ran, skipped = map(int, COUNTS.search(stdout).groups()[:2])
    assert ran + skipped == N_TASKS and ran >= 1
    assert_identical(out, reference)
    assert leftovers(out) == []


@pytest.mark.slow
def test_corrupt_task_file_is_detected_and_recomputed(exp_file, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "runs.parquet").unlink()
    victim = out / "runs" / "baseline" / "r000002.parquet"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncated mid-file
    st = status_json(out)
    assert st["total"]["unreadable"] == 1 and st["total"]["missing"] == 1 and victim.exists()  # read-only
    assert f"1 tasks run, {N_TASKS - 1} already done" in ok(cli("experiment", exp_file, "--out", out))
    assert_identical(out, reference)


@pytest.mark.slow
def test_status_counts_claims_and_eta_and_runner_respects_live_claims(exp_file, reference, tmp_path):
    from utenforsk.hpc import claims

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "runs.parquet").unlink()
    gone = {name: out / "runs" / name for name in ("baseline/r000001.parquet", "nav/r000001.parquet",
                                                   "nav/r000003.parquet")}
    for p in gone.values():
        p.unlink()
    live = _write_claim(gone["baseline/r000001.parquet"], claims.HOST, os.getpid())  # "running" (this pid lives)
    _write_claim(gone["nav/r000001.parquet"], claims.HOST, _dead_pid())           # owner died: "failed"
    claims.record_failure(gone["nav/r000003.parquet"], ValueError("boom"))          # recorded error: "failed"

    st = status_json(out)
    assert st["total"] == {"tasks": 8, "done": 5, "missing": 3, "running": 1, "failed": 2, "unreadable": 0}
    by = {r["scenario"]: r for r in st["scenarios"]}
    assert (by["baseline"]["missing"], by["nav"]["missing"], by["nav"]["failed"]) == (1, 2, 2)
    assert st["median_task_seconds"] > 0 and st["running_workers"] == 1
    assert st["eta_seconds"] == 3 * st["median_task_seconds"]  # 3 missing at 1 running worker
    assert any("ValueError: boom" in f["why"] for f in st["failures"])
    text = ok(cli("status", out))
    assert "ETA" in text and "failed: nav replicate 3: ValueError: boom" in text

    # a runner leaves the live claim alone and takes over the failed ones; no results while one is out
    stdout = ok(cli("experiment", exp_file, "--out", out))
    assert "2 tasks run, 5 already done, 1 run by other runners" in stdout, stdout
    assert "still being run by other runners" in stdout and not (out / "runs.parquet").exists()
    assert live.exists() and not claims.failure_path(gone["nav/r000003.parquet"]).exists()
    live.unlink()  # the "other runner" gave up without writing
    assert "1 tasks run, 7 already done" in ok(cli("experiment", exp_file, "--out", out))
    assert_identical(out, reference)
    assert status_json(out)["total"]["done"] == N_TASKS


@pytest.mark.slow
def test_shard_with_a_task_held_elsewhere_exits_75(exp_file, tmp_path):
    """A claim of a runner on another node (perhaps dead, not yet stale) holds one of the shard's
    tasks: the shard runs the rest, says so in one line and exits 75, so SLURM's afterok does not
    start the report job; the held task stays missing."""
    from utenforsk.hpc import claims

    out = tmp_path / "out"
    held = out / "runs" / "nav" / "r000002.parquet"  # shard 1/2: replicates 0 and 2
    claim = _write_claim(held, "some-other-node", 12345)
    res = cli("experiment", exp_file, "--out", out, "--shard", "1/2")
    assert res.returncode == claims.EXIT_HELD == 75, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr
    assert "1 tasks of this shard are held by other runners" in res.stderr, res.stderr
    assert "3 tasks run, 0 already done, 1 run by other runners" in res.stdout, res.stdout
    assert "shard 1/2 done" not in res.stdout
    assert task_files(out) == ["runs/baseline/r000000.parquet", "runs/baseline/r000002.parquet",
                               "runs/nav/r000000.parquet"]
    assert claim.exists() and not held.exists() and not (out / "runs.parquet").exists()


@pytest.mark.slow
def test_two_runners_on_one_dir_lose_nothing_and_count_nothing_twice(exp_file, reference, tmp_path):
    out = tmp_path / "out"
    procs = [popen("experiment", exp_file, "--out", out) for _ in range(2)]
    results = [finish(p) for p in procs]
    ran = []
    for code, stdout, stderr in results:
        assert code == 0, (code, stderr[-3000:])
        m = COUNTS.search(stdout)
        assert m, stdout
        ran.append(int(m.group(1)))
    assert sum(ran) == N_TASKS, (ran, [r[1] for r in results])  # every task run exactly once
    assert any("wrote" in r[1] and "runs.parquet" in r[1] for r in results)
    assert_identical(out, reference)
    assert leftovers(out) == []


# ---- Dask -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, env={"UTENFORSK_THREADS": "1"})
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.mark.slow
def test_dask_then_local_pool_union_equals_a_local_run(exp_file, reference, dask_cluster, tmp_path):
    """Half the tasks by Dask workers (shard 1/2, writing the task files themselves), the rest by
    the local pool into the same directory: the same runs.parquet, byte for byte."""
    out = tmp_path / "mixed"
    stdout = ok(cli("experiment", exp_file, "--out", out, "--executor", "dask", "--scheduler", dask_cluster,
                    "--shard", "1/2"))
    assert "4 tasks run, 0 already done" in stdout and "shard 1/2 done" in stdout, stdout
    assert task_files(out) == [f"runs/{s}/r{r:06d}.parquet" for s in ("baseline", "nav") for r in (0, 2)]
    for rel in task_files(out):  # Dask workers recorded where and how long
        info = json.loads(pq.read_metadata(out / rel).metadata[b"utenforsk"])
        assert info["seconds"] > 0
    assert "4 tasks run, 4 already done" in ok(cli("experiment", exp_file, "--out", out, "--workers", "2"))
    assert_identical(out, reference)
    assert leftovers(out) == []


# ---- a real SLURM cluster -------------------------------------------------------------------------

def _slurm_reason() -> str | None:
    for tool in ("sbatch", "squeue", "scontrol", "sinfo"):
        if shutil.which(tool) is None:
            return f"no SLURM client ({tool} not on PATH); tests/slurm/setup.sh starts a one-node cluster as root"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
        nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"SLURM does not answer ({exc})"
    if "UP" not in ping.stdout:
        return f"slurmctld does not answer `scontrol ping`: {(ping.stdout + ping.stderr).strip()[:200]}"
    if not re.search(r"^(idle|mixed|allocated)", nodes.stdout, re.M):
        return f"no usable SLURM node (sinfo: {nodes.stdout.strip()[:200]!r})"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    """Skip without a cluster, saying why; fail instead where one was meant to be started
    (``UTENFORSK_SLURM_REQUIRED=1``, set by .ci/run as root with apt-get)."""
    reason = _slurm_reason()
    if reason is None:
        return
    if os.environ.get("UTENFORSK_SLURM_REQUIRED") == "1":
        pytest.fail(f"a SLURM cluster was required but {reason}; see tests/slurm/setup.sh and /var/log/slurm/")
    pytest.skip(reason)


def _wait_jobs(ids: list[str], timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while True:
        res = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T"], capture_output=True, text=True)
        if res.returncode == 0 and not res.stdout.strip():
            return
        if time.monotonic() > deadline:
            subprocess.run(["scancel", *ids])
            pytest.fail(f"SLURM jobs {ids} not finished within {timeout} s: {res.stdout}")
        time.sleep(1)


def _job_states(job: str) -> dict[str, tuple[str, str]]:
    """Array task or job id -> (JobState, ExitCode), from `scontrol show job` (kept MinJobAge s)."""
    res = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True)
    states = {}
    for line in res.stdout.splitlines():
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        key = f"{f['ArrayJobId']}_{f['ArrayTaskId']}" if f.get("ArrayTaskId") else f["JobId"]
        states[key] = (f.get("JobState"), f.get("ExitCode"))
    return states


def _submitted(out: Path) -> dict:
    return json.loads((out / "slurm" / "jobs.json").read_text())[-1]


@pytest.mark.slow
def test_slurm_array_equals_a_local_run(slurm_cluster, exp_file, reference, tmp_path):
    out = tmp_path / "out"
    stdout = ok(cli("slurm", exp_file, "--out", out, "--array", "4", "--max-running", "4", "--time", "0:10:00",
                    "--submit"))
    job = _submitted(out)
    assert f"submitted array job {job['array_job']}" in stdout and job["array"] == "0-3%4"
    _wait_jobs([job["array_job"], job["report_job"]])
    states = _job_states(job["array_job"])
    assert states == {f"{job['array_job']}_{i}": ("COMPLETED", "0:0") for i in range(4)}, states
    assert _job_states(job["report_job"])[job["report_job"]] == ("COMPLETED", "0:0")
    for i in range(4):  # one log per array task, each ran its own shard
        text = (out / "slurm" / "logs" / f"{job['array_job']}_{i}.out").read_text()
        assert f"(shard {i + 1}/4)" in text and "2 tasks run, 0 already done" in text, text
    assert_identical(out, reference)  # runs.parquet written by the report job
    assert leftovers(out) == []
    st = status_json(out)
    assert st["total"]["done"] == N_TASKS and st["slurm"]["array_job"] == job["array_job"]
    assert "every task is done; nothing submitted" in ok(cli("slurm", exp_file, "--out", out, "--array", "4",
                                                            "--submit"))


@pytest.mark.slow
def test_slurm_task_stopped_by_sigterm_is_redone_on_resubmission(slurm_cluster, exp_file, reference, tmp_path):
    out = tmp_path / "out"
    ok(cli("slurm", exp_file, "--out", out, "--array", "2", "--time", "0:10:00", "--submit"))
    job = _submitted(out)
    task0 = f"{job['array_job']}_0"
    wait_for(lambda: any(p.name.startswith("r000000") for p in (out / "runs").glob("*/r*.parquet")), None,
             "first task file of shard 1/2", timeout=240)
    subprocess.run(["scancel", "--batch", "--signal=TERM", task0], check=True)  # as --signal=B:TERM does
    _wait_jobs([job["array_job"], job["report_job"]])
    states = _job_states(job["array_job"])
    assert states[task0] == ("FAILED", "143:0"), states
    assert states[f"{job['array_job']}_1"] == ("COMPLETED", "0:0"), states
    log = (out / "slurm" / "logs" / f"{task0}.out").read_text()
    m = STOP_LINE.search(log)
    assert m and "exited with status 143" in log, log
    done0, left0 = map(int, m.groups())
    assert left0 >= 1 and not (out / "runs.parquet").exists()  # the report job never ran
    assert leftovers(out) == []

    stdout = ok(cli("slurm", exp_file, "--out", out, "--array", "2", "--time", "0:10:00", "--submit"))
    again = _submitted(out)
    assert again["array"] == "0", again  # only the shard with missing tasks
    assert "--array=0" in stdout
    _wait_jobs([again["array_job"], again["report_job"]])
    log = (out / "slurm" / "logs" / f"{again['array_job']}_0.out").read_text()
    assert f"{left0} tasks run, {done0} already done" in log, log
    assert _job_states(again["report_job"])[again["report_job"]] == ("COMPLETED", "0:0")
    assert_identical(out, reference)


def test_sigterm_inside_a_shielded_block_stops_after_it():
    """A SIGTERM while a kernel compiles must not interrupt the compiler (llvmlite prints
    tracebacks from half-built objects); it stops the task as soon as the block ends."""
    from utenforsk.hpc import stop

    with stop.on_sigterm():
        finished = False
        with pytest.raises(stop.Stopped):
            with stop.shielded():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)  # the handler has run by now, and must not have raised
                finished = True
        assert finished
