"""Socio-economic evaluation (R-109/2021) and the payer ledger, on hand-computable synthetic runs.

Every expected value below is written out from the cost book's own numbers (configs/norway/costs.yaml),
so the tests check the arithmetic and the accounting rules, not the unit values. Fast: no simulation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utenforsk.analysis.economics import (Valuation, acceptability, economics, economics_by_replicate,
                                          ledger, ratio_interval)
from utenforsk.analysis.ledger import PAYERS, UNASSIGNED, load_costs
from utenforsk.errors import ConfigError

BOOK = load_costs()
V = Valuation()
TAX = BOOK.tax_cost_factor.value
UC = {k: it.unit_cost.value for k, it in BOOK.items.items()}
WORK_VALUE = BOOK.production.value_per_employment_year.value * (1 - BOOK.production.displacement_share.value)
YEARS = (2030, 2031)
DF = np.array([1.0, 1 / 1.04])  # year 0 is the first year of the runs


def runs_from(spec: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """{scenario: {metric: [value per replicate]}} -> the long runs table."""
    rows = [(s, r, m, float(v)) for s, metrics in spec.items() for m, vals in metrics.items()
            for r, v in enumerate(vals)]
    return pd.DataFrame(rows, columns=["scenario", "replicate", "metric", "value"])


def yearly(values: dict[str, float], reps: int = 2) -> dict[str, list[float]]:
    """The same value in every year and replicate."""
    return {f"{m}@{y}": [v] * reps for m, v in values.items() for y in YEARS}


BASE = {"neet_person_years_15_29": 100.0, "employment_person_years_15_29": 500.0,
        "person_years_unemployed": 60.0, "person_years_nav_programme": 20.0,
        "person_years_health_benefit": 30.0, "education_person_years_15_29": 400.0}


def moved(**changes) -> dict[str, float]:
    out = dict(BASE)
    for k, d in changes.items():
        out[k] = out.get(k, 0.0) + d
    return out


def park_and_work_runs() -> pd.DataFrame:
    """The same 10 unemployed people a year, either parked in NAV programmes or moved into work,
    each for a programme cost of 1 MNOK a year paid by NAV (ips_youth's payer)."""
    cost = {"programme_cost_nok:ips_youth": 1_000_000.0}
    return runs_from({
        "baseline": yearly(BASE),
        "park": yearly(moved(person_years_unemployed=-10, person_years_nav_programme=10,
                             neet_person_years_15_29=-10, **cost)),
        "work": yearly(moved(person_years_unemployed=-10, employment_person_years_15_29=10,
                             neet_person_years_15_29=-10, **cost)),
    })


def test_parking_in_programmes_has_negative_npv_and_loses_to_work():
    econ = economics(park_and_work_runs()).set_index("scenario")
    pv = DF.sum()
    # park: NAV programme places (service) and programme benefit (transfer) for 10 person-years;
    # unemployment benefit and social assistance saved; no production
    park_public = 1e6 + 10 * UC["nav_programme_places"] + 10 * UC["programme_benefit"] \
        - 10 * UC["unemployment_benefit"] - 10 * UC["social_assistance_unemployed"]
    park_resource = 1e6 + 10 * UC["nav_programme_places"]
    park = econ.loc["park"]
    assert park["pv_production_gain_nok"] == 0.0
    assert park["pv_public_budget_change_nok"] == pytest.approx(park_public * pv)
    assert park["npv_nok"] == pytest.approx(-(park_resource + TAX * park_public) * pv)
    assert park["npv_nok"] <= 0
    # work: 10 person-years of production; taxes paid instead of benefits
    work_public = 1e6 - 10 * UC["unemployment_benefit"] - 10 * UC["social_assistance_unemployed"] \
        - 10 * UC["tax_revenue"]
    work = econ.loc["work"]
    assert work["pv_production_gain_nok"] == pytest.approx(10 * WORK_VALUE * pv)
    assert work["npv_nok"] == pytest.approx((10 * WORK_VALUE - 1e6 - TAX * work_public) * pv)
    assert work["npv_nok"] > park["npv_nok"]
    # both avoid the same NEET-years (programmes are not NEET): only work is valued
    assert park["exclusion_years_avoided"] == work["exclusion_years_avoided"] == 20.0
    assert work["employment_years_gained"] == 20.0 and park["employment_years_gained"] == 0.0


def test_pure_transfer_changes_npv_only_by_its_tax_financing_cost():
    """5 more benefit person-years a year and nothing else: a transfer, not a resource."""
    runs = runs_from({"baseline": yearly(BASE), "transfer": yearly(moved(person_years_health_benefit=5))})
    row = economics(runs).set_index("scenario").loc["transfer"]
    transfer_pv = 5 * UC["health_benefit"] * DF.sum()
    assert row["pv_programme_cost_nok"] == 0.0 and row["pv_service_cost_nok"] == 0.0
    assert row["pv_production_gain_nok"] == 0.0
    assert row["pv_public_budget_change_nok"] == pytest.approx(transfer_pv)
    assert row["npv_nok"] == pytest.approx(-TAX * transfer_pv)
    # doubling the transfer doubles exactly that cost
    data = BOOK.model_dump()
    data["items"]["health_benefit"]["unit_cost"].update(value=2 * UC["health_benefit"],
                                                         range=(0, 4 * UC["health_benefit"]))
    doubled = Valuation(type(BOOK).model_validate(data))
    row2 = economics(runs, valuation=doubled).set_index("scenario").loc["transfer"]
    assert row2["npv_nok"] == pytest.approx(2 * row["npv_nok"])


def test_costs_and_effects_discounted_alike_closed_form():
    """40 years of a constant programme cost C and a constant effect: both are annuities due,
    Σ_{t<40} 1.04^-t = (1 - 1.04^-40) / (1 - 1/1.04)."""
    years = range(2030, 2070)
    annuity = (1 - 1.04 ** -40) / (1 - 1 / 1.04)
    c = 2_000_000.0
    base = {f"{m}@{y}": [v] for m, v in BASE.items() for y in years}
    scen = {f"{m}@{y}": [v] for m, v in moved(neet_person_years_15_29=-4, employment_person_years_15_29=1,
                                                   **{"programme_cost_nok:x": c}).items() for y in years}
    row = economics(runs_from({"baseline": base, "s": scen})).iloc[0]
    assert row["pv_programme_cost_nok"] == pytest.approx(c * annuity, rel=1e-12)
    assert row["pv_production_gain_nok"] == pytest.approx(WORK_VALUE * annuity, rel=1e-12)
    assert row["pv_exclusion_years_avoided"] == pytest.approx(4 * annuity, rel=1e-12)
    assert row["exclusion_years_avoided"] == pytest.approx(4 * 40)
    # same profile of costs and effects: the discounted ratio equals the yearly ratio
    per_year_cost = c + TAX * (c - UC["tax_revenue"])
    assert row["cost_per_exclusion_year_avoided_nok"] == pytest.approx(per_year_cost / 4, rel=1e-12)


def test_cost_now_effect_later_ratio_discounts_the_effect():
    """Cost in year 0, effect only in year 10: the ratio is C / (E · 1.04^-10), not C / E."""
    years = range(2030, 2041)
    c, e = 1_000_000.0, 2.0
    base = {f"{m}@{y}": [v] for m, v in BASE.items() for y in years}
    scen = {k: list(v) for k, v in base.items()}
    scen["programme_cost_nok:x@2030"] = [c]
    scen["neet_person_years_15_29@2040"] = [BASE["neet_person_years_15_29"] - e]
    row = economics(runs_from({"baseline": base, "s": scen})).iloc[0]
    assert row["cost_per_exclusion_year_avoided_nok"] == pytest.approx(c * (1 + TAX) / (e / 1.04 ** 10))
    assert row["exclusion_years_avoided"] == e


def test_ledger_payer_totals_sum_to_public_budget_change():
    runs = park_and_work_runs()
    led = ledger(runs)
    econ = economics(runs).set_index("scenario")
    assert set(led["payer"]) <= {*PAYERS, UNASSIGNED}
    for scenario, group in led.groupby("scenario"):
        assert group["pv_cost_change_nok"].sum() == pytest.approx(econ.loc[scenario, "pv_public_budget_change_nok"])
        by_payer = group.groupby("payer")["pv_cost_change_nok"].sum()
        assert by_payer.sum() == pytest.approx(econ.loc[scenario, "pv_public_budget_change_nok"])
    work = led[led.scenario == "work"].groupby("payer")["pv_cost_change_nok"].sum()
    # the municipality saves social assistance; the state pays the programme and gains taxes
    assert work["municipality"] == pytest.approx(-10 * UC["social_assistance_unemployed"] * DF.sum())
    assert work["state"] == pytest.approx((1e6 - 10 * UC["unemployment_benefit"] - 10 * UC["tax_revenue"]) * DF.sum())
    assert work.get("county", 0.0) == 0.0
    prog = led[(led.scenario == "work") & (led.item == "programme:ips_youth")]
    assert set(prog["payer"]) == {"state"} and prog["cost_change_nok"].tolist() == [1e6, 1e6]


def test_capacity_bought_by_a_programme_is_not_charged_twice():
    runs = park_and_work_runs()
    plain = economics(runs).set_index("scenario").loc["park"]
    paid = economics(runs, paid_by_programme={"park": {"nav_measures"}}).set_index("scenario").loc["park"]
    assert plain["pv_service_cost_nok"] - paid["pv_service_cost_nok"] == pytest.approx(
        10 * UC["nav_programme_places"] * DF.sum())


def test_capacity_is_paid_by_the_programme_only_in_the_years_it_buys_it():
    """A follow-up after the programme pays the service at its unit cost again: with the capacity
    bought in the first year only, the second year's extra places are charged."""
    runs = park_and_work_runs()
    plain = economics(runs).set_index("scenario").loc["park"]
    first = economics(runs, paid_by_programme={"park": {"nav_measures": (YEARS[0], YEARS[0])}}
                      ).set_index("scenario").loc["park"]
    assert plain["pv_service_cost_nok"] - first["pv_service_cost_nok"] == pytest.approx(
        10 * UC["nav_programme_places"] * DF[0])
    always = economics(runs, paid_by_programme={"park": {"nav_measures": (YEARS[0], None)}}
                       ).set_index("scenario").loc["park"]
    assert plain["pv_service_cost_nok"] - always["pv_service_cost_nok"] == pytest.approx(
        10 * UC["nav_programme_places"] * DF.sum())


def test_value_at_30_and_its_switch():
    """One more person turns 30 in work instead of on a health benefit, in the second year."""
    base = dict(yearly(BASE, reps=1))
    base.update({f"age29_person_years_{r}@{y}": [10.0] for r in ("employed", "health_benefit") for y in YEARS})
    scen = {k: list(v) for k, v in base.items()}
    scen["age29_person_years_employed@2031"] = [11.0]
    scen["age29_person_years_health_benefit@2031"] = [9.0]
    runs = runs_from({"baseline": base, "s": scen})
    v30 = BOOK.value_at_30
    expected = v30.persistence["health_benefit"].value * (
        v30.production_loss_if_permanent.value + TAX * v30.public_cost_if_permanent.value) / 1.04
    row = economics(runs).iloc[0]
    assert row["pv_value_at_30_nok"] == pytest.approx(expected)
    assert row["npv_nok"] == pytest.approx(expected) and row["npv_within_horizon_nok"] == 0.0
    off = economics(runs, valuation=Valuation(include_value_at_30=False)).iloc[0]
    assert off["npv_nok"] == 0.0 and off["pv_value_at_30_nok"] == pytest.approx(expected)
    assert not off["value_at_30_included"]


def noisy_runs(n: int = 12, seed: int = 3) -> pd.DataFrame:
    """A programme whose cost and effect vary by replicate (fixed seed)."""
    rng = np.random.default_rng(seed)
    spec = {"baseline": {}, "s": {}}
    for y in YEARS:
        for m, v in BASE.items():
            spec["baseline"][f"{m}@{y}"] = [v] * n
            spec["s"][f"{m}@{y}"] = [v] * n
        spec["s"][f"neet_person_years_15_29@{y}"] = list(BASE["neet_person_years_15_29"] - rng.normal(5, 1.5, n))
        spec["s"][f"programme_cost_nok:x@{y}"] = list(rng.normal(1e6, 1e5, n))
    return runs_from(spec)


def test_ratio_intervals_are_finite_and_contain_the_estimate():
    row = economics(noisy_runs()).iloc[0]
    for ratio in ("cost_per_exclusion_year_avoided_nok", "benefit_cost_ratio"):
        lo, hi = row[f"{ratio}_low"], row[f"{ratio}_high"]
        if ratio == "benefit_cost_ratio":  # no production: benefits 0, ratio exactly 0
            assert row[ratio] == lo == hi == 0.0
            continue
        assert np.isfinite(lo) and np.isfinite(hi)
        assert lo < row[ratio] < hi
    assert row["interval_basis"] == "replicates (Monte Carlo)"
    # the same table twice: the bootstrap is seeded
    pd.testing.assert_frame_equal(economics(noisy_runs()), economics(noisy_runs()))


def test_ratio_interval_coverage():
    """Paired bootstrap interval of mean(cost)/mean(effect) covers the true ratio 2.0 in about 95%
    of 400 synthetic data sets of 20 correlated pairs. Binomial SE at 95% and 400 sets is 1.1 pp;
    percentile bootstraps under-cover slightly at n = 20, so the band is 91-98.5% (≈ 3.5 SE below,
    3 above). Fixed seed."""
    rng = np.random.default_rng(20261201)
    hits = 0
    reps = 400
    for k in range(reps):
        den = rng.normal(5.0, 1.0, 20)
        num = 2.0 * den + rng.normal(0.0, 1.5, 20)
        _, lo, hi = ratio_interval(num, den, seed=k)
        hits += lo <= 2.0 <= hi
    assert 0.91 <= hits / reps <= 0.985


def test_ratio_interval_unbounded_when_effect_may_be_zero():
    point, lo, hi = ratio_interval(np.array([1.0, 1.2, 0.9, 1.1]), np.array([0.5, -0.4, 0.3, -0.2]))
    assert lo == -np.inf and hi == np.inf and np.isfinite(point)


def test_parameter_mode_intervals_use_draws_not_replicates():
    runs = noisy_runs(n=12)
    draw_of = {r: r // 3 for r in range(12)}  # 4 draws x 3 seeds
    row = economics(runs, draw_of=draw_of).iloc[0]
    assert row["n_units"] == 4 and row["n_replicates"] == 12
    assert row["interval_basis"] == "parameter draws"
    per = economics_by_replicate(runs)
    draw_means = per.assign(d=per.replicate.map(draw_of)).groupby("d")["npv_nok"].mean()
    assert row["npv_nok"] == pytest.approx(draw_means.mean())


def test_parameter_mode_intervals_are_the_effects_percentile_intervals():
    """In parameter mode economics.csv describes parameter uncertainty the way effects.csv does
    (national percentile intervals over draws), not a t-interval of the mean over draws, which
    would shrink as draws are added."""
    from utenforsk.analysis.uncertainty import national_interval

    runs = noisy_runs(n=12)
    draw_of = {r: r // 3 for r in range(12)}
    row = economics(runs, draw_of=draw_of, scale=0.01).iloc[0]
    per = economics_by_replicate(runs).set_index("replicate")["npv_nok"]
    lo, hi = national_interval(per, draw_of, 0.01)
    assert (row["npv_nok_low"], row["npv_nok_high"]) == pytest.approx((lo, hi))
    assert row["npv_nok_low"] <= row["npv_nok"] <= row["npv_nok_high"]


def test_acceptability_curve():
    runs = noisy_runs()
    ceac = acceptability(runs, wtp=(0, 1e5, 1e6, 1e7))
    s = ceac[ceac.scenario == "s"].set_index("wtp_nok")["probability"]
    per = economics_by_replicate(runs)
    assert s[0] == pytest.approx(float((per.npv_nok > 0).mean()))
    assert s.is_monotonic_increasing  # every replicate avoids NEET-years: more λ, more accepted
    assert s[1e7] == 1.0
    assert set(ceac.basis) == {"Monte Carlo replicates (simulation noise only)"}
    by_draw = acceptability(runs, wtp=(0,), draw_of={r: r // 3 for r in range(12)})
    assert set(by_draw.basis) == {"parameter draws"} and set(by_draw.n_units) == {4}


def test_bad_cost_file_is_one_config_error(tmp_path):
    text = (load_costs.__globals__["DEFAULT_COSTS"]).read_text().replace(
        "quantity: person_years_school", "quantity: person_years_schol")
    bad = tmp_path / "costs.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_costs(bad)
    assert err.value.key == "items.primary_school.quantity"
    assert "person_years_schol" in str(err.value)
    with pytest.raises(ConfigError):
        load_costs(tmp_path / "missing.yaml")


def test_docs_cost_table_is_current():
    """docs/experiments.md holds the table generated from configs/norway/costs.yaml."""
    from pathlib import Path

    from utenforsk.analysis.ledger import COST_TABLE_END, COST_TABLE_START, cost_table_markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "experiments.md").read_text(encoding="utf-8")
    block = text[text.index(COST_TABLE_START) + len(COST_TABLE_START):text.index(COST_TABLE_END)]
    assert block.strip() == cost_table_markdown(BOOK).strip(), (
        "regenerate the cost table in docs/experiments.md from utenforsk.analysis.ledger.cost_table_markdown")
    for name in BOOK.items:
        assert f"`{name}`" in block


def test_drawn_cost_book_widens_intervals_and_ledger_still_sums():
    """Parameter mode: each draw gets its own cost book (uniform over the ranges, seeded). With
    identical replicates the only spread is then the unit values'."""
    spec = {s: {k: v * 6 for k, v in d.items()} for s, d in {
        "baseline": yearly(BASE, reps=2),
        "work": yearly(moved(person_years_unemployed=-10, employment_person_years_15_29=10,
                             neet_person_years_15_29=-10, **{"programme_cost_nok:ips_youth": 1e6}), reps=2)}.items()}
    runs = runs_from(spec)  # 12 identical replicates
    draw_of = {r: r // 3 for r in range(12)}
    books = {d: V.drawn(np.random.default_rng([1, d])) for d in range(4)}
    of = lambda r: books[draw_of[r]]  # noqa: E731
    central = economics(runs, draw_of=draw_of).iloc[0]
    drawn = economics(runs, draw_of=draw_of, valuation_of=of).iloc[0]
    assert central["npv_nok_high"] - central["npv_nok_low"] == pytest.approx(0.0, abs=1e-3)
    assert drawn["npv_nok_high"] - drawn["npv_nok_low"] > 1e5
    led = ledger(runs, valuation_of=of)
    assert led["pv_cost_change_nok"].sum() == pytest.approx(drawn["pv_public_budget_change_nok"])
    # the same seeds give the same books
    again = V.drawn(np.random.default_rng([1, 2]))
    assert again.costs == books[2].costs
    for path, p in books[0].costs.params().items():
        assert p.range[0] <= p.value <= p.range[1], path


def test_task_records_the_quantities_the_economics_values():
    """A tiny real run (scale 0.002, 10 burn-in + 2 policy years): per-programme costs sum to the
    total, client-years match the periods table, and person-years by role add up to the population."""
    from pathlib import Path

    from utenforsk.experiment.metrics import task_metrics
    from utenforsk.model import UtenforskModel
    from utenforsk.outputs import periods

    root = Path(__file__).resolve().parents[1]
    model = UtenforskModel(root / "configs" / "norway" / "baseline.yaml", seed=3, scale=0.002,
                           horizon_years=2, burn_in_years=10, interventions=["nav_youth_guarantee"])
    model.run_model()
    m = task_metrics(model)
    per = periods(model).set_index("year")
    for year in per.index:
        assert m[f"programme_cost_nok:nav_youth_guarantee@{year}"] == pytest.approx(m[f"programme_cost_nok@{year}"])
        months = per.loc[year, "months"]
        for svc in ("nav", "child_welfare", "ot"):
            assert m[f"client_years_{svc}@{year}"] == pytest.approx(per.loc[year, f"clients_{svc}"] * months / 12)
        roles = sum(v for k, v in m.items() if k.startswith("age29_person_years_") and k.endswith(f"@{year}"))
        assert roles > 0  # the cohort at 29 is there, split by role
        assert m[f"employment_person_years_15_29@{year}"] > 0
    assert m["programme_cost_nok"] > 0
    assert m["employment_person_years_15_29"] == pytest.approx(
        sum(m[f"employment_person_years_15_29@{y}"] for y in per.index))


def test_sensitivity_one_unit_value_at_a_time():
    """The pure transfer: only its own unit value (and nothing the scenario does not use) moves the
    NPV, by exactly 20% × 5 person-years × (high − low) × Σ discount factors."""
    from utenforsk.analysis.economics import sensitivity

    runs = runs_from({"baseline": yearly(BASE), "transfer": yearly(moved(person_years_health_benefit=5))})
    sens = sensitivity(runs)
    top = sens.iloc[0]
    lo, hi = BOOK.items["health_benefit"].unit_cost.range
    assert top["parameter"] == "items.health_benefit.unit_cost"
    assert top["swing_nok"] == pytest.approx(TAX * 5 * (hi - lo) * DF.sum())
    assert top["npv_at_low_nok"] > top["npv_central_nok"] > top["npv_at_high_nok"]
    others = sens[sens.parameter != "items.health_benefit.unit_cost"]
    assert (others["swing_nok"] == 0).all()
