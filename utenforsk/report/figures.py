"""Seaborn figures of an experiment, one small function per figure.

Every function takes tables (never a model), writes one PNG into ``out_dir`` and returns its path,
or returns ``None`` without writing when the input holds nothing to plot (e.g. no yearly metrics).
Figures are drawn on :class:`matplotlib.figure.Figure` objects, not through ``pyplot``: no global
state, no GUI backend, and the PNG is rendered by Agg.

Conventions shared by all figures: the reference scenario is drawn in black, every other scenario
keeps the same colour in every figure (:func:`scenario_palette`), 95% intervals are paired
t-intervals of the mean across replicates (as in ``effects.csv``), and rates are drawn in percent
(differences in percentage points), NOK in millions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from scipy import stats

BASELINE = "baseline"
BASELINE_COLOUR = "#111111"
DPI = 150
#: With more non-baseline scenarios than this, per-scenario time series are drawn as small multiples.
MAX_LINES_PER_PANEL = 6
#: With more scenarios than this, the cost-effect plane labels points by number, names in a legend.
MAX_NAMED_POINTS = 8
THOUSANDS = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 1000 or v == int(v)
                                            else f"{v:,.3g}")

FILES = {"pathways": "pathways.png", "neet_by_year": "neet_by_year.png",
         "effects_forest": "effects_forest.png", "cost_effect": "cost_effect.png",
         "effect_timing": "effect_timing.png", "ledger": "ledger.png", "ceac": "ceac.png"}

METRIC_LABELS = {
    "neet_rate_15_29": "NEET rate, ages 15-29",
    "neet_rate_15_19": "NEET rate, ages 15-19",
    "neet_rate_20_24": "NEET rate, ages 20-24",
    "neet_rate_25_29": "NEET rate, ages 25-29",
    "exclusion_years_15_29": "Exclusion-years (NEET person-years), 15-29",
    "neet_person_years_15_29": "NEET person-years, 15-29",
    "programme_cost_nok": "Programme cost",
    "upper_secondary_completion_5y": "Upper secondary completed within 5 years",
    "health_benefit_rate_18_29": "Health-benefit rate, ages 18-29",
    "long_term_neet_share": "Share ever NEET 12+ consecutive months",
    "kindergarten_coverage_1_2": "Kindergarten coverage, ages 1-2",
    "kindergarten_coverage_3_5": "Kindergarten coverage, ages 3-5",
}
#: Colours of the Norway config's activity states: in education/care cool, work green, NEET warm.
STATE_COLOURS = {
    "home": "#d9d9d9", "kindergarten": "#c6dbef", "school": "#6baed6",
    "upper_secondary_academic": "#3182bd", "upper_secondary_vocational": "#08519c",
    "higher_education": "#756bb1", "employed": "#31a354", "nav_programme": "#fed976",
    "unemployed": "#fd8d3c", "inactive": "#e31a1c", "health_benefit": "#800026",
}
_RATE_WORDS = ("rate", "share", "completion", "coverage", "proportion", "probability")


# ---------------------------------------------------------------------------------------- helpers
def metric_kind(metric: str) -> str:
    """``"rate"`` (a share in 0..1), ``"nok"`` (money) or ``"count"`` (years, persons, ...)."""
    base = str(metric).split("@", 1)[0].lower()
    if "nok" in base or "cost" in base:
        return "nok"
    if any(w in base for w in _RATE_WORDS):
        return "rate"
    return "count"


def metric_label(metric: str) -> str:
    base, _, year = str(metric).partition("@")
    label = METRIC_LABELS.get(base, base.replace("_", " "))
    return f"{label}, {year}" if year else label


def display_scale(metric: str) -> tuple[float, str, str]:
    """(multiplier, unit of a level, unit of a difference) for drawing ``metric``."""
    kind = metric_kind(metric)
    if kind == "rate":
        return 100.0, "%", "percentage points"
    if kind == "nok":
        return 1e-6, "NOK million", "NOK million"
    if "year" in metric.lower():
        return 1.0, "person-years", "person-years"
    return 1.0, "", ""


def ordered_scenarios(names: Iterable[str], baseline: str = BASELINE) -> list[str]:
    """Baseline first, then the others in order of first appearance."""
    seen = [str(s) for s in pd.unique(pd.Series(list(names), dtype=object))]
    return ([baseline] if baseline in seen else []) + [s for s in seen if s != baseline]


def scenario_palette(scenarios: Sequence[str], baseline: str = BASELINE) -> dict[str, tuple]:
    """Black for the baseline; a qualitative palette (tab10, or husl beyond 10) for the rest."""
    others = [s for s in ordered_scenarios(scenarios, baseline) if s != baseline]
    colours = sns.color_palette("tab10" if len(others) <= 10 else "husl", max(len(others), 1))
    pal = {s: colours[i] for i, s in enumerate(others)}
    pal[baseline] = matplotlib.colors.to_rgb(BASELINE_COLOUR)
    return pal


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and t-interval of the mean (NaN interval with fewer than 2 finite values)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return np.nan, np.nan, np.nan, 0
    m = float(x.mean())
    if n < 2:
        return m, np.nan, np.nan, n
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return m, m - half, m + half, n


def yearly(runs: pd.DataFrame, base: str) -> pd.DataFrame:
    """Rows of ``runs`` for the yearly metric ``base@YEAR``, with an int ``year`` column."""
    if runs is None or runs.empty:
        return pd.DataFrame(columns=["scenario", "replicate", "year", "value"])
    name = runs["metric"].astype(str)
    sel = runs[name.str.startswith(base + "@")].copy()
    sel["year"] = pd.to_numeric(sel["metric"].astype(str).str.partition("@")[2], errors="coerce")
    sel = sel.dropna(subset=["year", "value"])
    sel["year"] = sel["year"].astype(int)
    sel["scenario"] = sel["scenario"].astype(str)
    return sel[["scenario", "replicate", "year", "value"]]


def _summarise(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    rows = [(*key, *mean_ci(g["value"].to_numpy())) for key, g in df.groupby(by, sort=True)]
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "n"])


def _summarise_draws(df: pd.DataFrame, by: list[str], draw_of: dict, scale: float) -> pd.DataFrame:
    """As :func:`_summarise`, in parameter mode: mean over draws, national-scale interval."""
    from utenforsk.analysis.uncertainty import national_interval

    rows = []
    for key, g in df.groupby(by, sort=True):
        d = g.set_index("replicate")["value"]
        lo, hi = national_interval(d, draw_of, scale)
        rows.append((*key, float(d.groupby(d.index.map(draw_of)).mean().mean()), lo, hi, len(d)))
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "n"])


@contextlib.contextmanager
def _style():
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85),
          "axes.titleweight": "bold", "figure.dpi": DPI, "savefig.dpi": DPI,
          "legend.frameon": False}
    with matplotlib.rc_context(rc):
        yield


def _save(fig: Figure, out_dir: Path, key: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILES[key]
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def _grid(n: int, ncols_max: int = 4) -> tuple[int, int]:
    ncols = min(n, ncols_max)
    return int(np.ceil(n / ncols)), ncols


def _hide_unused(axes, used: int) -> None:
    for ax in axes[used:]:
        ax.set_visible(False)


# ---------------------------------------------------------------------------------------- figures
def plot_pathways(pathways: pd.DataFrame | None, out_dir: Path) -> Path | None:
    """Baseline activity-state shares by age (0-29) as stacked areas -> ``pathways.png``."""
    if pathways is None or len(pathways) == 0:
        return None
    df = pathways.reset_index() if "age" not in pathways.columns else pathways
    df = df.sort_values("age")
    states = [c for c in df.columns if c != "age" and pd.api.types.is_numeric_dtype(df[c])
              and c != "index"]
    if not states:
        return None
    shares = df[states].fillna(0.0).to_numpy(dtype=float).T * 100
    fallback = iter(sns.color_palette("tab20", 20))
    palette = [STATE_COLOURS.get(st) or next(fallback) for st in states]
    with _style():
        fig = Figure(layout="constrained", figsize=(9, 4.8))
        ax = fig.subplots()
        ax.stackplot(df["age"].to_numpy(), shares, labels=[s.replace("_", " ") for s in states],
                     colors=palette, alpha=0.9, linewidth=0.3, edgecolor="white")
        ax.set(xlim=(df["age"].min(), df["age"].max()), ylim=(0, 100),
               xlabel="Age (years)", ylabel="Share of persons (%)",
               title="Baseline pathways: activity state by age")
        ax.set_xticks(range(int(df["age"].min()), int(df["age"].max()) + 1, 2))
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], title="Activity state", loc="center left",
                  bbox_to_anchor=(1.01, 0.5), fontsize="small")
        return _save(fig, out_dir, "pathways")


def plot_neet_by_year(runs: pd.DataFrame, out_dir: Path, baseline: str = BASELINE,
                      metric: str = "neet_rate_15_29") -> Path | None:
    """NEET rate 15-29 by calendar year, mean and 95% band per scenario -> ``neet_by_year.png``.

    Up to :data:`MAX_LINES_PER_PANEL` scenarios share one panel; beyond that every scenario gets
    its own small panel with the baseline repeated in black.
    """
    data = yearly(runs, metric)
    if data.empty:
        return None
    summ = _summarise(data, ["scenario", "year"])
    for c in ("mean", "low", "high"):
        summ[c] *= 100
    scenarios = ordered_scenarios(data["scenario"], baseline)
    pal = scenario_palette(scenarios, baseline)
    others = [s for s in scenarios if s != baseline]

    def draw(ax, s):
        d = summ[summ["scenario"] == s]
        is_base = s == baseline
        ax.plot(d["year"], d["mean"], color=pal[s], lw=2.6 if is_base else 1.5,
                ls="-" if is_base else "-", marker="o" if len(d) <= 12 else None, ms=3,
                label=s, zorder=3 if is_base else 2)
        ax.fill_between(d["year"], d["low"], d["high"], color=pal[s], alpha=0.12 if is_base else 0.2,
                        lw=0)

    title = "NEET rate, ages 15-29, by year (mean and 95% interval across replicates)"
    with _style():
        if len(others) <= MAX_LINES_PER_PANEL:
            fig = Figure(layout="constrained", figsize=(9, 4.8))
            ax = fig.subplots()
            for s in others + ([baseline] if baseline in scenarios else []):
                draw(ax, s)
            ax.set(xlabel="Year", ylabel="NEET rate, ages 15-29 (%)", title=title)
            handles, labels = ax.get_legend_handles_labels()
            order = sorted(range(len(labels)), key=lambda i: scenarios.index(labels[i]))
            ax.legend([handles[i] for i in order], [labels[i] for i in order], title="Scenario",
                      loc="center left", bbox_to_anchor=(1.01, 0.5))
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            nrows, ncols = _grid(len(others))
            fig = Figure(layout="constrained", figsize=(3.2 * ncols, 2.5 * nrows + 0.6))
            axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True)).ravel()
            for ax, s in zip(axes, others):
                if baseline in scenarios:
                    draw(ax, baseline)
                draw(ax, s)
                ax.set_title(s, fontsize="small")
                ax.xaxis.get_major_locator().set_params(integer=True)
            _hide_unused(axes, len(others))
            fig.supxlabel("Year")
            fig.supylabel("NEET rate, ages 15-29 (%)")
            fig.suptitle(title + "\nbaseline in black in every panel", fontweight="bold")
        return _save(fig, out_dir, "neet_by_year")


def plot_effects_forest(effects: pd.DataFrame, metrics: Sequence[str], out_dir: Path,
                        baseline: str = BASELINE) -> Path | None:
    """Differences vs baseline with 95% intervals, one panel per metric -> ``effects_forest.png``.

    Rates are shown in percentage points, NOK in millions. A filled marker means the interval
    excludes zero; a hollow one that it does not.
    """
    if effects is None or effects.empty:
        return None
    eff = effects[effects["metric"].isin(list(metrics)) & (effects["scenario"] != baseline)]
    metrics = [m for m in metrics if m in set(eff["metric"])]
    if not metrics:
        return None
    scenarios = [s for s in ordered_scenarios(eff["scenario"].astype(str), baseline)
                 if s != baseline]
    pal = scenario_palette([baseline, *scenarios], baseline)
    nrows, ncols = _grid(len(metrics), 3)
    per_panel_h = 0.32 * len(scenarios) + 1.3
    ypos = {s: i for i, s in enumerate(scenarios)}
    with _style():
        fig = Figure(layout="constrained", figsize=(4.4 * ncols + 1.2, per_panel_h * nrows + 0.5))
        axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
        for ax, m in zip(axes, metrics):
            mult, _, dunit = display_scale(m)
            d = eff[eff["metric"] == m]
            ax.axvline(0, color="0.35", lw=1, ls="--", zorder=1)
            for _, r in d.iterrows():
                s = str(r["scenario"])
                x, lo, hi = (float(r[c]) * mult for c in ("difference", "ci_low", "ci_high"))
                c = pal[s]
                sig = np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0)
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.plot([lo, hi], [ypos[s]] * 2, color=c, lw=2, solid_capstyle="butt")
                ax.plot([x], [ypos[s]], "o", ms=6, color=c, mfc=c if sig else "white", mew=1.6,
                        zorder=3)
            if metric_kind(m) != "rate":
                ax.xaxis.set_major_formatter(THOUSANDS)
            ax.set_title(metric_label(m), fontsize="small")
            ax.set_xlabel(f"Difference vs baseline ({dunit})" if dunit
                          else "Difference vs baseline")
            ax.set_yticks(range(len(scenarios)), scenarios)
            ax.set_ylim(len(scenarios) - 0.5, -0.5)
            ax.grid(axis="y", visible=False)
        _hide_unused(axes, len(metrics))
        fig.suptitle("Effects vs baseline: paired mean difference with 95% interval\n"
                     "(filled marker: interval excludes zero)", fontweight="bold")
        return _save(fig, out_dir, "effects_forest")


def _cost_effect_points(economics, effects, baseline):
    """(scenario, x, x_lo, x_hi, y, y_lo, y_hi, discounted) from economics, else from effects."""
    cols = set(economics.columns) if economics is not None else set()
    if {"scenario", "pv_exclusion_years_avoided", "pv_cost_nok"} <= cols:  # costs and effects discounted alike
        e = economics[economics["scenario"].astype(str) != baseline]
        get = lambda c: e[c] if c in cols else np.nan  # noqa: E731
        pts = pd.DataFrame({
            "scenario": e["scenario"].astype(str), "x": e["pv_exclusion_years_avoided"],
            "x_lo": get("pv_exclusion_years_avoided_low"), "x_hi": get("pv_exclusion_years_avoided_high"),
            "y": e["pv_cost_nok"] / 1e6, "y_lo": get("pv_cost_nok_low") / 1e6,
            "y_hi": get("pv_cost_nok_high") / 1e6})
        return pts, "socio"
    if {"scenario", "exclusion_years_avoided", "pv_programme_cost_nok"} <= cols:
        e = economics[economics["scenario"].astype(str) != baseline]
        get = lambda c, default: e[c] if c in cols else default  # noqa: E731
        pts = pd.DataFrame({
            "scenario": e["scenario"].astype(str),
            "x": e["exclusion_years_avoided"], "x_lo": get("exclusion_years_avoided_low", np.nan),
            "x_hi": get("exclusion_years_avoided_high", np.nan),
            "y": e["pv_programme_cost_nok"] / 1e6,
            "y_lo": get("pv_programme_cost_nok_low", np.nan) / 1e6,
            "y_hi": get("pv_programme_cost_nok_high", np.nan) / 1e6})
        return pts, True
    if effects is None or effects.empty:
        return None, False
    eff = effects[effects["scenario"].astype(str) != baseline]
    ex = eff[eff["metric"] == "exclusion_years_15_29"].set_index("scenario")
    co = eff[eff["metric"] == "programme_cost_nok"].set_index("scenario")
    common = [s for s in ex.index if s in co.index]
    if not common:
        return None, False
    pts = pd.DataFrame({
        "scenario": [str(s) for s in common],
        "x": -ex.loc[common, "difference"].to_numpy(),
        "x_lo": -ex.loc[common, "ci_high"].to_numpy(), "x_hi": -ex.loc[common, "ci_low"].to_numpy(),
        "y": co.loc[common, "difference"].to_numpy() / 1e6,
        "y_lo": co.loc[common, "ci_low"].to_numpy() / 1e6,
        "y_hi": co.loc[common, "ci_high"].to_numpy() / 1e6})
    return pts, False


def plot_cost_effect(economics: pd.DataFrame | None, out_dir: Path, effects: pd.DataFrame | None = None,
                     price_year=None, baseline: str = BASELINE) -> Path | None:
    """Cost-effect plane -> ``cost_effect.png``.

    x: exclusion-years avoided; y: present value of programme cost (NOK million); error bars from
    the 95% intervals. Uses the economics table; without its columns, falls back to the
    undiscounted ``exclusion_years_15_29`` and ``programme_cost_nok`` differences in ``effects``.
    """
    pts, discounted = _cost_effect_points(economics, effects, baseline)
    if pts is None or pts.empty:
        return None
    pts = pts.reset_index(drop=True)
    pal = scenario_palette([baseline, *pts["scenario"]], baseline)
    prices = f" at {int(price_year)} prices" if price_year is not None and pd.notna(price_year) else ""
    ylabel = {"socio": f"Socio-economic cost, present value (NOK million{prices})",
              True: f"Programme cost, present value (NOK million{prices})",
              False: f"Programme cost, undiscounted (NOK million{prices})"}[discounted]
    xlabel = ("Exclusion-years avoided, discounted like costs (NEET person-years, ages 15-29)"
              if discounted == "socio" else "Exclusion-years avoided (NEET person-years, ages 15-29)")
    with _style():
        fig = Figure(layout="constrained", figsize=(8.5, 5.6))
        ax = fig.subplots()
        ax.axvline(0, color="0.35", lw=1, ls="--")
        ax.axhline(0, color="0.35", lw=0.8)
        numbered = len(pts) > MAX_NAMED_POINTS  # many scenarios: numbers at points, names in legend
        for i, r in pts.iterrows():
            xerr = np.array([[max(r["x"] - r["x_lo"], 0)], [max(r["x_hi"] - r["x"], 0)]])
            yerr = np.array([[max(r["y"] - r["y_lo"], 0)], [max(r["y_hi"] - r["y"], 0)]])
            xerr = None if not np.isfinite(xerr).all() else xerr
            yerr = None if not np.isfinite(yerr).all() else yerr
            ax.errorbar(r["x"], r["y"], xerr=xerr, yerr=yerr, fmt="o", ms=7, capsize=3,
                        color=pal[r["scenario"]], ecolor=pal[r["scenario"]], elinewidth=1.2,
                        alpha=0.9, zorder=3,
                        label=f"{i + 1}  {r['scenario']}" if numbered else r["scenario"])
            # alternate label offsets so that neighbouring labels overlap less
            dy = (8, -12, 14, -18)[i % 4] if not numbered else 5
            ax.annotate(str(i + 1) if numbered else r["scenario"], (r["x"], r["y"]),
                        xytext=(5, dy), textcoords="offset points",
                        fontsize="small", fontweight="bold" if numbered else "normal",
                        color=pal[r["scenario"]], zorder=4,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))
        if numbered:
            ax.legend(title="Scenario", loc="center left", bbox_to_anchor=(1.01, 0.5),
                      fontsize="small", handletextpad=0.3)
        ax.xaxis.set_major_formatter(THOUSANDS)
        ax.yaxis.set_major_formatter(THOUSANDS)
        ax.set(xlabel=xlabel, ylabel=ylabel,
               title="Cost-effect plane (95% intervals; right = more years avoided)")
        ax.margins(x=0.15, y=0.12)
        return _save(fig, out_dir, "cost_effect")


def plot_effect_timing(runs: pd.DataFrame, out_dir: Path, start_year: int | None = None,
                       baseline: str = BASELINE,
                       metric: str = "neet_person_years_15_29", draw_of: dict | None = None,
                       scale: float = 1.0) -> Path | None:
    """When each intervention's effect shows -> ``effect_timing.png``.

    One panel per scenario: NEET person-years avoided each year (baseline minus scenario, paired
    by replicate, so positive = fewer NEET years), mean with 95% band, against years since the
    policy start. A red dotted line and label mark the first year whose band excludes zero.
    Panels have their own y scale so that small, late effects (early-childhood prevention) show.
    With ``draw_of`` (parameter mode) the band is the parameter-mode interval at national scale
    (:func:`utenforsk.analysis.uncertainty.national_interval`), as in ``effects.csv``.
    """
    data = yearly(runs, metric)
    if data.empty or baseline not in set(data["scenario"]):
        return None
    base = data[data["scenario"] == baseline][["replicate", "year", "value"]]
    others = [s for s in ordered_scenarios(data["scenario"], baseline) if s != baseline]
    if not others:
        return None
    start = int(start_year) if start_year is not None and pd.notna(start_year) else int(data["year"].min())
    pal = scenario_palette([baseline, *others], baseline)
    paired = data[data["scenario"] != baseline].merge(base, on=["replicate", "year"],
                                                     suffixes=("", "_base"))
    paired["value"] = paired["value_base"] - paired["value"]
    summ = _summarise(paired, ["scenario", "year"]) if draw_of is None else \
        _summarise_draws(paired, ["scenario", "year"], draw_of, scale)
    summ["t"] = summ["year"] - start
    nrows, ncols = _grid(len(others), 4 if len(others) > 6 else 3)
    with _style():
        fig = Figure(layout="constrained", figsize=(max(3.4 * ncols, 5.5), 2.7 * nrows + 0.9))
        axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
        for ax, s in zip(axes, others):
            d = summ[summ["scenario"] == s].sort_values("t")
            ax.axhline(0, color="0.35", lw=1, ls="--")
            ax.fill_between(d["t"], d["low"], d["high"], color=pal[s], alpha=0.25, lw=0)
            ax.plot(d["t"], d["mean"], color=pal[s], lw=1.8, marker="o" if len(d) <= 12 else None,
                    ms=3)
            sig = d[(d["low"] > 0) | (d["high"] < 0)]
            if not sig.empty:
                t0 = int(sig["t"].iloc[0])
                ax.axvline(t0, color="#c0392b", lw=1.2, ls=":")
                ax.annotate(f"first clear: year {t0}", (t0, 1), xycoords=("data", "axes fraction"),
                            xytext=(3, -3), textcoords="offset points", va="top", ha="left",
                            fontsize="x-small", color="#c0392b")
            else:
                ax.annotate("no year clearly non-zero", (0.02, 0.97), xycoords="axes fraction",
                            va="top", fontsize="x-small", color="0.4")
            ax.set_title(s, fontsize="small")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.yaxis.set_major_formatter(THOUSANDS)
        _hide_unused(axes, len(others))
        fig.supxlabel(f"Years since policy start (0 = {start})")
        fig.supylabel("NEET person-years avoided\nper year, ages 15-29")
        fig.suptitle("When each intervention's effect shows\nbaseline minus scenario, paired by "
                     "replicate: mean and 95% band (y scales differ between panels)",
                     fontweight="bold", fontsize="medium")
        return _save(fig, out_dir, "effect_timing")


def plot_ledger(ledger: pd.DataFrame | None, out_dir: Path, price_year=None,
                baseline: str = BASELINE) -> Path | None:
    """Who pays, who gains -> ``ledger.png``: each scenario's present-value change in public
    spending per payer (NOK million; above zero the payer spends more, below it saves), with the
    net total marked. From ``ledger.csv``."""
    if ledger is None or len(ledger) == 0 or not {"scenario", "payer", "pv_cost_change_nok"} <= set(ledger.columns):
        return None
    tot = ledger.groupby(["scenario", "payer"], sort=False)["pv_cost_change_nok"].sum().unstack("payer").fillna(0.0) / 1e6
    order = [s for s in ordered_scenarios(tot.index.astype(str), baseline) if s != baseline and s in tot.index]
    payers = [p for p in ("municipality", "county", "state", "unassigned") if p in tot.columns]
    tot = tot.loc[order, payers]
    colours = dict(zip(("municipality", "county", "state", "unassigned"), sns.color_palette("Set2", 4)))
    prices = f" at {int(price_year)} prices" if price_year is not None and pd.notna(price_year) else ""
    with _style():
        fig = Figure(layout="constrained", figsize=(max(6.5, 1.6 * len(order) + 3), 4.8))
        ax = fig.subplots()
        x = np.arange(len(order))
        width = 0.8 / max(len(payers), 1)
        for k, p in enumerate(payers):
            ax.bar(x + (k - (len(payers) - 1) / 2) * width, tot[p].to_numpy(), width, label=p, color=colours[p])
        ax.scatter(x, tot.sum(axis=1).to_numpy(), marker="D", color="black", zorder=3, label="all public budgets")
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(x, order, rotation=20 if len(order) > 3 else 0, ha="right" if len(order) > 3 else "center")
        ax.yaxis.set_major_formatter(THOUSANDS)
        ax.set(ylabel=f"Change in public spending, present value (NOK million{prices})",
               title="Who pays, who gains: spending change by payer (below zero = saves)")
        ax.legend(loc="best", fontsize="small")
        return _save(fig, out_dir, "ledger")


def plot_ceac(ceac: pd.DataFrame | None, out_dir: Path, baseline: str = BASELINE) -> Path | None:
    """Cost-effectiveness acceptability curve -> ``ceac.png``: the share of parameter draws (or,
    in Monte Carlo mode, of replicates) in which each scenario has a positive net benefit, against
    the willingness to pay per exclusion-year avoided. From ``ceac.csv``."""
    if ceac is None or len(ceac) == 0 or not {"scenario", "wtp_nok", "probability"} <= set(ceac.columns):
        return None
    order = [s for s in ordered_scenarios(ceac["scenario"].astype(str), baseline) if s != baseline]
    pal = scenario_palette([baseline, *order], baseline)
    basis = str(ceac["basis"].iloc[0]) if "basis" in ceac.columns else "units"
    with _style():
        fig = Figure(layout="constrained", figsize=(7.5, 4.6))
        ax = fig.subplots()
        for s in order:
            d = ceac[ceac["scenario"].astype(str) == s].sort_values("wtp_nok")
            ax.plot(d["wtp_nok"] / 1e6, d["probability"], marker="o", ms=4, color=pal[s], label=s)
        ax.set_ylim(-0.03, 1.03)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set(xlabel="Willingness to pay per exclusion-year avoided, on top of the NPV (NOK million)",
               ylabel="Probability of a positive net benefit",
               title=f"Cost-effectiveness acceptability: share of {basis}")
        ax.legend(loc="best", fontsize="small")
        return _save(fig, out_dir, "ceac")
