"""Paired scenario effects (common random numbers: pair by replicate) with their intervals.

Monte Carlo mode: the mean of the per-replicate differences with its t-interval (simulation
uncertainty at fixed parameters). Parameter mode (``draw_of`` given): replicates are grouped by
parameter draw; the effect is the mean of the per-draw mean differences and the interval a
percentile interval over draws of the national-scale effect
(:func:`utenforsk.analysis.uncertainty.national_interval`), so it includes what we do not know
about the parameters and does not shrink with more replicates.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

RUNS_COLUMNS = ("scenario", "replicate", "metric", "value")
EFFECT_COLUMNS = ["scenario", "metric", "baseline_mean", "scenario_mean", "difference", "ci_low",
                  "ci_high", "relative_change", "n_replicates"]


def check_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Check the long runs table (columns, one value per scenario/replicate/metric)."""
    missing = [c for c in RUNS_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {missing}; expected {list(RUNS_COLUMNS)}")
    dup = runs.duplicated(["scenario", "replicate", "metric"])
    if dup.any():
        first = runs.loc[dup, ["scenario", "replicate", "metric"]].iloc[0].tolist()
        raise ValueError(f"runs table has {int(dup.sum())} duplicate (scenario, replicate, metric) "
                         f"rows, e.g. {first}")
    return runs


def wide(runs: pd.DataFrame) -> pd.DataFrame:
    """(scenario, replicate) rows x metric columns."""
    return check_runs(runs).pivot(index=["scenario", "replicate"], columns="metric",
                                  values="value").astype(float)


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and t-interval ``mean ± t_{(1+level)/2, n-1} · sd/√n`` of ``values``.

    Returns ``(mean, low, high, n)``; the interval is NaN when n < 2, the mean NaN when n = 0.
    NaN values propagate (callers drop unpaired replicates before calling).
    """
    x = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values,
                   dtype=float)
    n = int(x.size)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), n
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half, n


def _scenarios(runs: pd.DataFrame, baseline: str) -> list[str]:
    names = list(pd.unique(runs["scenario"]))
    if baseline not in names:
        raise ValueError(f"baseline scenario {baseline!r} is not in the runs table; "
                         f"scenarios: {', '.join(map(str, names))}")
    return [s for s in names if s != baseline]


def paired_effects(runs: pd.DataFrame, baseline: str = "baseline",
                   metrics: Iterable[str] | None = None, level: float = 0.95,
                   draw_of: dict[int, int] | None = None, scale: float = 1.0) -> pd.DataFrame:
    """Effect of every non-baseline scenario on every metric, paired by replicate.

    One row per (scenario, metric). Only replicates with a (non-NaN) value in both the scenario
    and the baseline are used; ``baseline_mean`` and ``scenario_mean`` are means over those same
    replicates, so ``difference = scenario_mean - baseline_mean`` exactly. The interval is the
    paired t-interval of the per-replicate differences (NaN with fewer than 2 replicates);
    ``relative_change = difference / baseline_mean`` (NaN if ``baseline_mean`` is 0).
    ``metrics=None`` means every metric in the table (yearly ``NAME@YEAR`` ones included), in
    order of first appearance. With ``draw_of`` (replicate -> parameter draw) the means are
    over draws and the interval is the parameter-mode percentile interval at national scale
    (``scale``: simulated persons per real person).
    """
    table = wide(runs)
    scenarios = _scenarios(runs, baseline)
    if metrics is None:
        metrics = list(pd.unique(runs["metric"]))
    else:
        metrics = list(metrics)
        unknown = [m for m in metrics if m not in table.columns]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; the runs table has "
                             f"{', '.join(map(str, table.columns))}")
    base = table.xs(baseline, level="scenario")
    rows = []
    for scenario in scenarios:
        this = table.xs(scenario, level="scenario")
        reps = this.index.intersection(base.index)
        for metric in metrics:
            pair = pd.DataFrame({"b": base.loc[reps, metric], "s": this.loc[reps, metric]}).dropna()
            if draw_of is not None:
                rows.append(_draw_row(scenario, metric, pair, draw_of, scale, level))
                continue
            diff, low, high, n = mean_ci((pair["s"] - pair["b"]).to_numpy(), level)
            b_mean = float(pair["b"].mean()) if n else float("nan")
            s_mean = float(pair["s"].mean()) if n else float("nan")
            rel = diff / b_mean if n and b_mean != 0 else float("nan")
            rows.append((scenario, metric, b_mean, s_mean, diff, low, high, rel, n))
    out = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    return out.astype({"n_replicates": int})


def _draw_row(scenario: str, metric: str, pair: pd.DataFrame, draw_of: dict[int, int], scale: float,
              level: float) -> tuple:
    """One effects row in parameter mode: means over draws, percentile interval over draws."""
    from utenforsk.analysis.uncertainty import national_interval

    n = len(pair)
    if n == 0:
        nan = float("nan")
        return (scenario, metric, nan, nan, nan, nan, nan, nan, 0)
    by_draw = pair.groupby(pair.index.map(draw_of)).mean()
    b_mean, s_mean = float(by_draw["b"].mean()), float(by_draw["s"].mean())
    diff = s_mean - b_mean
    low, high = national_interval(pair["s"] - pair["b"], draw_of, scale, level)
    rel = diff / b_mean if b_mean != 0 else float("nan")
    return (scenario, metric, b_mean, s_mean, diff, low, high, rel, n)
