"""What the generated month kernel shares at run time: its argument tuples, tally layout,
thread split, and the three compiled helpers it calls.

The month itself is generated for each model's structure (utenforsk/core/codegen.py); there is no second,
table-driven month. A
person's month is: age out at 30 -> exits -> traits -> programme slots -> one activity
transition -> handoffs -> services -> referral arrival -> NEET and completion bookkeeping ->
tallies.

Interventions are the values of the scenario's programme slots (``prog``, see
utenforsk/interventions/slots.py): :func:`programme_effect` adds the enrolled programmes' log odds
ratios to hazards, outcomes and trait targets, :func:`programme_match` tests a slot's targeting.
Arrivals take a native donor's traits (:func:`arrival_donor`).

Tallies are integer counts per worker (tally row ``tid``), summed afterwards, so the result does
not depend on the number of threads.
"""

from __future__ import annotations

import os
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from utenforsk.core import month, rng

#: per-month dynamic inputs set by the service agents (and, later, interventions)
Dyn = namedtuple("Dyn", ["admit_p", "detect_p", "quality", "ho_prob", "ho_delay", "pg_cover", "pg_open",
                         "kre"])  # kre: [municipality_effects, service areas] intercepts (logit)
#: per-thread integer tallies, as declared in utenforsk/core/month.py (TALLIES); ``cohort*``
#: accumulate over the run, the rest are reset monthly
Tally = namedtuple("Tally", [t.name for t in month.TALLIES])
MONTHLY_TALLIES = tuple(t.name for t in month.TALLIES if t.monthly)
PG_ENROLLED, PG_MONTHS = (month.PG_FIELDS.index(f) for f in ("enrolled", "months"))
PERSON_MONTH = -1  # the "month" of draws that belong to a person, not to a month
RATE_CAP = 13.815510557964274  # -log(1e-6): a monthly rate's cap (p <= 0.999999)
DONOR_TRIES = rng.LIMITS["donor_tries"]  # draws to find a living native donor for an arrival

# service and cohort tally fields (their last axis), by their declared names
SV_CLIENTS, SV_WAITING, SV_ADMITTED, SV_DETECTED, SV_IN_NEED, SV_REF_ARRIVED, SV_REF_LOST, \
    SV_REF_EXPIRED, SV_GATE_TRIED, SV_GATE_REFUSED, SV_DISCHARGED = (
        month.SV_FIELDS.index(f) for f in ("clients", "waiting", "admitted", "detected", "in_need",
                                           "ref_arrived", "ref_lost", "ref_expired", "gate_tried",
                                           "gate_refused", "discharged"))
N_SV_FIELDS = len(month.SV_FIELDS)
CO_ENTERED, CO_US_DUE, CO_US_DONE, CO_AGED_OUT, CO_AGED_OUT_LONG, CO_NEET_M, CO_EXPO_M, \
    CO_AGED_OUT_HB = (month.CO_FIELDS.index(f) for f in ("entered", "us_due", "us_done", "aged_out",
                                                         "aged_out_long", "neet_m", "expo_m", "aged_out_hb"))
N_CO_FIELDS = len(month.CO_FIELDS)
COHORT_OFFSET = 372  # birth months start at -372 (arrivals aged 29 at month 0); index = (b+372)//12
# event tally fields: 0 aged out, 1.. one per exit
EV_AGED_OUT = 0
#: fast-math without 'nnan'/'ninf': NaN marks a trait not yet started and must stay testable
FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


_POOL: ThreadPoolExecutor | None = None


def n_threads() -> int:
    """Worker threads for one run's kernels (UTENFORSK_THREADS, default: all cores)."""
    env = os.environ.get("UTENFORSK_THREADS")
    return max(1, int(env)) if env else max(1, os.cpu_count() or 1)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=n_threads(), thread_name_prefix="utenforsk")
    return _POOL


#: fewer items than this per worker thread and the hand-off costs more than the thread saves
#: (measured: 2 threads were slower than 1 at 10^4 people alive)
MIN_ITEMS_PER_THREAD = 25_000


def run_chunks(fn, n_items: int, threads: int, make_args) -> None:
    """Split ``n_items`` into ``threads`` contiguous blocks and run ``fn(*make_args(a, b, tid))``
    on each in the thread pool (the kernels release the GIL). Worker ``tid`` owns tally row
    ``tid``, so counts never race, and the split does not change any random number."""
    threads = max(1, min(threads, n_threads(), n_items // MIN_ITEMS_PER_THREAD))
    if threads == 1:
        fn(*make_args(0, n_items, 0))
        return
    bounds = [(n_items * t) // threads for t in range(threads + 1)]
    futures = [_pool().submit(fn, *make_args(bounds[t], bounds[t + 1], t)) for t in range(threads)]
    for f in futures:
        f.result()


def allocate_tally(n_states, n_munis, n_groups, kmax, n_services, n_exits, n_cohorts,
                   n_programmes=0) -> Tally:
    t = n_threads()
    z = lambda *shape: np.zeros((t,) + shape, np.int64)  # noqa: E731
    return Tally(age_state=z(30, n_states), muni_pop=z(n_munis, 30), muni_state=z(n_munis, n_states),
                 grp=z(max(n_groups, 1), kmax, 30, n_states), sv=z(max(n_services, 1), n_munis, N_SV_FIELDS),
                 events=z(1 + n_exits), prog=z(max(n_programmes, 1), 2), cohort=z(n_cohorts, N_CO_FIELDS),
                 cohort_grp=z(max(n_groups, 1), kmax, n_cohorts, N_CO_FIELDS))


@njit(cache=True, nogil=True, _nrt=False, error_model="numpy", fastmath=FAST)
def programme_effect(E, j, pm):
    """Sum of row ``j`` of the effects ``E[row, j]`` over the rows set in ``pm`` (the person's
    effect mask at the start of the month, codegen.EFFECT_MASK: enrolled slots, then ended slots
    whose effects persist), in row order; exactly 0.0 when ``pm`` is 0."""
    s = 0.0
    k = 0
    while pm != 0:
        if pm & 1:
            s += E[k, j]
        pm >>= 1
        k += 1
    return s


@njit(cache=True, nogil=True, _nrt=False, error_model="numpy", fastmath=FAST)
def programme_match(k, i, attrs, ctraits, btraits, prog):
    """Does person ``i`` meet slot ``k``'s attribute and trait conditions?"""
    for a in range(attrs.shape[0]):
        if not prog.attr_ok[k, a, attrs[a, i]]:
            return False
    for c in range(prog.tstart[k], prog.tend[k]):
        if prog.tkind[c] == 0:
            v = np.float64(ctraits[prog.tidx[c], i])
            if v != v:
                return False
        else:
            v = float((btraits[i] >> prog.tidx[c]) & 1)
        if prog.tbelow[c]:
            if not v < prog.tthr[c]:
                return False
        elif not v > prog.tthr[c]:
            return False
    return True


@njit(cache=True, nogil=True, _nrt=False, error_model="numpy", fastmath=FAST)
def arrival_donor(birth, key, alive, births_of, cum_entries, births_sched, cap):
    """The slot of a native born in month ``birth`` and still alive, whose traits an arrival
    takes on (the age-specific distribution of natives), or -1 if none is found in
    ``DONOR_TRIES`` draws (no such native yet: early in the burn-in). Births are the first
    entries of their month, so ``cum_entries[b] .. + births_sched[b]`` are natives born in ``b``."""
    if birth < 0 or birth >= births_sched.shape[0]:
        return -1
    n = births_sched[birth]
    if n <= 0:
        return -1
    for t in range(DONOR_TRIES):
        pid = cum_entries[birth] + np.int64(rng.uniform(key, rng.D_ARRIVAL_DONOR + t) * n)
        slot = pid % cap
        if alive[slot] == 1 and births_of[slot] == birth:
            return slot
    return -1
