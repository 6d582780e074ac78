"""For whom, and at what cost per person: effects by group, per birth cohort, per participant.

Reads the task metrics written by :mod:`utenforsk.experiment.metrics`:
``group:ATTR:CATEGORY:METRIC`` (by the experiment's ``for_whom`` attributes),
``cohort:BIRTH_YEAR:METRIC`` (the followed cohorts) and ``participants[:NAME]``. Effects are
paired by replicate exactly as :func:`utenforsk.analysis.effects.paired_effects` (t-intervals in
Monte Carlo mode, percentile intervals over parameter draws at national scale in parameter mode).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utenforsk.analysis.effects import paired_effects

PARTICIPANT_COLUMNS = ["scenario", "participants", "programme_cost_nok", "cost_per_participant_nok",
                       "exclusion_years_avoided", "exclusion_years_over", "participants_per_exclusion_year_avoided",
                       "completers_gained", "number_needed_to_treat_completion",
                       "long_term_neet_avoided", "number_needed_to_treat_long_term_neet"]


def _split_effects(runs: pd.DataFrame, prefix: str, names: list[str], draw_of, scale: float,
                   baseline: str) -> pd.DataFrame:
    """Paired effects of the ``prefix:...`` metrics, with the name split into ``names`` columns."""
    rows = runs[runs.metric.str.startswith(prefix + ":")]
    if rows.empty or baseline not in set(rows.scenario):
        return pd.DataFrame(columns=["scenario", *names])
    eff = paired_effects(rows, baseline=baseline, draw_of=draw_of, scale=scale)
    parts = eff.pop("metric").str.split(":", n=len(names), expand=True)
    for j, name in enumerate(names):
        eff.insert(1 + j, name, parts[j + 1])
    if "birth_year" in names:
        eff["birth_year"] = eff["birth_year"].astype(int)
    return eff.dropna(subset=["difference"]).reset_index(drop=True)


def group_effects(runs: pd.DataFrame, draw_of=None, scale: float = 1.0,
                  baseline: str = "baseline") -> pd.DataFrame:
    """One row per (scenario, attribute, category, metric): the effect within that group."""
    return _split_effects(runs, "group", ["attribute", "category", "metric"], draw_of, scale, baseline)


def cohort_effects(runs: pd.DataFrame, draw_of=None, scale: float = 1.0,
                   baseline: str = "baseline") -> pd.DataFrame:
    """One row per (scenario, birth year, metric) of the followed cohorts."""
    return _split_effects(runs, "cohort", ["birth_year", "metric"], draw_of, scale, baseline)


def participants(runs: pd.DataFrame, baseline: str = "baseline") -> pd.DataFrame:
    """Participants, cost per participant and numbers needed to treat, per scenario.

    Means over replicates (national): ``participants`` counts new participants over the horizon
    (a person in two of a scenario's programmes counts twice); cost per participant is the
    programme cost over them; ``participants_per_exclusion_year_avoided`` divides them by the NEET
    person-years at 15-29 avoided (over the followed cohorts' lives when they have all been
    followed to 30, else over the horizon: ``exclusion_years_over``); the numbers needed to treat divide them by the extra upper-
    secondary completers and the persons fewer ever long-term NEET in the followed cohorts.
    Ratios of means, without intervals; NaN where the denominator is not positive.
    """
    wide = runs.pivot_table(index=["scenario", "replicate"], columns="metric", values="value")
    if baseline not in wide.index.get_level_values(0) or "participants" not in wide.columns:
        return pd.DataFrame(columns=PARTICIPANT_COLUMNS)
    base = wide.xs(baseline, level="scenario")
    # the followed cohorts' whole lives when they have all reached 30, else the horizon
    followed = "cohort_exclusion_years_15_29" in wide.columns and wide["cohort_exclusion_years_15_29"].notna().all()
    excl = "cohort_exclusion_years_15_29" if followed else "exclusion_years_15_29"
    over = "followed cohorts' lives" if followed else "horizon"

    def gain(this, metric, sign):
        if metric not in wide.columns:
            return np.nan
        reps = this.index.intersection(base.index)
        return float(sign * (this.loc[reps, metric] - base.loc[reps, metric]).mean())

    def ratio(a, b):
        return a / b if np.isfinite(a) and np.isfinite(b) and b > 0 else np.nan

    rows = []
    for s in [s for s in wide.index.get_level_values(0).unique() if s != baseline]:
        this = wide.xs(s, level="scenario")
        n = float(this["participants"].mean()) if this["participants"].notna().any() else np.nan
        cost = float(this["programme_cost_nok"].fillna(0).mean()) if "programme_cost_nok" in this else np.nan
        avoided = gain(this, excl, -1)
        completers = gain(this, "cohort_completers", +1)
        ltn = gain(this, "cohort_long_term_neet_persons", -1)
        rows.append([s, n, cost, ratio(cost, n), avoided, over, ratio(n, avoided), completers,
                     ratio(n, completers), ltn, ratio(n, ltn)])
    return pd.DataFrame(rows, columns=PARTICIPANT_COLUMNS)
