"""The population as struct-of-arrays in a ring buffer, and the entry schedule.

Everyone leaves by age 30, so the people alive in month ``t`` all entered (by birth or
immigration) in months ``t-360 .. t``. Person ``pid`` (the order of entry, fixed by the seed and
the config alone, never by a scenario) lives in slot ``pid % capacity``; ``capacity`` is the
largest number of entries in any 361-month window, so a slot is reused only after its previous
owner has certainly left. The kernel loops over the live window of ids, not over the dead.
"""

from __future__ import annotations

from collections import namedtuple
from typing import NamedTuple

import numpy as np
from numba import njit

from utenforsk.core import rng
from utenforsk.core.tables import MAX_MONTHS

NEVER = np.int16(-32768)
SCHEDULE_ID = 2**62  # the "person" whose draws set the entry schedule: no real id comes near it
FLAG_LONG_NEET = 6  # bit set when a NEET spell reaches 12 consecutive months

Pop = namedtuple("Pop", [
    "alive", "birth", "attrs", "state", "tis", "ctraits", "btraits", "flags",
    "clients", "waiting", "ref_service", "ref_due", "us_start", "months_neet", "neet_spell",
    "out_spell",  # months out of work and education for duration dependence: kept through NAV programmes
    "programmes", "pg_ever",  # enrolled now; ever enrolled (a trait shift applies once per person)
    "area",  # service area: the municipality type, or the real municipality (service_areas)
    "donor_rank",  # births of a month in service-area order (kernel.index_births): arrivals' donors
])


#: the fields indexed ``[row, slot]``, and what their rows are
ROW_FIELDS = {"attrs": "attributes", "ctraits": "continuous traits"}


class SetBy(NamedTuple):
    """An entry value a component of ``month.ENTRY`` (or the named helper) sets itself."""

    who: str


#: every person field's value when an entrant takes a slot (slots are reused, so each field is
#: set at entry): a constant or an expression of the entry kernel (``birth``: the entrant's birth
#: month; a field of :data:`ROW_FIELDS` gets it in each row), or ``SetBy(component)``. The entry
#: kernel's first section (month.ENTRY: ``entry_reset``) is written from this, and the import
#: check below fails on a ``Pop`` field without an entry value; tests/test_codegen.py checks that
#: each ``SetBy`` component's section writes its field.
ENTRY_VALUES = {
    "alive": "1", "birth": "birth",
    "attrs": SetBy("attributes"),
    "state": SetBy("arrivals"),  # the model's birth state, or an arrival's drawn state
    "tis": "0",
    "ctraits": "np.nan",  # not started (an arrival's, at its age, from arrivals)
    "btraits": "0", "flags": "0", "clients": "0", "waiting": "0",
    "ref_service": "-1", "ref_due": "0", "us_start": str(int(NEVER)),
    "months_neet": "0", "neet_spell": "0", "out_spell": "0", "programmes": "0", "pg_ever": "0",
    "area": SetBy("arrivals"),  # the municipality type, or the municipality drawn within it
    # a birth's rank among its month's births, after the entry kernel; an arrival's is never read
    "donor_rank": SetBy("kernel.index_births"),
}
assert list(ENTRY_VALUES) == list(Pop._fields), \
    f"population.ENTRY_VALUES must give each Pop field its entry value, in Pop's order: {sorted(set(Pop._fields) ^ set(ENTRY_VALUES))}"

def allocate(capacity: int, n_attributes: int, n_ctraits: int) -> Pop:
    """Preallocate every person array (narrow dtypes; see ``bytes_per_slot``)."""
    c = capacity
    pop = Pop(
        alive=np.zeros(c, np.uint8), birth=np.zeros(c, np.int16),
        attrs=np.zeros((max(n_attributes, 1), c), np.int8), state=np.zeros(c, np.int8),
        tis=np.zeros(c, np.int16), ctraits=np.full((max(n_ctraits, 1), c), np.nan, np.float32),
        btraits=np.zeros(c, np.uint8), flags=np.zeros(c, np.uint8),
        clients=np.zeros(c, np.uint8), waiting=np.zeros(c, np.uint8),
        ref_service=np.full(c, -1, np.int8), ref_due=np.zeros(c, np.int16),
        us_start=np.full(c, NEVER, np.int16), months_neet=np.zeros(c, np.int16),
        neet_spell=np.zeros(c, np.int16), out_spell=np.zeros(c, np.uint8),
        programmes=np.zeros(c, np.uint16),
        pg_ever=np.zeros(c, np.uint16), area=np.zeros(c, np.uint16),
        donor_rank=np.zeros(c, np.uint16),  # a birth's rank within its month (< 65,536 at scale <= 1)
    )
    assert {f for f, a in zip(Pop._fields, pop) if a.ndim == 2} == set(ROW_FIELDS)
    return pop


def bytes_per_slot(pop: Pop) -> int:
    return sum(a.nbytes for a in pop) // len(pop.alive)


@njit(cache=True)
def _stochastic_round(expected, key, decision, month):
    whole = np.floor(expected)
    k = rng.person_month_key(key, SCHEDULE_ID, month)
    return int(whole) + (1 if rng.uniform(k, decision) < expected - whole else 0)


@njit(cache=True)
def entry_schedule(seed_key, n_months, births_per_month, arrivals_per_month_by_age):
    """Number of births and of arrivals by single year of age, for each month (deterministic).

    ``arrivals_per_month_by_age`` is [month, age] (expected arrivals)."""
    births = np.zeros(n_months, np.int64)
    n_ages = arrivals_per_month_by_age.shape[1]
    arrivals = np.zeros((n_months, n_ages), np.int64)
    for m in range(n_months):
        births[m] = _stochastic_round(births_per_month[m], seed_key, rng.D_BIRTHS, m)
        for a in range(n_ages):
            arrivals[m, a] = _stochastic_round(arrivals_per_month_by_age[m, a], seed_key,
                                               rng.D_ARRIVALS + a, m)
    return births, arrivals


def ring_capacity(entries_per_month: np.ndarray) -> int:
    """Largest number of entries in any window of MAX_MONTHS + 1 months."""
    c = np.concatenate([[0], np.cumsum(entries_per_month)])
    w = MAX_MONTHS + 1
    if len(entries_per_month) <= w:
        return int(c[-1]) + 1
    return int(np.max(c[w:] - c[:-w])) + 1


@njit(cache=True)
def arrival_birth_months(seed_key, ids, ages, month):
    """Birth month of each arrival: age in whole years plus a uniform month within the year."""
    out = np.empty(ids.shape[0], np.int64)
    for j in range(ids.shape[0]):
        k = rng.person_month_key(seed_key, ids[j], month)
        extra = int(rng.uniform(k, rng.D_ARRIVAL_AGE) * 12.0)
        out[j] = month - 12 * ages[j] - extra
    return out
