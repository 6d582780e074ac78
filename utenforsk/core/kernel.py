"""The monthly kernels: entry (birth/arrival) and one month of life for everyone alive.

One pass over the live window per month, split into one block per worker thread
(:func:`run_chunks`; the kernels release the GIL). Each person's month is:
age out at 30 -> exits (death, emigration) -> traits (start, mean reversion, binary onset and
recovery) -> intervention enrolment -> one activity transition (a scheduled event, else competing hazards, possibly gated by
a service's places) -> referrals triggered by the transition -> services (discharge, admission from
the queue, detection, referral arrival) -> NEET and completion bookkeeping -> tallies.

Interventions are the values of the scenario's programme slots (``prog``, see
utenforsk/interventions/slots.py): :func:`programme_step` enrols, and :func:`programme_effect`
adds the enrolled programmes' log odds ratios to hazards, outcomes and trait targets. Arrivals
take a native donor's traits (:func:`arrival_donor`). Both are shared with the generated kernel.

Covariates are read at the start of the month: this month's hazards depend on last month's
traits, states and services. Tallies are integer counts per worker (tally row ``tid``), summed
afterwards, so the result does not depend on the number of threads.
"""

from __future__ import annotations

import math
import os
from collections import namedtuple

import numpy as np
from concurrent.futures import ThreadPoolExecutor

from numba import njit

from utenforsk.core import rng
from utenforsk.core.population import FLAG_LONG_NEET, NEVER
from utenforsk.core.tables import (K_AGE, K_ATTR, K_BTRAIT, K_FLAG, K_PROGRAMME, K_QUALITY,
                                   K_SERVICE, K_SPELL, K_STATE, K_TIS, K_TRAIT, MAX_MONTHS)

#: per-month dynamic inputs set by the service agents (and, later, interventions)
Dyn = namedtuple("Dyn", ["admit_p", "detect_p", "quality", "ho_prob", "ho_delay", "pg_cover", "pg_open"])
#: per-thread integer tallies; ``cohort*`` accumulate over the run, the rest are reset monthly
Tally = namedtuple("Tally", ["age_state", "muni_pop", "muni_state", "grp", "sv", "events",
                             "prog", "cohort", "cohort_grp"])
MONTHLY_TALLIES = ("age_state", "muni_pop", "muni_state", "grp", "sv", "events", "prog")
MAX_SLOTS = 16  # programme slots: the bits of Pop.programmes (uint16; slots.MAX_PROGRAMMES)
PG_ENROLLED, PG_MONTHS = 0, 1  # programme tally fields: new participants, participant-months
PERSON_MONTH = -1  # the "month" of draws that belong to a person, not to a month
RATE_CAP = 13.815510557964274  # -log(1e-6): a monthly rate's cap (p <= 0.999999)
DONOR_TRIES = rng.LIMITS["donor_tries"]  # draws to find a living native donor for an arrival

# service tally fields
SV_CLIENTS, SV_WAITING, SV_ADMITTED, SV_DETECTED, SV_IN_NEED, SV_REF_ARRIVED, SV_REF_LOST, \
    SV_REF_EXPIRED, SV_GATE_TRIED, SV_GATE_REFUSED, SV_DISCHARGED = range(11)
N_SV_FIELDS = 11
# cohort tally fields
CO_ENTERED, CO_US_DUE, CO_US_DONE, CO_AGED_OUT, CO_AGED_OUT_LONG, CO_NEET_M, CO_EXPO_M, \
    CO_AGED_OUT_HB = range(8)
N_CO_FIELDS = 8
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


@njit(cache=True, inline="always")
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, inline="always")
def _covariates(i, age, muni, pop, tab, dyn, prog, x):
    """Fill ``x`` with person ``i``'s covariate values (start of month); one loop per kind."""
    ks, ke, ca, cb = tab.cov_kstart, tab.cov_kend, tab.cov_a, tab.cov_b
    for c in range(ks[K_ATTR], ke[K_ATTR]):
        x[c] = 1.0 if pop.attrs[ca[c], i] == cb[c] else 0.0
    for c in range(ks[K_TRAIT], ke[K_TRAIT]):
        t = pop.ctraits[ca[c], i]
        x[c] = t if t == t else 0.0
    for c in range(ks[K_BTRAIT], ke[K_BTRAIT]):
        x[c] = float((pop.btraits[i] >> ca[c]) & 1)
    for c in range(ks[K_FLAG], ke[K_FLAG]):
        x[c] = float((pop.flags[i] >> ca[c]) & 1)
    state = pop.state[i]
    for c in range(ks[K_STATE], ke[K_STATE]):
        x[c] = 1.0 if state == ca[c] else 0.0
    for c in range(ks[K_SERVICE], ke[K_QUALITY]):  # service and quality: both need "is a client"
        s = ca[c]
        if tab.sv_kind[s] == 1:
            client = tab.sv_states[s, state]
        else:
            client = ((pop.clients[i] >> s) & 1) == 1
        if tab.cov_kind[c] == K_SERVICE:
            x[c] = 1.0 if client else 0.0
        else:
            x[c] = dyn.quality[s, muni] if client else 0.0
    for c in range(ks[K_PROGRAMME], ke[K_PROGRAMME]):
        x[c] = float((np.int64(pop.programmes[i]) >> prog.ref[ca[c]]) & 1)
    for c in range(ks[K_AGE], ke[K_AGE]):
        x[c] = age / 12.0
    for c in range(ks[K_SPELL], ke[K_SPELL]):
        x[c] = min(pop.neet_spell[i], 36) / 12.0
    for c in range(ks[K_TIS], ke[K_TIS]):
        x[c] = min(pop.tis[i], 120) / 12.0


@njit(cache=True)
def _covariates_rare(i, age, muni, pop, tab, dyn, prog, x):
    """:func:`_covariates` as a real call, for rare events (a trait starting): inlining the
    large routine a second time doubled the kernels' compile time."""
    _covariates(i, age, muni, pop, tab, dyn, prog, x)


@njit(cache=True, inline="always")
def _lp(row, tab, x):
    s = 0.0
    for j in range(tab.lp_start[row], tab.lp_end[row]):
        s += tab.lp_beta[j] * x[tab.lp_cov[j]]
    return s


@njit(cache=True, nogil=True, _nrt=False, error_model="numpy", fastmath=FAST)
def programme_effect(E, j, pm):
    """Sum of row ``j`` of the effects ``E[row, j]`` over the rows set in ``pm`` (the person's
    effect mask at the start of the month, :func:`effect_mask`: enrolled slots, then ended slots
    whose effects persist), in row order; exactly 0.0 when ``pm`` is 0."""
    s = 0.0
    k = 0
    while pm != 0:
        if pm & 1:
            s += E[k, j]
        pm >>= 1
        k += 1
    return s


@njit(cache=True, inline="always")
def effect_mask(programmes, ever, after):
    """The rows of the slots' effects acting on a person this month: bit k for slot k enrolled,
    bit P + k for slot k whose programme ended and whose effects persist (``after``, a uint16 of
    slots with persistence > 0); equal to ``programmes`` for anyone never in such a slot."""
    pm = np.int64(programmes)
    return pm | ((np.int64(ever) & ~pm & np.int64(after)) << MAX_SLOTS)


@njit(cache=True, inline="always")
def _hazard_p(h, age, tab, x, eff=0.0):
    """Monthly probability of hazard ``h`` at ``age`` (months), 0 outside its age window;
    ``eff``: the programmes' log odds ratios on it (:func:`programme_effect`)."""
    if age < tab.hz_lo[h] or age >= tab.hz_hi[h]:
        return 0.0
    return _sigmoid(tab.hz_base[h, age // 12] + _lp(tab.hz_row[h], tab, x) + eff)


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
def programme_step(i, pkey, key, age, state, programmes, ever, attrs, ctraits, btraits, prog, cover, tprog):
    """Enrol or keep person ``i`` in the scenario's programme slots (interventions); the table
    kernel calls it, the generated kernel writes the same loop out (codegen.programmes).

    Enrolled while matching ``who`` and ``u < coverage * take_up``, where ``u`` is the person's
    own draw for that intervention: keyed by a hash of its name (``prog.draw``), the same every
    month and in every scenario, whatever the slot. A trait shift applies once per person, at
    their first enrolment (``ever``), not again when they re-enrol. A programme with a duration
    ends each enrolled month with probability ``prog.pexit`` (drawn on the month's ``key`` with
    the intervention's own decision code), and is not taken again (``prog.once``).
    """
    for k in range(prog.lo.shape[0]):
        bit = np.uint16(1 << k)
        c = cover[k]
        inside = c > 0.0 and prog.lo[k] <= age < prog.hi[k] and prog.states[k, state]
        if programmes[i] & bit:
            if inside and (prog.sticky[k] or programme_match(k, i, attrs, ctraits, btraits, prog)) \
                    and not (prog.pexit[k] > 0.0 and rng.uniform(key, prog.draw[k]) < prog.pexit[k]):
                tprog[k, PG_MONTHS] += 1
            else:
                programmes[i] &= ~bit
        elif inside and not (prog.once[k] and (ever[i] & bit) != 0) \
                and rng.uniform(pkey, prog.draw[k]) < c \
                and programme_match(k, i, attrs, ctraits, btraits, prog):
            programmes[i] |= bit
            tprog[k, PG_ENROLLED] += 1
            tprog[k, PG_MONTHS] += 1
            if (ever[i] & bit) == 0:
                ever[i] |= bit
                for t in range(ctraits.shape[0]):
                    if prog.shift[k, t] != 0.0 and ctraits[t, i] == ctraits[t, i]:
                        ctraits[t, i] = np.float32(ctraits[t, i] + prog.shift[k, t])


@njit(cache=True, inline="always")
def _hazard_rate(h, age, tab, x, eff=0.0):
    """Monthly rate -log(1 - p) of hazard ``h`` = softplus(eta), 0 outside its age window.

    For small exp(eta) (most hazards, most months) the log1p is replaced by its series, exact to
    a relative 2e-10; rates are capped at -log(1e-6) as before (p <= 0.999999).
    """
    if age < tab.hz_lo[h] or age >= tab.hz_hi[h]:
        return 0.0
    y = math.exp(tab.hz_base[h, age // 12] + _lp(tab.hz_row[h], tab, x) + eff)
    if y < 0.015625:
        return y * (1.0 - y * (0.5 - y * (0.3333333333333333 - y * (0.25 - y * 0.2))))
    return min(math.log1p(y), RATE_CAP)


@njit(cache=True, inline="always")
def _event(u, lam_tot):
    """Does an event happen this month, given U[0,1) ``u`` and total rate ``lam_tot``?

    P = 1 - exp(-lam_tot) <= lam_tot, so ``u >= lam_tot`` answers "no" without the exponential.
    """
    return lam_tot > 0.0 and u < lam_tot and u < -math.expm1(-lam_tot)


@njit(cache=True, inline="always")
def _choose_destination(ds, de, tab, x, u, prog, pm):
    """Multinomial logit over destinations ``ds..de``; returns the state index."""
    total = 0.0
    for d in range(ds, de):
        total += math.exp(tab.de_logw[d] + _lp(tab.de_row[d], tab, x) + programme_effect(prog.de, d, pm))
    target = u * total
    acc = 0.0
    for d in range(ds, de):
        acc += math.exp(tab.de_logw[d] + _lp(tab.de_row[d], tab, x) + programme_effect(prog.de, d, pm))
        if target < acc:
            return tab.de_to[d]
    return tab.de_to[de - 1]


@njit(cache=True, inline="always")
def _eligible(s, state, age, tab):
    return tab.sv_states[s, state] and tab.sv_lo[s] <= age < tab.sv_hi[s]


@njit(cache=True, inline="always")
def _in_need(s, i, pop, tab):
    if tab.sv_nend[s] == tab.sv_nstart[s]:
        return True
    for n in range(tab.sv_nstart[s], tab.sv_nend[s]):
        if tab.nd_kind[n] == 2:
            if pop.state[i] == tab.nd_idx[n]:
                return True
            continue
        if tab.nd_kind[n] == 3:  # a flag held (thr 1.0) or not held (thr 0.0)
            if float((pop.flags[i] >> tab.nd_idx[n]) & 1) == tab.nd_thr[n]:
                return True
            continue
        if tab.nd_kind[n] == 0:
            v = pop.ctraits[tab.nd_idx[n], i]
            if v != v:
                continue
        else:
            v = float((pop.btraits[i] >> tab.nd_idx[n]) & 1)
        if (tab.nd_below[n] and v < tab.nd_thr[n]) or (not tab.nd_below[n] and v > tab.nd_thr[n]):
            return True
    return False


@njit(cache=True, inline="always")
def _handoff_flags_ok(h, i, pop, tab):
    return (np.int32(pop.flags[i]) & tab.ho_fmask[h]) == tab.ho_fwant[h]


@njit(cache=True, inline="always")
def _send(i, h, muni, month, key, pop, tab, dyn, tal, tid):
    to_s = tab.ho_to[h]
    if rng.uniform(key, rng.D_HANDOFF + h) < dyn.ho_prob[h, muni]:
        if pop.ref_service[i] < 0:  # one pending referral at a time; a second is ignored
            pop.ref_service[i] = to_s
            pop.ref_due[i] = month + dyn.ho_delay[h, muni]
    else:
        tal.sv[tid, to_s, muni, SV_REF_LOST] += 1


@njit(cache=True, inline="always")
def _init_traits_at(i, age, muni, key, pop, tab, dyn, prog, xi, at_entry):
    """Start traits whose start age is now (or, on arrival, already passed).

    Covariates are re-read (into ``xi``) before each trait starts, so a trait can depend on one
    started just before it (achievement on early development) and on the arrival state. A
    continuous trait that has started (not NaN) is never restarted.
    """
    for t in range(tab.ct_init_age.shape[0]):
        a0 = tab.ct_init_age[t]
        if (age == a0 or (at_entry and age > a0)) and pop.ctraits[t, i] != pop.ctraits[t, i]:
            _covariates_rare(i, age, muni, pop, tab, dyn, prog, xi)
            pop.ctraits[t, i] = np.float32(tab.ct_init_icpt[t] + _lp(tab.ct_init_row[t], tab, xi)
                                           + tab.ct_init_sd[t] * rng.normal(key, rng.D_TRAIT_INIT + t))
    for b in range(tab.bt_init_age.shape[0]):
        a0 = tab.bt_init_age[b]
        if age == a0 or (at_entry and age > a0):
            if rng.uniform(key, rng.D_BTRAIT_INIT + b) < tab.bt_init_p[b]:
                pop.btraits[i] |= np.uint8(1 << b)
            else:
                pop.btraits[i] &= np.uint8(~(1 << b) & 0xFF)


@njit(cache=True, nogil=True, _nrt=False, error_model="numpy", fastmath=FAST)
def arrival_donor(birth, key, alive, births_of, cum_entries, births_sched, cap):
    """The slot of a native born in month ``birth`` and still alive, whose traits an arrival
    takes on (the age-specific distribution of natives), or -1 if none is found in
    ``DONOR_TRIES`` draws (no such native yet: early in the burn-in). Births are the first
    entries of their month, so ``cum_entries[b] .. + births_sched[b]`` are natives born in ``b``.
    Both month kernels call this one function."""
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


@njit(cache=True, inline="always")
def _arrival_traits(i, age, r, donor, muni, key, pop, tab, dyn, prog, xi):
    """Traits and flags of an arrival under arrival rule ``r`` (see ArrivalRule)."""
    for t in range(tab.ct_init_age.shape[0]):
        a0 = tab.ct_init_age[t]
        if age < a0:
            continue
        _covariates_rare(i, age, muni, pop, tab, dyn, prog, xi)
        v = np.nan
        if donor >= 0 and age > a0:
            v = np.float64(pop.ctraits[t, donor])
        if v != v:
            v = tab.ct_init_icpt[t] + _lp(tab.ct_init_row[t], tab, xi) \
                + tab.ct_init_sd[t] * rng.normal(key, rng.D_TRAIT_INIT + t)
        if tab.ar_shift_row[r, t] >= 0:
            v = v + (tab.ar_shift_icpt[r, t] + _lp(tab.ar_shift_row[r, t], tab, xi))
        pop.ctraits[t, i] = np.float32(v)
    for b in range(tab.bt_init_age.shape[0]):
        a0 = tab.bt_init_age[b]
        if age < a0:
            continue
        if tab.ar_prev_set[r, b] and age > a0:  # at its start age it starts as for natives
            on = rng.uniform(key, rng.D_ARRIVAL_BTRAIT + b) < tab.ar_prev[r, b]
        elif donor >= 0 and age > a0:
            on = ((pop.btraits[donor] >> b) & 1) == 1
        else:
            on = rng.uniform(key, rng.D_BTRAIT_INIT + b) < tab.bt_init_p[b]
        if on:
            pop.btraits[i] |= np.uint8(1 << b)
        else:
            pop.btraits[i] &= np.uint8(~(1 << b) & 0xFF)
    for f in range(tab.ar_flag_set.shape[1]):
        if tab.ar_flag_set[r, f] and rng.uniform(key, rng.D_ARRIVAL_FLAG + f) < tab.ar_flag_p[r, f]:
            pop.flags[i] |= np.uint8(1 << f)


@njit(cache=True, nogil=True, _nrt=False, error_model="numpy", fastmath=FAST)
def enter_chunk(ids, births, tid, pop, tab, dyn, prog, arrival, month, seed_key, cap, muni_attr, scratch,
                tal, us_states, cum_entries, births_sched):
    """Initialise entrants ``ids`` (born, or arriving when ``arrival``) in ``month``."""
    A = tab.attr_given.shape[0]
    x = scratch[tid, 0]
    for j in range(ids.shape[0]):
        pid = ids[j]
        birth = births[j]
        i = pid % cap
        key = rng.person_month_key(seed_key, pid, month)
        pop.alive[i] = 1
        pop.birth[i] = birth
        age = month - birth
        for a in range(A):
            g = tab.attr_given[a]
            cond = 0 if g < 0 else pop.attrs[g, i]
            u = rng.uniform(key, rng.D_ATTRIBUTE + a)
            cum = tab.attr_cum_arrival if arrival else tab.attr_cum_birth
            c = 0
            while c < cum.shape[2] - 1 and u >= cum[a, cond, c]:
                c += 1
            pop.attrs[a, i] = c
        pop.state[i] = tab.birth_state
        pop.tis[i] = 0
        pop.btraits[i] = 0
        pop.flags[i] = 0
        pop.clients[i] = 0
        pop.waiting[i] = 0
        pop.ref_service[i] = -1
        pop.ref_due[i] = 0
        pop.us_start[i] = NEVER
        pop.months_neet[i] = 0
        pop.neet_spell[i] = 0
        pop.programmes[i] = 0
        pop.pg_ever[i] = 0
        for t in range(pop.ctraits.shape[0]):
            pop.ctraits[t, i] = np.nan
        muni = pop.attrs[muni_attr, i]
        if arrival:  # the arrival state first: traits that start on arrival may depend on it
            _covariates(i, age, muni, pop, tab, dyn, prog, x)
            rule = -1
            for r in range(tab.ar_lo.shape[0]):
                if tab.ar_lo[r] <= age < tab.ar_hi[r]:
                    pop.state[i] = _choose_destination(tab.ar_dstart[r], tab.ar_dend[r], tab, x,
                                                       rng.uniform(key, rng.D_ARRIVAL_STATE), prog, 0)
                    rule = r
                    break
            if us_states[pop.state[i]]:
                pop.us_start[i] = month
            if rule >= 0:  # validation makes the rules cover every age
                donor = arrival_donor(birth, key, pop.alive, pop.birth, cum_entries, births_sched, cap)
                _arrival_traits(i, age, rule, donor, muni, key, pop, tab, dyn, prog, x)
        else:
            _init_traits_at(i, age, muni, key, pop, tab, dyn, prog, x, True)
        co = (birth + COHORT_OFFSET) // 12
        tal.cohort[tid, co, CO_ENTERED] += 1
        for g in range(tab.grp_attr.shape[0]):
            tal.cohort_grp[tid, g, pop.attrs[tab.grp_attr[g], i], co, CO_ENTERED] += 1


@njit(cache=True, nogil=True, _nrt=False, error_model="numpy", fastmath=FAST)
def month_chunk(id0, id1, tid, pop, tab, dyn, prog, tal, month, seed_key, cap, muni_attr, scratch,
                 lam_scratch, us_flag, us_states, hb_states):
    """One month of life for ids ``[id0, id1)`` (see the module docstring for the order).

    Compiled with ``_nrt=False``: the kernel allocates nothing, and without it every read of a
    table array through the namedtuple did an atomic reference-count increment and decrement
    (measured: 3.3 us per person-month with, 0.33 us without).

    Serial and ``nogil``: :func:`run_chunks` runs one block per worker thread. (numba's
    ``prange`` was tried first: it compiled for ~90 s with these many-array tuples, and it loses
    writes through a namedtuple of arrays made in a prange body.)
    """
    SV = tab.sv_kind.shape[0]
    H = tab.ho_kind.shape[0]
    x = scratch[tid, 0]   # covariates at the start of the month
    xi = scratch[tid, 1]  # covariates re-read when a trait starts
    lams = lam_scratch[tid]
    for pid in range(id0, id1):
        i = pid % cap
        if pop.alive[i] == 0:
            continue
        age = month - pop.birth[i]
        co = (pop.birth[i] + COHORT_OFFSET) // 12
        muni = pop.attrs[muni_attr, i]
        state = pop.state[i]
        # ---- leaving at 30
        if age >= MAX_MONTHS:
            pop.alive[i] = 0
            tal.events[tid, EV_AGED_OUT] += 1
            long_neet = (pop.flags[i] >> FLAG_LONG_NEET) & 1
            hb = 1 if hb_states[state] else 0
            tal.cohort[tid, co, CO_AGED_OUT] += 1
            tal.cohort[tid, co, CO_AGED_OUT_LONG] += long_neet
            tal.cohort[tid, co, CO_AGED_OUT_HB] += hb
            for g in range(tab.grp_attr.shape[0]):
                c = pop.attrs[tab.grp_attr[g], i]
                tal.cohort_grp[tid, g, c, co, CO_AGED_OUT] += 1
                tal.cohort_grp[tid, g, c, co, CO_AGED_OUT_LONG] += long_neet
                tal.cohort_grp[tid, g, c, co, CO_AGED_OUT_HB] += hb
            continue
        key = rng.person_month_key(seed_key, pid, month)
        _covariates(i, age, muni, pop, tab, dyn, prog, x)
        pm = effect_mask(pop.programmes[i], pop.pg_ever[i], prog.after[0])  # at the start of the month
        # ---- exits (competing: death, emigration)
        n_ex = tab.ex_hz.shape[0]
        if n_ex > 0:
            lam_tot = 0.0
            for e in range(n_ex):
                lams[e] = _hazard_rate(tab.ex_hz[e], age, tab, x, programme_effect(prog.hz, tab.ex_hz[e], pm))
                lam_tot += lams[e]
            if _event(rng.uniform(key, rng.D_EXIT), lam_tot):
                target = rng.uniform(key, rng.D_EXIT_WHICH) * lam_tot
                acc = 0.0
                which = n_ex - 1
                for e in range(n_ex):
                    acc += lams[e]
                    if target < acc:
                        which = e
                        break
                pop.alive[i] = 0
                tal.events[tid, 1 + which] += 1
                continue
        # ---- traits
        _init_traits_at(i, age, muni, key, pop, tab, dyn, prog, xi, False)
        for t in range(tab.ct_dstart.shape[0]):
            v = pop.ctraits[t, i]
            if v != v:
                continue
            for d in range(tab.ct_dstart[t], tab.ct_dend[t]):
                if tab.dy_lo[d] <= age < tab.dy_hi[d]:
                    target = tab.dy_icpt[d] + _lp(tab.dy_row[d], tab, x) + programme_effect(prog.dy, d, pm)
                    v = v + tab.dy_rate[d] * (target - v) + tab.dy_sd[d] * rng.normal(key, rng.D_TRAIT + t)
                    pop.ctraits[t, i] = np.float32(v)
                    break
        for b in range(tab.bt_onset.shape[0]):
            bit = np.uint8(1 << b)
            u = rng.uniform(key, rng.D_BTRAIT + b)
            if pop.btraits[i] & bit:
                if u < _hazard_p(tab.bt_recovery[b], age, tab, x, programme_effect(prog.hz, tab.bt_recovery[b], pm)):
                    pop.btraits[i] &= np.uint8(~(1 << b) & 0xFF)
            elif age >= tab.bt_init_age[b]:
                if u < _hazard_p(tab.bt_onset[b], age, tab, x, programme_effect(prog.hz, tab.bt_onset[b], pm)):
                    pop.btraits[i] |= bit
        # ---- interventions: enrol or keep (acts through covariates from next month)
        if pop.programmes[i] != 0 or dyn.pg_open[age // 12, state]:  # else no slot can enrol or drop them
            programme_step(i, rng.person_month_key(seed_key, pid, PERSON_MONTH), key, age, state,
                           pop.programmes, pop.pg_ever, pop.attrs, pop.ctraits, pop.btraits, prog,
                           dyn.pg_cover, tal.prog[tid])
        # ---- one activity transition
        new = -1
        for e in range(tab.st_sc_start[state], tab.st_sc_end[state]):
            if age < tab.sc_lo[e] or age >= tab.sc_hi[e]:
                continue
            due = (age == tab.sc_at[e]) if tab.sc_kind[e] == 0 else (pop.tis[i] + 1 >= tab.sc_at[e])
            if due:
                new = _choose_destination(tab.sc_dstart[e], tab.sc_dend[e], tab, x,
                                          rng.uniform(key, rng.D_SCHEDULED), prog, pm)
                pop.flags[i] |= np.uint8(tab.sc_flags[e])
                break
        if new < 0:
            t0 = tab.st_tr_start[state]
            t1 = tab.st_tr_end[state]
            if t1 > t0:
                lam_tot = 0.0
                for r in range(t0, t1):
                    lams[r - t0] = 0.0
                    req = tab.tr_req[r]
                    if req >= 0 and ((pop.clients[i] >> req) & 1) == 0:
                        continue
                    lam = _hazard_rate(tab.tr_hz[r], age, tab, x, programme_effect(prog.hz, tab.tr_hz[r], pm))
                    lams[r - t0] = lam
                    lam_tot += lam
                if _event(rng.uniform(key, rng.D_TRANSITION), lam_tot):
                    target = rng.uniform(key, rng.D_DESTINATION) * lam_tot
                    acc = 0.0
                    chosen = t1 - 1
                    for r in range(t0, t1):
                        acc += lams[r - t0]
                        if target < acc and lams[r - t0] > 0.0:
                            chosen = r
                            break
                    g = tab.tr_gate[chosen]
                    admitted = True
                    if g >= 0:
                        tal.sv[tid, g, muni, SV_GATE_TRIED] += 1
                        if rng.uniform(key, rng.D_GATE) >= dyn.admit_p[g, muni]:
                            admitted = False
                            tal.sv[tid, g, muni, SV_GATE_REFUSED] += 1
                    if admitted:
                        new = tab.tr_to[chosen]
                        pop.flags[i] |= np.uint8(tab.tr_flags[chosen])
        if new >= 0:
            for h in range(H):
                if tab.ho_kind[h] == 0 and tab.ho_from_states[h, state] and tab.ho_to_states[h, new] \
                        and tab.ho_lo[h] <= age < tab.ho_hi[h] and _handoff_flags_ok(h, i, pop, tab):
                    _send(i, h, muni, month, key, pop, tab, dyn, tal, tid)
            if us_states[new] and pop.us_start[i] == NEVER:
                pop.us_start[i] = month
            state = new
            pop.state[i] = new
            pop.tis[i] = 0
        elif pop.tis[i] < 32767:
            pop.tis[i] += 1
        # ---- services
        for s in range(SV):
            bit = np.uint8(1 << s)
            elig = _eligible(s, state, age, tab)
            if tab.sv_kind[s] == 1:
                if elig:
                    tal.sv[tid, s, muni, SV_CLIENTS] += 1
                continue
            base = rng.D_SERVICE + rng.SERVICE_DRAWS * s
            if pop.clients[i] & bit:
                if not elig or rng.uniform(key, base + 2) < tab.sv_discharge[s]:
                    pop.clients[i] &= ~bit
                    tal.sv[tid, s, muni, SV_DISCHARGED] += 1
                    if not elig:
                        for h in range(H):
                            if tab.ho_kind[h] == 1 and tab.ho_from[h] == s and tab.ho_lo[h] <= age < tab.ho_hi[h] \
                                    and _handoff_flags_ok(h, i, pop, tab):
                                _send(i, h, muni, month, key, pop, tab, dyn, tal, tid)
                else:
                    tal.sv[tid, s, muni, SV_CLIENTS] += 1
            elif pop.waiting[i] & bit:
                if not elig:
                    pop.waiting[i] &= ~bit
                elif rng.uniform(key, base) < dyn.admit_p[s, muni]:
                    pop.waiting[i] &= ~bit
                    pop.clients[i] |= bit
                    tal.sv[tid, s, muni, SV_ADMITTED] += 1
                    tal.sv[tid, s, muni, SV_CLIENTS] += 1
                else:
                    tal.sv[tid, s, muni, SV_WAITING] += 1
            elif elig and _in_need(s, i, pop, tab):
                tal.sv[tid, s, muni, SV_IN_NEED] += 1
                if rng.uniform(key, base + 1) < dyn.detect_p[s, muni]:
                    pop.waiting[i] |= bit
                    tal.sv[tid, s, muni, SV_DETECTED] += 1
                    tal.sv[tid, s, muni, SV_WAITING] += 1
                    for h in range(H):
                        if tab.ho_kind[h] == 2 and tab.ho_from[h] == s and tab.ho_lo[h] <= age < tab.ho_hi[h] \
                                and _handoff_flags_ok(h, i, pop, tab):
                            _send(i, h, muni, month, key, pop, tab, dyn, tal, tid)
        r = pop.ref_service[i]
        if r >= 0 and pop.ref_due[i] <= month:
            bit = np.uint8(1 << r)
            if _eligible(r, state, age, tab) and (pop.clients[i] & bit) == 0:
                if (pop.waiting[i] & bit) == 0:
                    pop.waiting[i] |= bit
                    tal.sv[tid, r, muni, SV_WAITING] += 1
                tal.sv[tid, r, muni, SV_REF_ARRIVED] += 1
            else:
                tal.sv[tid, r, muni, SV_REF_EXPIRED] += 1
            pop.ref_service[i] = -1
        # ---- NEET, completion and tallies
        if tab.st_neet[state]:
            pop.neet_spell[i] = min(pop.neet_spell[i] + 1, 32767)
            pop.months_neet[i] = min(pop.months_neet[i] + 1, 32767)
            if pop.neet_spell[i] >= 12:
                pop.flags[i] |= np.uint8(1 << FLAG_LONG_NEET)
        else:
            pop.neet_spell[i] = 0
        us0 = pop.us_start[i]
        if us0 != NEVER and month - us0 == 60:
            done = 1 if us_flag >= 0 and (pop.flags[i] >> us_flag) & 1 else 0
            tal.cohort[tid, co, CO_US_DUE] += 1
            tal.cohort[tid, co, CO_US_DONE] += done
            for g in range(tab.grp_attr.shape[0]):
                c = pop.attrs[tab.grp_attr[g], i]
                tal.cohort_grp[tid, g, c, co, CO_US_DUE] += 1
                tal.cohort_grp[tid, g, c, co, CO_US_DONE] += done
        ay = age // 12
        if age >= 180:
            nm = 1 if tab.st_neet[state] else 0
            tal.cohort[tid, co, CO_EXPO_M] += 1
            tal.cohort[tid, co, CO_NEET_M] += nm
            for g in range(tab.grp_attr.shape[0]):
                c = pop.attrs[tab.grp_attr[g], i]
                tal.cohort_grp[tid, g, c, co, CO_EXPO_M] += 1
                tal.cohort_grp[tid, g, c, co, CO_NEET_M] += nm
        tal.age_state[tid, ay, state] += 1
        tal.muni_pop[tid, muni, ay] += 1
        tal.muni_state[tid, muni, state] += 1
        for g in range(tab.grp_attr.shape[0]):
            tal.grp[tid, g, pop.attrs[tab.grp_attr[g], i], ay, state] += 1
