"""Headline outcomes with ONE definition for the engine and the Mesa reference.

Both implementations keep the same two kinds of tallies, and every outcome here is computed from
them by the same code:

- ``age_state[A, s]``: person-months at whole age ``A`` (0-29) in state ``s``, counted at the end
  of each month for everyone still alive (the engine's ``history[k]["age_state"]``), summed over
  the policy months (optionally only some calendar years);
- per birth cohort, the number of people reaching 60 months after first starting upper secondary
  (``due``) and how many of them had completed it by then (``done``): the engine's cohort tallies
  ``CO_US_DUE`` / ``CO_US_DONE``.

Outcomes (all proportions; NaN where the denominator is 0):

- ``neet_rate_15_29``, ``neet_rate_15_19``, ``neet_rate_20_24``, ``neet_rate_25_29``: share of
  person-months at those ages in a NEET state by the **register** definition (SSB: NAV programmes
  are not NEET), whatever the config's reporting ``neet_definition``;
- ``health_benefit_rate_18_29``: share of person-months at 18-29 in a ``health_benefit``-role state;
- ``kindergarten_coverage_1_2`` and ``_3_5``: share of person-months at 1-2 / 3-5 in a
  ``kindergarten``-role state;
- ``upper_secondary_completion_5y``: pooled ``sum(done) / sum(due)`` over the birth cohorts that
  ``utenforsk.outputs.cohorts`` reports (``first_year <= birth_year`` and
  ``birth_year + 21 <= last simulated year``), i.e. the engine's cohort measure pooled over
  cohorts (its evaluations include burn-in years for the older cohorts, in both implementations);
- ``share_<state>_age<A>`` for ``A`` in :data:`SHARE_AGES`: share of person-months at whole age
  ``A`` spent in ``<state>`` (pooled over the policy months: far more power than one snapshot).

The rates are :func:`utenforsk.metrics.headline.rates`, with the register NEET mask.
"""

from __future__ import annotations

import numpy as np

from utenforsk.core.kernel import COHORT_OFFSET
from utenforsk.metrics.headline import rates, state_masks

SHARE_AGES = (6, 16, 20, 25, 29)


def headline(cfg, states: list[str], age_state: np.ndarray, us_due: int, us_done: int) -> dict:
    """The outcome dict from summed ``age_state`` [30, len(states)] and completion counts."""
    age_state = np.asarray(age_state, dtype=np.int64)
    masks = dict(state_masks(cfg, states), neet=np.array([cfg.is_neet(s, "register") for s in states]))
    out = rates(masks, age_state)
    out["upper_secondary_completion_5y"] = us_done / us_due if us_due else float("nan")
    for a in SHARE_AGES:
        total = int(age_state[a].sum())
        for s, name in enumerate(states):
            out[f"share_{name}_age{a}"] = float(age_state[a, s] / total) if total else float("nan")
    return out


def completion_counts(cohort_due_done: dict[int, tuple[int, int]], first_year: int,
                      last_year: int) -> tuple[int, int]:
    """Pooled (due, done) over birth years ``first_year .. last_year - 21`` (outputs.cohorts)."""
    due = done = 0
    for by, (d, k) in cohort_due_done.items():
        if first_year <= by and by + 21 <= last_year:
            due += d
            done += k
    return due, done


def engine_outcomes(model, years=None) -> dict:
    """:func:`headline` from a :class:`utenforsk.model.UtenforskModel` after (part of) its horizon.

    ``years``: calendar years of the policy history to pool (default: all policy months)."""
    from utenforsk.core.kernel import CO_US_DONE, CO_US_DUE

    months = [h for h in model.history if years is None or h["year"] in years]
    n_states = len(model.compiled.states)
    age_state = sum((h["age_state"] for h in months), np.zeros((30, n_states), np.int64))
    cohort = model.tally.cohort.sum(axis=0)
    by_year = {model.first_year + k - COHORT_OFFSET // 12: (int(cohort[k, CO_US_DUE]), int(cohort[k, CO_US_DONE]))
               for k in range(cohort.shape[0])}
    last_year = model.first_year + model.month // 12 - 1
    due, done = completion_counts(by_year, model.first_year, last_year)
    return headline(model.config, list(model.compiled.states), age_state, due, done)
