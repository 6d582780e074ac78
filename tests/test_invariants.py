"""Invariants of the engine on a small Norway baseline run."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from utenforsk.core import kernel
from utenforsk.outputs import periods, snapshot


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


def test_state_shares_sum_to_one(small_run):
    p = periods(small_run)
    shares = p.filter(regex="^share_").sum(axis=1)
    assert np.allclose(shares, 1.0, atol=1e-12)


def test_everyone_starts_school_at_six(small_run):
    snap = snapshot(small_run)
    ages = snap["age"].to_numpy()
    state = snap["state"].astype(str).to_numpy()
    assert np.all(state[(ages >= 6) & (ages <= 15)] == "school")
    assert not np.any(state[ages < 6] == "school")
    assert np.any(ages == 6)


def test_service_probabilities_stay_in_unit_interval(small_run):
    for arr in (small_run.dyn.admit_p, small_run.dyn.detect_p, small_run.dyn.ho_prob):
        assert np.all((arr >= 0) & (arr <= 1))


def test_traits_are_finite_once_started(small_run):
    snap = snapshot(small_run)
    for trait, start in (("early_development", 0), ("achievement", 6), ("engagement", 6)):
        started = snap.loc[snap.age >= start, trait].to_numpy()
        assert np.all(np.isfinite(started)), trait
        assert np.all(np.isnan(snap.loc[snap.age < start, trait].to_numpy())) or start == 0


@settings(max_examples=200, deadline=None)
@given(base=st.floats(-40, 40), beta=st.floats(-50, 50), x=st.floats(-10, 10),
       age=st.integers(0, 359))
def test_hazard_probability_is_a_probability(base, beta, x, age):
    """Whatever the coefficients, a hazard's monthly probability lies in [0, 1]."""
    from collections import namedtuple

    T = namedtuple("T", ["hz_lo", "hz_hi", "hz_base", "hz_row", "lp_start", "lp_end", "lp_beta", "lp_cov"])
    tab = T(np.array([0], np.int32), np.array([360], np.int32), np.full((1, 30), base),
            np.array([0], np.int32), np.array([0], np.int32), np.array([1], np.int32),
            np.array([beta]), np.array([0], np.int32))
    p = kernel._hazard_p.py_func(0, age, tab, np.array([x]))
    assert 0.0 <= p <= 1.0
