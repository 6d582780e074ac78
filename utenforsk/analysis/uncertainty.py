"""What we do not know about an effect: parameter uncertainty, separated from Monte Carlo noise.

In ``parameter`` mode replicates come in groups that share one parameter draw but have different
seeds (``uncertainty.seeds_per_draw``, k). For each scenario and metric the paired differences
``d_r`` (scenario minus baseline) are split by a one-way random-effects decomposition:

    sigma2_mc    = pooled within-draw variance of d          (Monte Carlo noise, one replicate)
    tau2         = max(0, var(draw means) - sigma2_mc / k)   (parameter uncertainty)

Monte Carlo noise shrinks with the simulated population: at ``scale`` (simulated persons per
real person) a national total or rate has ``sigma2_mc * scale`` of it. So the uncertainty of
the effect *in Norway* is ``tau2 + scale * sigma2_mc``, and its parameter share is
``tau2 / (tau2 + scale * sigma2_mc)`` — not a share of one simulated replicate's variance.

:func:`national_draws` turns the per-draw means into draws of the national effect: each draw
mean is moved toward the grand mean so that their spread is ``tau2 + scale * sigma2_mc``.
Because ``tau2`` is estimated, it is taken half a standard error above its estimate
(``TAU2_ALLOWANCE``); without that allowance the 95% interval covers a new draw's effect in only
~85% of repetitions when the noise dominates (tests/test_uncertainty.py measures 93-97% with it).
The grand mean itself is uncertain by ``sqrt(var(draw means) / D)`` (the centre's simulation
error): :func:`national_interval` widens each end of the percentile interval by it (in
quadrature), and :func:`claim_probability` blurs each draw by it. Without this, a rare-event
metric at a small scale (most draws exactly 0, one draw not) would give a degenerate interval
that excludes 0 and a claim probability of 1. With one seed per draw the noise cannot be told apart from the
parameters, and the draw means are used as they are (a wider, conservative interval).

In ``monte_carlo`` mode every replicate has the same parameters, so all spread is Monte Carlo.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

COLUMNS = ["scenario", "metric", "mode", "sd_monte_carlo", "sd_monte_carlo_national", "sd_parameter",
           "parameter_share", "parameter_share_simulation", "n_replicates", "n_draws"]
TAU2_ALLOWANCE = 0.5  # standard errors added to the estimated parameter variance (see above)


def split_by_draw(d: pd.Series, draw_of: dict[int, int]) -> dict:
    """Per-draw means of ``d`` (indexed by replicate) and the variance components.

    Returns ``means`` (a Series by draw, in draw order), ``within`` (pooled within-draw variance,
    NaN when no draw has two replicates), ``k`` (mean replicates per draw), ``between``
    (variance of the draw means, NaN with one draw) and ``tau2`` (parameter variance, >= 0).
    """
    d = d.dropna()
    groups = d.groupby(d.index.map(draw_of))
    sizes = groups.size()
    dof = int((sizes - 1).sum())
    within = float(((d - groups.transform("mean")) ** 2).sum() / dof) if dof > 0 else float("nan")
    means = groups.mean().sort_index()
    k = float(sizes.mean()) if len(sizes) else float("nan")
    between = float(means.var(ddof=1)) if len(means) > 1 else float("nan")
    tau2 = (max(0.0, between - within / k) if math.isfinite(between) and math.isfinite(within)
            else float("nan"))
    return {"means": means, "within": within, "k": k, "between": between, "tau2": tau2}


def national_draws(d: pd.Series, draw_of: dict[int, int], scale: float) -> tuple[np.ndarray, float]:
    """Draws of the national-scale effect, one per parameter draw, and the simulation error of
    their centre (``sqrt(var(draw means) / D)``); see the module docstring."""
    parts = split_by_draw(d, draw_of)
    m = parts["means"].to_numpy(dtype=float)
    n = len(m)
    if n < 2:
        return m, float("nan")
    mu, between, within, k = float(m.mean()), parts["between"], parts["within"], parts["k"]
    centre = math.sqrt(between / n) if between > 0 else 0.0
    if not (math.isfinite(within) and between > 0):
        return m, centre  # one seed per draw, or no spread: nothing can be separated
    dof_within = n * (k - 1)
    se = math.sqrt(2 * between**2 / (n - 1) + 2 * (within / k) ** 2 / dof_within)
    tau2 = min(between, parts["tau2"] + TAU2_ALLOWANCE * se)
    return mu + math.sqrt((tau2 + scale * within) / between) * (m - mu), centre


def national_interval(d: pd.Series, draw_of: dict[int, int], scale: float,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the national draws, each end widened (in quadrature) by the
    simulation error of the centre, so an interval never claims more than the draws can tell."""
    draws, centre = national_draws(d, draw_of, scale)
    lo, hi = percentile_interval(draws, level)
    if not (math.isfinite(lo) and math.isfinite(centre)):
        return lo, hi
    mu, z = float(np.mean(draws)), float(stats.norm.ppf((1 + level) / 2))
    return mu - math.hypot(mu - lo, z * centre), mu + math.hypot(hi - mu, z * centre)


def claim_probability(d: pd.Series, draw_of: dict[int, int], scale: float, boundary: float,
                      below: bool) -> float:
    """P(national effect < boundary) (``below``) or > boundary, over parameter draws, each draw
    blurred by the simulation error of the centre (so it is 0.5 at most for a draw sitting on the
    boundary, however many draws agree)."""
    draws, centre = national_draws(d, draw_of, scale)
    if len(draws) == 0:
        return float("nan")
    if not centre > 0:
        return float(np.mean(draws < boundary if below else draws > boundary))
    z = (boundary - draws) / centre
    return float(np.mean(stats.norm.cdf(z) if below else stats.norm.sf(z)))


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The interval between order statistics ``j`` and ``D+1-j`` of ``D`` draws, with
    ``j = max(1, floor((1-level)/2 * (D+1)))``: it holds a new draw with probability
    ``(D+1-2j)/(D+1)`` (at least ``level`` once D >= 39; below that it is the range of the draws,
    ``(D-1)/(D+1)``). NaN with fewer than 2 draws."""
    x = np.sort(np.asarray(values, dtype=float))
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 2:
        return float("nan"), float("nan")
    j = max(1, int(math.floor((1 - level) / 2 * (n + 1))))
    return float(x[j - 1]), float(x[n - j])


def variance_decomposition(runs: pd.DataFrame, metrics: list[str], draw_of: dict[int, int] | None,
                           baseline: str = "baseline", scale: float = 1.0) -> pd.DataFrame:
    """One row per (scenario, metric); ``draw_of`` maps replicate -> parameter draw (None: MC mode).

    ``scale`` is the simulation's persons per real person: ``sd_monte_carlo_national`` and
    ``parameter_share`` are at national scale (``scale=1`` gives them at the simulation's own
    scale, as ``parameter_share_simulation`` always is).
    """
    table = runs.pivot_table(index=["scenario", "replicate"], columns="metric", values="value")
    rows = []
    base = table.loc[baseline]
    for scenario in [s for s in table.index.get_level_values(0).unique() if s != baseline]:
        diff = (table.loc[scenario] - base).dropna(how="all")
        for m in metrics:
            if m not in diff:
                continue
            d = diff[m].dropna()
            if len(d) < 2:
                continue
            if draw_of is None:
                sd = float(d.std(ddof=1))
                rows.append([scenario, m, "monte_carlo", sd, sd * math.sqrt(scale), 0.0, 0.0, 0.0,
                             len(d), len(d)])
                continue
            p = split_by_draw(d, draw_of)
            within, param = p["within"], p["tau2"]
            national = within * scale + param
            sim = within + param
            rows.append([scenario, m, "parameter", math.sqrt(within) if math.isfinite(within) else np.nan,
                         math.sqrt(within * scale) if math.isfinite(within) else np.nan,
                         math.sqrt(param) if math.isfinite(param) else np.nan,
                         param / national if national > 0 else np.nan,
                         param / sim if sim > 0 else np.nan, len(d), len(p["means"])])
    return pd.DataFrame(rows, columns=COLUMNS)
