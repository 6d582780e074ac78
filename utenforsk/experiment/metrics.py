"""The metrics of one finished task (scenario x replicate), in the long format of runs.parquet.

Summary metrics are horizon means (rates) or horizon totals at national scale (person-years,
NOK); yearly metrics carry ``@YEAR``. Programme costs follow each intervention's ``cost`` block:
per new participant, per participant-month, and fixed or staff costs per active month. The
yearly quantities of :func:`economic_quantities` (person-years by role, client-years by service,
the state mix at 29, each programme's cost) are what the socio-economic evaluation and the payer
ledger value (utenforsk.analysis.economics, configs/norway/costs.yaml).
"""

from __future__ import annotations

import numpy as np

from utenforsk.core.kernel import PG_ENROLLED, PG_MONTHS, SV_CLIENTS
from utenforsk.interventions import engine
from utenforsk.metrics import headline
from utenforsk.outputs import cohorts

YEARLY = ("neet_rate_15_29", "health_benefit_rate_18_29", "neet_person_years_15_29",
          "health_benefit_person_years_18_29", "programme_cost_nok", "employment_person_years_15_29",
          "education_person_years_15_29")
GAPS = {"parental_education": ("compulsory", "higher"), "immigrant_background": ("immigrant", "other")}
# the plain (not @YEAR) metric names task_metrics produces; a gap metric only when the model
# reports by its attribute (outputs.report_by)
TASK_METRICS = (*(f"neet_rate_{k}" for k in headline.AGE_GROUPS), "health_benefit_rate_18_29",
                "kindergarten_coverage_1_2", "kindergarten_coverage_3_5", "exclusion_years_15_29",
                "employment_person_years_15_29", "education_person_years_15_29",
                "health_benefit_person_years_18_29", "programme_cost_nok", "upper_secondary_completion_5y",
                "long_term_neet_share", *(f"gap_neet_rate_15_29_{a}" for a in GAPS))


def _param(p) -> float:
    return 0.0 if p is None else p.value


def monthly_programme_costs(model, month: dict) -> dict[str, float]:
    """NOK (at the interventions' price year) spent on each programme in one month, national,
    by intervention (or plugin) name: the payer ledger charges each to its own payer."""
    out: dict[str, float] = {}
    scale = model.config.scale
    for k, iv in enumerate(model.interventions):
        c = iv.cost
        enrolled, months = month["prog"][k, PG_ENROLLED], month["prog"][k, PG_MONTHS]
        total = _param(c.per_participant) * enrolled / scale
        total += _param(c.per_participant_month) * months / scale
        if c.caseload is not None:  # positions follow enrolment: enrolled person-months / caseload
            total += months / scale / c.caseload.value * _param(c.cost_per_position) / 12.0
        if month["pg_cover"][k] > 0:  # national figures, scaled to the population a pilot covers
            total += (_param(c.fixed_per_year) + _param(c.staff_positions) * _param(c.cost_per_position)) \
                / 12.0 * engine.population_share(iv)
        out[iv.name] = out.get(iv.name, 0.0) + total
    for plugin in getattr(model, "plugins", []):
        out[plugin.name] = out.get(plugin.name, 0.0) + plugin.monthly_cost(model, month)
    return out


def monthly_programme_cost(model, month: dict) -> float:
    """NOK (at the interventions' price year) spent on all programmes in one month, national."""
    return float(sum(monthly_programme_costs(model, month).values()))


#: person-years by the role of the state (all ages 0-29), for the unit costs in costs.yaml
COSTED_ROLES = ("school", "upper_secondary", "higher_education", "unemployed", "inactive",
                "nav_programme", "health_benefit")


def economic_quantities(model, months: list[dict]) -> dict[str, float]:
    """One year's national quantities that the socio-economic evaluation and the payer ledger
    value (utenforsk.analysis.ledger): person-years by role, kindergarten place-years by age,
    client-years per service, the state mix at age 29 (the cohort turning 30, valued at 30), and
    programme costs per intervention. Names carry no ``@YEAR``; the caller adds it."""
    c, scale = model.compiled, model.config.scale
    age_state = sum(h["age_state"] for h in months) / 12.0 / scale  # person-years, national
    roles = np.array([model.config.states[s].role for s in c.states], dtype=object)
    out: dict[str, float] = {}
    for role in COSTED_ROLES:
        out[f"person_years_{role}"] = float(age_state[:, roles == role].sum())
    kg = roles == "kindergarten"
    out["person_years_kindergarten_1_2"] = float(age_state[1:3][:, kg].sum())
    out["person_years_kindergarten_3_5"] = float(age_state[3:6][:, kg].sum())
    for role in sorted({r for r in roles if r is not None}):
        out[f"age29_person_years_{role}"] = float(age_state[29, roles == role].sum())
    sv = sum(h["sv"] for h in months)  # [service, municipality, field], person-months
    for s, name in enumerate(c.services):
        out[f"client_years_{name}"] = float(sv[s][:, SV_CLIENTS].sum() / 12.0 / scale)
    costs: dict[str, float] = {}
    for h in months:
        for name, v in monthly_programme_costs(model, h).items():
            costs[name] = costs.get(name, 0.0) + v
    out.update({f"programme_cost_nok:{name}": v for name, v in costs.items()})
    return out


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
    neet_py = hb_py = cost = emp_py = edu_py = 0.0
    employed = np.array([model.config.states[s].role == "employed" for s in model.compiled.states])
    education = np.array([model.config.states[s].role in ("upper_secondary", "higher_education")
                          for s in model.compiled.states])
    for year, months in headline.history_by_year(model).items():
        age_state = sum(h["age_state"] for h in months)
        rates = headline.rates(model.state_masks, age_state)
        y_neet = age_state[15:30][:, masks["neet"]].sum() / 12.0 / scale
        y_hb = age_state[18:30][:, masks["health_benefit"]].sum() / 12.0 / scale
        y_emp = age_state[15:30][:, employed].sum() / 12.0 / scale
        y_edu = age_state[15:30][:, education].sum() / 12.0 / scale
        quantities = economic_quantities(model, months)
        y_cost = sum(v for k, v in quantities.items() if k.startswith("programme_cost_nok:"))
        out[f"neet_rate_15_29@{year}"] = rates["neet_rate_15_29"]
        out[f"health_benefit_rate_18_29@{year}"] = rates["health_benefit_rate_18_29"]
        out[f"neet_person_years_15_29@{year}"] = y_neet
        out[f"health_benefit_person_years_18_29@{year}"] = y_hb
        out[f"programme_cost_nok@{year}"] = y_cost
        out[f"employment_person_years_15_29@{year}"] = y_emp
        out[f"education_person_years_15_29@{year}"] = y_edu
        out.update({f"{k}@{year}": v for k, v in quantities.items()})
        neet_py, hb_py, cost = neet_py + y_neet, hb_py + y_hb, cost + y_cost
        emp_py, edu_py = emp_py + y_emp, edu_py + y_edu
    out["exclusion_years_15_29"] = neet_py
    out["health_benefit_person_years_18_29"] = hb_py
    out["programme_cost_nok"] = cost
    out["employment_person_years_15_29"] = emp_py
    out["education_person_years_15_29"] = edu_py
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


#: per-municipality metrics (experiment key municipality_metrics): columns of
#: outputs.periods_by_municipality, per policy year, plus NEET 15-29 pooled over the years
KOMMUNE_METRICS = ("neet_rate_15_29", "simulated_persons_15_29", "neet_15_29", "population_15_29",
                   "health_benefit_rate_18_29", "completed_upper_secondary_21")


def municipality_metrics(model) -> dict[str, float]:
    """Each real municipality's Q4 figures: ``kommune:NNNN:METRIC@YEAR`` for
    :data:`KOMMUNE_METRICS`, and ``kommune:NNNN:neet_rate_15_29`` pooled over the policy years
    (NEET counts over persons counted, the register's point-in-time definition each December)."""
    from utenforsk.outputs import periods_by_municipality

    df = periods_by_municipality(model)
    out: dict[str, float] = {}
    if df.empty:
        return out
    for r in df.itertuples(index=False):
        for m in KOMMUNE_METRICS:
            out[f"kommune:{r.kommunenummer}:{m}@{r.year}"] = float(getattr(r, m))
    pooled = df.groupby("kommunenummer", sort=False)[["neet_15_29", "population_15_29"]].sum()
    for nr, row in pooled.iterrows():
        out[f"kommune:{nr}:neet_rate_15_29"] = (float(row.neet_15_29 / row.population_15_29)
                                              if row.population_15_29 > 0 else float("nan"))
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
