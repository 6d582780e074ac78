"""Report layer on small synthetic tables (no simulation): report.md and the five figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from utenforsk.report import write_report
from utenforsk.report.figures import FILES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
YEARS = list(range(2025, 2031))
STATES = ["home", "kindergarten", "school", "upper_secondary_academic",
          "upper_secondary_vocational", "higher_education", "employed", "unemployed", "inactive",
          "nav_programme", "health_benefit"]
META = {"experiment": "synthetic", "config_hash": "cafebabe1234", "seed": 7, "version": "0.1.0",
        "replicates": 4, "scale": 0.002, "start_year": 2025, "horizon_years": 6}


def make_runs(scenarios: list[str], n_rep: int = 4, seed: int = 1) -> pd.DataFrame:
    """Long runs table. Effects: index 0 after baseline acts early (youth), the next late."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_rep):
        common = rng.normal(0, 1, len(YEARS))  # common random numbers: shared by scenarios
        for k, s in enumerate(scenarios):
            t = np.arange(len(YEARS))
            if s == "baseline":
                eff = np.zeros(len(YEARS))
            elif k % 2 == 1:
                eff = np.full(len(YEARS), 0.004 * k)
            else:
                eff = 0.01 * k * np.clip(t - 3, 0, None) / 2  # prevention: shows late
            noise = rng.normal(0, 0.0005, len(YEARS))
            rate = 0.10 + 0.002 * common - eff + noise
            py = rate * 800_000
            cost = 0.0 if s == "baseline" else 50e6 * k * (1 + 0.05 * rng.normal())
            for y, rt, p in zip(YEARS, rate, py):
                rows += [(s, r, f"neet_rate_15_29@{y}", rt), (s, r, f"neet_person_years_15_29@{y}", p),
                         (s, r, f"programme_cost_nok@{y}", cost / len(YEARS))]
            rows += [(s, r, "neet_rate_15_29", rate.mean()), (s, r, "exclusion_years_15_29", py.sum()),
                     (s, r, "programme_cost_nok", cost),
                     (s, r, "upper_secondary_completion_5y", 0.8 + eff.mean() + noise[0])]
    return pd.DataFrame(rows, columns=["scenario", "replicate", "metric", "value"])


def make_effects(runs: pd.DataFrame) -> pd.DataFrame:
    table = runs.pivot(index=["scenario", "replicate"], columns="metric", values="value")
    base = table.xs("baseline", level="scenario")
    rows = []
    for s in [s for s in pd.unique(runs["scenario"]) if s != "baseline"]:
        this = table.xs(s, level="scenario")
        for m in table.columns:
            d = (this[m] - base[m]).to_numpy()
            n, mean = len(d), d.mean()
            half = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)
            bm = base[m].mean()
            rows.append((s, m, bm, this[m].mean(), mean, mean - half, mean + half,
                         mean / bm if bm else np.nan, n))
    return pd.DataFrame(rows, columns=["scenario", "metric", "baseline_mean", "scenario_mean",
                                       "difference", "ci_low", "ci_high", "relative_change",
                                       "n_replicates"])


def make_economics(effects: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for s, d in effects.groupby("scenario", sort=False):
        ex = d.set_index("metric").loc["exclusion_years_15_29"]
        co = d.set_index("metric").loc["programme_cost_nok"]
        pv = 0.9 * co["difference"]
        avoided = -ex["difference"]
        rows.append({"scenario": s, "pv_programme_cost_nok": pv,
                     "pv_programme_cost_nok_low": 0.9 * co["ci_low"],
                     "pv_programme_cost_nok_high": 0.9 * co["ci_high"],
                     "exclusion_years_avoided": avoided,
                     "exclusion_years_avoided_low": -ex["ci_high"],
                     "exclusion_years_avoided_high": -ex["ci_low"],
                     "npv_nok": avoided * 400_000 - pv, "npv_nok_low": np.nan, "npv_nok_high": np.nan,
                     "cost_per_exclusion_year_avoided_nok": pv / avoided if avoided > 0 else np.nan,
                     "benefit_cost_ratio": avoided * 400_000 / pv, "n_replicates": 4,
                     "price_year": 2024})
    return pd.DataFrame(rows)


def make_ledger(effects: pd.DataFrame) -> pd.DataFrame:
    """Two payers per scenario over two years: the municipality pays, the state saves."""
    rows = []
    for s in effects["scenario"].unique():
        for year, df in ((2025, 1.0), (2026, 1 / 1.04)):
            rows += [(s, "municipality", "health_station", f"programme:{s}", "programme", year, 2e6, 2e6 * df),
                     (s, "state", "benefits", "health_benefit", "transfer", year, -1e6, -1e6 * df)]
    return pd.DataFrame(rows, columns=["scenario", "payer", "sector", "item", "kind", "year",
                                       "cost_change_nok", "pv_cost_change_nok"])


def make_ceac(effects: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([(s, w, min(1.0, 0.2 + w / 1e6), "parameter draws", 8)
                         for s in effects["scenario"].unique() for w in (0, 500_000, 1_000_000, 2_000_000)],
                        columns=["scenario", "wtp_nok", "probability", "basis", "n_units"])


def make_pathways() -> pd.DataFrame:
    age = np.arange(30)
    raw = np.stack([np.exp(-((age - c) / w) ** 2) for c, w in
                    [(0, 1.5), (3, 2), (10, 4), (17, 1.5), (17.5, 1.8), (22, 3), (27, 5), (22, 5),
                     (24, 6), (23, 4), (27, 6)]], axis=1) + 1e-3
    shares = raw / raw.sum(axis=1, keepdims=True)
    return pd.DataFrame(shares, columns=STATES).assign(age=age)[["age", *STATES]]


def make_hypotheses() -> pd.DataFrame:
    return pd.DataFrame([
        {"name": "youth_lowers_neet", "statement": "Youth guarantee lowers NEET 15-29",
         "verdict": "supported", "probability": 0.99, "estimate": -0.004, "ci_low": -0.005,
         "ci_high": -0.003, "n_replicates": 4},
        {"name": "prevention_cheap", "statement": "Prevention costs < NOK 100 m | per year",
         "verdict": "inconclusive", "probability": 0.55, "estimate": 1.2, "ci_low": -0.3,
         "ci_high": 2.7, "n_replicates": 4}])


@pytest.fixture(scope="module")
def inputs():
    runs = make_runs(["baseline", "youth_guarantee", "thousand_days"])
    effects = make_effects(runs)
    return dict(runs=runs, effects=effects, economics=make_economics(effects),
                hypotheses=make_hypotheses(), baseline_pathways=make_pathways(), meta=META,
                ledger=make_ledger(effects), ceac=make_ceac(effects),
                economics_sensitivity=pd.DataFrame([
                    ("youth_guarantee", "production.value_per_employment_year", 380000, 700000, -2e9, 1e9, -5e8,
                     0.5, 1.2, 3e9)], columns=["scenario", "parameter", "low", "high", "npv_at_low_nok",
                                               "npv_at_high_nok", "npv_central_nok", "bcr_at_low",
                                               "bcr_at_high", "swing_nok"]))


@pytest.fixture(scope="module")
def full_report(tmp_path_factory, inputs):
    out = tmp_path_factory.mktemp("report")
    return write_report(out, **inputs)


def _png_ok(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


def test_writes_report_and_five_pngs(full_report):
    assert full_report.name == "report.md" and full_report.is_file()
    for name in FILES.values():
        p = full_report.parent / "figures" / name
        assert p.is_file() and _png_ok(p), name


def test_report_content(full_report, inputs):
    text = full_report.read_text()
    for s in ["baseline", "youth_guarantee", "thousand_days"]:
        assert s in text
    assert "cafebabe1234" in text
    assert "supported" in text and "inconclusive" in text
    for name in FILES.values():
        assert f"](figures/{name})" in text
    assert "2024" in text  # price year from the economics table
    assert "Who pays, who gains" in text and "R-109/2021" in text
    assert "`production.value_per_employment_year`" in text and "| -2,000.0 | 1,000.0 | -500.0 |" in text
    # the ledger table: municipality pays 2 MNOK + 2/1.04 MNOK, the state saves half of that
    assert "| 3.9 | -2.0 | 2.0 |" in text.replace("−", "-")
    assert "%" in text and " pp" in text  # rates as percentages, differences in points
    assert "Prevention costs < NOK 100 m \\| per year" in text  # pipes escaped in tables
    # thousands separators for large NOK / person-year numbers
    assert any("," in cell for cell in text.split("|") if any(ch.isdigit() for ch in cell))


def test_empty_hypotheses_and_economics(tmp_path, inputs):
    args = {**inputs, "hypotheses": pd.DataFrame(columns=["name", "statement", "verdict"]),
            "economics": pd.DataFrame()}
    text = write_report(tmp_path, **args).read_text()
    assert "no hypotheses" in text.lower()
    assert "no economics" in text.lower()
    # cost-effect plane falls back to the (undiscounted) effects table
    assert _png_ok(tmp_path / "figures" / "cost_effect.png")


def test_single_intervention_scenario(tmp_path):
    runs = make_runs(["baseline", "youth_guarantee"], seed=3)
    effects = make_effects(runs)
    report = write_report(tmp_path, runs, effects, make_economics(effects), None, None,
                          dict(META), main_metrics=["neet_rate_15_29", "exclusion_years_15_29"])
    text = report.read_text()
    for key in ("neet_by_year", "effects_forest", "cost_effect", "effect_timing"):
        assert _png_ok(tmp_path / "figures" / FILES[key]), key
    assert not (tmp_path / "figures" / FILES["pathways"]).exists()
    assert "Not drawn" in text and "no hypotheses" in text.lower()
    assert "youth_guarantee" in text


# ---- issue 12: verdicts say what their probability is over; cohort and for-whom sections ------

def test_hypotheses_table_names_the_probability_and_unit():
    from utenforsk.report import hypotheses_table

    hyps = pd.DataFrame([{"name": "h", "statement": "s", "verdict": "inconclusive", "probability": 0.62,
                          "probability_over": "parameter draws (national scale)", "estimate": -1.5,
                          "ci_low": -4.0, "ci_high": 1.0, "unit": "person-years per million NOK",
                          "compared_with": "nav", "n_replicates": 40, "n_draws": 20, "detail": ""}])
    text = hypotheses_table(hyps)
    assert "parameter draws (national scale)" in text and "person-years per million NOK" in text
    assert "| -1.50 | [-4.00, 1.00] |" in text and "P(claim) over parameter draws" in text
    assert "Monte Carlo mode" not in text  # no MC-mode row: no MC-mode note


def test_cohort_and_for_whom_sections():
    from utenforsk.report import cohort_section, for_whom_section

    cohorts = pd.DataFrame([(s, y, m, 0.8, 0.8 + d, d, d - 0.01, d + 0.01, 4)
                            for s, d in (("a", 0.01), ("b", -0.02)) for y in range(2020, 2031)
                            for m in ("completion_5y",)],
                           columns=["scenario", "birth_year", "metric", "baseline_mean", "scenario_mean",
                                    "difference", "ci_low", "ci_high", "n_replicates"])
    text = cohort_section(cohorts, (2020, 2030), 2030, policy_start=2026)
    # the programme years' cohorts all shown, earlier ones every fifth; effects in pp
    for y in (2020, 2025, 2026, 2027, 2030):
        assert f"| {y} |" in text
    assert "| 2021 |" not in text and "+1.00 [+0.00, +2.00]" in text and "-2.00 [-3.00, -1.00]" in text
    groups = pd.DataFrame([("a", "sex", "female", "neet_rate_15_29", 0.1, 0.099, -0.001, -0.002, 0.0, 4)],
                          columns=["scenario", "attribute", "category", "metric", "baseline_mean",
                                   "scenario_mean", "difference", "ci_low", "ci_high", "n_replicates"])
    text = for_whom_section(groups)
    assert "| sex | female | -0.10 [-0.20, +0.00] |" in text


def test_effect_timing_in_parameter_mode(tmp_path):
    """With draws, the effect-timing band is the parameter-mode interval (drawn without error)."""
    from utenforsk.report.figures import plot_effect_timing

    runs = make_runs(["baseline", "youth", "prevention"], n_rep=8)
    path = plot_effect_timing(runs, tmp_path, 2025, draw_of={r: r // 2 for r in range(8)}, scale=0.002)
    assert path is not None and path.read_bytes()[:8] == PNG_MAGIC
