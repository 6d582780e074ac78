"""What the generated month kernel shares at run time: its argument tuples, tally layout,
thread split, and the three compiled helpers it calls.

The month itself is generated for each model's structure (utenforsk/core/codegen.py); there is no second,
table-driven month. A
person's month is: age out at 30 -> exits -> traits -> programme slots -> one activity
transition -> services -> handoffs -> referral arrival -> NEET and completion bookkeeping ->
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
from functools import lru_cache

import numpy as np
from numba import njit

from utenforsk.core import month, rng
from utenforsk.core.tables import AGE_YEARS

#: per-month dynamic inputs set by the service agents (and, later, interventions)
Dyn = namedtuple("Dyn", ["admit_p", "detect_p", "quality", "ho_prob", "ho_delay", "pg_cover", "pg_open",
                         "kre",  # kre: [municipality_effects, service areas] intercepts (logit)
                         "kidx", "kcdf",  # municipalities.within_type_cdf ([0, 1] with services per type)
                         # [birth month % BIRTHS_RING, service area + 1]: where each area's births of
                         # a month start in their service-area order (index_births; state, not reset)
                         "births_area"])
#: per-thread integer tallies, as declared in utenforsk/core/month.py (TALLIES); ``cohort*``
#: accumulate over the run, the rest are reset monthly
Tally = namedtuple("Tally", [t.name for t in month.TALLIES])
MONTHLY_TALLIES = tuple(t.name for t in month.TALLIES if t.monthly)
PG_ENROLLED, PG_MONTHS = (month.PG_FIELDS.index(f) for f in ("enrolled", "months"))
PERSON_MONTH = -1  # the "month" of draws that belong to a person, not to a month
RATE_CAP = 13.815510557964274  # -log(1e-6): a monthly rate's cap (p <= 0.999999)
DONOR_TRIES = rng.LIMITS["donor_tries"]  # draws to find a living native donor for an arrival
#: an arrival's donor is born in its birth month, or, if its service area has no native born
#: then, in the nearest month within this many months (assumption, range 0-24: traits of
#: children a few months apart in age differ little), else none (the start distribution)
DONOR_WINDOW = 12

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


@lru_cache(maxsize=1)
def _cores() -> int:
    """``os.cpu_count()`` once (it cost ~20 us a call, six calls a month)."""
    return max(1, os.cpu_count() or 1)


def n_threads() -> int:
    """Worker threads for one run's kernels (UTENFORSK_THREADS, read every call: workers set it;
    default: all cores)."""
    env = os.environ.get("UTENFORSK_THREADS")
    return max(1, int(env)) if env else _cores()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=n_threads(), thread_name_prefix="utenforsk")
    return _POOL


#: fewer items than this per worker thread and the hand-off costs more than the thread saves
#: (measured: 2 threads were slower than 1 at 10^4 people alive)
MIN_ITEMS_PER_THREAD = 25_000
#: the same for the entry kernel, whose entrants cost more than a person-month: a birth ~100 ns
#: (2,400 births took 0.29 ms on 2 threads, 0.22 on 1), an arrival ~600 ns (its donor's slot is a
#: cache miss; 930 arrivals took 0.42 ms on 2 threads, 0.57 on 1): 10^6 alive, timed by hand;
#: ``python -m benchmarks.threads --min-entrants N`` times both kinds together (benchmarks/README.md)
MIN_BIRTHS_PER_THREAD = 8_000
MIN_ARRIVALS_PER_THREAD = 500


def chunk_threads(n_items: int, threads: int, min_items: int | None = None) -> int:
    """Worker threads :func:`run_chunks` uses for ``n_items`` (at least ``min_items``, default
    ``MIN_ITEMS_PER_THREAD``, each): tally rows ``0 ..`` that ``- 1`` are the only ones it writes."""
    per = MIN_ITEMS_PER_THREAD if min_items is None else min_items
    return max(1, min(threads, n_threads(), n_items // per))


#: blocks per worker thread: persons are stored by entry, so a contiguous half holds the older
#: (busier) half, and one vCPU of a VM is not always as fast as the other; workers take the next
#: block as they finish one (measured at 10^6 alive: halves took 28.8 vs 23.5 ms of the month
#: kernel, interleaved eighths 26.3 vs 26.1; taking blocks as they finish, the workers finished
#: 0.57 ms apart with 8 blocks per thread, 0.15-0.24 with 16: benchmarks/README.md)
BLOCKS_PER_THREAD = 16


def run_chunks(fn, n_items: int, threads: int, make_args, min_items: int | None = None,
               blocks_per_thread: int = BLOCKS_PER_THREAD) -> None:
    """Split ``n_items`` into ``blocks_per_thread * threads`` contiguous blocks and run
    ``fn(*make_args(a, b, tid))`` on them in the thread pool (the kernels release the GIL), each
    worker ``tid`` taking the next block not yet taken when it finishes one. Worker ``tid`` owns
    tally row ``tid``, so counts never race; tallies are integer sums and the traits' ranges
    minima and maxima, and a person's month (and a birth's entry) reads and writes only its own
    slot, so neither the split, nor which worker takes a block, nor the order depends on the
    timing, and no random number does. (An arrival's entry also reads its donor's slot: a birth
    that entered in an earlier pass, which no entrant writes, see :func:`arrival_donor`.)
    ``threads`` comes from :func:`chunk_threads` with ``min_items``."""
    threads = chunk_threads(n_items, threads, min_items)
    if threads == 1:
        fn(*make_args(0, n_items, 0))
        return
    k = blocks_per_thread * threads
    bounds = [(n_items * j) // k for j in range(k + 1)]
    blocks = iter(range(k))  # shared: next() on it is atomic under the GIL

    def work(tid):
        for j in blocks:
            fn(*make_args(bounds[j], bounds[j + 1], tid))

    futures = [_pool().submit(work, t) for t in range(threads)]
    for f in futures:
        f.result()


def allocate_tally(n_states, n_munis, n_groups, kmax, n_services, n_exits, n_cohorts,
                   n_programmes=0) -> Tally:
    t = n_threads()
    z = lambda *shape: np.zeros((t,) + shape, np.int64)  # noqa: E731
    return Tally(age_state=z(AGE_YEARS, n_states), muni_pop=z(n_munis, AGE_YEARS), muni_state=z(n_munis, n_states),
                 grp=z(max(n_groups, 1), kmax, AGE_YEARS, n_states), sv=z(max(n_services, 1), n_munis, N_SV_FIELDS),
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


#: rows of ``Dyn.births_area``: one per birth month whose births are all still in their slots
#: (the months ``month - MAX_MONTHS .. month``; older slots may hold later entrants)
BIRTHS_RING = 361


@njit(cache=True, nogil=True)
def index_births(start, n, cap, area, rank, births_area, month):
    """Put the births of month ``month`` (persons ``start .. start + n - 1``) in service-area
    order, for :func:`arrival_donor`: the ``j``-th of them in that order (by person id within an
    area) is person ``start + rank[(start + j) % cap]``, and area ``a``'s births are positions
    ``births_area[month % BIRTHS_RING, a] .. births_area[.., a + 1] - 1`` of it. Run once their
    ``area`` is set."""
    row = births_area[month % BIRTHS_RING]
    row[:] = 0
    if n <= 0:
        return
    # a stable counting sort by area: the order of np.argsort(kind="mergesort"), whose compile
    # (numba's merge sort) cost ~2 s of a cold first step; row[a] .. row[a + 1] - 1 are area a's
    for j in range(n):
        row[np.int64(area[(start + j) % cap]) + 1] += 1
    for k in range(1, row.shape[0]):
        row[k] += row[k - 1]
    first = row.copy()  # first[a]: the next position of area a
    for j in range(n):
        a = np.int64(area[(start + j) % cap])
        rank[(start + first[a]) % cap] = j
        first[a] += 1


@njit(cache=True, nogil=True, _nrt=False, error_model="numpy", fastmath=FAST)
def _ring(x, cap):
    """``x % cap`` for ``x >= 0``, with the division only when ``x >= cap`` (a donor's slot is
    looked up at ``s + j``, ``s < cap``: almost always below ``cap``)."""
    return x if x < cap else x % cap


@njit(cache=True, nogil=True, _nrt=False, error_model="numpy", fastmath=FAST)
def arrival_donor(birth, a, month, key, alive, births_of, rank, cum_entries, births_sched, cap, births_area):
    """The slot of a native of the arrival's own service area ``a``, born in month ``birth``
    (or, if the area has none, in the nearest month within ``DONOR_WINDOW``, earlier first) and
    still alive, whose traits an arrival takes on; -1 if none is found in ``DONOR_TRIES`` draws
    (no such native: early in the burn-in, or a small area at a small scale).

    The donor lives where the arrival lives, so a pilot, which changes lives in its area only,
    cannot reach an arrival elsewhere through its donor's traits (tests/test_interventions.py).
    Births of month ``b`` are persons ``cum_entries[b] .. + births_sched[b]``, indexed in
    service-area order by :func:`index_births` once they entered (months up to ``month``);
    where an area's births of a month start is read from ``births_area``. Months older than
    ``MAX_MONTHS`` are skipped: everyone born then has aged out, and their slots may be taken by
    this month's entrants. So the search reads only slots of births that entered before the
    arrivals' pass and that no entrant writes, and arrivals can enter on several threads (it
    used to search those months too, by binary search over slots being overwritten: no donor
    could come of it, but draws were spent on it, and the outcome depended on the entrants'
    order)."""
    t = 0
    for d in range(2 * DONOR_WINDOW + 1):
        b = birth - (d + 1) // 2 if d % 2 == 1 else birth + d // 2
        if b < 0 or b > month or b >= births_sched.shape[0]:
            continue
        if births_sched[b] <= 0 or b < month - (BIRTHS_RING - 1):
            continue  # no births, or all aged out
        row = births_area[b % BIRTHS_RING]
        first, count = np.int64(row[a]), np.int64(row[a + 1] - row[a])
        if count == 0:
            continue
        s = cum_entries[b] % cap
        while t < DONOR_TRIES:
            j = first + np.int64(rng.uniform(key, rng.D_ARRIVAL_DONOR + t) * count)
            t += 1
            slot = _ring(s + np.int64(rank[_ring(s + j, cap)]), cap)
            if alive[slot] == 1 and births_of[slot] == b:
                return slot
            if count == 1:
                break  # the only one is gone: try the next month
        if t >= DONOR_TRIES:
            return -1
    return -1
