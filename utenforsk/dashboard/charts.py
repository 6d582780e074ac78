"""Altair (Vega-Lite) charts for the dashboard.

Vega-Lite renders in the browser, so the server only sends a spec with the data. Building an
Altair chart costs ~20 ms of schema work per chart, too much to redo every simulated month, so
the Explore charts are built once with Altair around a named data source (``spec()``), and each
update only puts the month's rows into a copy of that spec (``with_rows``): well under a
millisecond. The Results charts are built once per experiment, from the stored tables.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import altair as alt
import pandas as pd

WIDTH, HEIGHT = 360, 190
STATE_ORDER = ("home", "kindergarten", "school", "upper_secondary_academic", "upper_secondary_vocational",
               "higher_education", "employed", "unemployed", "inactive", "nav_programme", "health_benefit")
RUN_DASH = alt.Scale(domain=["scenario", "baseline"], range=[[1, 0], [4, 3]])
DATA = "rows"
#: vega-embed reads these from the spec: SVG (the marks are in the page, so a test can see them)
#: and no actions menu
EMBED = {"embedOptions": {"renderer": "svg", "actions": False}}

alt.data_transformers.disable_max_rows()
YEAR_AXIS = alt.Axis(format="d", tickMinStep=1)


def _data():
    return alt.Data(name=DATA)


def _neet_by_year() -> alt.Chart:
    return alt.Chart(_data(), title="NEET rate by age group and year (solid: scenario, dashed: baseline)").mark_line(
        point=True).encode(
        x=alt.X("year:O", title="year"),
        y=alt.Y("neet_rate:Q", title="NEET rate", axis=alt.Axis(format="%")),
        color=alt.Color("age group:N"),
        strokeDash=alt.StrokeDash("run:N", scale=RUN_DASH),
        tooltip=[alt.Tooltip("year:O"), alt.Tooltip("age group:N"), alt.Tooltip("run:N"),
                 alt.Tooltip("neet_rate:Q", format=".2%")])


def _difference() -> alt.Chart:
    line = alt.Chart(_data()).mark_line().encode(
        x=alt.X("time:Q", title="year", axis=YEAR_AXIS, scale=alt.Scale(zero=False)),
        y=alt.Y("difference_pp:Q", title="difference (percentage points)"),
        tooltip=[alt.Tooltip("time:Q", format=".2f"), alt.Tooltip("difference_pp:Q", format=".3f")])
    zero = alt.Chart(_data()).mark_rule(color="gray").encode(y=alt.datum(0))
    return alt.layer(line, zero, title="Scenario minus baseline, NEET rate 15-29 (same seed)")


def _pathways() -> alt.Chart:
    return alt.Chart(_data(), title="Pathways by age: share in each state (scenario, last 12 months)").mark_area(
    ).encode(
        x=alt.X("age:Q", title="age (years)"),
        y=alt.Y("share:Q", stack="normalize", title="share", axis=alt.Axis(format="%")),
        color=alt.Color("state:N", sort=list(STATE_ORDER), scale=alt.Scale(domain=list(STATE_ORDER),
                                                                            scheme="tableau20")),
        order=alt.Order("order:Q"),
        tooltip=[alt.Tooltip("age:Q"), alt.Tooltip("state:N"), alt.Tooltip("share:Q", format=".1%")],
    ).transform_calculate(order=f"indexof({list(STATE_ORDER)!r}, datum.state)")


def _queues() -> alt.Chart:
    return alt.Chart(_data(), title="Service queues: people waiting (national; dashed: baseline)").mark_line(
    ).encode(
        x=alt.X("time:Q", title="year", axis=YEAR_AXIS, scale=alt.Scale(zero=False)),
        y=alt.Y("waiting:Q", title="waiting (quarterly mean)"),
        color=alt.Color("service:N"),
        strokeDash=alt.StrokeDash("run:N", scale=RUN_DASH),
        tooltip=[alt.Tooltip("service:N"), alt.Tooltip("run:N"), alt.Tooltip("time:Q", format=".2f"),
                 alt.Tooltip("waiting:Q", format=",.0f")])


BUILDERS = {"neet_by_year": _neet_by_year, "difference": _difference, "pathways": _pathways, "queues": _queues}


@lru_cache(maxsize=None)
def spec(name: str) -> dict:
    """The Vega-Lite spec of an Explore chart, without data (built once with Altair)."""
    return BUILDERS[name]().properties(width=WIDTH, height=HEIGHT, usermeta=EMBED).to_dict()


def with_rows(name: str, rows: list[dict]) -> dict:
    """The chart's spec with ``rows`` as its data."""
    s = dict(spec(name))
    s["datasets"] = {**copy.deepcopy(s.get("datasets", {})), DATA: rows}
    s["data"] = {"name": DATA}
    return s


# ---- Results --------------------------------------------------------------------------------
def forest(df: pd.DataFrame, metric: str) -> alt.Chart:
    """Effects with their intervals for one metric, one row per scenario (from effects.csv)."""
    d = df[df["metric"] == metric]
    base = alt.Chart(d, title=f"Effect on {metric}: difference from baseline, 95% interval").encode(
        y=alt.Y("scenario:N", title=None, sort="x"))
    return (base.mark_rule().encode(x=alt.X("ci_low:Q", title="difference"), x2="ci_high:Q")
            + base.mark_point(filled=True, size=60).encode(
                x="difference:Q", tooltip=["scenario", "difference", "ci_low", "ci_high", "n_replicates"])
            + alt.Chart(d).mark_rule(color="gray", strokeDash=[3, 3]).encode(x=alt.datum(0))
            ).properties(width=420, height=max(60, 28 * d["scenario"].nunique()), usermeta=EMBED)


def timing(df: pd.DataFrame, metric: str) -> alt.Chart:
    """Effects at the report years (effects.csv rows ``METRIC@YEAR``), with intervals."""
    base = alt.Chart(df, title=f"When the effect on {metric} shows (stored at the report years)").encode(
        x=alt.X("year:O"), color="scenario:N")
    return (base.mark_line(point=True).encode(y=alt.Y("difference:Q", title="difference"),
                                              tooltip=["scenario", "year", "difference", "ci_low", "ci_high"])
            + base.mark_errorbar().encode(y=alt.Y("ci_low:Q", title="difference"), y2="ci_high:Q")).properties(width=420, height=220, usermeta=EMBED)


def economics(df: pd.DataFrame) -> alt.Chart:
    """Net present value per scenario with its interval (economics.csv)."""
    base = alt.Chart(df, title="Net present value (NOK), 95% interval").encode(y=alt.Y("scenario:N", title=None))
    layers = [base.mark_bar().encode(x=alt.X("npv_nok:Q", title="NPV (NOK)"),
                                     tooltip=["scenario", alt.Tooltip("npv_nok:Q", format=",.0f")])]
    if {"npv_nok_low", "npv_nok_high"} <= set(df.columns):
        layers.append(base.mark_rule(color="black").encode(x="npv_nok_low:Q", x2="npv_nok_high:Q"))
    return alt.layer(*layers).properties(width=420, height=max(60, 28 * df["scenario"].nunique()), usermeta=EMBED)


def for_whom(df: pd.DataFrame, metric: str, attribute: str) -> alt.Chart:
    """Effects by group (for_whom.csv): one row per category, a point and interval per scenario."""
    d = df[(df["metric"] == metric) & (df["attribute"] == attribute)]
    base = alt.Chart(d, title=f"Effect on {metric} by {attribute}: difference, 95% interval").encode(
        y=alt.Y("category:N", title=None), color=alt.Color("scenario:N"), yOffset="scenario:N")
    return (base.mark_rule().encode(x=alt.X("ci_low:Q", title="difference"), x2="ci_high:Q")
            + base.mark_point(filled=True, size=50).encode(
                x="difference:Q", tooltip=["scenario", "category", "difference", "ci_low", "ci_high"])
            + alt.Chart(d).mark_rule(color="gray", strokeDash=[3, 3]).encode(x=alt.datum(0))
            ).properties(width=420, height=max(80, 18 * len(d)), usermeta=EMBED)


def ledger(df: pd.DataFrame) -> alt.Chart:
    """Who pays, who gains (ledger.csv): the present value of each payer's cost change per
    scenario, summed over the ledger's years and items (negative: the payer gains)."""
    d = df.groupby(["scenario", "payer"], as_index=False)["pv_cost_change_nok"].sum()
    return alt.Chart(d, title="Who pays, who gains: present value of the cost change by payer (NOK)").mark_bar(
    ).encode(y=alt.Y("scenario:N", title=None), x=alt.X("pv_cost_change_nok:Q", title="NOK (negative: gains)"),
             color=alt.Color("payer:N"),
             tooltip=["scenario", "payer", alt.Tooltip("pv_cost_change_nok:Q", format=",.0f")]).properties(
        width=420, height=max(60, 28 * d["scenario"].nunique()), usermeta=EMBED)
