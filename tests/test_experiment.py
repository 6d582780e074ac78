"""``utenforsk experiment`` / ``utenforsk report``: determinism, shards, resume, bad input.

Every case runs the real command (``python -m utenforsk.cli``) on a tiny experiment (scale 0.002,
10 burn-in + 2 policy years, 2 scenarios x 4 replicates = 8 tasks of about a second each). One
uninterrupted run with ``--workers 1`` is the reference; every other way of producing the results
(2 workers, 2 shards + ``report``, SIGKILL + rerun, a corrupt task file + rerun) must reproduce its
``runs.parquet`` exactly. Bad input must exit 2 with one error line and leave an earlier result
directory untouched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "configs" / "norway" / "baseline.yaml"
N_TASKS = 8  # 2 scenarios x 4 replicates

HEAD = f"""name: tiny
model: {BASELINE}
scale: 0.002
horizon_years: 2
burn_in_years: 10
replicates: 4
seed: {{seed}}
"""
SCENARIOS = """scenarios:
  baseline: {}
  nav: {interventions: [nav_youth_guarantee]}
"""
HYPOTHESES = """hypotheses:
  - name: reduces_neet
    statement: the scenario reduces the NEET rate 15-29
    metric: {metric}
    scenario: {scenario}
    compare_to: baseline
    direction: reduces
"""
# an otherwise valid inline intervention (only its coverage is bad)
INLINE = """scenarios:
  baseline: {{}}
  inl:
    interventions:
      - name: inl
        description: inline test intervention
        evidence: test
        who: {{ages: [16, 30]}}
        what: {{odds: {{job_finding: {{value: 1.1, range: [1.0, 1.2], source: test}}}}}}
        coverage: {{value: {coverage}, range: [0, 1], source: test}}
        take_up: {{value: 1.0, range: [0, 1], source: test}}
        when: {{start_year: 2026}}
"""


def experiment_text(seed: int = 7, scenarios: str = SCENARIOS, metric: str = "neet_rate_15_29",
                    extra: str = "", scenario: str = "nav") -> str:
    return HEAD.format(seed=seed) + scenarios + HYPOTHESES.format(metric=metric, scenario=scenario) + extra


def cli(*args, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    return subprocess.run([sys.executable, "-m", "utenforsk.cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, (res.returncode, res.stdout[-2000:], res.stderr[-4000:])
    return res.stdout


def assert_bad(res: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, exactly one error message containing every needle, no traceback."""
    err = res.stderr
    assert res.returncode == 2, (res.returncode, err[-4000:], res.stdout[-2000:])
    assert "Traceback" not in err, err
    assert err.count("error:") == 1, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in stderr:\n{err}"
    return err


def task_files(out: Path) -> list[str]:
    """Finished task files as the runner names them (hidden temp files are not tasks)."""
    return sorted(str(p.relative_to(out)) for p in (out / "runs").glob("*/r*.parquet"))


def runs(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "runs.parquet")
    return df.sort_values(["scenario", "replicate", "metric"], kind="stable").reset_index(drop=True)


def assert_same_results(out: Path, ref: Path) -> None:
    pd.testing.assert_frame_equal(runs(out), runs(ref), check_exact=True)
    assert (out / "effects.csv").read_bytes() == (ref / "effects.csv").read_bytes()


def snapshot(out: Path) -> dict[str, tuple]:
    """Every file and directory under ``out`` (hidden ones too) with mtime and content."""
    return {str(p.relative_to(out)): (None, None) if p.is_dir() else (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(out.rglob("*"))}


@pytest.fixture(scope="module")
def reference(exp_file, tmp_path_factory) -> Path:
    """The uninterrupted, unsharded run with one worker."""
    out = tmp_path_factory.mktemp("ref") / "out"
    stdout = ok(cli("experiment", exp_file, "--out", out, "--workers", "1"))
    assert f"{N_TASKS} tasks run, 0 already done" in stdout
    assert len(task_files(out)) == N_TASKS
    for name in ("runs.parquet", "effects.csv", "economics.csv", "ledger.csv", "ceac.csv",
                 "economics_sensitivity.csv", "hypotheses.csv", "report.md", "experiment.json"):
        assert (out / name).is_file(), name
    assert list((out / "figures").glob("*.png"))
    df = runs(out)
    assert sorted(df.scenario.unique()) == ["baseline", "nav"]
    assert sorted(df.replicate.unique()) == [0, 1, 2, 3]
    return out


def test_ledger_sums_to_the_public_budget_change(reference):
    """On real runs: per scenario, the payer ledger's items add up to the economics table's net
    change in public budgets (relative 1e-9: float sums of ~20 items x years)."""
    econ = pd.read_csv(reference / "economics.csv").set_index("scenario")
    led = pd.read_csv(reference / "ledger.csv")
    assert set(led.scenario) == {"nav"} and set(led.payer) <= {"municipality", "county", "state"}
    total = led.groupby("scenario")["pv_cost_change_nok"].sum()
    assert total["nav"] == pytest.approx(econ.loc["nav", "pv_public_budget_change_nok"], rel=1e-9)
    prog = led[led["item"] == "programme:nav_youth_guarantee"]
    assert set(prog.payer) == {"state"} and prog["cost_change_nok"].sum() > 0


def test_workers_do_not_change_results(exp_file, reference, tmp_path):
    out = tmp_path / "w2"
    stdout = ok(cli("experiment", exp_file, "--out", out, "--workers", "2"))
    assert f"{N_TASKS} tasks run, 0 already done" in stdout
    assert_same_results(out, reference)
    for name in ("economics.csv", "ledger.csv", "ceac.csv", "economics_sensitivity.csv", "hypotheses.csv"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_shards_then_report_equal_one_run(exp_file, reference, tmp_path):
    out = tmp_path / "sharded"
    stdout = ok(cli("experiment", exp_file, "--out", out, "--shard", "1/2"))
    assert "4 tasks run, 0 already done" in stdout
    assert "shard 1/2 done" in stdout
    assert not (out / "runs.parquet").exists()
    assert not (out / "effects.csv").exists()
    assert task_files(out) == [f"runs/{s}/r{r:06d}.parquet" for s in ("baseline", "nav") for r in (0, 2)]

    ok(cli("experiment", exp_file, "--out", out, "--shard", "2/2"))
    assert len(task_files(out)) == N_TASKS
    # whatever the last shard wrote, `report` must rebuild the results from the task files alone
    for name in ("runs.parquet", "effects.csv", "economics.csv", "hypotheses.csv", "report.md"):
        (out / name).unlink(missing_ok=True)
    stdout = ok(cli("report", out))
    assert "runs.parquet" in stdout
    assert_same_results(out, reference)
    assert (out / "report.md").is_file()


def test_resume_after_sigkill(exp_file, reference, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "utenforsk.cli", "experiment", str(exp_file), "--out", str(out),
           "--workers", "1"]
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not task_files(out):
            assert proc.poll() is None, f"the run ended (status {proc.returncode}) before any task was written"
            assert time.monotonic() < deadline, "no task file within 120 s"
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed; the test proves nothing"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    done = task_files(out)
    assert 1 <= len(done) < N_TASKS, done
    for rel in done:  # every file under a task's name is complete (writes are atomic)
        pq.read_table(out / rel)
    assert not (out / "runs.parquet").exists()
    # a partial write left behind (as a kill during the write leaves it) must not count as a task
    partial = out / "runs" / "nav" / ".r000003.parquet.killed.tmp"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"PAR1 partial")
    assert task_files(out) == done

    stdout = ok(cli(*cmd[3:]))
    assert f"{N_TASKS - len(done)} tasks run, {len(done)} already done" in stdout, stdout
    assert len(task_files(out)) == N_TASKS
    assert_same_results(out, reference)


def test_corrupt_task_file_is_recomputed(exp_file, reference, tmp_path):
    out = tmp_path / "corrupt"
    shutil.copytree(reference, out)
    for name in ("runs.parquet", "effects.csv"):
        (out / name).unlink()
    victim = out / "runs" / "nav" / "r000001.parquet"
    victim.write_bytes(victim.read_bytes()[:8])  # truncated: magic bytes only, no footer
    with pytest.raises(Exception):
        pq.read_table(victim)

    stdout = ok(cli("experiment", exp_file, "--out", out, "--workers", "1"))
    assert f"1 tasks run, {N_TASKS - 1} already done" in stdout, stdout
    pd.testing.assert_frame_equal(pd.read_parquet(victim),
                                  pd.read_parquet(reference / "runs" / "nav" / "r000001.parquet"),
                                  check_exact=True)
    assert_same_results(out, reference)


# ---- bad input ------------------------------------------------------------------------------

BAD = {
    # id: (file name, experiment text, extra flags, needles besides the file name)
    "unknown_intervention": (
        "bad_unknown_iv.yaml",
        experiment_text(scenarios=SCENARIOS.replace("nav_youth_guarantee", "no_such_intervention")),
        (), ["scenarios.nav", "no_such_intervention", "unknown intervention"]),
    "inline_coverage_above_1": (
        "bad_inline.yaml", experiment_text(scenarios=INLINE.format(coverage=1.5), scenario="inl"),
        (), ["scenarios.inl", "coverage", "1.5"]),
    "missing_intervention_file": (
        "bad_missing_file.yaml",
        experiment_text(scenarios=SCENARIOS.replace("nav_youth_guarantee", "missing.yaml")),
        (), ["scenarios.nav.interventions[0]", "missing.yaml", "not found"]),
    "hypothesis_unknown_metric": (
        "bad_hyp_metric.yaml", experiment_text(metric="no_such_metric"),
        (), ["hypotheses[0].metric", "no_such_metric", "unknown metric"]),
    "no_baseline": (
        "bad_no_baseline.yaml",
        experiment_text(scenarios="scenarios:\n  nav: {interventions: [nav_youth_guarantee]}\n"),
        (), ["scenarios", "baseline"]),
    "unknown_top_level_key": (
        "bad_top_key.yaml", experiment_text(extra="bogus_key: 3\n"),
        (), ["bogus_key", "unknown key"]),
    "missing_cost_file": (
        "bad_costs.yaml", experiment_text(extra="economics: {costs: no_such_costs.yaml}\n"),
        (), ["economics.costs", "no_such_costs.yaml", "cost file not found"]),
    "unknown_intervention_parameter": (
        "bad_iv_param.yaml",
        experiment_text(extra="uncertainty: {mode: parameter, parameters: [interventions.nope.what.odds.job_finding]}\n"),
        (), ["uncertainty.parameters[0]", "interventions.nope.what.odds.job_finding",
             "no intervention of that name", "interventions.nav_youth_guarantee.PATH"]),
    "end_year_before_start": (
        "bad_end_year.yaml",
        experiment_text(scenarios=SCENARIOS.replace(
            "{interventions: [nav_youth_guarantee]}",
            "{interventions: [nav_youth_guarantee], overrides: {interventions.nav_youth_guarantee.when.end_year: 2020}}")),
        (), ["scenarios.nav.interventions.nav_youth_guarantee.when.end_year", "2020", "before start_year 2026"]),
    "override_of_absent_intervention": (
        "bad_override.yaml",
        experiment_text(scenarios=SCENARIOS.replace(
            "{interventions: [nav_youth_guarantee]}",
            "{interventions: [nav_youth_guarantee], overrides: {interventions.ips_youth.coverage: 0.5}}")),
        (), ["scenarios.nav.overrides.interventions.ips_youth.coverage", "no intervention of that name"]),
    "for_whom_unknown_attribute": (
        "bad_for_whom.yaml", experiment_text(extra="for_whom: [sex, nope]\n"),
        (), ["for_whom", "unknown attribute 'nope'", "municipality"]),
    "follow_up_beyond_80_years": (
        "bad_follow.yaml", experiment_text(extra="follow_cohorts_to_age: 30\n").replace(
            "horizon_years: 2", "horizon_years: 70"),
        (), ["follow_cohorts_to_age", "more than 80"]),
    "drawn_and_fixed_by_a_scenario": (
        "bad_drawn_fixed.yaml",
        experiment_text(scenarios=SCENARIOS.replace(
            "{interventions: [nav_youth_guarantee]}",
            "{interventions: [nav_youth_guarantee], overrides: {interventions.nav_youth_guarantee.coverage: 0.9}}"),
            extra="uncertainty: {mode: parameter, parameters: [interventions.nav_youth_guarantee.coverage]}\n"),
        (), ["scenarios.nav.overrides.interventions.nav_youth_guarantee.coverage",
             "drawn in parameter mode and also fixed"]),
    "starts_after_the_stated_horizon_when_followed": (
        "bad_late_start.yaml",
        experiment_text(scenarios=SCENARIOS.replace(
            "{interventions: [nav_youth_guarantee]}",
            "{interventions: [nav_youth_guarantee], overrides: {interventions.nav_youth_guarantee.when.start_year: 2030}}"),
            extra="follow_cohorts_to_age: 21\n"),
        (), ["scenarios.nav.interventions.nav_youth_guarantee.when.start_year", "2030", "after the stated horizon"]),
    "shard_out_of_range": (
        "good_shard.yaml", experiment_text(), ("--shard", "3/2"), ["--shard", "3/2"]),
}


def test_inline_fixture_is_valid_but_for_coverage(tmp_path):
    """The inline intervention used below fails only because of its coverage."""
    path = tmp_path / "inline_ok.yaml"
    path.write_text(experiment_text(scenarios=INLINE.format(coverage=0.5), scenario="inl"), encoding="utf-8")
    from utenforsk.experiment.runner import Plan

    Plan(path)  # validates everything (model, interventions, hypotheses); raises on bad input


@pytest.fixture(scope="module")
def good_dir(reference, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("good") / "out"
    shutil.copytree(reference, out)
    return out, snapshot(out)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_experiment_exits_2_and_keeps_results(case, good_dir, tmp_path):
    out, before = good_dir
    name, text, flags, needles = BAD[case]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    needles = needles if case == "shard_out_of_range" else [name, *needles]
    assert_bad(cli("experiment", path, "--out", out, *flags), *needles)
    assert snapshot(out) == before


def test_different_experiment_in_same_dir_is_refused(good_dir, tmp_path):
    out, before = good_dir
    path = tmp_path / "other_seed.yaml"
    path.write_text(experiment_text(seed=8), encoding="utf-8")  # valid, but a different experiment
    assert_bad(cli("experiment", path, "--out", out), "--out", str(out), "different experiment")
    assert snapshot(out) == before
    assert_bad(cli("report", out, "--experiment", path), "--out", str(out), "different experiment")
    assert snapshot(out) == before


def test_report_refuses_missing_tasks(reference, tmp_path):
    out = tmp_path / "gaps"
    shutil.copytree(reference, out)
    (out / "runs.parquet").unlink()
    (out / "runs" / "baseline" / "r000001.parquet").unlink()
    (out / "runs" / "nav" / "r000003.parquet").unlink()
    assert_bad(cli("report", out), f"2 of {N_TASKS} tasks are missing", str(out))
    assert not (out / "runs.parquet").exists()
    # an unreadable task file counts as missing too (not a traceback)
    victim = out / "runs" / "nav" / "r000000.parquet"
    victim.write_bytes(victim.read_bytes()[:8])
    assert_bad(cli("report", out), f"3 of {N_TASKS} tasks are missing", str(out))
    assert not (out / "runs.parquet").exists()


def test_editing_the_model_file_changes_the_experiment_hash(tmp_path):
    """Stored tasks are tied to file contents, not paths: an edited model is a new experiment."""
    import shutil

    from utenforsk.experiment.runner import Plan

    model_dir = tmp_path / "norway"
    shutil.copytree(Path(__file__).resolve().parents[1] / "configs" / "norway", model_dir)
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"name: h\nmodel: {model_dir / 'baseline.yaml'}\nscale: 0.002\n"
                   "scenarios: {baseline: {}, nav: {interventions: [nav_youth_guarantee]}}\n")
    before = Plan(exp).hash
    assert Plan(exp, replicates=7).hash == before  # the replicate count is not part of it
    text = (model_dir / "pathways.yaml").read_text()
    old = "probability: {value: 0.088, range: [0.05, 0.16]"  # job_finding's line
    assert text.count(old) == 1
    (model_dir / "pathways.yaml").write_text(text.replace(old, "probability: {value: 0.08, range: [0.05, 0.16]", 1))
    assert Plan(exp).hash != before


@pytest.mark.parametrize("extra, key", [
    ("report_years: [1999]\n", "report_years[0]"),
    ("uncertainty: {mode: parameter, parameters: [attributes.sex.at_birth.all.female]}\n",
     "uncertainty.parameters[0]"),
])
def test_report_years_and_drawn_shares_are_checked_before_running(tmp_path, extra, key):
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"name: v\nmodel: {Path(__file__).resolve().parents[1] / 'configs/norway/baseline.yaml'}\n"
                   "scale: 0.002\nscenarios: {baseline: {}}\n" + extra)
    res = subprocess.run([sys.executable, "-m", "utenforsk.cli", "experiment", str(exp), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and key in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()
