"""Calibration, validation and sensitivity (utenforsk/calibration/, the three CLI commands).

Small models only: the exact Markov model (tests/configs/markov_ranges.yaml) at scale 0.01 for
recovery and sensitivity, the baseline at scale 0.005 for validation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from utenforsk.calibration.metrics import MetricSpec
from utenforsk.calibration.simulate import replicate_seeds, simulate

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "tests" / "configs"
MARKOV = CONFIGS / "markov_ranges.yaml"
TARGETS = ROOT / "configs" / "norway" / "targets.yaml"
BASELINE = ROOT / "configs" / "norway" / "baseline.yaml"
ENV = {**os.environ, "UTENFORSK_THREADS": "1"}


def cli(*args, timeout=600):
    # not `python -m utenforsk.cli`: run as __main__, cli.py would not see the commands that
    # cli_calibration registers on the imported utenforsk.cli module
    return subprocess.run([sys.executable, "-c", "from utenforsk.cli import main; main()", *map(str, args)],
                          capture_output=True,
                          text=True, cwd=ROOT, env=ENV, timeout=timeout)


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---- metrics --------------------------------------------------------------------------------------
def test_probe_matches_the_model_outputs():
    """Metrics from the probe equal the model's own tallies (same people, ages, states)."""
    from utenforsk.calibration.metrics import Probe, probed_model
    from utenforsk.core.kernel import CO_US_DONE, CO_US_DUE
    from utenforsk.experiment.metrics import task_metrics
    from utenforsk.model import resolve_config
    from utenforsk.outputs import periods

    class Recording(Probe):  # also keeps the cohort tallies at the end of the burn-in
        def __call__(self, model, month):
            if month == self.first_month - 1:
                self.before = model.tally.cohort.sum(axis=(0, 1)).copy()
            super().__call__(model, month)

    cfg = resolve_config(BASELINE, 0.003, None, horizon_years=2)
    specs = [MetricSpec(metric="neet_rate"), MetricSpec(metric="health_benefit_rate"),
             MetricSpec(metric="kindergarten_coverage", ages=(1, 3)), MetricSpec(metric="population"),
             MetricSpec(metric="upper_secondary_completion_5y"),
             MetricSpec(metric="upper_secondary_completion_5y", ages=(0, 1))]
    probe = Recording(specs, cfg)
    model = probed_model(cfg, probe, seed=3)
    model.run_model()
    v = probe.values()
    tm = task_metrics(model)
    assert v[0] == pytest.approx(tm["neet_rate_15_29"], abs=1e-12)
    assert v[1] == pytest.approx(tm["health_benefit_rate_18_29"], abs=1e-12)
    assert v[2] == pytest.approx(tm["kindergarten_coverage_1_2"], abs=1e-12)
    assert v[3] == pytest.approx(periods(model).population_0_29.mean(), rel=1e-9)
    # completion: the people the kernel's cohort tally finds due in the window (by difference)
    d = model.tally.cohort.sum(axis=(0, 1)) - probe.before
    assert d[CO_US_DUE] > 0 and v[4] == pytest.approx(d[CO_US_DONE] / d[CO_US_DUE], abs=1e-12)
    assert np.isnan(v[5])  # `ages` applies: nobody is due 5 years after starting at age 0


# ---- validation -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_shipped_baseline_passes_its_targets(tmp_path):
    # the targets file's scale (0.01) with half its replicates: the fit is checked where it was made
    r = cli("validate", BASELINE, "--targets", TARGETS, "--replicates", 4, "--workers", 2, "--out", tmp_path / "v")
    assert r.returncode == 0, r.stdout + r.stderr
    md = (tmp_path / "v" / "validation.md").read_text()
    assert "targets within tolerance" in md and "FAIL" not in md
    assert (tmp_path / "v" / "figures" / "validation.png").stat().st_size > 1000
    table = (tmp_path / "v" / "validation.csv").read_text()
    assert "neet_rate_15_29" in table and "child_welfare_0_17" in table


@pytest.mark.slow
def test_mis_set_parameter_fails_naming_the_target(tmp_path):
    # vocational dropout at the top of its range: vocational completion falls far below Udir's 70%
    bad = write(tmp_path / "bad.yaml", {"base": str(BASELINE), "transitions": {"vocational_dropout": {
        "probability": {"value": 0.009, "range": [0.004, 0.009], "source": "test: deliberately mis-set"}}}})
    r = cli("validate", bad, "--targets", TARGETS, "--replicates", 2, "--scale", 0.005,
            "--workers", 2, "--out", tmp_path / "v")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "completion_vocational" in r.stdout
    csv = (tmp_path / "v" / "validation.csv").read_text().splitlines()
    row = next(line for line in csv if line.startswith("completion_vocational,"))
    assert ",FAIL," in row


# ---- calibration: recovery ------------------------------------------------------------------------
def _markov_start(tmp_path):
    """The Markov test model started 0.015 away from its true a_to_b and b_to_c, wide ranges."""
    return write(tmp_path / "start.yaml", {"base": str(MARKOV), "transitions": {
        "a_to_b": {"probability": {"value": 0.035, "range": [0.005, 0.05], "source": "start"}},
        "b_to_c": {"probability": {"value": 0.045, "range": [0.01, 0.06], "source": "start"}}}})


def _markov_targets(tmp_path, truth_seed=777):
    """Targets made from the Markov model at its true values (a_to_b 0.02, b_to_c 0.03), with
    seeds independent of the calibration's, so the recovery also faces Monte Carlo error."""
    from utenforsk.model import resolve_config

    specs = {"b_young": MetricSpec(metric="neet_rate", ages=(1, 10)),
             "b_teen": MetricSpec(metric="neet_rate", ages=(10, 20))}
    cfg = resolve_config(MARKOV, 0.01, None, horizon_years=1, burn_in_years=20)
    obs = simulate(cfg, list(specs.values()), replicate_seeds(truth_seed, 4)).mean(axis=0)
    targets = {"name": "markov", "tolerance_rule": "test", "simulation":
               {"scale": 0.01, "horizon_years": 1, "burn_in_years": 20, "replicates": 2, "seed": 11},
               "targets": {n: {**s.model_dump(exclude_none=True, exclude={"subgroup"}), "value": float(v),
                               "tolerance": 0.01, "year": "test", "definition": "share in b", "source": "the model",
                               "tolerance_basis": "test"} for (n, s), v in zip(specs.items(), obs)}}
    for t in targets["targets"].values():
        t["ages"] = list(t["ages"])
    return write(tmp_path / "targets.yaml", targets)


@pytest.mark.slow
def test_calibration_recovers_known_parameters(tmp_path):
    """Start away from the truth (a_to_b 0.035, b_to_c 0.045) and recover (0.02, 0.03).

    Tolerance. The share in b at 1-9 moves by ~7.4 per unit of a_to_b (finite differences at
    scale 0.02, 6 replicates); the share at 10-19 also falls with b_to_c (active from age 10). The
    Monte Carlo SE of each target mean (4 replicates for the targets, 2 for the fit, independent
    seeds, scale 0.01) is ~0.002 in share, i.e. ~0.0003 in a_to_b: 3 SE ~0.001. TPE's resolution
    with 20 trials over ranges 0.045 and 0.05 wide is ~5% of the range (~0.0025). Tolerance: the
    two added and rounded up, 0.004 for a_to_b and 0.006 for b_to_c (20% of the true values),
    against a start 0.015 away (75% and 50%). Measured: 0.0215 and 0.0296.
    """
    targets = _markov_targets(tmp_path)
    start = _markov_start(tmp_path)
    params = write(tmp_path / "params.yaml", {
        "parameters": {"transitions.a_to_b.probability": {}, "transitions.b_to_c.probability": {}},
        "optimizer": {"sampler": "tpe", "trials": 20, "seed": 3, "startup_trials": 6}})
    out = tmp_path / "calibrated.yaml"
    r = cli("calibrate", start, "--targets", targets, "--params", params, "--out", out, "--workers", 1)
    assert r.returncode == 0, r.stdout + r.stderr
    from utenforsk.config.loader import load_model_config

    fitted = load_model_config(out)
    a = fitted.transitions["a_to_b"].probability
    b = fitted.transitions["b_to_c"].probability
    assert abs(a.value - 0.02) < 0.004, a
    assert abs(b.value - 0.03) < 0.006, b
    assert a.source.startswith("calibrated: utenforsk calibrate") and a.range == (0.005, 0.05)
    text = out.read_text()
    assert "# loss" in text and "b_young" in text and "utenforsk 0." in text
    record = json.loads(out.with_name("calibrated.fit.json").read_text())
    print("recovered", a.value, b.value, "loss", record["loss"], "start", record["start_loss"])
    assert record["loss"] < record["start_loss"] and record["trials"] == 20
    # resumable: the same command finds the finished study and runs nothing more
    r2 = cli("calibrate", start, "--targets", targets, "--params", params, "--out", out, "--workers", 1)
    assert r2.returncode == 0, r2.stderr
    assert json.loads(out.with_name("calibrated.fit.json").read_text())["trials"] == 20
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    summaries = optuna.get_all_study_summaries(JournalStorage(JournalFileBackend(str(out.with_suffix(".journal")))))
    assert [s.n_trials for s in summaries] == [20]


def test_interrupted_study_resumes_with_the_missing_trials(tmp_path):
    """Trials already in the journal are kept; a rerun adds only the missing ones."""
    from utenforsk.calibration import calibrate as cal
    from utenforsk.calibration.targets import load_params, load_targets
    from utenforsk.config.loader import load_model_config
    from utenforsk.model import resolve_config

    targets = write(tmp_path / "t.yaml", {
        "name": "t", "tolerance_rule": "test", "simulation": {"scale": 0.005, "horizon_years": 1, "replicates": 1,
                                                              "burn_in_years": 12},
        "targets": {"b": {"metric": "neet_rate", "ages": [1, 10], "value": 0.2, "tolerance": 0.02, "year": "-",
                          "definition": "-", "source": "-", "tolerance_basis": "-"}}})
    params = write(tmp_path / "p.yaml", {"parameters": {"transitions.a_to_b.probability": {}},
                                         "optimizer": {"sampler": "random", "trials": 2}})
    cfg = load_model_config(MARKOV)
    tf = load_targets(targets, cfg)
    pf, ranges = load_params(params, cfg, tf)
    sim = tf.simulation.model_copy(update={"scale": 0.005})
    rcfg = resolve_config(MARKOV, 0.005, None, horizon_years=1, burn_in_years=12)
    journal = tmp_path / "study.journal"
    study, _ = cal.run(rcfg, tf, pf, ranges, sim, journal)
    first = [t.params for t in study.trials]
    assert len(first) == 2
    # as after an interruption, or asking for more: the same study grows to 4 trials
    pf4 = pf.model_copy(update={"optimizer": pf.optimizer.model_copy(update={"trials": 4})})
    study4, _ = cal.run(rcfg, tf, pf4, ranges, sim, journal)
    assert len(study4.trials) == 4 and [t.params for t in study4.trials[:2]] == first
    assert len({t.params["transitions.a_to_b.probability"] for t in study4.trials}) == 4  # new points
    # an edited input (another target value) is another study in the same journal file
    tf2 = tf.model_copy(update={"targets": {"b": tf.targets["b"].model_copy(update={"value": 0.3})}})
    assert cal.study_name(rcfg, tf2, ["b"], pf, ranges, sim) != cal.study_name(rcfg, tf, ["b"], pf, ranges, sim)


# ---- sensitivity ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_dominant_parameter_ranks_first(tmp_path):
    r = cli("sensitivity", CONFIGS / "sensitivity_markov.yaml", "--method", "morris", "--samples", 6,
            "--metric", "neet_rate_15_29", "--workers", 2, "--out", tmp_path / "s")
    assert r.returncode == 0, r.stdout + r.stderr
    import pandas as pd

    table = pd.read_csv(tmp_path / "s" / "sensitivity.csv")
    base = table[table.output == "baseline"].sort_values("rank")
    assert base.parameter.iloc[0] == "transitions.a_to_b.probability"
    top, second = base.mu_star.iloc[0], base.mu_star.iloc[1]
    assert top > 5 * second                       # by construction: a 10-100x wider range
    assert base.ci_low.iloc[0] > 0                # its interval excludes no effect
    assert (tmp_path / "s" / "figures" / "sensitivity.png").exists()
    assert "rank" in (tmp_path / "s" / "sensitivity.md").read_text()


def test_intervention_parameters_and_paired_effects(tmp_path):
    """An intervention parameter is named interventions.NAME.PATH; the effect is paired (CRN):
    with coverage 0 the effect is exactly zero."""
    from utenforsk.calibration import sensitivity as sa

    exp = write(tmp_path / "exp.yaml", {
        "name": "s", "model": str(BASELINE), "scale": 0.002, "horizon_years": 2, "burn_in_years": 20, "seed": 1,
        "scenarios": {"baseline": {}, "coord": {"interventions": ["cross_sector_coordination"]}},
        "uncertainty": {"parameters": ["interventions.cross_sector_coordination.coverage",
                                       "handoffs.school_to_ot_at_dropout.probability"]}})
    setup = sa.Setup(exp, "neet_rate_15_29")
    assert setup.bounds == [(0.5, 1.0), (0.4, 0.9)] and setup.outputs == ["baseline", "coord"]
    mv, iv = setup.point_spec(np.array([0.0, 0.7]))
    assert iv == {"cross_sector_coordination": {"coverage": 0.0}} and mv == {"handoffs.school_to_ot_at_dropout.probability": 0.7}
    base, effect = sa.run_point(setup.cfg, setup.scenarios, setup.outputs, setup.metric, mv, iv, [5])
    assert effect == 0.0 and 0 < base < 0.3


# ---- bad input ------------------------------------------------------------------------------------
def _target(**kw):
    t = {"metric": "neet_rate", "value": 0.1, "tolerance": 0.01, "year": "2022", "definition": "d",
         "source": "s", "tolerance_basis": "b"}
    t.update(kw)
    return t


@pytest.mark.parametrize("targets,needle", [
    ({"name": "x", "tolerance_rule": "r", "targets": {"n": _target(metric="neet_ratio")}}, "targets.n.metric"),
    ({"name": "x", "tolerance_rule": "r", "targets": {"n": _target(tolerance=-1)}}, "targets.n.tolerance"),
    ({"name": "x", "tolerance_rule": "r", "targets": {"n": _target(sourse="typo")}}, "unknown key 'sourse'"),
    ({"name": "x", "tolerance_rule": "r", "targets": {"n": _target(metric="state_share", states=["nowhere"])}},
     "targets.n.states"),
    ({"name": "x", "tolerance_rule": "r", "targets": {"n": _target(metric="trait_ever")}}, "needs `trait`"),
    ({"name": "x", "tolerance_rule": "r", "targets": {"n": _target(subgroup={"sex": ["other"]})}},
     "targets.n.subgroup.sex"),
    ({"name": "x", "targets": {"n": _target()}}, "tolerance_rule"),
    ({"name": "x", "tolerance_rule": "r", "targets": {"n": _target(metric="births_per_year", ages=[0, 10])}},
     "takes no `ages`"),
    ({"name": "x", "tolerance_rule": "r", "targets": {"n": _target(metric="births_per_year",
                                                                   subgroup={"sex": ["female"]})}},
     "takes no `subgroup`"),
])
def test_bad_targets_file_is_one_clear_error(tmp_path, targets, needle):
    from utenforsk.calibration.targets import load_targets
    from utenforsk.config.loader import load_model_config
    from utenforsk.errors import ConfigError

    bad = write(tmp_path / "targets.yaml", targets)
    with pytest.raises(ConfigError) as exc:
        load_targets(bad, load_model_config(BASELINE))
    assert needle in exc.value.render() and "targets.yaml" in exc.value.render()


@pytest.mark.parametrize("params,needle", [
    ({"parameters": {"transitions.job_finding.probabilty": {}}}, "not the dotted path of a parameter"),
    ({"parameters": {"transitions.job_finding.probability": {"range": [0.0, 0.5]}}}, "leaves the parameter's"),
    ({"parameters": {"exits.death.age_profile.1": {}}}, "single value"),
    ({"parameters": {"attributes.sex.at_birth.all.female": {}}}, "shares must sum to 1"),
    ({"parameters": {"transitions.job_finding.probability": {}}, "targets": ["nope"]}, "unknown target"),
    ({"parameters": {}}, "parameters"),
    ({"parameters": {"transitions.job_finding.probability": {}}, "optimizer": {"sampler": "magic"}}, "sampler"),
])
def test_bad_params_file_is_one_clear_error(tmp_path, params, needle):
    from utenforsk.calibration.targets import load_params, load_targets
    from utenforsk.config.loader import load_model_config
    from utenforsk.errors import ConfigError

    cfg = load_model_config(BASELINE)
    bad = write(tmp_path / "params.yaml", params)
    with pytest.raises(ConfigError) as exc:
        load_params(bad, cfg, load_targets(TARGETS, cfg))
    assert needle in exc.value.render() and "params.yaml" in exc.value.render()


@pytest.mark.parametrize("target,named", [({"weight": 0}, None), ({"monitor_only": True}, None),
                                          ({"weight": 0, "monitor_only": True}, ["n"])])
def test_params_without_a_fitted_target_is_one_clear_error(tmp_path, target, named):
    """Nothing to fit (every target weight 0 or monitor_only) would make every loss NaN."""
    from utenforsk.calibration.targets import load_params, load_targets
    from utenforsk.config.loader import load_model_config
    from utenforsk.errors import ConfigError

    cfg = load_model_config(BASELINE)
    tf = load_targets(write(tmp_path / "targets.yaml", {"name": "x", "tolerance_rule": "r",
                                                        "targets": {"n": _target(**target)}}), cfg)
    params = {"parameters": {"transitions.job_finding.probability": {}}}
    if named:
        params["targets"] = named
    with pytest.raises(ConfigError) as exc:
        load_params(write(tmp_path / "params.yaml", params), cfg, tf)
    assert "no target to fit" in exc.value.render() and "params.yaml" in exc.value.render()


def test_bad_files_exit_2_through_the_cli_and_write_nothing(tmp_path):
    bad_t = write(tmp_path / "targets.yaml", {"name": "x", "tolerance_rule": "r",
                                               "targets": {"n": _target(metric="neet_ratio")}})
    r = cli("validate", BASELINE, "--targets", bad_t, "--out", tmp_path / "v")
    assert r.returncode == 2 and "targets.n.metric" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "v").exists()
    bad_p = write(tmp_path / "params.yaml", {"parameters": {"transitions.job_finding.probabilty": {}}})
    out = tmp_path / "cal.yaml"
    r = cli("calibrate", BASELINE, "--targets", TARGETS, "--params", bad_p, "--out", out)
    assert r.returncode == 2 and "parameters.transitions.job_finding.probabilty" in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and not out.with_suffix(".journal").exists()


def test_bad_sensitivity_input_exits_2(tmp_path):
    r = cli("sensitivity", CONFIGS / "sensitivity_markov.yaml", "--method", "fast", "--out", tmp_path / "s")
    assert r.returncode == 2 and "morris, sobol" in r.stderr
    from utenforsk.calibration.sensitivity import Setup
    from utenforsk.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown metric"):
        Setup(CONFIGS / "sensitivity_markov.yaml", "happiness")
    # a yearly metric exists only as NAME@YEAR: not a horizon metric a sensitivity run can use
    r = cli("sensitivity", CONFIGS / "sensitivity_markov.yaml", "--metric", "neet_person_years_15_29",
            "--out", tmp_path / "s")
    assert r.returncode == 2 and "--metric" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert Setup(CONFIGS / "sensitivity_markov.yaml", "health_benefit_person_years_18_29").metric \
        == "health_benefit_person_years_18_29"
    with pytest.raises(ConfigError, match="unknown scenario"):
        Setup(CONFIGS / "sensitivity_markov.yaml", "neet_rate_15_29", ["nope"])
    exp = write(tmp_path / "e.yaml", {"name": "e", "model": str(MARKOV), "scenarios": {"baseline": {}},
                                      "uncertainty": {"parameters": ["transitions.a_to_b.prob"]}})
    r = cli("sensitivity", exp, "--out", tmp_path / "s")
    assert r.returncode == 2 and "uncertainty.parameters[0]" in r.stderr
    assert not (tmp_path / "s").exists()


# ---- ensemble by history matching (issue 13) ------------------------------------------------------
def test_implausibility_rules_out_what_the_tolerance_does():
    """An emulator of a known response f(u) = u0 (noise SD 0.005, 2 replicates, 60 points): with
    z = 0.5, tolerance 0.1 and cut 3, Var_obs = (0.1/3)^2 dominates, so I < 3 where |u0 - 0.5| is
    below ~0.1 (the acceptance rule) and I > 3 well outside. Tolerance: the emulator's and Monte
    Carlo variances widen the band by a few per cent; 0.13 and 0.2 leave room for that."""
    from utenforsk.calibration.history import Emulator, Space, cut_statistic

    rng = np.random.default_rng(5)
    U = rng.uniform(size=(60, 2))
    reps = U[:, None, :1] + rng.normal(0, 0.005, (60, 2, 1))
    em = Emulator(U, reps, seed=1)
    assert 0 < em.var_mc[0] < 0.005**2  # the variance of a 2-replicate mean: 1.25e-5
    grid = np.column_stack([np.linspace(0, 1, 101), np.full(101, 0.5)])
    I = em.implausibility(grid, np.array([0.5]), np.array([(0.1 / 3) ** 2]))[:, 0]
    d = np.abs(grid[:, 0] - 0.5)
    assert np.all(I[d <= 0.08] < 3) and np.all(I[d >= 0.13] > 3), I
    assert np.all(I[d >= 0.2] > 4)
    # the waves call Emulator.plausible (target by target, dropping points as they go): the same
    # answer as the cut statistic of the implausibility, for either rule, with one and two targets
    two = Emulator(U, np.concatenate([reps, U[:, None, 1:] + rng.normal(0, 0.005, (60, 2, 1))], axis=2), seed=1)
    grid2 = np.column_stack([np.linspace(0, 1, 101), np.linspace(1, 0, 101)])
    z2, v2 = np.array([0.5, 0.4]), np.full(2, (0.1 / 3) ** 2)
    for e, g, z, v in ((em, grid, np.array([0.5]), np.array([(0.1 / 3) ** 2])), (two, grid2, z2, v2)):
        for rule in ("max", "second_max"):
            keep = e.plausible(g, z, v, 3.0, rule)
            assert np.array_equal(keep, cut_statistic(e.implausibility(g, z, v), rule) < 3.0), rule
            assert 0 < keep.sum() < len(g)
    assert cut_statistic(np.array([[1.0, 5.0, 2.0]]), "second_max")[0] == 2.0
    assert cut_statistic(np.array([[1.0, 5.0, 2.0]]), "max")[0] == 5.0
    sp = Space({"a": (0.01, 1.0), "b": (-2.0, 2.0)}, {"a": True})
    x = sp.values(np.array([[0.5, 0.25]]))
    assert x[0, 0] == pytest.approx(0.1) and x[0, 1] == pytest.approx(-1.0)
    assert sp.unit(x) == pytest.approx(np.array([[0.5, 0.25]]))


def test_history_matching_ensemble_covers_the_truth(tmp_path):
    """History matching on the Markov model (truth a_to_b 0.02, b_to_c 0.03) over the *wide*
    priors [0.005, 0.05] x [0.01, 0.06], where rejection accepted 2 of 63 prior draws (see
    tests/test_holdouts.py): waves of 24 points (2 replicates, CRN), seed 2, until 30 simulated
    sets pass both targets (|f - z| <= 0.01). The truth must lie inside the accepted sets' 5-95%
    range for both parameters; a_to_b, which the targets pin (~7.4 share per unit), must be
    narrowed to under a quarter of its prior width; later waves must accept far more often than
    the prior draws of wave 1. Measured (seed 2): 48 accepted of 120 in 5 waves; wave 1 0 of 24,
    then 42-58%; a_to_b 0.0182-0.0208, b_to_c 0.0258-0.0387."""
    import pandas as pd

    from utenforsk.calibration.calibrate import read_ensemble

    targets = _markov_targets(tmp_path)
    start = _markov_start(tmp_path)
    params = write(tmp_path / "params.yaml", {
        "parameters": {"transitions.a_to_b.probability": {}, "transitions.b_to_c.probability": {}},
        "history_matching": {"accepted": 30, "first_wave": 24, "wave_points": 24, "max_waves": 5,
                             "candidates": 4096, "seed": 2}})
    ens = tmp_path / "ensemble.csv"
    r = cli("calibrate", start, "--targets", targets, "--params", params, "--out", tmp_path / "c.yaml",
            "--workers", 1, "--ensemble", ens, "--method", "history-matching")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ens.read_text().startswith("# utenforsk") and "wave 2:" in r.stderr  # provenance; progress
    df = read_ensemble(ens)
    meta = json.loads(ens.with_suffix(".json").read_text())
    runs = pd.read_csv(tmp_path / "ensemble.runs.csv")
    assert len(df) >= 30 and meta["accepted"] == len(df) == runs.accepted.sum()
    assert meta["method"] == "history-matching" and meta["seed"] == 11 and meta["model_config_hash"]
    assert (runs.max_abs_z[runs.accepted] <= 1).all() and (runs.max_abs_z[~runs.accepted] > 1).all()
    rate = runs.groupby("wave").accepted.mean()
    assert rate.iloc[0] < 0.1 < 0.3 < rate.iloc[1:].mean(), rate
    for col, truth, prior in (("transitions.a_to_b.probability", 0.02, 0.045),
                              ("transitions.b_to_c.probability", 0.03, 0.05)):
        lo, hi = np.quantile(df[col], [0.05, 0.95])
        assert lo <= truth <= hi, (col, lo, hi)
        if col.startswith("transitions.a_to_b"):
            assert hi - lo < prior / 4, (lo, hi)
    from utenforsk.config.loader import load_model_config

    best = load_model_config(tmp_path / "c.yaml").transitions["a_to_b"].probability  # the best accepted set
    assert abs(best.value - 0.02) < 0.004 and "calibrated" in best.source
    r = cli("ensemble-summary", ens, "--out", tmp_path / "summary")  # prior vs posterior: table, figure
    assert r.returncode == 0, r.stdout + r.stderr
    md = (tmp_path / "summary" / "ensemble_summary.md").read_text()
    assert "`transitions.a_to_b.probability` | [0.005, 0.05]" in md and (tmp_path / "summary" / "ensemble_spread.png").stat().st_size > 1000


def test_bad_ensemble_file_exits_2(tmp_path):
    """ensemble-summary refuses a CSV without its record, or whose columns the record does not name;
    an experiment refuses an ensemble column that is not a model parameter (exit 2, one line)."""
    ens = tmp_path / "e.csv"
    ens.write_text("transitions.a_to_b.probability\n0.02\n", encoding="utf-8")
    r = cli("ensemble-summary", ens, "--out", tmp_path / "s")
    assert r.returncode == 2 and "record is missing" in r.stderr and "Traceback" not in r.stderr
    ens.with_suffix(".json").write_text(json.dumps({"parameters": {"x": {"range": [0, 1]}}}), encoding="utf-8")
    r = cli("ensemble-summary", ens, "--out", tmp_path / "s")
    assert r.returncode == 2 and "transitions.a_to_b.probability" in r.stderr and not (tmp_path / "s").exists()
    (tmp_path / "bad.csv").write_text("# provenance\nno.such.parameter\n0.1\n", encoding="utf-8")
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"name: e\nmodel: {BASELINE}\nscale: 0.001\nhorizon_years: 1\nreplicates: 2\n"
                   "scenarios: {baseline: {}}\nuncertainty: {mode: parameter, ensemble: bad.csv}\n", encoding="utf-8")
    r = cli("experiment", exp, "--out", tmp_path / "x")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "must name a parameter of the model" in r.stderr and "no.such.parameter" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()


@pytest.mark.parametrize("extra,params_extra,needle", [
    (["--method", "magic", "--ensemble", "e.csv"], {}, "history-matching, rejection"),
    (["--method", "rejection"], {}, "use it with --ensemble"),
    (["--ensemble", "e.txt"], {}, "a path ending in .csv"),
    (["--ensemble", "e.csv", "--executor", "dask"], {}, "--scheduler"),
    (["--ensemble", "e.csv"], {"history_matching": {"cut_rule": "min"}}, "history_matching.cut_rule"),
    (["--ensemble", "e.csv"], {"history_matching": {"first_wave": 1}}, "history_matching.first_wave"),
])
def test_bad_ensemble_options_exit_2(tmp_path, extra, params_extra, needle):
    params = write(tmp_path / "params.yaml", {"parameters": {"transitions.a_to_b.probability": {}},
                                              **params_extra})
    targets = write(tmp_path / "targets.yaml", {"name": "m", "tolerance_rule": "r", "targets": {
        "b": {"metric": "neet_rate", "ages": [1, 10], "value": 0.1, "tolerance": 0.01, "year": "t",
              "definition": "d", "source": "s", "tolerance_basis": "t"}}})
    extra = [str(tmp_path / a) if a.startswith("e.") else a for a in extra]
    r = cli("calibrate", MARKOV, "--targets", targets, "--params", params, "--out", tmp_path / "c.yaml", *extra)
    assert r.returncode == 2, r.stdout + r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "c.yaml").exists() and not list(tmp_path.glob("e.*"))
