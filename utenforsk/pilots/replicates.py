"""Per-municipality outcomes of an experiment's replicate runs (experiment key
``municipality_metrics: true``): one place that reads the ``kommune:NNNN:METRIC[@YEAR]`` rows of
runs.parquet, for ``utenforsk municipality NAME --experiment DIR`` and for ``utenforsk power``
with ``world: {replicates: DIR}`` (docs/pilots.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from utenforsk.errors import UserError

PREFIX = "kommune:"


def read_runs(exp_dir: str | Path, *, key: str = "--experiment") -> pd.DataFrame:
    """The ``kommune:`` rows of ``DIR/runs.parquet`` as columns scenario, replicate, kommunenummer,
    metric, year (NaN: pooled over the horizon), value; exit 2 if there are none."""
    path = Path(exp_dir) / "runs.parquet"
    if not path.exists():
        raise UserError("no runs.parquet in this directory", key=key, value=str(exp_dir),
                        allowed="the --out directory of a finished `utenforsk experiment`")
    runs = pd.read_parquet(path)
    runs = runs[runs.metric.str.startswith(PREFIX)]
    if runs.empty:
        raise UserError("the experiment has no municipality metrics", key=key, value=str(exp_dir),
                        allowed="an experiment run with `municipality_metrics: true`")
    parts = runs.metric.str[len(PREFIX):].str.split(":", n=1, expand=True)
    name_year = parts[1].str.split("@", n=1, expand=True)
    year = name_year[1] if name_year.shape[1] > 1 else pd.Series(np.nan, index=runs.index)
    return pd.DataFrame({"scenario": runs.scenario.to_numpy(), "replicate": runs.replicate.to_numpy(),
                         "kommunenummer": parts[0].to_numpy(), "metric": name_year[0].to_numpy(),
                         "year": pd.to_numeric(year).to_numpy(), "value": runs.value.to_numpy()})


def municipality_effects(exp_dir: str | Path, kommunenummer: str, baseline: str = "baseline",
                         metric: str = "neet_rate_15_29") -> pd.DataFrame:
    """Each scenario's effect on ``metric`` in one municipality, pooled over the policy years and
    per year, paired by replicate (analysis.effects)."""
    from utenforsk.analysis.effects import paired_effects

    k = read_runs(exp_dir)
    k = k[k.kommunenummer == kommunenummer]
    if baseline not in set(k.scenario):
        raise UserError("the experiment has no baseline scenario", key="--experiment", value=str(exp_dir))
    names = np.where(k.year.isna(), k.metric, k.metric + "@" + k.year.fillna(0).astype(int).astype(str))
    long = pd.DataFrame({"scenario": k.scenario, "replicate": k.replicate, "metric": names, "value": k.value})
    keep = [m for m in pd.unique(long.metric) if m.partition("@")[0] == metric]
    if len(set(long.scenario)) < 2:
        return pd.DataFrame()
    return paired_effects(long, baseline=baseline, metrics=keep)


def outcome_panel(exp_dir: str | Path, scenario: str, baseline: str = "baseline",
                  metric: str = "neet_rate_15_29", key: str = "world.replicates"):
    """Yearly per-municipality panels of the baseline and a scenario, paired by replicate:
    ``(years, kommunenummer, base[R, K, T], treated[R, K, T], persons[R, K, T])``, ``persons``
    the simulated persons 15-29 counted (the denominator of the rates)."""
    k = read_runs(exp_dir, key=key)
    k = k[k.year.notna()]
    for name in (baseline, scenario):
        if name not in set(k.scenario):
            raise UserError("no such scenario with municipality metrics", key=key, value=name,
                            allowed=", ".join(sorted(set(k.scenario))))
    reps = sorted(set(k[k.scenario == baseline].replicate) & set(k[k.scenario == scenario].replicate))
    years = sorted(set(k.year.astype(int)))
    nrs = sorted(set(k.kommunenummer))

    def cube(sc, m):
        d = k[(k.scenario == sc) & (k.metric == m) & k.replicate.isin(reps)]
        w = d.pivot_table(index=["replicate", "kommunenummer"], columns="year", values="value", aggfunc="first")
        w = w.reindex(pd.MultiIndex.from_product([reps, nrs]), columns=[float(y) for y in years])
        return w.to_numpy().reshape(len(reps), len(nrs), len(years))

    return years, nrs, cube(baseline, metric), cube(scenario, metric), cube(baseline, "simulated_persons_15_29")
