"""The metrics of one finished task (scenario x replicate), in the long format of runs.parquet.

Summary metrics are horizon means (rates) or horizon totals at national scale (person-years,
NOK); yearly metrics carry ``@YEAR``. Programme costs follow each intervention's ``cost`` block:
per new participant, per participant-month, and fixed or staff costs per active month.
"""

from __future__ import annotations

import numpy as np

from utenforsk.core.kernel import PG_ENROLLED, PG_MONTHS
from utenforsk.metrics import headline
from utenforsk.outputs import cohorts

YEARLY = ("neet_rate_15_29", "health_benefit_rate_18_29", "neet_person_years_15_29",
          "health_benefit_person_years_18_29", "programme_cost_nok")
GAPS = {"parental_education": ("compulsory", "higher"), "immigrant_background": ("immigrant", "other")}
# the plain (not @YEAR) metric names task_metrics produces; a gap metric only when the model
# reports by its attribute (outputs.report_by)
TASK_METRICS = (*(f"neet_rate_{k}" for k in headline.AGE_GROUPS), "health_benefit_rate_18_29",
                "kindergarten_coverage_1_2", "kindergarten_coverage_3_5", "exclusion_years_15_29",
                "health_benefit_person_years_18_29", "programme_cost_nok", "upper_secondary_completion_5y",
                "long_term_neet_share", *(f"gap_neet_rate_15_29_{a}" for a in GAPS))


def _param(p) -> float:
    return 0.0 if p is None else p.value


def monthly_programme_cost(model, month: dict) -> float:
    """NOK (at the interventions' price year) spent on all programmes in one month, national."""
    total = 0.0
    scale = model.config.scale
    for k, iv in enumerate(model.interventions):
        c = iv.cost
        enrolled, months = month["prog"][k, PG_ENROLLED], month["prog"][k, PG_MONTHS]
        total += _param(c.per_participant) * enrolled / scale
        total += _param(c.per_participant_month) * months / scale
        if month["pg_cover"][k] > 0:
            total += (_param(c.fixed_per_year) + _param(c.staff_positions) * _param(c.cost_per_position)) / 12.0
    for plugin in getattr(model, "plugins", []):
        total += plugin.monthly_cost(model, month)
    return total


def pathway_shares(model) -> dict[str, float]:
    """State shares by single year of age over the horizon: ``pathway:AGE:STATE``."""
    total = sum(h["age_state"] for h in model.history).astype(float)
    shares = total / np.maximum(total.sum(axis=1, keepdims=True), 1)
    return {f"pathway:{a}:{s}": shares[a, j] for a in range(shares.shape[0])
            for j, s in enumerate(model.compiled.states)}


def task_metrics(model) -> dict[str, float]:
    """Every metric of a finished run, as {name: value}."""
    masks = model.state_masks
    scale = model.config.scale
    out: dict[str, float] = {}
    total_age_state = sum(h["age_state"] for h in model.history)
    out.update(headline.rates(model.state_masks, total_age_state))
    neet_py = hb_py = cost = 0.0
    for year, months in headline.history_by_year(model).items():
        age_state = sum(h["age_state"] for h in months)
        rates = headline.rates(model.state_masks, age_state)
        y_neet = age_state[15:30][:, masks["neet"]].sum() / 12.0 / scale
        y_hb = age_state[18:30][:, masks["health_benefit"]].sum() / 12.0 / scale
        y_cost = sum(monthly_programme_cost(model, h) for h in months)
        out[f"neet_rate_15_29@{year}"] = rates["neet_rate_15_29"]
        out[f"health_benefit_rate_18_29@{year}"] = rates["health_benefit_rate_18_29"]
        out[f"neet_person_years_15_29@{year}"] = y_neet
        out[f"health_benefit_person_years_18_29@{year}"] = y_hb
        out[f"programme_cost_nok@{year}"] = y_cost
        neet_py, hb_py, cost = neet_py + y_neet, hb_py + y_hb, cost + y_cost
    out["exclusion_years_15_29"] = neet_py
    out["health_benefit_person_years_18_29"] = hb_py
    out["programme_cost_nok"] = cost
    co = cohorts(model)
    start = model.config.calendar.start_year
    treated = co[co.birth_year >= start - 16]  # started upper secondary inside the horizon
    out["upper_secondary_completion_5y"] = float(treated.upper_secondary_completion_5y.mean())
    out["long_term_neet_share"] = float(co.long_term_neet_share.dropna().tail(5).mean()) \
        if co.long_term_neet_share.notna().any() else float("nan")
    grp = sum(h["grp"] for h in model.history)  # [group, category, age, state]
    for g, attr in enumerate(model.compiled.report_by):
        if attr not in GAPS:
            continue
        cats = model.config.attributes[attr].categories
        hi, lo = (cats.index(c) for c in GAPS[attr])
        rate = lambda k: headline.share(grp[g, k], masks["neet"], 15, 30)  # noqa: E731
        out[f"gap_neet_rate_15_29_{attr}"] = rate(hi) - rate(lo)
    return out



# ---- cohort follow-up and "for whom" (issue 12) -------------------------------------------------
# summary metrics of the followed cohorts (experiment key follow_cohorts_to_age), whole lives:
COHORT_METRICS = ("cohort_exclusion_years_15_29", "cohort_completion_5y", "cohort_long_term_neet_share",
                  "cohort_completers", "cohort_long_term_neet_persons")


def _cohort_sums(model, tally: np.ndarray, b0: int, b1: int) -> dict[str, float]:
    """Pooled outcomes of birth cohorts ``b0..b1`` from cohort tallies ``[cohort, field]``:
    national NEET person-years at 15-29, completion within 5 years (share, and national
    completers), long-term NEET (share, and national persons); NaN
    unless every cohort has been observed long enough (to 30, or to 21 for completion)."""
    from utenforsk.core.kernel import (CO_AGED_OUT, CO_AGED_OUT_LONG, CO_NEET_M, CO_US_DONE,
                                       CO_US_DUE, COHORT_OFFSET)

    last = model.first_year + model.month // 12 - 1
    rows = tally[[by - model.first_year + COHORT_OFFSET // 12 for by in range(b0, b1 + 1)]]
    aged_out, done_5y = b1 + 30 <= last, b1 + 21 <= last
    scale = model.config.scale
    nan = float("nan")
    return {
        "exclusion_years_15_29": float(rows[:, CO_NEET_M].sum() / 12.0 / scale) if aged_out else nan,
        "completion_5y": (float(rows[:, CO_US_DONE].sum() / rows[:, CO_US_DUE].sum())
                          if done_5y and rows[:, CO_US_DUE].sum() else nan),
        "long_term_neet_share": (float(rows[:, CO_AGED_OUT_LONG].sum() / rows[:, CO_AGED_OUT].sum())
                                 if aged_out and rows[:, CO_AGED_OUT].sum() else nan),
        "completers": float(rows[:, CO_US_DONE].sum() / scale) if done_5y else nan,  # national persons
        "long_term_neet_persons": float(rows[:, CO_AGED_OUT_LONG].sum() / scale) if aged_out else nan,
    }


def cohort_metrics(model, b0: int, b1: int) -> dict[str, float]:
    """The followed birth cohorts ``b0..b1``: pooled (``cohort_*``), per birth year
    (``cohort:YEAR:*``) and per report_by group (``group:ATTR:CAT:cohort_*``)."""
    out = {f"cohort_{k}": v for k, v in _cohort_sums(model, model.tally.cohort.sum(axis=0), b0, b1).items()}
    total = model.tally.cohort.sum(axis=0)
    for by in range(b0, b1 + 1):
        for k, v in _cohort_sums(model, total, by, by).items():
            out[f"cohort:{by}:{k}"] = v
    grp = model.tally.cohort_grp.sum(axis=0)  # [group, category, cohort, field]
    for g, attr in enumerate(model.compiled.report_by):
        for c, cat in enumerate(model.config.attributes[attr].categories):
            for k, v in _cohort_sums(model, grp[g, c], b0, b1).items():
                out[f"group:{attr}:{cat}:cohort_{k}"] = v
    return out


def group_metrics(model) -> dict[str, float]:
    """Horizon NEET rate 15-29 and national NEET person-years 15-29 by report_by group:
    ``group:ATTR:CAT:neet_rate_15_29`` and ``group:ATTR:CAT:exclusion_years_15_29``."""
    if not model.history:
        return {}
    neet, scale = model.state_masks["neet"], model.config.scale
    grp = sum(h["grp"] for h in model.history)  # [group, category, age, state]
    out = {}
    for g, attr in enumerate(model.compiled.report_by):
        for c, cat in enumerate(model.config.attributes[attr].categories):
            out[f"group:{attr}:{cat}:neet_rate_15_29"] = headline.share(grp[g, c], neet, 15, 30)
            out[f"group:{attr}:{cat}:exclusion_years_15_29"] = float(grp[g, c, 15:30][:, neet].sum() / 12.0 / scale)
    return out


def participant_metrics(model) -> dict[str, float]:
    """New participants over the horizon, national: ``participants:NAME`` per intervention and
    ``participants`` summed (a person in two programmes counts twice)."""
    if not model.interventions or not model.history:
        return {}
    enrolled = sum(h["prog"][:, PG_ENROLLED] for h in model.history) / model.config.scale
    out = {f"participants:{iv.name}": float(enrolled[k]) for k, iv in enumerate(model.interventions)}
    out["participants"] = float(sum(out.values()))
    return out
