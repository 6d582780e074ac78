"""Analysis of run tables (effects, economics, hypotheses) on hand-computable synthetic runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from utenforsk.analysis import (Valuation, discount_factors, economics, economics_by_replicate,
                                evaluate, paired_effects, validate_hypotheses)
from utenforsk.analysis.effects import EFFECT_COLUMNS
from utenforsk.analysis.hypotheses import RESULT_COLUMNS
from utenforsk.errors import ConfigError


def long(data: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """{scenario: {metric: [value per replicate 0..n-1]}} -> long runs table."""
    rows = [(s, r, m, float(v)) for s, ms in data.items() for m, vs in ms.items()
            for r, v in enumerate(vs)]
    return pd.DataFrame(rows, columns=["scenario", "replicate", "metric", "value"])


# ---------------------------------------------------------------- paired effects

def test_paired_effects_exact():
    runs = long({"baseline": {"neet_rate_15_29": [10, 12, 14]},
                 "policy": {"neet_rate_15_29": [9, 10, 14.5, 100]}})  # replicate 3: policy only
    out = paired_effects(runs)
    assert list(out.columns) == EFFECT_COLUMNS
    assert len(out) == 1
    row = out.iloc[0]
    d = np.array([-1.0, -2.0, 0.5])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert row["scenario"] == "policy" and row["metric"] == "neet_rate_15_29"
    assert row["n_replicates"] == 3
    assert row["baseline_mean"] == pytest.approx(12.0)
    assert row["scenario_mean"] == pytest.approx(33.5 / 3)
    assert row["difference"] == pytest.approx(d.mean())
    assert row["ci_low"] == pytest.approx(d.mean() - half)
    assert row["ci_high"] == pytest.approx(d.mean() + half)
    assert row["relative_change"] == pytest.approx(d.mean() / 12.0)


def test_paired_effects_single_replicate_and_zero_baseline():
    runs = long({"baseline": {"a": [0.0], "b": [2.0]}, "x": {"a": [1.0], "b": [3.0]}})
    out = paired_effects(runs, metrics=["a", "b"]).set_index("metric")
    assert out.loc["a", "difference"] == 1.0 and out.loc["a", "n_replicates"] == 1
    assert np.isnan(out.loc["a", "ci_low"]) and np.isnan(out.loc["a", "ci_high"])
    assert np.isnan(out.loc["a", "relative_change"])  # baseline mean 0
    assert out.loc["b", "relative_change"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown metric"):
        paired_effects(runs, metrics=["c"])


# ---------------------------------------------------------------- discounting

def test_discount_factors_r109():
    f = discount_factors([0, 1, 40, 41, 75, 76])
    expected = [1.0, 1 / 1.04, 1 / 1.04**40, 1 / (1.04**40 * 1.03), 1 / (1.04**40 * 1.03**35),
                1 / (1.04**40 * 1.03**35 * 1.02)]
    np.testing.assert_allclose(f, expected, rtol=1e-12)
    pv = float(np.sum(100.0 * discount_factors(np.arange(3))))
    assert pv == pytest.approx(100 + 100 / 1.04 + 100 / 1.04**2, rel=1e-12)


# ---------------------------------------------------------------- economics

def econ_runs() -> pd.DataFrame:
    base = {"neet_person_years_15_29@2030": [50, 50], "neet_person_years_15_29@2031": [50, 50],
            "employment_person_years_15_29@2030": [200, 200],
            "employment_person_years_15_29@2031": [200, 200],
            "person_years_health_benefit@2030": [10, 10], "person_years_health_benefit@2031": [10, 10],
            "neet_rate_15_29": [0.1, 0.1]}  # baseline has no programme cost rows: cost 0
    prog = dict(base, **{"programme_cost_nok@2030": [1_000_000, 1_000_000],
                         "programme_cost_nok@2031": [0, 0],
                         "neet_person_years_15_29@2031": [48, 48],
                         "employment_person_years_15_29@2031": [201, 201],
                         "person_years_health_benefit@2031": [9, 9]})
    idle = dict(base, **{"programme_cost_nok@2030": [500_000, 500_000]})
    return long({"baseline": base, "prog": prog, "idle": idle})


def test_economics_hand_computed():
    """R-109/2021: production only from the one extra work-year (not from the two NEET-years
    avoided); the benefit year saved and the tax paid are transfers, counted only through the
    20% tax-financing cost of the net public budget change."""
    v = Valuation()
    uc = {k: it.unit_cost.value for k, it in v.costs.items.items()}
    work = v.costs.production.value_per_employment_year.value
    out = economics(econ_runs()).set_index("scenario")
    row = out.loc["prog"]
    public = 1_000_000 + (-uc["health_benefit"] - uc["tax_revenue"]) / 1.04
    assert row["pv_programme_cost_nok"] == pytest.approx(1_000_000)
    assert row["pv_public_budget_change_nok"] == pytest.approx(public)
    assert row["pv_production_gain_nok"] == pytest.approx(work / 1.04)
    assert row["npv_nok"] == pytest.approx(work / 1.04 - 1_000_000 - 0.2 * public)
    assert row["exclusion_years_avoided"] == pytest.approx(2.0)
    cost = 1_000_000 + 0.2 * public
    assert row["pv_cost_nok"] == pytest.approx(cost)
    assert row["cost_per_exclusion_year_avoided_nok"] == pytest.approx(cost / (2 / 1.04))
    assert row["benefit_cost_ratio"] == pytest.approx((work / 1.04) / cost)
    assert row["npv_nok_low"] == pytest.approx(row["npv_nok"])  # identical replicates: sd 0
    assert row["n_replicates"] == 2 and row["price_year"] == v.price_year
    idle = out.loc["idle"]  # costs money, avoids nothing
    assert idle["exclusion_years_avoided"] == 0.0
    assert np.isnan(idle["cost_per_exclusion_year_avoided_nok"])
    assert idle["npv_nok"] == pytest.approx(-600_000)
    per = economics_by_replicate(econ_runs())
    assert len(per) == 4 and set(per["replicate"]) == {0, 1}


def test_economics_discounts_from_first_year():
    runs = econ_runs()
    runs.loc[runs["metric"] == "programme_cost_nok@2030", "metric"] = "programme_cost_nok@2031"
    runs = runs[~((runs["scenario"] == "prog") & (runs["metric"] == "programme_cost_nok@2031")
                  & (runs["value"] == 0))]
    row = economics(runs).set_index("scenario").loc["prog"]
    assert row["pv_programme_cost_nok"] == pytest.approx(1_000_000 / 1.04)


# ---------------------------------------------------------------- hypotheses

BASE = [0.10, 0.11, 0.12, 0.10, 0.11]


def hyp_runs() -> pd.DataFrame:
    def shift(offsets):
        return [b + o for b, o in zip(BASE, offsets)]
    return long({
        "baseline": {"neet_rate_15_29": BASE},
        "good": {"neet_rate_15_29": shift([-0.010, -0.012, -0.011, -0.009, -0.010])},
        "bad": {"neet_rate_15_29": shift([0.010, 0.012, 0.011, 0.009, 0.010])},
        "noisy": {"neet_rate_15_29": shift([-0.02, 0.02, -0.01, 0.015, -0.005])},
        # cheap: -0.02 for ~1 MNOK; dear: -0.03 for ~3 MNOK (cheaper per effect: cheap)
        "cheap": {"neet_rate_15_29": shift([-0.020, -0.021, -0.019, -0.020, -0.020]),
                  "programme_cost_nok": [1.0e6, 1.1e6, 0.9e6, 1.0e6, 1.0e6]},
        "dear": {"neet_rate_15_29": shift([-0.030, -0.031, -0.029, -0.030, -0.030]),
                 "programme_cost_nok": [3.0e6, 3.1e6, 2.9e6, 3.0e6, 3.0e6]},
    })


def hyp(name, scenario, compare_to="baseline", direction="reduces", **kw):
    return dict(name=name, statement=f"{scenario} {direction} NEET vs {compare_to}",
                metric="neet_rate_15_29", scenario=scenario, compare_to=compare_to,
                direction=direction, **kw)


def test_hypothesis_verdicts():
    hyps = [hyp("good", "good"), hyp("bad", "bad"), hyp("noisy", "noisy"),
            hyp("bad_up", "bad", direction="increases"),
            hyp("good_margin", "good", margin=0.02)]
    out = evaluate(hyps, hyp_runs()).set_index("name")
    assert list(out.reset_index().columns) == RESULT_COLUMNS
    # Monte Carlo mode: verdicts hold at fixed parameters; the probability is a share of replicates
    assert out.loc["good", "verdict"] == "supported at fixed parameters"
    assert out.loc["good", "probability"] == 1.0
    assert out.loc["good", "probability_over"].startswith("simulation replicates")
    assert out.loc["good", "estimate"] == pytest.approx(-1.04)  # percentage points
    assert out.loc["good", "unit"] == "pp"
    assert out.loc["bad", "verdict"] == "not supported at fixed parameters"
    assert out.loc["bad", "probability"] == 0.0
    assert out.loc["noisy", "verdict"] == "inconclusive"
    assert out.loc["noisy", "probability"] == pytest.approx(0.6)
    assert out.loc["bad_up", "verdict"] == "supported at fixed parameters"
    assert out.loc["good_margin", "verdict"] == "not supported at fixed parameters"
    assert (out["n_replicates"] == 5).all()
    d = np.array([-0.02, 0.02, -0.01, 0.015, -0.005])
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert out.loc["noisy", "ci_low"] == pytest.approx(100 * (d.mean() - half))
    assert out.loc["noisy", "ci_high"] == pytest.approx(100 * (d.mean() + half))


def test_hypothesis_per_nok_picks_cheaper_per_effect():
    hyps = [hyp("per_nok", "cheap", compare_to="dear", per_nok=True),
            hyp("absolute", "cheap", compare_to="dear"),
            hyp("dear_per_nok", "dear", compare_to="cheap", per_nok=True)]
    out = evaluate(hyps, hyp_runs()).set_index("name")
    assert out.loc["per_nok", "verdict"] == "supported at fixed parameters"  # -2e-8 vs -1e-8 per NOK
    cheap = np.array([-0.020, -0.021, -0.019, -0.020, -0.020]) / np.array([1.0e6, 1.1e6, 0.9e6, 1.0e6, 1.0e6])
    dear = np.array([-0.030, -0.031, -0.029, -0.030, -0.030]) / np.array([3.0e6, 3.1e6, 2.9e6, 3.0e6, 3.0e6])
    # shown in percentage points per million NOK
    assert out.loc["per_nok", "estimate"] == pytest.approx(100 * 1e6 * np.mean(cheap - dear), rel=1e-9)
    assert out.loc["per_nok", "unit"] == "pp per million NOK"
    assert out.loc["absolute", "verdict"] == "not supported at fixed parameters"  # dear reduces more in total
    assert out.loc["dear_per_nok", "verdict"] == "not supported at fixed parameters"


def test_hypothesis_errors_name_the_key():
    metrics, scenarios = {"neet_rate_15_29", "neet_rate_15_29@2030", "neet_rate_15_29@2031"}, \
        {"baseline", "good"}
    bad_metric = [hyp("a", "good"), dict(hyp("b", "good"), metric="neet_rate_15_92")]
    with pytest.raises(ConfigError) as err:
        validate_hypotheses(bad_metric, metrics, scenarios, "exp.yaml")
    assert err.value.key == "hypotheses[1].metric" and err.value.file == "exp.yaml"
    assert "neet_rate_15_29" in err.value.allowed and "did you mean" in str(err.value)
    with pytest.raises(ConfigError) as err:
        evaluate([dict(hyp("a", "good"), metric="__import__('os')")], hyp_runs())
    assert err.value.key == "hypotheses[0].metric"
    with pytest.raises(ConfigError) as err:
        validate_hypotheses([hyp("a", "good", compare_to="nope")], metrics, scenarios, "exp.yaml")
    assert err.value.key == "hypotheses[0].compare_to"
    with pytest.raises(ConfigError) as err:
        validate_hypotheses([dict(hyp("a", "good"), extra=1)], metrics, scenarios, "exp.yaml")
    assert err.value.key == "hypotheses[0].extra"
    with pytest.raises(ConfigError) as err:
        validate_hypotheses([hyp("a", "good", direction="lowers")], metrics, scenarios, "e.yaml")
    assert err.value.key == "hypotheses[0].direction"
    with pytest.raises(ConfigError) as err:
        validate_hypotheses([hyp("a", "good", per_nok=True)], metrics, scenarios, "e.yaml")
    assert err.value.key == "hypotheses[0].per_nok"
    ok = validate_hypotheses([hyp("a", "good")], metrics, scenarios, "exp.yaml")
    assert ok[0].per_nok is False and ok[0].margin == 0.0


def test_cost_per_exclusion_year_is_a_ratio_of_means():
    """One replicate avoids nothing; the ICER-style ratio of means is still defined."""
    from utenforsk.analysis.economics import economics

    rows = []
    for r, avoided in enumerate([4.0, 0.0]):  # NEET person-years avoided in 2025, per replicate
        for scen, neet, cost in (("baseline", 10.0, 0.0), ("s", 10.0 - avoided, 1_000_000.0)):
            rows += [(scen, r, "neet_person_years_15_29@2025", neet),
                     (scen, r, "employment_person_years_15_29@2025", 0.0),
                     (scen, r, "programme_cost_nok@2025", cost)]
    runs = pd.DataFrame(rows, columns=["scenario", "replicate", "metric", "value"])
    row = economics(runs).iloc[0]
    # mean PV cost 1.2 MNOK (the programme plus the 20% tax-financing cost of the public budget
    # change it is, year 0 undiscounted) over mean avoided 2 person-years
    assert row.cost_per_exclusion_year_avoided_nok == pytest.approx(1_200_000 / 2.0)


# ---------------------------------------------------------------- several comparisons (IU rule)

def iu_runs(effects: dict[str, tuple[float, float]], draws: int = 100, seed: int = 4):
    """Parameter-mode runs: each scenario's effect per NOK drawn per draw, uniform in (lo, hi),
    2 seeds per draw with small noise; every scenario costs 1 MNOK."""
    rng = np.random.default_rng(seed)
    data = {"baseline": {"exclusion_years_15_29": [], "programme_cost_nok": []}}
    for s in effects:
        data[s] = {"exclusion_years_15_29": [], "programme_cost_nok": []}
    for _ in range(draws):
        drawn = {s: rng.uniform(*lh) for s, lh in effects.items()}
        for _ in range(2):
            data["baseline"]["exclusion_years_15_29"].append(1000.0)
            data["baseline"]["programme_cost_nok"].append(0.0)
            for s, e in drawn.items():
                data[s]["exclusion_years_15_29"].append(1000.0 + e + rng.normal(0, 0.1))
                data[s]["programme_cost_nok"].append(1e6)
    return long(data), {r: r // 2 for r in range(2 * draws)}


def test_several_comparisons_use_intersection_union():
    runs, draw_of = iu_runs({"coord": (-10, -8), "a": (-5, -3), "b": (-12, -6), "c": (-1, 0)})
    base = dict(statement="coord beats each per NOK", metric="exclusion_years_15_29", scenario="coord",
                direction="reduces", per_nok=True)
    hyps = [dict(base, name="vs_a_c", compare_to=["a", "c"]),        # beats both surely
            dict(base, name="vs_a_b", compare_to=["a", "b"]),        # beats a, b only sometimes
            dict(base, name="vs_b_only", compare_to="b"),
            dict(base, name="vs_a_lose", compare_to=["a", "c"], direction="increases")]
    out = evaluate(hyps, runs, draw_of=draw_of, scale=0.005).set_index("name")
    assert out.loc["vs_a_c", "verdict"] == "supported"
    assert out.loc["vs_a_b", "verdict"] == "inconclusive"
    assert out.loc["vs_a_b", "compared_with"] == "b"           # the weakest comparison is shown
    assert out.loc["vs_a_b", "probability"] == out.loc["vs_b_only", "probability"]
    assert "vs a: 100.0%" in out.loc["vs_a_b", "detail"]
    assert out.loc["vs_a_lose", "verdict"] == "not supported"
    assert out.loc["vs_a_c", "unit"] == "person-years per million NOK"
    # per million NOK: coord (-9/MNOK) minus c (-0.5/MNOK) is about -8.5 person-years per MNOK
    row = evaluate([dict(base, name="x", compare_to="c")], runs, draw_of=draw_of, scale=0.005).iloc[0]
    assert row.estimate == pytest.approx(-8.5, abs=0.3)


def test_compare_to_list_is_validated():
    metrics, scenarios = {"m"}, {"baseline", "s", "a"}
    h = dict(name="h", statement="x", metric="m", scenario="s", direction="reduces")
    for bad, key in ((["a", "a"], "hypotheses[0].compare_to"), (["a", "nope"], "hypotheses[0].compare_to[1]"),
                     (["a", "s"], "hypotheses[0].compare_to[1]"), ([], "hypotheses[0].compare_to")):
        with pytest.raises(ConfigError) as err:
            validate_hypotheses([dict(h, compare_to=bad)], metrics, scenarios, "e.yaml")
        assert err.value.key == key, (bad, err.value.key)
