"""The Norway baseline lands on its calibration targets (policy-horizon means, scale 0.02).

Target bands are those of the core-engine issue, from ../shared/EVIDENCE.md. Monte Carlo error of a
20-year horizon mean at scale 0.02 (~20,000 simulated people aged 15-29 each month, correlated over
a few years) is about 0.1-0.2 percentage points; the bands are 3-12 points wide, so a fixed seed
landing inside them is a real check of the calibration, not of luck. Two seeds guard against a
calibration that only fits one draw.
"""

from __future__ import annotations

import pytest

from utenforsk.model import UtenforskModel
from utenforsk.outputs import cohorts, periods

TARGETS = {  # metric: (low, high, source)
    "neet_rate_15_29": (0.085, 0.115, "SSB register NEET 15-29: 9.5-11.0% (2019-2022)"),
    "kindergarten_coverage_1_2": (0.80, 0.92, "SSB table 414919: 84-88% at ages 1-2"),
    "kindergarten_coverage_3_5": (0.94, 0.995, "SSB: 97% at ages 3-5"),
    "health_benefit_rate_18_29": (0.03, 0.08, "NAV: AAP 3.4% (2015) + disability 1.7% (2016) of 18-29"),
}
COMPLETION = (0.76, 0.86, "SSB/Udir: ~80-82% complete within 5-6 years")


@pytest.fixture(scope="module", params=[1, 2])
def baseline(request, baseline_path):
    model = UtenforskModel(baseline_path, seed=request.param, scale=0.02)
    model.run_model()
    return periods(model), cohorts(model)


@pytest.mark.parametrize("metric", list(TARGETS))
def test_period_target(baseline, metric):
    low, high, source = TARGETS[metric]
    value = baseline[0][metric].mean()
    assert low <= value <= high, f"{metric} = {value:.4f}, target [{low}, {high}] ({source})"


def test_upper_secondary_completion_target(baseline):
    low, high, source = COMPLETION
    observed = baseline[1]["upper_secondary_completion_5y"].dropna()
    # cohorts that complete (or not) within the policy horizon
    value = observed[-20:].mean()
    assert len(observed) >= 10
    assert low <= value <= high, f"completion {value:.4f}, target [{low}, {high}] ({source})"


# ---- the broadened calibration set (issue 13) ---------------------------------------------------
# Every calibration target of configs/norway/targets_extended.yaml (hold-outs and monitor-only
# targets excluded), at the targets file's own calendar (45-year burn-in, targets with
# calendar_years in their year) and scale 0.01, with 4 replicates (the file's 8 halved for
# runtime, ~1 min on 2 cores): the replicate mean must lie within the target's tolerance. The
# Monte Carlo SE of a 4-replicate mean at scale 0.01 is 0.2-1 pp for shares (validate's intervals),
# small against tolerances of 2.5-8 pp. Known structural failures are strict xfails with the
# reason, so fixing them is noticed.
EXTENDED_KNOWN: dict[str, str] = {}  # none today (the 2016 immigrant shares pass since issue 13's birth_share)


@pytest.fixture(scope="module")
def extended(baseline_path):
    from utenforsk.calibration import simulate
    from utenforsk.calibration.targets import load_targets, without_holdouts
    from utenforsk.config.loader import load_model_config
    from utenforsk.calibration.validate import fit_table

    path = baseline_path.parent / "targets_extended.yaml"
    cfg = load_model_config(baseline_path)
    tf = without_holdouts(load_targets(path, cfg))
    tf = tf.model_copy(update={"targets": {n: t for n, t in tf.targets.items() if not t.monitor_only}})
    sim = tf.simulation.model_copy(update={"replicates": 4})
    rcfg = simulate.resolved(cfg, sim)
    with simulate.Pool(2) as pool:
        values = simulate.simulate(rcfg, list(tf.targets.values()),
                                   simulate.replicate_seeds(sim.seed, sim.replicates), None, pool)
    return fit_table(tf, values).set_index("target")


def _extended_names():
    import yaml
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / "norway" / "targets_extended.yaml"
    data = yaml.safe_load(path.read_text())
    base = yaml.safe_load((path.parent / "targets.yaml").read_text())
    names = [n for n, t in {**base["targets"], **data["targets"]}.items()
             if not t.get("holdout") and not t.get("monitor_only")]
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=EXTENDED_KNOWN[n]))
            if n in EXTENDED_KNOWN else n for n in names]


@pytest.mark.parametrize("name", _extended_names())
def test_extended_calibration_target(extended, name):
    row = extended.loc[name]
    assert row.status == "pass", (
        f"{name}: simulated {row.simulated:.4g} vs observed {row.observed:.4g} +- {row.tolerance:.3g}")
