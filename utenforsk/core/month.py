"""A person's month and entry, as components declared once: the run plan the kernel is written from.

Each :class:`Component` declares

- ``reads``: the person's fields (``p_*``, utenforsk/core/population.py), the month's dynamic
  inputs (``d_*``, kernel.Dyn), the hazard bounds ``B``, the programme slots ``prog``, and
  ``covariates`` (every covariate kind a linear predictor can read, declared in
  utenforsk/core/covariates.py with its expression, bound and name syntax). Not declared: the
  locals every later section may use (``age``, ``co``, ``muni`` and ``state``, read from
  ``p_birth``, ``p_area`` and ``p_state`` before the month kernel's first section (in the
  entry kernel ``muni`` is set by the arrivals section and ``state`` is not a local); ``key``, ``ay`` and the effect
  mask ``pm`` of the covariates section), and what a component only assigns. ``tests/test_codegen.py::test_components_read_what_they_declare`` holds the
  declarations to the generated sections (nothing read undeclared, nothing declared unread);
- ``decisions``: its random decisions as ``(name, number of codes)``. The codes of
  ``rng.DECISIONS`` are derived from these: blocks are numbered consecutively in
  :data:`COMPONENTS` order (the registry, append-only, so existing streams never move when a
  decision is added), and their disjointness is asserted at import (utenforsk/core/rng.py);
- ``tallies``: the tallies it writes (:data:`TALLIES`, whose order is the kernels' argument order);
- ``emit``: the method of ``codegen._Generator`` that writes its section of the kernel.

:data:`MONTH` is the order of a person's month and :data:`ENTRY` that of a birth or arrival;
the generator writes one ``# ==== <title>`` section per component, in that order, so the kernel a
user reads is laid out as this file. A change to the month is made in its component: the
declaration here and its emitter in codegen.py.
"""

from __future__ import annotations

from typing import NamedTuple

from utenforsk.config.schema import LIMITS


class Component(NamedTuple):
    name: str
    title: str
    emit: str
    reads: tuple[str, ...] = ()
    decisions: tuple[tuple[str, int], ...] = ()
    tallies: tuple[str, ...] = ()


class Tally(NamedTuple):
    name: str
    monthly: bool  # reset every month (else accumulated over the run)
    fields: tuple[str, ...] | None  # the named last axis, if any
    doc: str


#: codes per service: admit, detect, discharge (and one spare)
SERVICE_DRAWS = 4

SV_FIELDS = ("clients", "waiting", "admitted", "detected", "in_need", "ref_arrived", "ref_lost",
             "ref_expired", "gate_tried", "gate_refused", "discharged")
CO_FIELDS = ("entered", "us_due", "us_done", "aged_out", "aged_out_long", "neet_m", "expo_m",
             "aged_out_hb")
PG_FIELDS = ("enrolled", "months")

#: every tally, in the kernels' argument order (one row per worker thread in front)
TALLIES = (
    Tally("age_state", True, None, "people by age-year and state"),
    Tally("muni_pop", True, None, "people by municipality and age-year"),
    Tally("muni_state", True, None, "people by municipality and state"),
    Tally("grp", True, None, "people by output group, category, age-year and state"),
    Tally("sv", True, SV_FIELDS, "service counts by service and municipality"),
    Tally("events", True, None, "aged out, then one count per exit"),
    Tally("prog", True, PG_FIELDS, "programme slots: new participants, participant-months"),
    Tally("cohort", False, CO_FIELDS, "birth-cohort counts"),
    Tally("cohort_grp", False, CO_FIELDS, "birth-cohort counts by output group and category"),
)

#: the registry: every component once. Decision codes are numbered in this order (append new
#: components and decisions at the end); the run plans below say when each one runs.
COMPONENTS = (
    Component("exits", "exits (competing; skipped when the draw is above the rates' bound)", "exits",
              reads=("covariates", "B", "prog"), decisions=(("exit", 1), ("exit_which", 1)), tallies=("events",)),
    Component("transition", "one activity transition: a scheduled event, else competing hazards",
              "transition", reads=("covariates", "B", "prog", "p_tis", "p_clients", "p_flags", "p_us_start", "d_admit_p"),
              decisions=(("transition", 1), ("destination", 1), ("gate", 1), ("scheduled", 1)),
              tallies=("sv",)),
    Component("arrivals", "entrants: the arrival state, a native donor's traits, prevalences and flags",
              "entrants", reads=("covariates", "p_attrs", "p_state", "p_ctraits", "p_btraits", "p_flags", "d_kidx",
                                 "d_kcdf", "d_births_area", "p_alive", "p_birth", "p_area", "p_donor_rank"),
              decisions=(("births", 1), ("arrivals", LIMITS["arrival_ages"]), ("arrival_age", 1),
                         ("arrival_state", 1), ("arrival_donor", LIMITS["donor_tries"]),
                         ("arrival_flag", LIMITS["flags"]), ("arrival_btrait", LIMITS["binary_traits"])),
              tallies=("cohort", "cohort_grp")),
    Component("traits", "traits: start, mean reversion, binary onset and recovery", "traits",
              reads=("covariates", "B", "prog", "p_ctraits", "p_btraits"),
              decisions=(("trait_noise", LIMITS["continuous_traits"]), ("btrait_change", LIMITS["binary_traits"]),
                         ("trait_init", LIMITS["continuous_traits"]), ("btrait_init", LIMITS["binary_traits"]))),
    Component("attributes", "attributes at entry", "attributes", reads=("p_attrs",),
              decisions=(("attribute", LIMITS["attributes"]),)),
    Component("services", "services: discharge, admission, detection", "services",
              reads=("p_ctraits", "p_btraits", "p_flags", "p_clients", "p_waiting", "d_admit_p", "d_detect_p"),
              decisions=(("service", SERVICE_DRAWS * LIMITS["services"]),), tallies=("sv",)),
    Component("handoffs", "handoffs: referrals sent on a transition, discharge or detection", "handoffs",
              reads=("p_flags", "p_ref_service", "d_ho_prob", "d_ho_delay"),
              decisions=(("handoff", LIMITS["handoffs"]),), tallies=("sv",)),
    # a person's municipality within their type, once at entry (utenforsk/pilots/municipalities.py)
    Component("municipality", "municipality within type", "", decisions=(("kommune", 1),)),
    Component("age_out", "ageing out at 30", "age_out", reads=("p_flags", "p_attrs"),
              tallies=("events", "cohort", "cohort_grp")),
    Component("covariates", "covariates, read once at the start of the month", "covariates",
              reads=("covariates", "p_programmes", "p_pg_ever", "prog")),  # + the effect mask
    # enrolment draws are keyed by a hash of the intervention's name (rng.programme_decision), on
    # the person's key; a programme period's monthly end draw by the same code, on the month's key
    Component("programmes", "interventions: the programme slots (values, the same code for every scenario)",
              "programmes", reads=("p_programmes", "p_pg_ever", "p_attrs", "p_ctraits", "p_btraits",
                                   "d_pg_cover", "d_pg_open", "prog"), tallies=("prog",)),
    Component("referral", "referral arrival", "referral",
              reads=("p_ref_service", "p_ref_due", "p_clients", "p_waiting"),
              tallies=("sv",)),
    Component("bookkeeping", "NEET, completion and tallies", "bookkeeping",
              reads=("p_neet_spell", "p_out_spell", "p_months_neet", "p_us_start", "p_flags", "p_attrs",
                     "p_ctraits"),
              tallies=("age_state", "muni_pop", "muni_state", "grp", "cohort", "cohort_grp")),
    # the municipality intercepts of a run (municipality_effects), drawn once per run from the
    # seed outside the kernel (utenforsk/pilots/municipalities.py: draw_effects); read as the
    # covariate kind ``kommune``
    Component("municipality_effects", "municipality intercepts", "",
              decisions=(("kommune_effect", LIMITS["municipality_effects"]),)),
    # the fields a reused slot is given at entry, from population.ENTRY_VALUES
    Component("entry_reset", "a reused slot's fields at entry (population.ENTRY_VALUES)", "entry_reset"),
)
BY_NAME = {c.name: c for c in COMPONENTS}

#: a person's month, in order (the transition and services record the handoffs' triggers; the
#: handoffs section sends their referrals, before the referral section reads them)
MONTH = tuple(BY_NAME[n] for n in ("age_out", "covariates", "exits", "traits", "programmes",
                                   "transition", "services", "handoffs", "referral", "bookkeeping"))
#: an entrant's first month, in order (before their first MONTH)
ENTRY = tuple(BY_NAME[n] for n in ("entry_reset", "attributes", "arrivals"))

#: the random decisions, in code order: (name, number of codes)
DECISIONS = tuple(d for c in COMPONENTS for d in c.decisions)


def _check() -> None:
    """Each component, tally and decision declared once; every tally written by a component."""
    assert len(BY_NAME) == len(COMPONENTS), "a component is declared twice"
    names = [t.name for t in TALLIES]
    assert len(set(names)) == len(names), "a tally is declared twice"
    written = {t for c in COMPONENTS for t in c.tallies}
    assert written <= set(names), f"undeclared tallies {sorted(written - set(names))}"
    assert written == set(names), f"tallies nothing writes: {sorted(set(names) - written)}"


_check()
