"""Invariants of the engine on a small Norway baseline run."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utenforsk.core import codegen, kernel
from utenforsk.outputs import snapshot


def test_people_are_neither_created_nor_lost(small_run):
    """alive(t) = alive(t-1) + births and arrivals - deaths - emigrations - ageing out, each month."""
    alive, events, entries = small_run.alive_trace
    for t in range(len(events)):
        assert alive[t + 1] == alive[t] + entries[t] - int(events[t].sum()), f"month {t}"
    # and every exit kind actually happened (the check is not vacuous)
    total = np.sum(events, axis=0)
    assert total[kernel.EV_AGED_OUT] > 0 and np.all(total[1:] > 0)


def test_state_counts_cover_everyone(small_run):
    """Each person alive in a month is tallied in exactly one state."""
    m = small_run.last_month
    assert m["age_state"].sum() == small_run.pop.alive.sum()
    assert m["muni_state"].sum() == m["age_state"].sum()
    assert np.array_equal(m["muni_state"].sum(axis=0), m["age_state"].sum(axis=0))


def test_everyone_starts_school_at_six(small_run):
    snap = snapshot(small_run)
    ages = snap["age"].to_numpy()
    state = snap["state"].astype(str).to_numpy()
    assert np.all(state[(ages >= 6) & (ages <= 15)] == "school")
    assert not np.any(state[ages < 6] == "school")
    assert np.any(ages == 6)


def test_shares_of_each_age_sum_to_one_over_states(small_run):
    """State shares by age from the tallies equal the snapshot's (two independent routes)."""
    snap = snapshot(small_run)
    counts = small_run.last_month["age_state"]
    by_age = snap.groupby("age").size().reindex(range(30), fill_value=0).to_numpy()
    assert np.array_equal(counts.sum(axis=1), by_age)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    assert np.allclose(shares[by_age > 0].sum(axis=1), 1.0)


def test_arrivals_traits_start_from_their_own_early_development(small_run):
    """Achievement of children who arrive after 6 depends on their early development as it does
    for children born here (it once started from 0 for arrivals)."""
    snap = snapshot(small_run)
    kids = snap[(snap.age >= 7) & (snap.age <= 15)]
    for group in (kids[kids.immigrant_background == "immigrant"], kids[kids.immigrant_background == "other"]):
        assert len(group) > 100
        assert np.corrcoef(group.early_development, group.achievement)[0, 1] > 0.3


def test_traits_are_finite_once_started(small_run):
    snap = snapshot(small_run)
    for trait, start in (("early_development", 0), ("achievement", 6), ("engagement", 6)):
        started = snap.loc[snap.age >= start, trait].to_numpy()
        assert np.all(np.isfinite(started)), trait
        assert np.all(np.isnan(snap.loc[snap.age < start, trait].to_numpy())) or start == 0


_HELPERS = codegen.helpers_namespace()


@settings(max_examples=300, deadline=None)
@given(base=st.floats(-40, 40), beta=st.floats(-50, 50), x=st.floats(-10, 10))
def test_hazard_rate_matches_its_probability(base, beta, x):
    """The kernel's monthly rate (series for small rates, capped) gives back the hazard's
    probability: 1 - exp(-rate) = logistic(eta), to 1e-9, unless the cap (p <= 1 - 1e-6) binds."""
    import math

    rate = _HELPERS["_rate"].py_func(base + beta * x)  # the generated kernel's rate in its window
    p = 1.0 / (1.0 + math.exp(-(base + beta * x))) if base + beta * x > -700 else 0.0
    assert rate >= 0.0
    assert -math.expm1(-rate) == pytest.approx(min(p, 1 - 1e-6), rel=1e-9, abs=1e-300)


def test_rate_upper_bound_holds_everywhere():
    """``_rate_ub`` (the transitions' per-person bound, codegen.HELPERS) is at least the rate for
    every linear predictor, by a margin above exp's and a sum's rounding (2 ** 0.01 = 1.0069),
    and within a factor 2.02 of exp(eta) where it is not clamped, so it skips most draws."""
    import math

    rate, ub = _HELPERS["_rate"], _HELPERS["_rate_ub"]  # compiled, with the kernels' fastmath
    etas = np.concatenate([np.linspace(-800.0, 800.0, 160_001), np.linspace(-45.0, 25.0, 140_001),
                           [-np.inf, np.inf, -745.2, 13.815510557964274, 0.0, -0.0]])
    for eta in etas:
        r, b = rate(eta), ub(eta)
        assert b >= r * 1.0069 and b > 0.0, eta
        if -41.0 < eta < 20.0:
            assert b <= 2.02 * math.exp(eta), eta
    assert ub(np.nan) == 2.0 ** -60  # NaN reads as the lowest (its rate never fires)
