"""How much of an effect's spread is Monte Carlo noise, and how much parameter uncertainty.

In ``parameter`` mode replicates come in groups that share one parameter draw but have different
seeds (``uncertainty.seeds_per_draw``). For each scenario and metric the paired differences
``d_r`` (scenario minus baseline) are split by a one-way random-effects decomposition:

    sigma2_mc    = pooled within-draw variance of d          (Monte Carlo noise)
    sigma2_param = max(0, var(draw means) - sigma2_mc / k)   (parameter uncertainty; k per draw)

In ``monte_carlo`` mode every replicate has the same parameters, so all spread is Monte Carlo.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["scenario", "metric", "mode", "sd_monte_carlo", "sd_parameter", "parameter_share",
           "n_replicates", "n_draws"]


def variance_decomposition(runs: pd.DataFrame, metrics: list[str], draw_of: dict[int, int] | None,
                           baseline: str = "baseline") -> pd.DataFrame:
    """One row per (scenario, metric); ``draw_of`` maps replicate -> parameter draw (None: MC mode)."""
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
                rows.append([scenario, m, "monte_carlo", float(d.std(ddof=1)), 0.0, 0.0, len(d), len(d)])
                continue
            groups = d.groupby(d.index.map(draw_of))
            sizes = groups.size()
            dof = int((sizes - 1).sum())
            within = float(((d - groups.transform("mean")) ** 2).sum() / dof) if dof > 0 else np.nan
            means = groups.mean()
            k = float(sizes.mean())
            between = float(means.var(ddof=1)) if len(means) > 1 else np.nan
            param = max(0.0, between - within / k) if np.isfinite(between) and np.isfinite(within) else np.nan
            total = within + param
            rows.append([scenario, m, "parameter", float(np.sqrt(within)), float(np.sqrt(param)),
                         float(param / total) if total > 0 else np.nan, len(d), len(means)])
    return pd.DataFrame(rows, columns=COLUMNS)
