"""Altair (Vega-Lite) charts for the dashboard: pure functions from small DataFrames to charts.

Vega-Lite renders in the browser, so the server only sends a spec with the data (a few hundred
rows); nothing is rasterised in Python while the model runs.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

WIDTH, HEIGHT = 380, 200
STATE_ORDER = ("home", "kindergarten", "school", "upper_secondary_academic", "upper_secondary_vocational",
               "higher_education", "employed", "unemployed", "inactive", "nav_programme", "health_benefit")
RUN_DASH = alt.Scale(domain=["scenario", "baseline"], range=[[1, 0], [4, 3]])

alt.data_transformers.disable_max_rows()


def _empty(title: str) -> alt.Chart:
    return alt.Chart(pd.DataFrame({"x": [0]}), title=title).mark_text(text="no months yet").encode().properties(
        width=WIDTH, height=HEIGHT)


def neet_by_year(df: pd.DataFrame) -> alt.Chart:
    title = "NEET rate by age group and year (solid: scenario, dashed: baseline)"
    if df.empty:
        return _empty(title)
    return alt.Chart(df, title=title).mark_line(point=True).encode(
        x=alt.X("year:O", title="year"),
        y=alt.Y("neet_rate:Q", title="NEET rate", axis=alt.Axis(format="%")),
        color=alt.Color("age group:N"),
        strokeDash=alt.StrokeDash("run:N", scale=RUN_DASH),
        tooltip=["year", "age group", "run", alt.Tooltip("neet_rate:Q", format=".2%")],
    ).properties(width=WIDTH, height=HEIGHT)


def difference(df: pd.DataFrame) -> alt.Chart:
    title = "Scenario minus baseline, NEET rate 15-29 (percentage points, same seed)"
    if df.empty:
        return _empty(title)
    base = alt.Chart(df, title=title).encode(x=alt.X("time:Q", title="year", axis=alt.Axis(format="d")))
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="gray").encode(y="y:Q")
    return (base.mark_line().encode(y=alt.Y("difference_pp:Q", title="difference (pp)"),
                                    tooltip=[alt.Tooltip("time:Q", format=".2f"),
                                             alt.Tooltip("difference_pp:Q", format=".3f")])
            + zero).properties(width=WIDTH, height=HEIGHT)


def pathways(df: pd.DataFrame) -> alt.Chart:
    title = "Pathways by age: share in each state (scenario, last 12 months)"
    if df.empty:
        return _empty(title)
    return alt.Chart(df, title=title).mark_area().encode(
        x=alt.X("age:Q", title="age (years)"),
        y=alt.Y("share:Q", stack="normalize", title="share", axis=alt.Axis(format="%")),
        color=alt.Color("state:N", sort=list(STATE_ORDER), scale=alt.Scale(scheme="tableau20")),
        order=alt.Order("order:Q"),
        tooltip=["age", "state", alt.Tooltip("share:Q", format=".1%")],
    ).transform_calculate(order=f"indexof({list(STATE_ORDER)!r}, datum.state)").properties(width=WIDTH, height=HEIGHT)


def queues(df: pd.DataFrame) -> alt.Chart:
    title = "Service queues: people waiting (national; solid: scenario, dashed: baseline)"
    if df.empty:
        return _empty(title)
    return alt.Chart(df, title=title).mark_line().encode(
        x=alt.X("time:Q", title="year", axis=alt.Axis(format="d")),
        y=alt.Y("waiting:Q", title="waiting"),
        color="service:N",
        strokeDash=alt.StrokeDash("run:N", scale=RUN_DASH),
        tooltip=["service", "run", alt.Tooltip("time:Q", format=".2f"), alt.Tooltip("waiting:Q", format=",.0f")],
    ).properties(width=WIDTH, height=HEIGHT)


# ---- Results --------------------------------------------------------------------------------
def forest(df: pd.DataFrame, metric: str) -> alt.Chart:
    """Effects with their intervals for one metric, one row per scenario (from effects.csv)."""
    d = df[df["metric"] == metric]
    base = alt.Chart(d, title=f"Effect on {metric} (difference from baseline, 95% interval)").encode(
        y=alt.Y("scenario:N", title=None, sort="x"))
    return (base.mark_rule().encode(x=alt.X("ci_low:Q", title="difference"), x2="ci_high:Q")
            + base.mark_point(filled=True, size=60).encode(
                x="difference:Q", tooltip=["scenario", "difference", "ci_low", "ci_high", "n_replicates"])
            + alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="gray", strokeDash=[3, 3]).encode(x="x:Q")
            ).properties(width=420, height=max(60, 28 * d["scenario"].nunique()))


def timing(df: pd.DataFrame, metric: str) -> alt.Chart:
    """Effects at the report years (effects.csv rows ``METRIC@YEAR``), with intervals."""
    base = alt.Chart(df, title=f"When the effect on {metric} shows (stored at the report years)").encode(
        x=alt.X("year:O"), color="scenario:N")
    return (base.mark_line(point=True).encode(y=alt.Y("difference:Q", title="difference"),
                                              tooltip=["scenario", "year", "difference", "ci_low", "ci_high"])
            + base.mark_errorbar().encode(y="ci_low:Q", y2="ci_high:Q")).properties(width=420, height=220)


def economics(df: pd.DataFrame) -> alt.Chart:
    """Net present value per scenario with its interval (economics.csv)."""
    d = df.copy()
    base = alt.Chart(d, title="Net present value (NOK), 95% interval").encode(y=alt.Y("scenario:N", title=None))
    layers = [base.mark_bar().encode(x=alt.X("npv_nok:Q", title="NPV (NOK)"),
                                     tooltip=["scenario", alt.Tooltip("npv_nok:Q", format=",.0f")])]
    if {"npv_nok_low", "npv_nok_high"} <= set(d.columns):
        layers.append(base.mark_rule(color="black").encode(x="npv_nok_low:Q", x2="npv_nok_high:Q"))
    return alt.layer(*layers).properties(width=420, height=max(60, 28 * d["scenario"].nunique()))
