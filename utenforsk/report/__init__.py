"""The experiment report: markdown tables, seaborn figures, ``report.md``.

Built from tables only (runs, effects, economics, hypotheses, baseline pathways, run metadata);
nothing here runs a simulation. :func:`write_report` is the entry point; the figures live in
:mod:`utenforsk.report.figures`, one function each.

Number formats: rates as percentages with 2 decimals (their differences in percentage points),
NOK in millions with thousands separators (cost per exclusion-year in whole NOK), years and
counts with thousands separators.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from utenforsk.report import figures as fig
from utenforsk.report.figures import BASELINE, metric_kind, metric_label, ordered_scenarios

__all__ = ["write_report", "DEFAULT_MAIN_METRICS", "effects_tables", "economics_table",
           "hypotheses_table", "cohort_section", "for_whom_section", "participants_section"]

DEFAULT_MAIN_METRICS = ("neet_rate_15_29", "exclusion_years_15_29", "upper_secondary_completion_5y",
                        "health_benefit_rate_18_29", "long_term_neet_share", "programme_cost_nok")
DASH = "–"

FIGURE_TEXT = {
    "pathways": ("Baseline pathways",
                 "Share of persons in each activity state at every age from 0 to 29 in the baseline "
                 "scenario (stacked, summing to 100%)."),
    "neet_by_year": ("NEET rate by year",
                     "NEET rate at ages 15-29 in each calendar year for every scenario: mean across "
                     "replicates with its 95% interval; the baseline is drawn in black."),
    "effects_forest": ("Effects on the main metrics",
                       "Paired difference from the baseline with its 95% interval for each main "
                       "metric (one panel each; rates in percentage points, NOK in millions); "
                       "a filled marker means the interval excludes zero."),
    "cost_effect": ("Cost-effect plane",
                    "Each scenario's exclusion-years avoided against its socio-economic cost (NOK "
                    "million; both discounted alike), with 95% intervals as error bars; lower right "
                    "is cheaper and more effective."),
    "ledger": ("Who pays, who gains",
               "Each scenario's change in public spending by payer (municipality, county, state), "
               "present value in NOK million: above zero the payer spends more, below it saves; the "
               "diamond is the net change for all public budgets."),
    "ceac": ("Cost-effectiveness acceptability curve",
             "Share of parameter draws (Monte Carlo mode: of replicates, simulation noise only) in "
             "which each scenario's NPV plus the willingness to pay times the discounted "
             "exclusion-years avoided is positive."),
    "effect_timing": ("When each effect shows",
                      "NEET person-years avoided each year (baseline minus scenario, paired by "
                      "replicate) against years since the policy start; the dotted red line marks "
                      "the first year whose 95% band excludes zero (in parameter mode the band is "
                      "the interval over parameter draws of the tables), so early-childhood "
                      "prevention shows as a curve that rises only late."),
}


# ------------------------------------------------------------------------------------- formatting
def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt_number(x, decimals: int | None = None) -> str:
    """Thousands separators; decimals chosen by size unless given."""
    if not _finite(x):
        return DASH
    x = float(x)
    if decimals is None:
        a = abs(x)
        decimals = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 0.01 or a == 0 else 4
    return f"{x:,.{decimals}f}"


def fmt_value(x, metric: str) -> str:
    """A level of ``metric``: rates as %, NOK in millions, the rest as numbers."""
    kind = metric_kind(metric)
    if not _finite(x):
        return DASH
    if kind == "rate":
        return f"{100 * float(x):.2f}%"
    if kind == "nok":
        return fmt_number(float(x) / 1e6, 1)
    return fmt_number(x)


def fmt_diff(x, metric: str) -> str:
    """A difference of ``metric``: rates in percentage points, NOK in millions, signed."""
    if not _finite(x):
        return DASH
    kind = metric_kind(metric)
    if kind == "rate":
        return f"{100 * float(x):+.2f} pp"
    if kind == "nok":
        return f"{float(x) / 1e6:+,.1f}"
    s = fmt_number(x)
    return s if s.startswith("-") else "+" + s


def fmt_interval(lo, hi, fmt) -> str:
    if not (_finite(lo) and _finite(hi)):
        return DASH
    return f"[{fmt(lo)}, {fmt(hi)}]"


def fmt_pct(x, decimals: int = 2, signed: bool = False) -> str:
    if not _finite(x):
        return DASH
    return f"{100 * float(x):{'+' if signed else ''}.{decimals}f}%"


def unit_of(metric: str) -> str:
    kind = metric_kind(metric)
    if kind == "rate":
        return "%; differences in percentage points"
    if kind == "nok":
        return "NOK million"
    return "person-years" if "year" in metric.lower() else "count"


def _cell(x) -> str:
    s = DASH if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)
    return s.replace("|", "\\|").replace("\n", " ").strip() or DASH


def md_table(header: Sequence[str], rows: Sequence[Sequence], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` one char per column, ``l`` or ``r``."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- tables
def choose_main_metrics(effects: pd.DataFrame | None, main_metrics=None) -> list[str]:
    """Requested (or default) metrics present in ``effects``; else all its summary metrics."""
    if effects is None or effects.empty:
        return []
    present = list(pd.unique(effects["metric"].astype(str)))
    wanted = list(main_metrics) if main_metrics is not None else list(DEFAULT_MAIN_METRICS)
    chosen = [m for m in wanted if m in present]
    if not chosen and main_metrics is None:
        chosen = [m for m in present if "@" not in m]
    return chosen


def effects_tables(effects: pd.DataFrame | None, metrics: Sequence[str],
                   baseline: str = BASELINE) -> str:
    """One markdown table per main metric: rows are scenarios."""
    if effects is None or effects.empty or not metrics:
        return "No effects to report (the effects table is empty or has none of the main metrics)."
    eff = effects[effects["scenario"].astype(str) != baseline]
    order = ordered_scenarios(eff["scenario"].astype(str), baseline)
    parts = []
    for m in metrics:
        d = eff[eff["metric"] == m].copy()
        if d.empty:
            continue
        d["_o"] = d["scenario"].astype(str).map(order.index)
        rows = []
        for _, r in d.sort_values("_o").iterrows():
            rows.append([r["scenario"], fmt_value(r.get("baseline_mean"), m),
                         fmt_value(r.get("scenario_mean"), m), fmt_diff(r.get("difference"), m),
                         fmt_interval(r.get("ci_low"), r.get("ci_high"),
                                      lambda v, m=m: fmt_diff(v, m)),
                         fmt_pct(r.get("relative_change"), 1, signed=True),
                         int(r["n_replicates"]) if _finite(r.get("n_replicates")) else DASH])
        parts.append(f"#### {metric_label(m)} (`{m}`; {unit_of(m)})\n\n" + md_table(
            ["Scenario", "Baseline", "Scenario mean", "Difference", "95% interval",
             "Relative change", "Replicates"], rows))
    return "\n\n".join(parts) if parts else "No effects to report for the main metrics."


_MNOK = lambda v: fmt_number(float(v) / 1e6, 1)  # noqa: E731
ECON_COLUMNS = [  # (column, header, formatter, low column, high column): the money
    ("pv_cost_nok", "PV cost (NOK million)", _MNOK, "pv_cost_nok_low", "pv_cost_nok_high"),
    ("pv_production_gain_nok", "PV production (NOK million)", _MNOK, None, None),
    ("pv_value_at_30_nok", "PV value at 30 (NOK million)", _MNOK, None, None),
    ("npv_nok", "NPV (NOK million)", _MNOK, "npv_nok_low", "npv_nok_high"),
    ("npv_within_horizon_nok", "NPV without value at 30", _MNOK, None, None),
    ("benefit_cost_ratio", "Benefit-cost ratio", lambda v: fmt_number(v, 2), "benefit_cost_ratio_low",
     "benefit_cost_ratio_high"),
]
ECON_EFFECT_COLUMNS = [  # the effects behind it, and the cost per exclusion-year
    ("employment_years_gained", "Work-years gained", fmt_number, None, None),
    ("education_years_gained", "Education-years gained", fmt_number, None, None),
    ("exclusion_years_avoided", "Exclusion-years avoided", fmt_number,
     "exclusion_years_avoided_low", "exclusion_years_avoided_high"),
    ("cost_per_exclusion_year_avoided_nok", "Cost per exclusion-year avoided (NOK, discounted)",
     lambda v: fmt_number(v, 0), "cost_per_exclusion_year_avoided_nok_low",
     "cost_per_exclusion_year_avoided_nok_high"),
    ("pv_programme_cost_nok", "PV programme cost (NOK million)", _MNOK, "pv_programme_cost_nok_low",
     "pv_programme_cost_nok_high"),
    ("n_replicates", "Replicates", lambda v: str(int(v)), None, None),
]


def _cost_per_year_cell(r) -> str:
    v = r.get("cost_per_exclusion_year_avoided_nok")
    avoided = r.get("pv_exclusion_years_avoided", r.get("exclusion_years_avoided"))
    if _finite(avoided) and float(avoided) <= 0:
        return "n/a (none avoided)"
    return fmt_number(v, 0) if _finite(v) else DASH


def _econ_interval(lo, hi, f) -> str:
    """An interval; a ratio whose denominator may be zero has an unbounded one."""
    if lo is not None and hi is not None and not pd.isna(lo) and not pd.isna(hi) \
            and math.isinf(float(lo)) and math.isinf(float(hi)):
        return "unbounded"
    return fmt_interval(lo, hi, f)


def _econ_md(e: pd.DataFrame, spec: list) -> str | None:
    cols = [c for c in spec if c[0] in e.columns]
    if not cols:
        return None
    header = ["Scenario"]
    for col, head, _, lo, hi in cols:
        header.append(head)
        if lo in e.columns and hi in e.columns:
            header.append("95% interval")
    rows = []
    for _, r in e.iterrows():
        row = [r["scenario"]]
        for col, _, f, lo, hi in cols:
            if col == "cost_per_exclusion_year_avoided_nok":
                row.append(_cost_per_year_cell(r))
            else:
                row.append(f(r[col]) if _finite(r[col]) else DASH)
            if lo in e.columns and hi in e.columns:
                row.append(_econ_interval(r[lo], r[hi], f))
        rows.append(row)
    return md_table(header, rows)


def economics_table(economics: pd.DataFrame | None, baseline: str = BASELINE) -> str:
    """Economics per scenario, two tables: the money (:data:`ECON_COLUMNS`) and the effects
    behind it (:data:`ECON_EFFECT_COLUMNS`), the columns present, with intervals."""
    if economics is None or economics.empty or "scenario" not in economics.columns:
        return "No economics to report (the economics table is empty)."
    e = economics[economics["scenario"].astype(str) != baseline]
    if e.empty:
        return "No economics to report (no scenario other than the baseline)."
    order = ordered_scenarios(e["scenario"].astype(str), baseline)
    e = e.assign(_o=e["scenario"].astype(str).map(order.index)).sort_values("_o")
    tables = [t for t in (_econ_md(e, ECON_COLUMNS), _econ_md(e, ECON_EFFECT_COLUMNS)) if t]
    if not tables:
        return "No economics to report (the economics table has none of the expected columns)."
    return "\n\n".join(tables)


def economics_perspective(economics: pd.DataFrame | None) -> str:
    """What the economics table counts, and from whose point of view (R-109/2021)."""
    basis, ratio_method = "", "a paired bootstrap over replicates"
    if economics is not None and "interval_basis" in getattr(economics, "columns", []) and len(economics):
        basis = f" Intervals are over {economics['interval_basis'].iloc[0]}."
        if economics["interval_basis"].iloc[0] == "parameter draws":
            basis += " Each draw also draws every number of the cost book over its range."
            ratio_method = "the percentile interval of the per-draw ratios"
    v30 = ""
    if economics is not None and "value_at_30_included" in getattr(economics, "columns", []) and len(economics):
        v30 = (" The NPV includes the value at 30." if bool(economics["value_at_30_included"].iloc[0])
               else " The NPV leaves the value at 30 out (`economics: {value_at_30: false}`).")
    return (
        "Perspective: society as a whole, as the Ministry of Finance circular R-109/2021 and DFØ's "
        "guide to socio-economic analysis prescribe, with every unit value in the cost book "
        "(`configs/norway/costs.yaml`, each with its source and range). Benefits are production "
        "from years in *work* (employment person-years 15-29 × wage plus employer costs) and the "
        "value of each person's state at 30 (expected future production lost for a state other than "
        "work). Costs are the programmes and every service they bring people into (places in "
        "kindergarten, school and NAV programmes; child welfare, health station, OT and NAV "
        "follow-up), plus the 20% tax-financing cost of the net change in public budgets. Benefits "
        "and taxes paid or saved are transfers: they are not gains for society and enter only "
        "through that 20%. Years in education are an outcome of their own, not valued as "
        "production. Costs and effects are discounted alike (R-109/2021: 4% a year for 40 years), "
        "so the cost per exclusion-year avoided divides discounted costs by discounted NEET-years "
        "avoided; its interval is " + ratio_method + ", `unbounded` where the effect may be zero. "
        "Jobs are assumed not to displace other job-seekers (the cost book's displacement share), "
        "and services to scale with their use (long run). Exclusion-years are register NEET years, "
        "so a year in a NAV programme counts as one avoided although it produces nothing: the cost "
        "per exclusion-year can reward parking people in programmes, the NPV does not."
        + v30 + basis)


def ledger_markdown(ledger: pd.DataFrame | None, baseline: str = BASELINE) -> str:
    """Present value of each payer's spending change per scenario (NOK million)."""
    from utenforsk.analysis.ledger import payer_totals

    if ledger is None or len(ledger) == 0:
        return "No payer ledger (ledger.csv) for this experiment."
    tot = payer_totals(ledger)
    payers = [p for p in ("municipality", "county", "state", "unassigned") if p in tot.columns]
    order = [s for s in ordered_scenarios(tot.index.astype(str), baseline) if s != baseline and s in tot.index]
    rows = [[s, *(fmt_number(tot.loc[s, p] / 1e6, 1) for p in payers), fmt_number(tot.loc[s, payers].sum() / 1e6, 1)]
            for s in order]
    note = (" `unassigned` is a programme the cost book does not name a payer for." if "unassigned" in payers else "")
    return ("Change in public spending by payer, present value, NOK million (positive: the payer spends "
            "more; negative: it saves or, for the state, collects more tax). Municipalities run the "
            "health station, kindergarten, primary school, child welfare and social assistance; "
            "counties upper secondary and OT; the state NAV, benefits, higher education and tax "
            "revenue. Items and years are in `ledger.csv`." + note + "\n\n"
            + md_table(["Scenario", *payers, "all public budgets"], rows))


def sensitivity_markdown(sens: pd.DataFrame | None, baseline: str = BASELINE, top: int = 3) -> str:
    """The unit values that move each scenario's NPV most, one at a time over their ranges."""
    if sens is None or len(sens) == 0:
        return "No sensitivity table (economics_sensitivity.csv) for this experiment."
    order = [s for s in ordered_scenarios(sens["scenario"].astype(str), baseline) if s != baseline]
    rows = []
    for s in order:
        for _, r in sens[sens["scenario"].astype(str) == s].head(top).iterrows():
            rows.append([s, f"`{r['parameter']}`", f"{fmt_number(r['low'])} – {fmt_number(r['high'])}",
                         _MNOK(r["npv_at_low_nok"]), _MNOK(r["npv_at_high_nok"]), _MNOK(r["npv_central_nok"])])
    return ("NPV (NOK million, mean over replicates) with one number of the cost book at the low and at the "
            f"high end of its range, the others central: the {top} that move each scenario's NPV most "
            "(all in `economics_sensitivity.csv`).\n\n"
            + md_table(["Scenario", "Unit value", "Range", "NPV at low", "NPV at high", "NPV central"], rows))


def ceac_markdown(ceac: pd.DataFrame | None, baseline: str = BASELINE) -> str:
    """The acceptability curve at a few willingness-to-pay values."""
    if ceac is None or len(ceac) == 0:
        return "No acceptability curve (ceac.csv) for this experiment."
    wtp = sorted(pd.unique(ceac["wtp_nok"]))
    shown = [w for w in wtp if w in (0, 500_000, 1_000_000, 2_000_000)] or wtp[:4]
    order = [s for s in ordered_scenarios(ceac["scenario"].astype(str), baseline) if s != baseline]
    table = ceac.set_index(["scenario", "wtp_nok"])["probability"]
    rows = [[s, *(fmt_pct(table.get((s, w)), 0) for w in shown)] for s in order]
    basis = str(ceac["basis"].iloc[0])
    return (f"Probability of a positive net benefit (NPV + willingness to pay × discounted "
            f"exclusion-years avoided), as the share of {basis}; the whole curve is in `ceac.csv`.\n\n"
            + md_table(["Scenario", *(f"{fmt_number(w / 1e3, 0)} kNOK" for w in shown)], rows))


def _fmt_estimate(x, metric) -> str:
    if metric is not None and isinstance(metric, str) and metric:
        return fmt_diff(x, metric)
    return fmt_number(x, None if not _finite(x) or abs(float(x)) >= 0.01 else 5)


def hypotheses_table(hypotheses: pd.DataFrame | None) -> str:
    """Verdicts with what their probability is over, estimates in their display unit."""
    if hypotheses is None or len(hypotheses) == 0:
        return "No hypotheses were tested in this experiment."
    rows = []
    has = set(hypotheses.columns)
    for _, r in hypotheses.iterrows():
        unit = r.get("unit") if "unit" in has else None
        if isinstance(unit, str):  # already in display units (pp, per million NOK)
            f = lambda v: fmt_number(v, None if not _finite(v) or abs(float(v)) >= 0.01 else 5)  # noqa: E731
        else:
            metric = r.get("metric") if "metric" in has else None
            f = lambda v, m=metric: _fmt_estimate(v, m)  # noqa: E731
        verdict = r.get("verdict")
        rows.append([r.get("name", DASH), r.get("statement", DASH),
                     f"**{verdict}**" if isinstance(verdict, str) and verdict else DASH,
                     fmt_pct(r.get("probability"), 1), r.get("probability_over", DASH) if "probability_over" in has else DASH,
                     r.get("compared_with", DASH) if "compared_with" in has else DASH,
                     f(r.get("estimate")), fmt_interval(r.get("ci_low"), r.get("ci_high"), f),
                     unit if isinstance(unit, str) else DASH,
                     int(r["n_replicates"]) if _finite(r.get("n_replicates")) else DASH])
    table = md_table(["Hypothesis", "Statement", "Verdict", "Probability", "Probability over",
                      "Weakest comparison", "Estimate", "95% interval", "Unit", "Replicates"], rows,
                     align="llllllrrlr")
    notes = []
    if "probability_over" in has and hypotheses["probability_over"].astype(str).str.startswith("parameter").any():
        notes.append("In parameter mode the probability is P(claim) over parameter draws of the national-scale "
                     "effect; a claim is supported when it holds in at least the stated share of draws "
                     "(`uncertainty.supported_at`, 95% by default). More replicates make this probability "
                     "more precise, not larger.")
    if "probability_over" in has and hypotheses["probability_over"].astype(str).str.startswith("simulation").any():
        notes.append("In Monte Carlo mode the parameters are fixed: the verdict says whether the simulated "
                     "mean effect is distinguishable from the claim's boundary at those values (it becomes "
                     "easier with more replicates), and the probability is the share of simulation "
                     "replicates in which the claim holds, which depends on the simulation's scale. "
                     "Neither is a probability that the claim is true; run in parameter mode for that.")
    notes.append("A comparison against several scenarios follows the intersection-union rule: supported only "
                 "if supported against each (the row shows the weakest one; `detail` in hypotheses.csv has "
                 "them all).")
    return table + "\n\n" + " ".join(notes)


def _by_scenario(df: pd.DataFrame, keys: list[str], fmt) -> tuple[list[str], list[list]]:
    """Rows per ``keys``, one column per scenario: "effect [low, high]"."""
    scenarios = ordered_scenarios(df["scenario"].astype(str), BASELINE)
    scenarios = [s for s in scenarios if s != BASELINE]
    rows = []
    for key, g in df.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        cells = {r.scenario: f"{fmt(r.difference)} {fmt_interval(r.ci_low, r.ci_high, fmt)}"
                 for r in g.itertuples()}
        rows.append([*key, *(cells.get(s, DASH) for s in scenarios)])
    return scenarios, rows


def cohort_section(cohorts: pd.DataFrame | None, followed, interventions_end,
                   policy_start: int | None = None) -> str:
    """Effects on the followed birth cohorts, per birth year: completion within 5 years (by
    about 21) in pp, NEET person-years at 15-29 over their whole lives."""
    if cohorts is None or len(cohorts) == 0:
        return "No cohort outcomes (no cohort followed)."
    parts = [f"Interventions stop after {interventions_end}; the horizon runs on until the youngest "
             f"treated birth cohort ({followed[1]}) is followed, so effects that show late are counted. "
             f"Followed birth cohorts: {followed[0]}-{followed[1]}; effect [95% interval] per scenario "
             "for the cohorts born while the programmes ran and every fifth earlier one (all in "
             "`cohorts.csv`)."]
    years = sorted(cohorts.birth_year.unique())
    late = [y for y in years if policy_start is not None and y >= policy_start]
    if len(late) > 10:
        late = [y for y in late if (y - late[0]) % 5 == 0 or y == late[-1]]
    early = [y for y in years if y not in late and (y - years[0]) % 5 == 0]
    shown = cohorts[cohorts.birth_year.isin(early + late)]
    for metric, title, fmt in (
            ("completion_5y", "Upper-secondary completion within 5 years of starting (by about 21), pp",
             lambda v: f"{100 * v:+.2f}" if _finite(v) else DASH),
            ("exclusion_years_15_29", "NEET person-years at 15-29 over the cohort's life (national)",
             lambda v: fmt_diff(v, "person_years"))):
        d = shown[shown.metric == metric]
        if d.empty:
            continue
        scenarios, rows = _by_scenario(d, ["birth_year"], fmt)
        parts.append(f"**{title}**\n\n" + md_table(["Birth year", *scenarios], rows))
    return "\n\n".join(parts)


def for_whom_section(groups: pd.DataFrame | None, followed: bool = False) -> str:
    """Effects by group (parents' education, immigrant background, sex, municipality type)."""
    if groups is None or len(groups) == 0:
        return "No effects by group (the model reports by no attribute)."
    cohort = groups[groups.metric == "cohort_exclusion_years_15_29"]
    use_cohort = followed and len(cohort) and cohort.difference.notna().all()
    metric = "cohort_exclusion_years_15_29" if use_cohort else "neet_rate_15_29"
    g = groups[groups.metric == metric].assign(attribute=lambda x: x.attribute.str.replace("_", " "))
    if metric == "neet_rate_15_29":
        label, fmt = "NEET rate 15-29 over the horizon, pp", (lambda v: f"{100 * v:+.2f}" if _finite(v) else DASH)
    else:
        label, fmt = "NEET person-years at 15-29 of the followed cohorts", (lambda v: fmt_diff(v, "person_years"))
    scenarios, rows = _by_scenario(g, ["attribute", "category"], fmt)
    return (f"Effect [95% interval] on the {label}, within each group; every group metric is in "
            "`for_whom.csv`.\n\n" + md_table(["Attribute", "Group", *scenarios], rows,
                                                 align="ll" + "r" * len(scenarios)))


def participants_section(people: pd.DataFrame | None, followed: bool = False) -> str:
    if people is None or len(people) == 0:
        return "No participants (no scenario has a YAML intervention)."
    rows = [[r.scenario, fmt_number(r.participants, 0), fmt_number(r.cost_per_participant_nok, 0),
             fmt_number(r.participants_per_exclusion_year_avoided, 1),
             fmt_number(r.number_needed_to_treat_completion, 0),
             fmt_number(r.number_needed_to_treat_long_term_neet, 0)] for r in people.itertuples()]
    over = people["exclusion_years_over"].iloc[0] if "exclusion_years_over" in people else "the horizon"
    return (f"National means over replicates. New participants over the horizon (a person in two "
            f"programmes counts twice); programme cost (undiscounted) per participant; participants "
            f"per NEET person-year avoided at 15-29 (over the {over}); numbers needed to treat for one "
            f"more upper-secondary completer and one person fewer ever long-term NEET (followed cohorts "
            f"only). Ratios of means, without intervals; {DASH} where nothing is gained.\n\n"
            + md_table(["Scenario", "Participants", "Cost per participant (NOK)",
                        "Participants per exclusion-year avoided", "NNT: one more completer",
                        "NNT: one fewer long-term NEET"], rows))


# ----------------------------------------------------------------------------------------- report
def _price_year(meta: dict, economics: pd.DataFrame | None):
    if meta.get("price_year") is not None:
        return meta["price_year"]
    if economics is not None and "price_year" in getattr(economics, "columns", []):
        years = pd.unique(economics["price_year"].dropna())
        if len(years):
            return ", ".join(str(int(y)) if _finite(y) else str(y) for y in years)
    return None


def _meta_section(meta: dict, price_year, scenarios: list[str], n_reps) -> str:
    known = [("experiment", "Experiment"), ("config_hash", "Config hash"), ("seed", "Seed"),
             ("version", "utenforsk version"), ("replicates", "Replicates"), ("scale", "Scale"),
             ("start_year", "Policy start year"), ("horizon_years", "Horizon (years)")]
    rows = [[label, f"`{meta[k]}`" if k == "config_hash" else meta[k]]
            for k, label in known if meta.get(k) is not None]
    if meta.get("replicates") is None and n_reps:
        rows.append(["Replicates", n_reps])
    rows.append(["Price year (NOK)", price_year if price_year is not None else "not stated"])
    if meta.get("discount_rate") is not None:
        rows.append(["Discount rate", fmt_pct(meta["discount_rate"], 1)])
    skip = {k for k, _ in known} | {"name", "price_year", "discount_rate", "assumed_effects"}
    for k, v in meta.items():  # anything else simple, for provenance
        if k not in skip and isinstance(v, (str, int, float, bool)):
            rows.append([k.replace("_", " "), v])
    rows.append(["Scenarios", ", ".join(f"`{s}`" for s in scenarios) or DASH])
    return md_table(["Item", "Value"], rows, align="ll")


def _how_to_read(price_year, baseline: str, meta: dict) -> str:
    rate = (f"{fmt_pct(meta['discount_rate'], 1)} a year" if meta.get("discount_rate") is not None
            else "the real discount rate of the Ministry of Finance circular R-109/2021 (4% a year "
                 "for the first 40 years)")
    prices = f"{price_year} prices" if price_year is not None else "the stated price year"
    spread = ("in parameter mode they are percentile intervals over parameter draws of the per-draw "
              "mean paired effect, rescaled to national scale (Monte Carlo noise shrinks with the "
              "population), so they describe what we do not know about the drawn parameters and "
              "do not shrink with more replicates (see the section on uncertainty below)"
              if meta.get("uncertainty") == "parameter" else
              "they are 95% t-intervals of the mean across replicates and describe simulation "
              "uncertainty at fixed parameters, not uncertainty about the model's parameters; they "
              "shrink with more replicates")
    return (
        f"Every scenario is compared with the reference scenario `{baseline}`. Replicate *r* of "
        "every scenario uses the same random numbers (common random numbers), so each effect is "
        "the mean of paired, replicate-by-replicate differences (scenario minus baseline); this "
        "removes most of the Monte Carlo noise that two independent runs would show. Intervals "
        f"are 95% intervals: {spread}. Rates are shown as "
        "percentages and their differences in percentage points (pp); relative change is the "
        f"difference divided by the baseline mean. Money is in real NOK at {prices}, in millions "
        "unless stated. The effects tables and the yearly figures are undiscounted (totals or "
        "rates over the horizon); in the economics table, money and the exclusion-years behind the "
        f"cost per exclusion-year are discounted alike to the policy start at {rate} (the column "
        "of exclusion-years avoided is the undiscounted total). Discounting weighs late gains "
        "least, so prevention in early childhood, whose benefits come years after its costs, "
        "fares worse on NPV than its undiscounted effects suggest."
        + (f" The effects of {meta['assumed_effects']} are assumptions, not evidence: no causal "
           "estimate exists (its intervention file says `effect_basis: assumption`), so its rows "
           "show what the assumed mechanism would do, not what is known."
           if meta.get("assumed_effects") else ""))


def uncertainty_table(spread: pd.DataFrame | None) -> str:
    """SD of the paired difference split into Monte Carlo and parameter parts, national share."""
    if spread is None or len(spread) == 0:
        return "No decomposition available (fewer than two replicates)."
    mode = spread["mode"].iloc[0]
    intro = ("Parameter mode: replicates sharing a parameter draw differ only by their seeds, so the "
             "within-draw spread is Monte Carlo noise and the rest is parameter uncertainty. Monte "
             "Carlo noise shrinks with the population: at national scale its variance is the "
             "simulation's times the scale. The parameter share is the share of the national-scale "
             "variance of the effect due to the drawn parameters (the share at the simulation's own "
             "scale is in `uncertainty.csv`, `parameter_share_simulation`)."
             if mode == "parameter" else
             "Monte Carlo mode: every replicate has the same parameters, so all of the spread below "
             "is Monte Carlo noise; run with `uncertainty: {mode: parameter, ...}` to add parameter "
             "uncertainty.")
    headline = spread[spread.metric.isin(["neet_rate_15_29", "exclusion_years_15_29"])]
    if len(headline):
        spread = headline
        intro += " Headline metrics only; every metric is in `uncertainty.csv`."
    national = "sd_monte_carlo_national" in spread.columns

    def sd(v, metric):  # rates in percentage points, the rest as numbers
        if metric_kind(metric) == "rate":
            return f"{100 * float(v):.3f} pp" if _finite(v) else DASH
        return fmt_number(v, 1)

    rows = [[r.scenario, f"`{r.metric}`", sd(r.sd_monte_carlo, r.metric),
             sd(r.sd_monte_carlo_national, r.metric) if national else DASH, sd(r.sd_parameter, r.metric),
             fmt_pct(r.parameter_share, 0) if _finite(r.parameter_share) else "n/a", int(r.n_draws)]
            for r in spread.itertuples()]
    return intro + "\n\n" + md_table(["Scenario", "Metric", "SD Monte Carlo (one replicate)",
                                        "SD Monte Carlo (national)", "SD parameters",
                                        "Parameter share (national)", "Draws"], rows)


def write_report(out_dir: Path, runs: pd.DataFrame, effects: pd.DataFrame,
                 economics: pd.DataFrame | None, hypotheses: pd.DataFrame | None,
                 baseline_pathways: pd.DataFrame | None, meta: dict,
                 main_metrics: Sequence[str] | None = None,
                 uncertainty: pd.DataFrame | None = None, ledger: pd.DataFrame | None = None,
                 ceac: pd.DataFrame | None = None,
                 economics_sensitivity: pd.DataFrame | None = None,
                 sections: Sequence[tuple[str, str]] = (), draw_of: dict | None = None) -> Path:
    """Write ``out_dir/report.md`` and its figures under ``out_dir/figures/``; return the path.

    ``main_metrics`` selects the summary metrics shown in the effects tables and the forest plot
    (default :data:`DEFAULT_MAIN_METRICS` where present, else every non-yearly metric). Figures
    whose input is missing are left out, with a line saying so. ``sections`` are further
    ``(heading, markdown)`` sections placed after the hypotheses (cohorts, for whom).
    ``draw_of`` (replicate -> parameter draw, parameter mode) gives the effect-timing figure the
    parameter-mode intervals of the tables.
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    baseline = meta.get("baseline", BASELINE)
    runs = runs if runs is not None else pd.DataFrame(columns=["scenario", "replicate", "metric",
                                                               "value"])
    price_year = _price_year(meta, economics)
    metrics = choose_main_metrics(effects, main_metrics)
    names = list(runs["scenario"].astype(str))
    for t in (effects, economics):
        if t is not None and "scenario" in getattr(t, "columns", []):
            names += list(t["scenario"].astype(str))
    scenarios = ordered_scenarios(names, baseline)
    n_reps = runs["replicate"].nunique() if len(runs) else None

    paths = {
        "pathways": fig.plot_pathways(baseline_pathways, fig_dir),
        "neet_by_year": fig.plot_neet_by_year(runs, fig_dir, baseline),
        "effects_forest": fig.plot_effects_forest(effects, metrics, fig_dir, baseline),
        "cost_effect": fig.plot_cost_effect(economics, fig_dir, effects,
                                            price_year if _finite(price_year) else None, baseline),
        "effect_timing": fig.plot_effect_timing(runs, fig_dir, meta.get("start_year"), baseline,
                                                draw_of=draw_of, scale=meta.get("scale") or 1.0),
        "ledger": fig.plot_ledger(ledger, fig_dir, price_year if _finite(price_year) else None, baseline),
        "ceac": fig.plot_ceac(ceac, fig_dir, baseline),
    }

    title = meta.get("experiment") or meta.get("name") or "experiment"
    lines = [f"# utenforsk experiment report: {title}", "", _meta_section(meta, price_year,
                                                                          scenarios, n_reps), "",
             "## How to read this", "", _how_to_read(price_year, baseline, meta), "",
             "## Main effects (scenario minus baseline)", "", effects_tables(effects, metrics,
                                                                            baseline), "",
             "## Economics", "", economics_perspective(economics), "", economics_table(economics, baseline), "",
             "### Who pays, who gains", "", ledger_markdown(ledger, baseline), "",
             "### Which unit values matter", "", sensitivity_markdown(economics_sensitivity, baseline), "",
             "### Acceptability", "", ceac_markdown(ceac, baseline), "",
             "## Hypotheses", "", hypotheses_table(hypotheses), ""]
    for heading, text in sections:
        lines += [f"## {heading}", "", text, ""]
    lines += [
             "## Monte Carlo noise and parameter uncertainty", "", uncertainty_table(uncertainty), "",
             "## Figures", ""]
    for key, path in paths.items():
        heading, sentence = FIGURE_TEXT[key]
        lines += [f"### {heading}", ""]
        if path is None:
            lines += [f"Not drawn: the input for this figure ({fig.FILES[key]}) is not available.",
                      ""]
        else:
            lines += [f"![{heading}](figures/{path.name})", "", sentence, ""]
    report = out_dir / "report.md"
    tmp = report.with_name(report.name + ".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(report)
    return report
