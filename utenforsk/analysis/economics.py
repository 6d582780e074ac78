"""Socio-economic evaluation of scenarios against the baseline, paired by replicate.

Discounting follows the Norwegian Ministry of Finance circular R-109/2021 (real discount rate 4 %
for years 0-40, 3 % for years 40-75, 2 % thereafter, applied piecewise), with year 0 the policy
start year (the smallest ``@YEAR`` in the runs table). Prices are real NOK of
:attr:`Valuation.price_year`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from utenforsk.analysis.effects import _scenarios, check_runs, mean_ci

#: (end year of the segment, annual real rate) per R-109/2021; the last segment is open.
R109_SEGMENTS = ((40.0, 0.04), (75.0, 0.03), (math.inf, 0.02))

COST = "programme_cost_nok"
HEALTH = "health_benefit_person_years_18_29"
NEET = "neet_person_years_15_29"
YEARLY_BASES = (COST, HEALTH, NEET)
QUANTITIES = ("pv_programme_cost_nok", "pv_benefit_savings_nok", "pv_production_gain_nok",
              "npv_nok", "exclusion_years_avoided", "cost_per_exclusion_year_avoided_nok",
              "benefit_cost_ratio")
_YEARLY = re.compile(r"^(?P<base>.+)@(?P<year>-?\d+)$")


def discount_factors(years_from_start) -> np.ndarray:
    """Discount factor for each year counted from the policy start (year 0 → 1.0).

    Piecewise R-109/2021: ``1/1.04**t`` for t ≤ 40, ``1/(1.04**40 · 1.03**(t-40))`` for
    40 < t ≤ 75, then ``1/(1.04**40 · 1.03**35 · 1.02**(t-75))``. Fractional years are allowed.
    """
    t = np.asarray(years_from_start, dtype=float)
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise ValueError("years from the policy start must be finite and >= 0")
    log_df = np.zeros_like(t)
    start = 0.0
    for end, rate in R109_SEGMENTS:
        years_in_segment = np.clip(t - start, 0.0, end - start)
        log_df -= years_in_segment * math.log1p(rate)
        start = end
    return np.exp(log_df)


@dataclass(frozen=True)
class Valuation:
    """Unit values for the socio-economic evaluation (real NOK, price year ``price_year``).

    - ``tax_cost_factor`` = 0.2: marginal cost of public funds (skattefinansieringskostnad), 20 %
      of every public krone spent or saved, as prescribed by R-109/2021 [U] (Finansdepartementet,
      rundskriv R-109/2021, and NOU 2012:16).
    - ``benefit_per_health_benefit_year_nok`` = 280 000: ASSUMPTION. Work assessment allowance
      (arbeidsavklaringspenger, AAP) paid for one person-year, ≈ 2.2 G (G = grunnbeløpet,
      ≈ 124 000 NOK in 2024); young recipients are often on the minimum rate, so this is a rough
      average.
    - ``public_cost_per_neet_year_nok`` = 120 000: ASSUMPTION. Public transfers per NEET
      person-year (unemployment benefit, social assistance/økonomisk sosialhjelp, qualification
      benefit), averaged over NEET states; applied to NEET person-years that are *not*
      health-benefit years (those are NEET too, and valued by the line above).
    - ``production_per_neet_year_nok`` = 550 000: ASSUMPTION. Value added (wage plus employer
      costs) of a young worker, i.e. production lost per NEET person-year.
    - ``price_year`` = 2024: the year whose prices all NOK amounts are in (no inflation applied).
    """

    tax_cost_factor: float = 0.2
    benefit_per_health_benefit_year_nok: float = 280_000.0
    public_cost_per_neet_year_nok: float = 120_000.0
    production_per_neet_year_nok: float = 550_000.0
    price_year: int = 2024


def _yearly(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Yearly metrics as (scenario, replicate) x (base, year) columns, and the policy start year."""
    parsed = runs["metric"].astype(str).str.extract(_YEARLY)
    yearly = runs.assign(base=parsed["base"], year=pd.to_numeric(parsed["year"])).dropna(
        subset=["base"])
    if yearly.empty:
        raise ValueError("runs table has no yearly metrics (NAME@YEAR); economics needs "
                         f"{', '.join(b + '@YEAR' for b in YEARLY_BASES)}")
    start = int(yearly["year"].min())
    yearly = yearly[yearly["base"].isin(YEARLY_BASES)].astype({"year": int})
    table = yearly.pivot(index=["scenario", "replicate"], columns=["base", "year"], values="value")
    return table.astype(float), start


def _series(table: pd.DataFrame, base: str, years: list[int], fill_zero: bool) -> pd.DataFrame:
    cols = [(base, y) for y in years]
    out = table.reindex(columns=pd.MultiIndex.from_tuples(cols, names=["base", "year"]))
    out.columns = years
    return out.fillna(0.0) if fill_zero else out


def _replicates(runs: pd.DataFrame, scenario: str) -> list:
    return list(pd.unique(runs.loc[runs["scenario"] == scenario, "replicate"]))


def _rows(series: pd.DataFrame, scenario: str, reps: list) -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples([(scenario, r) for r in reps], names=series.index.names)
    out = series.reindex(index)
    out.index = pd.Index(reps, name="replicate")
    return out


def economics_by_replicate(runs: pd.DataFrame, baseline: str = "baseline",
                           valuation: Valuation = Valuation()) -> pd.DataFrame:
    """Per (scenario, replicate): present values vs the baseline in the same replicate.

    Columns: ``scenario, replicate`` and :data:`QUANTITIES`. Differences are scenario − baseline
    per year; ``Δ`` below is that difference.

    - ``pv_programme_cost_nok`` = Σ_y Δcost_y · df_y · (1 + tax)
    - ``pv_benefit_savings_nok`` = Σ_y (−Δhealth-benefit-years_y · benefit − ΔNEET-years_y ·
      public cost per NEET year) · df_y · (1 + tax)
    - ``pv_production_gain_nok`` = Σ_y −ΔNEET-years_y · production per NEET year · df_y
    - ``npv_nok`` = savings + production − cost
    - ``exclusion_years_avoided`` = −Σ_y ΔNEET-years_y (undiscounted)
    - ``cost_per_exclusion_year_avoided_nok`` = pv cost / years avoided (NaN if avoided ≤ 0)
    - ``benefit_cost_ratio`` = (savings + production) / pv cost (NaN if pv cost ≤ 0)

    Years are every YEAR of the three yearly metrics above. A missing ``programme_cost_nok@YEAR``
    counts as 0 (no programme that year); a missing person-years value for a paired replicate is
    an error. Only replicates present in both the
    scenario and the baseline are used.
    """
    check_runs(runs)
    scenarios = _scenarios(runs, baseline)
    table, start = _yearly(runs)
    present = set(table.columns.get_level_values("base"))
    lacking = [b for b in (HEALTH, NEET) if b not in present]
    if lacking:
        names = ", ".join(b + "@YEAR" for b in lacking)
        raise ValueError(f"runs table lacks yearly metric(s) {names} needed for economics")
    years = sorted({int(y) for _, y in table.columns})
    df = discount_factors(np.array(years) - start)
    series = {b: _series(table, b, years, fill_zero=(b == COST)) for b in YEARLY_BASES}
    v, tax = valuation, 1.0 + valuation.tax_cost_factor
    frames = []
    for scenario in scenarios:
        reps = sorted(set(_replicates(runs, scenario)) & set(_replicates(runs, baseline)))
        delta = {b: _rows(series[b], scenario, reps) - _rows(series[b], baseline, reps)
                 for b in YEARLY_BASES}
        for b in (HEALTH, NEET):
            bad = delta[b].isna().any(axis=1)
            if bad.any():
                rep = bad[bad].index[0]
                raise ValueError(f"missing {b}@YEAR values for scenario {scenario!r} or "
                                 f"{baseline!r} in replicate {rep}")
        d_cost, d_health, d_neet = (delta[b].to_numpy() for b in YEARLY_BASES)
        cost = (d_cost @ df) * tax
        # health-benefit years are NEET years too (ages 18-29 within 15-29): the general NEET
        # transfer applies only to the NEET years that are not health-benefit years
        savings = ((-d_health * v.benefit_per_health_benefit_year_nok
                    - (d_neet - d_health) * v.public_cost_per_neet_year_nok) @ df) * tax
        production = (-d_neet * v.production_per_neet_year_nok) @ df
        avoided = -d_neet.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_year = np.where(avoided > 0, cost / np.where(avoided > 0, avoided, 1.0), np.nan)
            bcr = np.where(cost > 0, (savings + production) / np.where(cost > 0, cost, 1.0), np.nan)
        frames.append(pd.DataFrame({
            "scenario": scenario, "replicate": reps,
            "pv_programme_cost_nok": cost, "pv_benefit_savings_nok": savings,
            "pv_production_gain_nok": production, "npv_nok": savings + production - cost,
            "exclusion_years_avoided": avoided, "cost_per_exclusion_year_avoided_nok": per_year,
            "benefit_cost_ratio": bcr}))
    if not frames:
        return pd.DataFrame(columns=["scenario", "replicate", *QUANTITIES])
    return pd.concat(frames, ignore_index=True)


def economics(runs: pd.DataFrame, baseline: str = "baseline",
              valuation: Valuation = Valuation(), level: float = 0.95) -> pd.DataFrame:
    """One row per non-baseline scenario: mean and paired t-interval of each quantity.

    Columns: ``scenario``; for each of :data:`QUANTITIES` the mean under the quantity's own name
    plus ``<name>_low`` and ``<name>_high``; then ``n_replicates`` and ``price_year``. The two
    ratios are ratios of means (as an incremental cost-effectiveness ratio is): mean PV cost over
    mean exclusion-years avoided (NaN unless avoided > 0), and mean PV benefits over mean PV cost
    (NaN unless cost > 0); a mean of per-replicate ratios would be undefined as soon as one
    replicate avoids nothing. Their intervals are left NaN (per-replicate values are in
    :func:`economics_by_replicate`).
    """
    per = economics_by_replicate(runs, baseline, valuation)
    columns = ["scenario"] + [f"{q}{s}" for q in QUANTITIES for s in ("", "_low", "_high")] + [
        "n_replicates", "price_year"]
    rows = []
    for scenario in _scenarios(runs, baseline):
        group = per[per["scenario"] == scenario]
        row: dict = {"scenario": scenario}
        for q in QUANTITIES:
            row[q], row[f"{q}_low"], row[f"{q}_high"], _ = mean_ci(group[q].to_numpy(), level)
        cost, avoided = row["pv_programme_cost_nok"], row["exclusion_years_avoided"]
        gains = row["pv_benefit_savings_nok"] + row["pv_production_gain_nok"]
        row["cost_per_exclusion_year_avoided_nok"] = cost / avoided if avoided > 0 else np.nan
        row["benefit_cost_ratio"] = gains / cost if cost > 0 else np.nan
        for q in ("cost_per_exclusion_year_avoided_nok", "benefit_cost_ratio"):
            row[f"{q}_low"] = row[f"{q}_high"] = np.nan
        row["n_replicates"] = len(group)
        row["price_year"] = valuation.price_year
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
