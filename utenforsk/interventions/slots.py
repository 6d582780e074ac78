"""A scenario's interventions as *values* in the model's fixed programme slots.

A model compiles one kernel. Its programme section is a loop over :data:`MAX_PROGRAMMES` slots
whose eligibility, enrolment draw, trait shifts and effects are all read from the arrays of
:class:`Prog`, so every scenario of a model — any combination of library, file or inline
interventions, coverages, targeting, odds ratios and trait effects — runs on that kernel.

Order does not matter, bit for bit:

- slots are filled in order of the interventions' *names*, so ``[A, B]`` and ``[B, A]`` fill
  the same slots and sum effects in the same order;
- a person's enrolment draw for an intervention is keyed by a stable hash of its name
  (:func:`enrolment_decision`), not by its slot, so adding a coverage-0 intervention ``X`` to
  ``[A]`` leaves everyone's draw for ``A`` unchanged (common random numbers);
- an empty slot, or a person enrolled in nothing, adds exactly 0.0 to every linear predictor.
"""

from __future__ import annotations

import hashlib
import math
from collections import namedtuple

import numpy as np

from utenforsk.config.interventions import Intervention
from utenforsk.config.params import Param
from utenforsk.config.schema import LIMITS, ContinuousTrait, ModelConfig
from utenforsk.core import rng
from utenforsk.errors import ConfigError

#: interventions in one scenario (the bits of ``Pop.programmes``, a uint16)
MAX_PROGRAMMES = LIMITS["programmes"]
#: "no slot": a programme:NAME covariate of a programme not in the scenario reads bit 16, always 0
NO_SLOT = MAX_PROGRAMMES

#: the slots' values, read by the month kernel (see utenforsk/core/codegen.py: programme_loop)
Prog = namedtuple("Prog", [
    "lo", "hi",            # [P] age window in months (0, 0: an empty slot, nobody eligible)
    "states",              # [P, S] eligible states
    "attr_ok",             # [P, A, kmax] allowed categories of each attribute
    "tstart", "tend",      # [P] this slot's trait conditions tkind..tbelow[tstart:tend]
    "tkind", "tidx", "tthr", "tbelow",  # one per condition: 0 continuous / 1 binary, index, threshold
    "sticky",              # [P] stay enrolled while inside ages and states
    "draw",                # [P] uint64: the enrolment draw's decision code (enrolment_decision)
    "shift",               # [P, CT] trait shift, once per person, at first enrolment (SD)
    # effects: rows 0..P-1 act while enrolled, rows P..2P-1 (= persistence x row k) after the
    # person's enrolment in slot k ended; the kernel's effect mask ``pm`` has bit k for slot k
    # enrolled and bit P + k for slot k ended, only for slots in ``after`` (docs/model.md)
    "hz",                  # [2P, hazards] log odds ratio (what.odds)
    "de",                  # [2P, destinations] log odds ratio on an outcome (what.outcome_odds)
    "dy",                  # [2P, dynamics] shift of a trait's target (what.trait_target)
    "ref",                 # [programme covariates of the model config] slot, or NO_SLOT
    # programme period and persistence (issue 14), appended
    "after",               # [1] int64: bits of the slots whose effects persist (persistence > 0)
    "pexit",               # [P] monthly probability the programme ends (1 / duration_months; 0: none)
    "once",                # [P] a finite programme: a person whose programme ended is not re-enrolled
    "area_ok",             # [P, service areas] where the slot enrols (who.municipalities)
])


def enrolment_decision(name: str) -> int:
    """The decision code of the enrolment draw of the intervention called ``name``: a stable
    hash of the name (BLAKE2b, 64 bits) inside rng's programme block, the same in every
    scenario, process and Python version."""
    h = int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")
    return rng.programme_decision(h)


def canonical_order(interventions: list[Intervention]) -> list[Intervention]:
    """Interventions in slot order (by name); two with one name are an error."""
    names = [iv.name for iv in interventions]
    if len(set(names)) != len(names):
        raise ConfigError("two interventions in one scenario share a name", value=names)
    if len(names) > MAX_PROGRAMMES:
        raise ConfigError(f"at most {MAX_PROGRAMMES} interventions in one scenario", value=len(names))
    return sorted(interventions, key=lambda iv: iv.name)


def log_odds(p: Param, what: str) -> float:
    if p.range[0] <= 0:
        raise ConfigError("an odds ratio must be > 0 over its whole range", key=what,
                          value=list(p.range), allowed="a range of positive numbers")
    return math.log(p.value)


def programme_slots(cm, interventions: list[Intervention]) -> Prog:
    """The slot values of ``interventions`` (any order) for the compiled model ``cm``."""
    ivs = canonical_order(list(interventions))
    cfg: ModelConfig = cm.cfg
    t = cm.tables
    P, S, A, CT = MAX_PROGRAMMES, len(cm.states), len(cm.attributes), len(cm.ctraits)
    kmax = int(t.attr_cum_birth.shape[2])
    z = lambda *shape: np.zeros(shape, np.float64)  # noqa: E731
    from utenforsk.pilots.municipalities import service_areas

    out = dict(lo=np.zeros(P, np.int64), hi=np.zeros(P, np.int64),
               states=np.ones((P, S), np.bool_), attr_ok=np.ones((P, max(A, 1), kmax), np.bool_),
               tstart=np.zeros(P, np.int64), tend=np.zeros(P, np.int64),
               sticky=np.zeros(P, np.bool_), draw=np.zeros(P, np.uint64),
               shift=z(P, max(CT, 1)), hz=z(2 * P, max(len(t.hz_row), 1)),
               de=z(2 * P, max(len(t.de_to), 1)), dy=z(2 * P, max(len(t.dy_lo), 1)),
               pexit=z(P), once=np.zeros(P, np.bool_),
               area_ok=np.ones((P, len(service_areas(cfg)[0])), np.bool_))
    after = 0
    tk, ti, tt, tb = [], [], [], []
    for k, iv in enumerate(ivs):
        where = f"interventions.{iv.name}"
        check_references(cfg, iv, where)
        who, what = iv.who, iv.what
        out["lo"][k], out["hi"][k] = round(who.ages[0] * 12), round(who.ages[1] * 12)
        out["sticky"][k] = who.sticky
        out["draw"][k] = np.uint64(enrolment_decision(iv.name))
        if who.states is not None:
            out["states"][k, :] = False
            for st in who.states:
                out["states"][k, cm.state_index[st]] = True
        for attr, cats in who.attributes.items():
            a = cm.attr_index[attr]
            out["attr_ok"][k, a, :] = False
            for c in cats:
                out["attr_ok"][k, a, cfg.attributes[attr].categories.index(c)] = True
        out["tstart"][k] = len(tk)
        for cond in who.traits:
            binary = cond.trait in cm.btraits
            tk.append(1 if binary else 0)
            ti.append(cm.btraits.index(cond.trait) if binary else cm.ctraits.index(cond.trait))
            tt.append(cond.below if cond.below is not None else cond.above)
            tb.append(cond.below is not None)
        out["tend"][k] = len(tk)
        if who.municipalities:  # service areas are the real municipalities (check_references)
            from utenforsk.interventions.engine import covered_kommuner

            out["area_ok"][k, :] = False
            out["area_ok"][k, covered_kommuner(iv)] = True
        for trait, shift in what.trait_shift.items():
            out["shift"][k, cm.ctraits.index(trait)] = shift.value
        for tr, oratio in what.odds.items():
            for h in cm.transition_hazards[tr]:
                out["hz"][k, h] = log_odds(oratio, f"{where}.what.odds.{tr}")
        for ev, outcomes in what.outcome_odds.items():
            for dest, oratio in outcomes.items():
                for d in cm.scheduled_destinations[(ev, dest)]:
                    out["de"][k, d] = log_odds(oratio, f"{where}.what.outcome_odds.{ev}.{dest}")
        for trait, shift in what.trait_target.items():
            for d in cm.trait_dynamics[trait]:
                out["dy"][k, d] = shift.value
        prog = iv.programme
        if prog.duration_months is not None:
            out["pexit"][k] = 1.0 / prog.duration_months.value
            out["once"][k] = True
        if prog.persistence is not None and prog.persistence.value > 0.0:
            w = prog.persistence.value
            for e in ("hz", "de", "dy"):
                out[e][P + k] = w * out[e][k]
            after |= 1 << k
    slot = {iv.name: k for k, iv in enumerate(ivs)}
    for name in cm.programme_refs:
        if name not in slot:
            raise ConfigError(f"covariate 'programme:{name}' names no programme in this scenario",
                              allowed=", ".join(slot) or "none")
    out["ref"] = np.asarray([slot[n] for n in cm.programme_refs] or [NO_SLOT], np.int64)
    out["after"] = np.asarray([after], np.int64)
    out.update(tkind=np.asarray(tk or [0], np.int64), tidx=np.asarray(ti or [0], np.int64),
               tthr=np.asarray(tt or [0.0], np.float64), tbelow=np.asarray(tb or [False], np.bool_))
    return Prog(**out)


def open_cells(prog: Prog, cover: np.ndarray, out: np.ndarray) -> None:
    """Set ``out[age_year, state]`` to the bit mask of the slots with coverage this month that
    may enrol there: the kernels visit only these slots, and those a person is enrolled in, and
    skip the step where both are empty. Conservative (a whole age-year counts when a window
    touches it), so skipping the others changes nothing."""
    out[:] = 0
    for k in np.flatnonzero(cover > 0.0):
        lo, hi = int(prog.lo[k]), int(prog.hi[k])
        if hi > lo:
            out[lo // 12:(hi - 1) // 12 + 1, :] |= np.where(prog.states[k], np.int64(1) << int(k), 0)[None, :]


def check_references(cfg: ModelConfig, iv: Intervention, where: str) -> None:
    """Every state, attribute, trait, transition, outcome, service and handoff ``iv`` names exists."""
    def need(kind, name, pool, key):
        if name not in pool:
            raise ConfigError(f"unknown {kind} {name!r}", key=key, allowed=", ".join(pool))

    w = iv.who
    for s in w.states or []:
        need("state", s, list(cfg.states), f"{where}.who.states")
    for attr, cats in w.attributes.items():
        need("attribute", attr, list(cfg.attributes), f"{where}.who.attributes")
        for c in cats:
            need("category", c, cfg.attributes[attr].categories, f"{where}.who.attributes.{attr}")
    for cond in w.traits:
        need("trait", cond.trait, list(cfg.traits), f"{where}.who.traits")
    if w.municipalities:
        from utenforsk.interventions.engine import covered_kommuner
        from utenforsk.pilots.municipalities import TYPES

        if tuple(cfg.municipalities) != TYPES or cfg.service_areas != "municipality":
            raise ConfigError("who.municipalities needs services per municipality (the model's "
                              "service_areas: municipality, with the data file's four municipality types)",
                              key=f"{where}.who.municipalities", value=iv.who.municipalities,
                              allowed=f"a model with service_areas: municipality and municipalities {', '.join(TYPES)}")
        covered_kommuner(iv)
    for tr in iv.what.odds:
        need("transition", tr, list(cfg.transitions), f"{where}.what.odds")
    for ev, outcomes in iv.what.outcome_odds.items():
        need("scheduled event", ev, list(cfg.scheduled), f"{where}.what.outcome_odds")
        for dest in outcomes:
            need("outcome", dest, list(cfg.scheduled[ev].to), f"{where}.what.outcome_odds.{ev}")
    for trait in list(iv.what.trait_target) + list(iv.what.trait_shift):
        need("trait", trait, list(cfg.traits), f"{where}.what")
        if not isinstance(cfg.traits[trait], ContinuousTrait):
            raise ConfigError("only continuous traits can be shifted", key=f"{where}.what", value=trait)
    for s in iv.what.services:
        need("service", s, list(cfg.services), f"{where}.what.services")
    for h in iv.what.handoffs:
        need("handoff", h, list(cfg.handoffs), f"{where}.what.handoffs")
