"""Simulate one replicate of a virtual trial: two arms, the same people, the same dice.

Both arms run the same model and seed (common random numbers; the treated arm forks the control
arm's burn-in). Both carry the intervention in the same programme slot with coverage 1 and the
trial's population as its *who*: the treated arm with its effects, the control arm with none (a
placebo, so who is enrolled, and when, is decided identically). The trial population is everyone
the control arm enrols during the enrolment window (intention to treat); their outcome is followed
in both arms, person by person. The kernel enrols during a month and the programme acts from the
next month on, so the follow-up starts in the month after enrolment: "within 12 months" means
months m+1 .. m+12 for someone enrolled in month m; the trial population is who is enrolled in
month m and still in one of the population's states at its end (randomised into the trial).
"""

from __future__ import annotations

import numpy as np

from utenforsk.trials.spec import Trial


class _Arm:
    """Outcome accumulators for the tracked people of one arm."""

    def __init__(self):
        self.ever = np.zeros(0, bool)
        self.months_in = np.zeros(0, np.int32)
        self.final = np.zeros(0)
        self.done = np.zeros(0, bool)
        self.exposed = np.zeros(0, np.int32)

    def grow(self, n: int) -> None:
        self.ever = np.concatenate([self.ever, np.zeros(n, bool)])
        self.months_in = np.concatenate([self.months_in, np.zeros(n, np.int32)])
        self.final = np.concatenate([self.final, np.full(n, np.nan)])
        self.done = np.concatenate([self.done, np.zeros(n, bool)])
        self.exposed = np.concatenate([self.exposed, np.zeros(n, np.int32)])


def _update(arm: _Arm, mdl, trial: Trial, pids, enrol_m, m, in_states, flag_bit, trait_idx, ex_states):
    o = trial.spec.outcome
    todo = np.flatnonzero(~arm.done & (enrol_m < m))  # follow-up from the month after enrolment
    if len(todo) == 0:
        return None
    slots = pids[todo] % mdl.capacity
    pop = mdl.pop
    alive = pop.alive[slots] == 1
    state = pop.state[slots]
    here = alive & in_states[state] if in_states is not None else alive
    arm.ever[todo] |= here
    arm.months_in[todo] += here
    if ex_states is not None:
        arm.exposed[todo] += alive & ex_states[state]  # months exposed
    age = m - pop.birth[slots].astype(np.int64)
    if o.months is not None:
        end = (m - enrol_m[todo]) >= o.months
    else:
        end = age >= int(round(o.at_age * 12))
    finish = end | ~alive
    if not finish.any():
        return None
    idx = todo[finish]
    sl = slots[finish]
    al = alive[finish]
    if o.kind == "ever_in_states":
        val = arm.ever[idx].astype(float)
    elif o.kind == "years_in_states":
        val = arm.months_in[idx] / 12.0
    elif o.kind == "in_states":
        val = np.where(al, in_states[pop.state[sl]].astype(float), np.nan)
    elif o.kind == "flag":
        val = ((pop.flags[sl] >> flag_bit) & 1).astype(float)
    else:  # trait_sd
        val = np.where(al, pop.ctraits[trait_idx, sl].astype(float), np.nan)
    arm.final[idx] = val
    arm.done[idx] = True
    return idx, age[finish] // 12


def _population_sd(mdl, m, trait_idx, age_year) -> float:
    """SD of the trait among everyone alive at this age (in whole years) at the end of month m."""
    lo, hi = int(mdl.cum_entries[max(0, m - 360)]), int(mdl.cum_entries[m + 1])
    sl = np.arange(lo, hi, dtype=np.int64) % mdl.capacity
    pop = mdl.pop
    sel = sl[(pop.alive[sl] == 1) & ((m - pop.birth[sl].astype(np.int64)) // 12 == age_year)]
    v = pop.ctraits[trait_idx, sel].astype(float)
    v = v[~np.isnan(v)]
    return float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def simulate(trial: Trial, replicate: int, scale: float | None = None, threads: int | None = None):
    """The paired outcomes ``(control, treated, control_exposed, treated_exposed)`` of the trial
    population in one replicate (NaN where a person left before a trait or state could be read;
    ``*_exposed``: years in ``outcome.per_exposure_states`` during the follow-up, else 0;
    ``ref_sd``: for ``trait_sd`` with ``sd_of: population``, the SD of the trait among everyone
    alive at the person's age when it was read, in the control arm; else NaN)."""
    from utenforsk.model import UtenforskModel

    spec = trial.spec
    kw = dict(seed=spec.seed + replicate, scale=scale or spec.scale, start_year=trial.start_year,
              horizon_years=trial.horizon_years, burn_in_years=spec.burn_in_years, threads=threads)
    ctrl = UtenforskModel(trial.model, interventions=[trial.placebo], **kw)
    trt = UtenforskModel(trial.model, interventions=[trial.treated], burn_in_from=ctrl, **kw)
    c = ctrl.compiled
    o = spec.outcome
    in_states = None
    if o.states:
        in_states = np.zeros(len(c.states), bool)
        in_states[[c.state_index[s] for s in o.states]] = True
    flag_bit = c.flags.index(o.flag) if o.flag else 0
    trait_idx = c.ctraits.index(o.trait) if o.trait else 0
    ex_states = None
    if o.per_exposure_states:
        ex_states = np.zeros(len(c.states), bool)
        ex_states[[c.state_index[s] for s in o.per_exposure_states]] = True
    pop_states = np.ones(len(c.states), bool)
    if spec.population.states:
        pop_states[:] = False
        pop_states[[c.state_index[s] for s in spec.population.states]] = True
    age_lo, age_hi = spec.population.ages[0] * 12, spec.population.ages[1] * 12
    bit = np.uint16(1 << 0)  # the trial's one programme: slot 0
    window_end = ctrl.burn_in_months + spec.enrolment.months
    recorded = np.zeros(int(ctrl.cum_entries[-1]) + 1, bool)
    pids = np.zeros(0, np.int64)
    enrol_m = np.zeros(0, np.int64)
    arms = (_Arm(), _Arm())
    ref_sd = np.zeros(0)  # per person: the population SD their trait is scaled by (sd_of: population)
    while ctrl.running:
        m = ctrl.month
        ctrl.step()
        trt.step()
        if m < window_end:
            lo = int(ctrl.cum_entries[max(0, m - 360)])
            hi = int(ctrl.cum_entries[m + 1])
            ids = np.arange(lo, hi, dtype=np.int64)
            sl = ids % ctrl.capacity
            # enrolled this month and still in an eligible state when the programme starts acting
            age = m - ctrl.pop.birth[sl].astype(np.int64)
            new = ids[((ctrl.pop.pg_ever[sl] & bit) != 0) & (ctrl.pop.alive[sl] == 1)
                      & pop_states[ctrl.pop.state[sl]] & (age >= age_lo) & (age < age_hi) & ~recorded[ids]]
            recorded[new] = True
            pids = np.concatenate([pids, new])
            enrol_m = np.concatenate([enrol_m, np.full(len(new), m, np.int64)])
            for arm in arms:
                arm.grow(len(new))
        ref_sd = np.concatenate([ref_sd, np.full(len(pids) - len(ref_sd), np.nan)])
        for arm, mdl in zip(arms, (ctrl, trt)):
            got = _update(arm, mdl, trial, pids, enrol_m, m, in_states, flag_bit, trait_idx, ex_states)
            if got is not None and mdl is ctrl and o.kind == "trait_sd" and o.sd_of == "population":
                idx, years = got
                for a in np.unique(years):
                    ref_sd[idx[years == a]] = _population_sd(ctrl, m, trait_idx, int(a))
        if m >= window_end - 1 and all(a.done.all() for a in arms):
            break  # everyone followed up: the rest of the horizon measures nothing
    for arm in arms:  # still alive at the horizon's end (cannot happen with a horizon sized to fit)
        arm.final[~arm.done] = np.nan
    return arms[0].final, arms[1].final, arms[0].exposed / 12.0, arms[1].exposed / 12.0, ref_sd
