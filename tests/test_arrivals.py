"""Immigrants arrive with the traits and qualifications of their age (issue 11, defect 6).

Before the fix an arrival's traits were drawn from the at-birth / at-6 distribution whatever the
age on arrival, binary traits started at 0, and no arrival held a flag, so adult immigrants never
held ``completed_upper_secondary``. Now traits already started are a native donor's of the same
service area and birth month (plus the rule's ``trait_shift``; issue 15: the same area), binary traits follow the natives' prevalence at
that age (or a declared ``prevalence``), and flags are drawn with the rule's shares.
"""

from __future__ import annotations

import numpy as np
import pytest

from utenforsk.model import UtenforskModel


def _arrivals(m: UtenforskModel, month: int) -> np.ndarray:
    """Slots of the people who arrived (immigrated) in ``month``."""
    ids = np.arange(int(m.cum_entries[month] + m.births[month]), int(m.cum_entries[month + 1]))
    return ids % m.capacity


@pytest.fixture(scope="module")
def entered(baseline_path):
    """A burnt-in baseline whose next month's entrants have just entered (before their month)."""
    # scale 0.03: ~55 arrivals a month since arrivals follow the SSB series (issue 13)
    m = UtenforskModel(baseline_path, seed=8, scale=0.03, burn_in_years=30, horizon_years=1)
    month = m.month
    m._enter(month)
    return m, month


def test_arrivals_take_a_native_donors_traits(entered):
    """Each arrival's engagement is exactly that of a living native of the arrival's own service
    area (here its municipality) born in the same month or, if none was born there then, within
    DONOR_WINDOW months; their achievement is that value plus the rule's shift (-0.2 SD):
    age-specific draws. No arrival takes a donor from another municipality."""
    from utenforsk.core.kernel import DONOR_WINDOW

    m, month = entered
    arr = _arrivals(m, month)
    c = m.compiled
    eng, ach = c.ctraits.index("engagement"), c.ctraits.index("achievement")
    births, area = m.pop.birth.astype(np.int64), m.pop.area
    native_slots = np.concatenate([np.arange(int(m.cum_entries[b]), int(m.cum_entries[b] + m.births[b]))
                                   for b in range(month)]) % m.capacity
    native_slots = native_slots[m.pop.alive[native_slots] == 1]
    older = arr[(month - births[arr]) > 6 * 12 + 1]
    assert len(older) > 30, "too few arrivals past 6 to test"
    hits_e = hits_a = with_donor = elsewhere = 0
    for s in older:
        near = native_slots[(area[native_slots] == area[s]) & (np.abs(births[native_slots] - births[s]) <= DONOR_WINDOW)]
        if len(near) == 0:
            continue  # no native of that age there: the start distribution
        with_donor += 1
        hits_e += m.pop.ctraits[eng, s] in set(m.pop.ctraits[eng, near].tolist())
        shifted = {float(np.float32(np.float64(v) - 0.2)) for v in m.pop.ctraits[ach, near]}
        hits_a += float(m.pop.ctraits[ach, s]) in shifted
        other = native_slots[(area[native_slots] != area[s]) & (births[native_slots] == births[s])]
        elsewhere += m.pop.ctraits[eng, s] in set(m.pop.ctraits[eng, other].tolist())
    assert with_donor > 0.8 * len(older), (with_donor, len(older))
    # a donor is missed only when four draws all meet natives who have died or emigrated
    assert hits_e >= 0.95 * with_donor and hits_a >= 0.95 * with_donor, (hits_e, hits_a, with_donor)
    assert elsewhere == 0


def test_adult_arrivals_hold_qualifications_and_natives_prevalence(baseline_path):
    """Arrivals aged 25-29 hold completed_upper_secondary at the declared share (0.66), and the
    mental-health problem of adult arrivals is as prevalent as among natives of their age.

    Tolerance: 4 binomial standard errors of each share (the failing pre-fix values were 0)."""
    m = UtenforskModel(baseline_path, seed=9, scale=0.02, burn_in_years=30, horizon_years=2)
    f = m.compiled.flags.index("completed_upper_secondary")
    b = m.compiled.btraits.index("mental_health")
    done, ill, n_old, n_adult = 0, 0, 0, 0
    while m.running:
        month = m.month
        m.step()
        arr = _arrivals(m, month)
        age = month - m.pop.birth[arr]
        old, adult = arr[age >= 25 * 12], arr[age >= 20 * 12]
        done += int(((m.pop.flags[old] >> f) & 1).sum())
        ill += int(((m.pop.btraits[adult] >> b) & 1).sum())
        n_old, n_adult = n_old + len(old), n_adult + len(adult)
    assert n_old > 200
    share = done / n_old
    assert abs(share - 0.66) < 4 * np.sqrt(0.66 * 0.34 / n_old), share
    slots = m.alive_slots()
    ages = m.month - m.pop.birth[slots]
    natives = slots[(ages >= 20 * 12) & (m.pop.attrs[m.compiled.attr_index["immigrant_background"], slots] != 2)]
    p_native = float(((m.pop.btraits[natives] >> b) & 1).mean())
    assert p_native > 0.05, "the comparison needs a prevalence well above 0"
    p_arr = ill / n_adult
    assert abs(p_arr - p_native) < 4 * np.sqrt(p_native * (1 - p_native) / n_adult), (p_arr, p_native)


def test_a_donor_search_spends_no_draw_on_months_everyone_has_left():
    """Born 359 months before the month, an arrival's search window reaches birth months older
    than 360 months, whose natives have all aged out (and whose slots this month's entrants may be
    taking over). The search skips them: here month 39's two (departed) natives of the area used
    to take all DONOR_TRIES draws, so the arrival got no donor although month 43 has one; and
    reading those slots while other arrivals wrote them made the outcome depend on the entrants'
    order (why arrivals entered on one thread)."""
    from utenforsk.core import kernel

    month, area_a, areas = 400, 1, 3
    per_month = np.full(month + 1, 2, np.int64)  # two births a month, in area 0 unless set below
    cum = np.r_[0, np.cumsum(per_month)].astype(np.int64)
    cap = int(cum[-1]) + 1
    area = np.zeros(cap, np.uint16)
    births_of = np.repeat(np.arange(month + 1), 2).astype(np.int16)
    births_of = np.r_[births_of, 0].astype(np.int16)
    alive = (births_of >= month - 360).astype(np.uint8)
    area[cum[39]:cum[40]] = area_a   # departed natives of area a, born 361 months ago
    area[cum[43]] = area_a           # a living one, born 357 months ago
    rank = np.zeros(cap, np.uint16)
    births_area = np.zeros((kernel.BIRTHS_RING, areas + 1), np.int32)
    for b in range(month + 1):
        kernel.index_births(int(cum[b]), 2, cap, area, rank, births_area, b)
    donor = kernel.arrival_donor(month - 359, area_a, month, np.uint64(12345), alive, births_of, rank,
                                 cum, per_month, cap, births_area)
    assert donor == cum[43]


def test_entrants_on_two_threads_enter_as_on_one(baseline_path, monkeypatch):
    """Births and arrivals enter on the kernels' threads (kernel.MIN_BIRTHS_PER_THREAD, _ARRIVALS_):
    forced onto two threads with a block each, the population and its history are those of one
    thread, bit for bit."""
    import pandas as pd

    from utenforsk.core import kernel
    from utenforsk.outputs import periods

    def run(threads):
        m = UtenforskModel(baseline_path, seed=4, scale=0.01, burn_in_years=31, horizon_years=1,
                           threads=threads)
        m.run_model()
        return m

    monkeypatch.setenv("UTENFORSK_THREADS", "2")
    monkeypatch.setattr(kernel, "MIN_BIRTHS_PER_THREAD", 1)
    monkeypatch.setattr(kernel, "MIN_ARRIVALS_PER_THREAD", 1)
    seen = []
    run_chunks = kernel.run_chunks

    def counting(fn, n, threads, make_args, min_items=None, blocks_per_thread=kernel.BLOCKS_PER_THREAD):
        if fn.__name__ == "enter_chunk":
            seen.append((kernel.chunk_threads(n, threads, min_items), bool(make_args(0, 1, 0)[-6])))
        run_chunks(fn, n, threads, make_args, min_items, blocks_per_thread)

    monkeypatch.setattr(kernel, "run_chunks", counting)
    two = run(2)
    assert {(2, False), (2, True)} <= set(seen), "births and arrivals did not both enter on two threads"
    one = run(1)
    for name in ("alive", "birth", "state", "ctraits", "btraits", "flags", "attrs", "area"):
        assert np.array_equal(getattr(one.pop, name), getattr(two.pop, name), equal_nan=name == "ctraits"), name
    pd.testing.assert_frame_equal(periods(one), periods(two), check_exact=True)
