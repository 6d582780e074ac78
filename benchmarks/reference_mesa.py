"""A reference implementation of the Norway baseline written the way a Mesa user would.

One :class:`Person` (a ``mesa.Agent``) per young person with a ``step()`` method, one
:class:`Service` agent per service and municipality type (the engine's ``service_areas:
municipality_type``; the baseline's services per real municipality are not implemented here:
use ``overrides=PER_TYPE``), stepped through Mesa's agent sets:

    self.agents_by_type[Service].do("step")        # set admissions from last month's tallies
    self.agents_by_type[Person].shuffle_do("step")  # one month of life, in random order

It reads the same config as the engine (``utenforsk.model.resolve_config`` -> the pydantic
``ModelConfig``) and implements the rules from ``docs/model.md`` in plain Python with Mesa's
``random.Random`` (seeded from the seed). Nothing from ``utenforsk/core`` (kernel, tables, rng,
population) is used for the dynamics: this is an independent implementation, so that it serves as
(1) the honest per-agent baseline for speed and (2) an independent check of the engine
(``tests/test_reference_mesa.py`` compares the distributions of headline outcomes).

Where docs and engine differ, this follows the engine (the kernel ``utenforsk/core/codegen.py`` generates); the few
places are marked ``ENGINE:`` below. Random numbers differ by design: the engine hashes
(seed, decision, person, month) with splitmix64, this uses one ``random.Random`` stream, so
individual lives differ and only distributions can agree.

    from benchmarks.reference_mesa import ReferenceModel, engine_outcomes
    m = ReferenceModel("configs/norway/baseline.yaml", seed=1, scale=0.001, overrides=PER_TYPE)  # burn-in runs here
    m.run_model(); m.outcomes(); m.person_months

Interventions are not implemented (baseline only): a config with programme covariates is refused.
"""

from __future__ import annotations

import math
from pathlib import Path

import mesa
import numpy as np

from benchmarks import ROOT
from benchmarks.outcomes import completion_counts, engine_outcomes, headline
from utenforsk.config.schema import BinaryTrait, ContinuousTrait, ModelConfig
from utenforsk.core.kernel import DONOR_TRIES, DONOR_WINDOW
from utenforsk.model import resolve_config

#: the engine's model this reference implements: services (and their agents) per municipality type
PER_TYPE = {"service_areas": "municipality_type"}

__all__ = ["ReferenceModel", "Person", "Service", "Spec", "engine_outcomes", "speed"]

MAX_AGE_MONTHS = 360

LOGIT_CAP = 30.0                  # logit(0), logit(1) clipped to -/+30 (docs: Hazards)
RATE_CAP = -math.log(1e-6)        # ENGINE: a monthly rate is capped at -log(1e-6) (p <= 0.999999)
SQRT3 = math.sqrt(3.0)
MASK16 = 0xFFFF
NEET_SPELL_CAP, TIS_CAP = 36, 120  # covariate caps (months)
US_WINDOW = 60                    # completion counted 60 months after first start
LONG_NEET_MONTHS = 12


# ---- small pure helpers ------------------------------------------------------------------------
def logit(p: float) -> float:
    if p <= 0.0:
        return -LOGIT_CAP
    if p >= 1.0:
        return LOGIT_CAP
    return max(-LOGIT_CAP, min(LOGIT_CAP, math.log(p / (1.0 - p))))


def to_months(age_years: float) -> int:
    """Ages in the config are years; the model runs on whole months (ENGINE: rounded)."""
    return int(round(age_years * 12))


def noise(rnd) -> float:
    """Mean 0, variance 1: the sum of four 16-bit uniforms, rescaled (Irwin-Hall).

    ENGINE: used for trait noise AND for a trait's initial value (docs/model.md says the initial
    draw is N(0, 1)); the engine's ``rng.normal`` is this same distribution."""
    h = rnd.getrandbits(64)
    s = (h & MASK16) + ((h >> 16) & MASK16) + ((h >> 32) & MASK16) + (h >> 48)
    return (s / 65536.0 - 2.0) * SQRT3


def linear(terms, x) -> float:
    s = 0.0
    for name, beta in terms:
        s += beta * x[name]
    return s


# ---- the config as plain Python objects -----------------------------------------------------------
class Hazard:
    """A monthly hazard: logit(p0) + age profile + coefficients (docs: Hazards)."""

    def __init__(self, h):
        p0 = h.probability.value if h.probability is not None else 1.0 - (1.0 - h.annual_rate.value) ** (1 / 12)
        shift = [0.0] * 30
        for age in sorted(h.age_profile):  # a shift applies from floor(age) until the next entry
            for a in range(int(math.floor(age)), 30):
                shift[a] = h.age_profile[age].value
        self.base = [logit(p0) + s for s in shift]  # by age in whole years
        self.lo, self.hi = to_months(h.ages[0]), to_months(h.ages[1])
        self.terms = tuple((name, c.value) for name, c in h.coefficients.items())

    def eta(self, age: int, x: dict) -> float:
        return self.base[age // 12] + linear(self.terms, x)

    def rate(self, age: int, x: dict) -> float:
        """lambda = -log(1 - p) = log(1 + exp(eta)); 0 outside the age window."""
        if age < self.lo or age >= self.hi:
            return 0.0
        return min(math.log1p(math.exp(self.eta(age, x))), RATE_CAP)

    def prob(self, age: int, x: dict) -> float:
        if age < self.lo or age >= self.hi:
            return 0.0
        return 1.0 / (1.0 + math.exp(-self.eta(age, x)))


class Destinations:
    """A multinomial logit over destination states: P(d) ~ w_d exp(sum beta x)."""

    def __init__(self, to: dict):
        self.options = [(state, 1.0 if d.weight is None else d.weight.value,
                         tuple((n, c.value) for n, c in d.coefficients.items())) for state, d in to.items()]

    def choose(self, x: dict, rnd) -> str:
        weights = [w * math.exp(linear(terms, x)) if w > 0 else 0.0 for _, w, terms in self.options]
        target = rnd.random() * sum(weights)
        acc = 0.0
        for (state, _, _), w in zip(self.options, weights):
            acc += w
            if target < acc:
                return state
        return self.options[-1][0]


class Transition:
    def __init__(self, name, t):
        self.name = name
        self.to = t.to
        self.gate = t.gate
        self.requires_service = t.requires_service
        self.set_flags = frozenset(t.set_flags)
        self.hazard = Hazard(t)


class Scheduled:
    def __init__(self, name, e):
        self.name = name
        self.at = to_months(e.at_age) if e.at_age is not None else None
        self.after = e.after_months
        self.lo, self.hi = to_months(e.ages[0]), to_months(e.ages[1])
        self.destinations = Destinations(e.to)
        self.set_flags = frozenset(e.set_flags)


class TraitSpec:
    def __init__(self, name, t):
        self.name = name
        self.init_age = to_months(t.initial.at_age)
        if isinstance(t, ContinuousTrait):
            self.intercept = t.initial.mean.intercept.value if t.initial.mean.intercept else 0.0
            self.terms = tuple((n, c.value) for n, c in t.initial.mean.coefficients.items())
            self.sd = t.initial.sd.value
            self.dynamics = [(to_months(d.ages[0]), to_months(d.ages[1]), d.rate.value, d.noise_sd(),
                              d.target.intercept.value if d.target.intercept else 0.0,
                              tuple((n, c.value) for n, c in d.target.coefficients.items()))
                             for d in t.dynamics]
        else:
            self.p = t.initial.probability.value
            self.onset = Hazard(t.onset)
            self.recovery = Hazard(t.recovery)


class ServiceSpec:
    def __init__(self, name, s):
        self.name = name
        self.kind = s.kind
        self.states = frozenset(s.states)
        self.lo, self.hi = to_months(s.ages[0]), to_months(s.ages[1])
        self.need = list(s.need)
        self.detection = s.detection.value if s.detection is not None else 0.0
        self.discharge = s.discharge.value if s.discharge is not None else 0.0
        self.capacity = s.capacity.value
        ages = s.capacity_ages or s.ages
        self.capacity_ages = (int(round(ages[0])), int(round(ages[1])))
        self.quality = s.quality.value if s.quality is not None else 1.0

    def eligible(self, state: str, age: int) -> bool:
        return state in self.states and self.lo <= age < self.hi


class HandoffSpec:
    def __init__(self, name, h):
        self.name = name
        self.trigger = h.trigger
        self.from_service, self.to_service = h.from_service, h.to_service
        self.from_states, self.to_states = frozenset(h.from_states), frozenset(h.to_states)
        self.lo, self.hi = to_months(h.ages[0]), to_months(h.ages[1])
        self.probability = h.probability.value
        self.delay = int(round(h.delay_months.value))
        self.flags = dict(h.flags)  # flag -> must be held (True) or not (False)

    def flags_ok(self, flags: set) -> bool:
        return all((f in flags) == held for f, held in self.flags.items())


class Spec:
    """Everything the agents read from the config, resolved once."""

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.states = list(cfg.states)
        self.state_index = {s: i for i, s in enumerate(self.states)}
        self.neet_register = frozenset(s for s in cfg.states if cfg.is_neet(s, "register"))
        self.us_states = frozenset(s for s, st in cfg.states.items() if st.role == "upper_secondary")
        self.us_flag = "completed_upper_secondary"
        self.municipalities = list(cfg.municipalities)
        self.attributes = cfg.attributes
        self.transitions_from = {s: [] for s in self.states}
        for name, t in cfg.transitions.items():
            tr = Transition(name, t)
            for f in t.from_:
                self.transitions_from[f].append(tr)
        self.scheduled_from = {s: [] for s in self.states}
        for name, e in cfg.scheduled.items():
            ev = Scheduled(name, e)
            for f in e.from_:
                self.scheduled_from[f].append(ev)
        self.exits = [(name, Hazard(e)) for name, e in cfg.exits.items()]
        self.ctraits = [TraitSpec(n, t) for n, t in cfg.traits.items() if isinstance(t, ContinuousTrait)]
        self.btraits = [TraitSpec(n, t) for n, t in cfg.traits.items() if isinstance(t, BinaryTrait)]
        self.services = {n: ServiceSpec(n, s) for n, s in cfg.services.items()}
        self.handoffs = [HandoffSpec(n, h) for n, h in cfg.handoffs.items()]
        self.transition_handoffs = [h for h in self.handoffs if h.trigger == "transition"]
        self.exit_handoffs = {s: [h for h in self.handoffs if h.trigger == "exit" and h.from_service == s]
                              for s in self.services}
        self.detection_handoffs = {s: [h for h in self.handoffs
                                       if h.trigger == "detection" and h.from_service == s]
                                   for s in self.services}
        pop = cfg.population
        self.birth_state = pop.birth_state
        # expected entries by month (the demography series, if any): the engine's own formula
        from utenforsk.model import entry_rates

        cal = cfg.calendar
        self.births_by_month, self.arrivals_by_month = entry_rates(
            cfg, cal.start_year - cal.burn_in_years, (cal.burn_in_years + cal.horizon_years) * 12)
        self.arrival_rules = []
        if pop.immigration is not None:
            imm = pop.immigration
            self.arrival_rules = [(to_months(r.ages[0]), to_months(r.ages[1]), Destinations(r.to), r)
                                  for r in imm.states]
        self.covariates = self._covariate_getters()

    def _covariate_getters(self):
        """name -> f(person, age) for every covariate any linear predictor uses."""
        cfg = self.cfg
        names = set()
        for _, coefs in self._all_coefficients():
            names.update(coefs)
        getters = {}
        ct = {t.name for t in self.ctraits}
        for name in sorted(names):
            if name == "age_years":
                getters[name] = lambda p, age: age / 12.0
            elif name == "neet_spell_years":
                getters[name] = lambda p, age: min(p.neet_spell, NEET_SPELL_CAP) / 12.0
            elif name == "years_in_state":
                getters[name] = lambda p, age: min(p.tis, TIS_CAP) / 12.0
            elif name in ct:
                getters[name] = lambda p, age, n=name: p.traits[n] if p.traits[n] is not None else 0.0
            elif name in cfg.traits:  # binary trait
                getters[name] = lambda p, age, n=name: 1.0 if p.btraits[n] else 0.0
            elif name in cfg.flags:
                getters[name] = lambda p, age, n=name: 1.0 if n in p.flags else 0.0
            elif "=" in name:
                attr, cat = name.split("=", 1)
                getters[name] = lambda p, age, a=attr, c=cat: 1.0 if p.attrs[a] == c else 0.0
            else:
                kind, ref = name.split(":", 1)
                if kind == "state":
                    getters[name] = lambda p, age, s=ref: 1.0 if p.state == s else 0.0
                elif kind in ("service", "quality"):
                    svc = self.services[ref]
                    if svc.kind == "gate":  # a client of a gate = in one of its states (any age)
                        client = lambda p, st=svc.states: p.state in st  # noqa: E731
                    else:
                        client = lambda p, s=ref: s in p.clients  # noqa: E731
                    if kind == "service":
                        getters[name] = lambda p, age, c=client: 1.0 if c(p) else 0.0
                    else:
                        getters[name] = lambda p, age, c=client, s=ref: p.services[s].quality if c(p) else 0.0
                elif kind == "kommune":  # the reference has services per type: intercepts are 0
                    getters[name] = lambda p, age: 0.0
                else:
                    raise ValueError(f"covariate {name!r}: interventions are not part of the reference")
        return tuple(getters.items())

    def _all_coefficients(self):
        cfg = self.cfg
        for t in cfg.transitions.values():
            yield t, t.coefficients
        for e in cfg.exits.values():
            yield e, e.coefficients
        for e in cfg.scheduled.values():
            for d in e.to.values():
                yield d, d.coefficients
        if cfg.population.immigration is not None:
            for r in cfg.population.immigration.states:
                for d in r.to.values():
                    yield d, d.coefficients
        for t in cfg.traits.values():
            if isinstance(t, ContinuousTrait):
                yield t, t.initial.mean.coefficients
                for d in t.dynamics:
                    yield d, d.target.coefficients
            else:
                yield t, t.onset.coefficients
                yield t, t.recovery.coefficients

    def draw_attributes(self, rnd, arrival: bool) -> dict:
        """Categorical shares, in config order, optionally given an earlier attribute."""
        out = {}
        for name, a in self.attributes.items():
            table = a.at_arrival if arrival else a.at_birth
            shares = table["all" if a.given is None else out[a.given]]
            u = rnd.random()
            acc = 0.0
            chosen = a.categories[-1]
            for cat in a.categories:
                acc += shares[cat].value if cat in shares else 0.0
                if u < acc:
                    chosen = cat
                    break
            out[name] = chosen
        return out


# ---- agents ------------------------------------------------------------------------------------
class Service(mesa.Agent):
    """One service in one municipality type: capacity, queue, admissions (docs: Services).

    Persons add to this month's counters; ``step`` (before the persons' month) turns last month's
    counters into the admission probability ``clip((capacity - clients) / demand, 0, 1)``."""

    COUNTERS = ("clients", "waiting", "admitted", "detected", "in_need", "tried", "refused",
                "ref_arrived", "ref_lost", "ref_expired", "discharged")

    def __init__(self, model, spec: ServiceSpec, muni: str):
        super().__init__(model)
        self.spec, self.name, self.kind, self.muni = spec, spec.name, spec.kind, muni
        m = model.config.municipalities[muni]
        self.places_per_1000 = spec.capacity * m.capacity_factor.value
        self.detect_p = min(1.0, spec.detection * m.detection_factor.value)
        self.quality = spec.quality
        self.admit_p = 1.0
        self.capacity = 0.0
        self.last = None  # last month's counters
        self.reset()

    def reset(self):
        for c in self.COUNTERS:
            setattr(self, c, 0)

    def step(self):
        last_pop = self.model.last_muni_pop
        self.last = {c: getattr(self, c) for c in self.COUNTERS}
        self.reset()
        if last_pop is None:  # the very first month: nothing measured yet
            self.admit_p = 1.0
            return
        a0, a1 = self.spec.capacity_ages
        residents = sum(last_pop[self.muni][a0:a1])
        self.capacity = self.places_per_1000 * residents / 1000.0
        demand = self.last["waiting"] if self.kind == "follow_up" else self.last["tried"]
        free = max(self.capacity - self.last["clients"], 0.0)
        if demand > 0:
            self.admit_p = min(max(free / demand, 0.0), 1.0)
        else:
            self.admit_p = 1.0 if free > 0 else 0.0


class Person(mesa.Agent):
    """A young person: state, traits, services; one month per ``step`` (docs: Equations)."""

    def __init__(self, model, birth: int, attrs: dict, entered: int):
        super().__init__(model)
        spec = model.spec
        self.birth = birth
        self.attrs = attrs
        self.muni = attrs["municipality"]
        self.services = model.services_in[self.muni]  # service name -> Service agent
        self.entered = entered
        self.state = spec.birth_state
        self.tis = 0  # months in the current state
        self.traits = {t.name: None for t in spec.ctraits}  # None: not started yet
        self.btraits = {t.name: False for t in spec.btraits}
        self.flags = set()
        self.clients = set()
        self.waiting = set()
        self.referral = None  # (service, due month): one pending referral at a time
        self.us_start = None  # month upper secondary was first started
        self.neet_spell = 0
        self.months_neet = 0
        self.long_neet = False
        self.gone = False  # left the model (an arrival's donor must be alive)

    # -- helpers
    def covariates(self, age: int) -> dict:
        return {name: get(self, age) for name, get in self.model.spec.covariates}

    def start_traits(self, age: int, at_entry: bool):
        """Traits whose start age is now (on entry: already passed), in config order; the
        covariates are re-read before each, so a trait sees the ones started before it."""
        spec, rnd = self.model.spec, self.model.random
        for t in spec.ctraits:
            if self.traits[t.name] is None and (age == t.init_age or (at_entry and age > t.init_age)):
                xi = self.covariates(age)
                self.traits[t.name] = t.intercept + linear(t.terms, xi) + t.sd * noise(rnd)
        for t in spec.btraits:
            # ENGINE: a binary trait is drawn at entry and again in the kernel's month if the age is
            # exactly its start age, with the same hashed draw -- i.e. once; hence `entered`.
            if at_entry and age >= t.init_age or (not at_entry and age == t.init_age
                                                   and self.entered != self.model.month):
                self.btraits[t.name] = rnd.random() < t.p

    def arrival_traits(self, age: int, rule, donor):
        """An arrival's traits and flags (ArrivalRule): a native donor's of the same birth month
        plus the rule's shift, a binary trait's declared prevalence, flags with their shares."""
        rnd = self.model.random
        for t in self.model.spec.ctraits:
            if age < t.init_age:
                continue
            xi = self.covariates(age)
            v = donor.traits[t.name] if donor is not None and age > t.init_age else None
            if v is None:
                v = t.intercept + linear(t.terms, xi) + t.sd * noise(rnd)
            shift = rule.trait_shift.get(t.name)
            if shift is not None:
                v += (shift.intercept.value if shift.intercept else 0.0) + linear(
                    tuple((n, c.value) for n, c in shift.coefficients.items()), xi)
            self.traits[t.name] = v
        for t in self.model.spec.btraits:
            if age < t.init_age:
                continue
            if t.name in rule.prevalence and age > t.init_age:
                self.btraits[t.name] = rnd.random() < rule.prevalence[t.name].value
            elif donor is not None and age > t.init_age:
                self.btraits[t.name] = donor.btraits[t.name]
            else:
                self.btraits[t.name] = rnd.random() < t.p
        for f, share in rule.flags.items():
            if rnd.random() < share.value:
                self.flags.add(f)

    def send(self, h: HandoffSpec):
        """A referral arrives after the delay with the handoff's probability; else it is lost."""
        if not h.flags_ok(self.flags):  # the engine tests flags before its draw
            return
        if self.model.random.random() < h.probability:
            if self.referral is None:  # a second pending referral is ignored
                self.referral = (h.to_service, self.model.month + h.delay)
        else:
            self.services[h.to_service].ref_lost += 1

    def in_need(self, svc: ServiceSpec) -> bool:
        if not svc.need:
            return True
        for c in svc.need:
            if c.states is not None:
                if self.state in c.states:
                    return True
                continue
            if c.flag is not None:
                if (c.flag in self.flags) == c.held:
                    return True
                continue
            if c.trait in self.traits:
                v = self.traits[c.trait]
                if v is None:
                    continue
            else:
                v = 1.0 if self.btraits[c.trait] else 0.0
            if (c.below is not None and v < c.below) or (c.above is not None and v > c.above):
                return True
        return False

    def leave(self, how: str):
        self.model.events[how] = self.model.events.get(how, 0) + 1
        self.gone = True
        self.remove()

    # -- one month
    def step(self):
        model = self.model
        spec, rnd, month = model.spec, model.random, model.month
        age = month - self.birth
        # 1. ageing out at 30
        if age >= MAX_AGE_MONTHS:
            self.leave("aged_out")
            return
        x = self.covariates(age)  # covariates at the start of the month
        # 2. exits: competing risks (death, emigration)
        rates = [h.rate(age, x) for _, h in spec.exits]
        total = sum(rates)
        if total > 0.0 and rnd.random() < -math.expm1(-total):
            target, acc = rnd.random() * total, 0.0
            which = spec.exits[-1][0]
            for (name, _), lam in zip(spec.exits, rates):
                acc += lam
                if target < acc:
                    which = name
                    break
            self.leave(which)
            return
        # 3. traits: start, mean reversion, binary onset/recovery
        self.start_traits(age, at_entry=False)
        for t in spec.ctraits:
            v = self.traits[t.name]
            if v is None:
                continue
            for lo, hi, rate, sd, intercept, terms in t.dynamics:
                if lo <= age < hi:
                    target = intercept + linear(terms, x)
                    self.traits[t.name] = v + rate * (target - v) + sd * noise(rnd)
                    break
        for t in spec.btraits:
            u = rnd.random()
            if self.btraits[t.name]:
                if u < t.recovery.prob(age, x):
                    self.btraits[t.name] = False
            elif age >= t.init_age and u < t.onset.prob(age, x):
                self.btraits[t.name] = True
        # 4. one activity transition: a scheduled event, else competing hazards
        old = self.state
        new = None
        for e in spec.scheduled_from[old]:
            if not e.lo <= age < e.hi:
                continue
            if (age == e.at) if e.at is not None else (self.tis + 1 >= e.after):
                new = e.destinations.choose(x, rnd)
                self.flags |= e.set_flags
                break
        if new is None:
            options = spec.transitions_from[old]
            if options:
                rates = [0.0 if (t.requires_service is not None and t.requires_service not in self.clients)
                         else t.hazard.rate(age, x) for t in options]
                total = sum(rates)
                if total > 0.0 and rnd.random() < -math.expm1(-total):
                    target, acc = rnd.random() * total, 0.0
                    chosen = options[-1]
                    for t, lam in zip(options, rates):
                        acc += lam
                        if target < acc and lam > 0.0:
                            chosen = t
                            break
                    admitted = True
                    if chosen.gate is not None:  # a gate admits with its probability this month
                        gate = self.services[chosen.gate]
                        gate.tried += 1
                        if rnd.random() >= gate.admit_p:
                            gate.refused += 1
                            admitted = False
                    if admitted:
                        new = chosen.to
                        self.flags |= chosen.set_flags
        # 5. referrals the transition triggers
        if new is not None:
            for h in spec.transition_handoffs:
                if old in h.from_states and new in h.to_states and h.lo <= age < h.hi:
                    self.send(h)
            if new in spec.us_states and self.us_start is None:
                self.us_start = month
            self.state = new
            self.tis = 0
        else:
            self.tis += 1
        # 6. services: discharge, admission, detection; then a referral due this month
        state = self.state
        for name, svc in spec.services.items():
            agent = self.services[name]
            elig = svc.eligible(state, age)
            if svc.kind == "gate":
                if elig:
                    agent.clients += 1
                continue
            if name in self.clients:
                if not elig or rnd.random() < svc.discharge:
                    self.clients.discard(name)
                    agent.discharged += 1
                    if not elig:
                        for h in spec.exit_handoffs[name]:
                            if h.lo <= age < h.hi:
                                self.send(h)
                else:
                    agent.clients += 1
            elif name in self.waiting:
                if not elig:
                    self.waiting.discard(name)
                elif rnd.random() < agent.admit_p:
                    self.waiting.discard(name)
                    self.clients.add(name)
                    agent.admitted += 1
                    agent.clients += 1
                else:
                    agent.waiting += 1
            elif elig and self.in_need(svc):
                agent.in_need += 1
                if rnd.random() < agent.detect_p:
                    self.waiting.add(name)
                    agent.detected += 1
                    agent.waiting += 1
                    for h in spec.detection_handoffs[name]:
                        if h.lo <= age < h.hi:
                            self.send(h)
        if self.referral is not None and self.referral[1] <= month:
            name = self.referral[0]
            agent = self.services[name]
            if spec.services[name].eligible(state, age) and name not in self.clients:
                if name not in self.waiting:
                    self.waiting.add(name)
                    agent.waiting += 1
                agent.ref_arrived += 1
            else:
                agent.ref_expired += 1
            self.referral = None
        # 7. bookkeeping: NEET spell (register definition), completion, tallies
        if state in spec.neet_register:
            self.neet_spell += 1
            self.months_neet += 1
            if self.neet_spell >= LONG_NEET_MONTHS:
                self.long_neet = True
        else:
            self.neet_spell = 0
        if self.us_start is not None and month - self.us_start == US_WINDOW:
            due_done = model.us_cohorts.setdefault(model.first_year + self.birth // 12, [0, 0])
            due_done[0] += 1
            due_done[1] += spec.us_flag in self.flags
        ay = age // 12
        model.age_state[ay][spec.state_index[state]] += 1
        model.muni_pop[self.muni][ay] += 1


# ---- the model ---------------------------------------------------------------------------------
class ReferenceModel(mesa.Model):
    """The Norway baseline, one Mesa agent per person (see the module docstring).

    Same arguments and calendar as :class:`utenforsk.model.UtenforskModel`: the burn-in
    (``burn_in_years`` from an empty population) runs in the constructor, each ``step()`` is one
    policy month, ``run_model()`` runs to the horizon."""

    def __init__(self, config="configs/norway/baseline.yaml", seed: int = 1, scale: float | None = None,
                 *, start_year=None, horizon_years=None, burn_in_years=None, neet_definition=None,
                 overrides: dict | None = None, _burn_in: bool = True):
        super().__init__(seed=int(seed))
        if isinstance(config, (str, Path)) and not Path(config).exists() and (ROOT / config).exists():
            config = ROOT / config
        self.config = resolve_config(config, scale, overrides, start_year=start_year,
                                     horizon_years=horizon_years, burn_in_years=burn_in_years,
                                     neet_definition=neet_definition)
        if self.config.service_areas != "municipality_type":
            raise ValueError("the reference implements services per municipality type only: pass "
                             "overrides=PER_TYPE (service_areas: municipality_type)")
        self.run_seed = int(seed)
        self.spec = spec = self._make_spec()
        cal = self.config.calendar
        self.first_year = cal.start_year - cal.burn_in_years
        self.burn_in_months = cal.burn_in_years * 12
        self.total_months = (cal.burn_in_years + cal.horizon_years) * 12
        self.month = 0  # next month to simulate
        self.services_in = {m: {} for m in spec.municipalities}
        for name, svc in spec.services.items():
            for m in spec.municipalities:
                self.services_in[m][name] = Service(self, svc, m)
        self.person_months = 0
        self.events: dict[str, int] = {}
        self.us_cohorts: dict[int, list[int]] = {}  # birth year -> [due, done]
        #: (birth month, municipality type) -> natives born then and there (arrivals' donors)
        self.natives_born: dict[tuple, list] = {}
        self.history: list[dict] = []  # per policy month: year, month, age_state
        self.last_muni_pop = None
        self.age_state = None
        self.muni_pop = None
        if _burn_in:
            while self.month < self.burn_in_months:
                self._advance()
        self.running = self.month < self.total_months

    def _make_spec(self) -> Spec:
        """The rules the agents follow (a subclass may change one: the test's negative control)."""
        return Spec(self.config)

    # -- entries
    def _stochastic_round(self, expected: float) -> int:
        whole = math.floor(expected)
        return int(whole) + (1 if self.random.random() < expected - whole else 0)

    def _enter(self, month: int):
        spec, rnd = self.spec, self.random
        m = min(month, len(spec.births_by_month) - 1)
        for _ in range(self._stochastic_round(float(spec.births_by_month[m]))):
            p = Person(self, month, spec.draw_attributes(rnd, arrival=False), month)
            p.start_traits(0, at_entry=True)
            self.natives_born.setdefault((month, p.attrs["municipality"]), []).append(p)
        for a, expected in enumerate(spec.arrivals_by_month[m]):
            for _ in range(self._stochastic_round(float(expected))):
                birth = month - 12 * a - int(rnd.random() * 12.0)
                age = month - birth
                p = Person(self, birth, spec.draw_attributes(rnd, arrival=True), month)
                x = p.covariates(age)  # the arrival state first: traits may depend on it
                rule = None
                for lo, hi, dest, r in spec.arrival_rules:
                    if lo <= age < hi:
                        p.state = dest.choose(x, rnd)
                        rule = r
                        break
                if p.state in spec.us_states:
                    p.us_start = month
                if rule is not None:
                    p.arrival_traits(age, rule, self._donor(birth, p.attrs["municipality"], month))

    def _donor(self, birth: int, area: str, month: int):
        """A living native of the arrival's municipality type born in month ``birth``, or if none
        was born there then, in the nearest month within DONOR_WINDOW (earlier first), up to
        DONOR_TRIES draws in all, as the engine (kernel.arrival_donor); months whose natives have
        all aged out (older than MAX_AGE_MONTHS) are skipped."""
        t = 0
        for d in range(2 * DONOR_WINDOW + 1):
            b = birth - (d + 1) // 2 if d % 2 == 1 else birth + d // 2
            natives = self.natives_born.get((b, area), []) if month - MAX_AGE_MONTHS <= b <= month else []
            if not natives:
                continue
            while t < DONOR_TRIES:
                p = natives[int(self.random.random() * len(natives))]
                t += 1
                if not p.gone:
                    return p
                if len(natives) == 1:
                    break
            if t >= DONOR_TRIES:
                return None
        return None

    # -- time
    @property
    def persons(self) -> mesa.agent.AgentSet:
        return self.agents_by_type.get(Person, mesa.agent.AgentSet([], random=self.random))

    def _advance(self):
        """Simulate month ``self.month``: entries, services, then every person's month."""
        m = self.month
        spec = self.spec
        self.person_months += len(self.persons)  # alive at the start of the month (as benchmarks)
        self.last_muni_pop = self.muni_pop
        self.age_state = [[0] * len(spec.states) for _ in range(30)]
        self.muni_pop = {mu: [0] * 30 for mu in spec.municipalities}
        self._enter(m)
        self.agents_by_type[Service].do("step")
        self.persons.shuffle_do("step")
        self.month += 1
        if m >= self.burn_in_months:
            self.history.append({"year": self.first_year + m // 12, "month": m,
                                 "age_state": np.array(self.age_state, dtype=np.int64)})

    def step(self):
        if self.month >= self.total_months:
            self.running = False
            return
        self._advance()
        self.running = self.month < self.total_months

    def run_model(self):
        while self.running:
            self.step()

    # -- outputs
    def outcomes(self, years=None) -> dict:
        """Headline outcomes, by the same code as :func:`engine_outcomes` (benchmarks/outcomes.py)."""
        months = [h for h in self.history if years is None or h["year"] in years]
        age_state = sum((h["age_state"] for h in months), np.zeros((30, len(self.spec.states)), np.int64))
        last_year = self.first_year + self.month // 12 - 1
        due, done = completion_counts({by: tuple(v) for by, v in self.us_cohorts.items()},
                                      self.first_year, last_year)
        return headline(self.config, self.spec.states, age_state, due, done)

    # -- from the engine
    @classmethod
    def from_engine(cls, engine, seed: int | None = None) -> "ReferenceModel":
        """A reference model holding ``engine``'s current population and service state.

        Mapped exactly: birth month, attributes, state, months in state, continuous traits
        (float32 -> float), binary traits, flags (incl. the 12-month NEET flag), clients, queues,
        the pending referral, first upper-secondary month, NEET months and spell, last month's
        service tallies and residents (so admissions next month are the engine's), and the
        cohort completion counters. Not mapped: random-number streams (the reference draws its
        own, so futures differ), person ids, and the entry schedule (the reference draws its own
        births and arrivals from now on). Interventions are not supported. Each person built
        here carries ``engine_slot``, its slot in ``engine.pop`` (to pair the two in tests)."""
        from utenforsk.core.kernel import (
            CO_US_DONE,
            CO_US_DUE,
            COHORT_OFFSET,
            SV_ADMITTED,
            SV_CLIENTS,
            SV_GATE_REFUSED,
            SV_GATE_TRIED,
            SV_WAITING,
        )
        from utenforsk.core.population import FLAG_LONG_NEET, NEVER

        if engine.interventions or engine.plugins:
            raise ValueError("from_engine: the reference implements the baseline only")
        ref = cls(engine.config, seed=engine.run_seed if seed is None else seed, _burn_in=False)
        spec, c, pop = ref.spec, engine.compiled, engine.pop
        ref.month = engine.month
        attr_names = list(c.attributes)
        cats = {a: engine.config.attributes[a].categories for a in attr_names}
        ct_names, bt_names, flag_names, sv_names = c.ctraits, c.btraits, c.flags, c.services
        for i in engine.alive_slots():
            attrs = {a: cats[a][int(pop.attrs[k, i])] for k, a in enumerate(attr_names)}
            p = Person(ref, int(pop.birth[i]), attrs, entered=-1)
            p.engine_slot = int(i)  # to pair this person with the engine's (tests)
            p.state = c.states[int(pop.state[i])]
            p.tis = int(pop.tis[i])
            for t, name in enumerate(ct_names):
                v = float(pop.ctraits[t, i])
                p.traits[name] = None if math.isnan(v) else v
            for b, name in enumerate(bt_names):
                p.btraits[name] = bool((int(pop.btraits[i]) >> b) & 1)
            fl = int(pop.flags[i])
            p.flags = {name for j, name in enumerate(flag_names) if (fl >> j) & 1}
            p.long_neet = bool((fl >> FLAG_LONG_NEET) & 1)
            p.clients = {name for s, name in enumerate(sv_names) if (int(pop.clients[i]) >> s) & 1}
            p.waiting = {name for s, name in enumerate(sv_names) if (int(pop.waiting[i]) >> s) & 1}
            r = int(pop.ref_service[i])
            p.referral = None if r < 0 else (sv_names[r], int(pop.ref_due[i]))
            p.us_start = None if int(pop.us_start[i]) == int(NEVER) else int(pop.us_start[i])
            p.months_neet = int(pop.months_neet[i])
            p.neet_spell = int(pop.neet_spell[i])
            if attrs.get("immigrant_background") != "immigrant":  # born here: a possible donor
                ref.natives_born.setdefault((p.birth, attrs["municipality"]), []).append(p)
        last = engine.last_month
        if last is not None:
            ref.muni_pop = {mu: [int(v) for v in last["muni_pop"][m]]
                            for m, mu in enumerate(spec.municipalities)}
            for s, name in enumerate(sv_names):
                for m, mu in enumerate(spec.municipalities):
                    row, agent = last["sv"][s, m], ref.services_in[mu][name]
                    agent.clients = int(row[SV_CLIENTS])
                    agent.waiting = int(row[SV_WAITING])
                    agent.admitted = int(row[SV_ADMITTED])
                    agent.tried = int(row[SV_GATE_TRIED])
                    agent.refused = int(row[SV_GATE_REFUSED])
        cohort = engine.tally.cohort.sum(axis=0)
        for k in range(cohort.shape[0]):
            if cohort[k, CO_US_DUE]:
                ref.us_cohorts[engine.first_year + k - COHORT_OFFSET // 12] = [int(cohort[k, CO_US_DUE]),
                                                              int(cohort[k, CO_US_DONE])]
        ref.running = ref.month < ref.total_months
        return ref


# ---- speed: reference vs engine on the same population ---------------------------------------------
def speed(alive: float = 1e4, months: int = 12, seed: int = 1) -> dict:
    """Person-months per second of the reference and of the engine (1 thread), same population.

    The engine runs its burn-in at the scale giving ``alive`` people, then a warm-up block of
    ``months`` (compilation, caches); the reference is built from the engine's population
    (:meth:`ReferenceModel.from_engine`). Both then simulate ``months`` months: the engine's
    ``_advance()`` (entries, service agents, kernel, tallies, as ``python -m benchmarks``) and the
    reference's ``step()``. Person-months = people alive at the start of each month. Rates per
    wall-clock second (as the suite) and per CPU second of this process (robust on a shared
    machine; both run single-threaded)."""
    import time

    from benchmarks import ALIVE_AT_SCALE_1, BASELINE
    from utenforsk.model import UtenforskModel

    scale = min(1.0, alive / ALIVE_AT_SCALE_1)
    eng = UtenforskModel(BASELINE, seed=seed, scale=scale, horizon_years=80, threads=1, overrides=PER_TYPE)
    for _ in range(months):  # warm-up
        eng._advance()
    ref = ReferenceModel.from_engine(eng)
    out = {"scale": scale, "alive": int(len(eng.alive_slots())), "months": months}
    pm, t0, c0 = 0, time.perf_counter(), time.process_time()
    for _ in range(months):
        pm += int(eng.pop.alive.sum())
        eng._advance()
    out["engine_pm_per_s"] = pm / (time.perf_counter() - t0)
    out["engine_pm_per_cpu_s"] = pm / (time.process_time() - c0)
    pm0, t0, c0 = ref.person_months, time.perf_counter(), time.process_time()
    for _ in range(months):
        ref.step()
    out["reference_pm_per_s"] = (ref.person_months - pm0) / (time.perf_counter() - t0)
    out["reference_pm_per_cpu_s"] = (ref.person_months - pm0) / (time.process_time() - c0)
    out["reference_us_per_pm"] = 1e6 / out["reference_pm_per_s"]
    out["engine_us_per_pm"] = 1e6 / out["engine_pm_per_s"]
    out["speedup_engine_over_reference"] = out["engine_pm_per_s"] / out["reference_pm_per_s"]
    out["speedup_cpu_time"] = out["engine_pm_per_cpu_s"] / out["reference_pm_per_cpu_s"]
    return out


if __name__ == "__main__":  # python -m benchmarks.reference_mesa [alive] [months]
    import json
    import sys

    args = [float(a) for a in sys.argv[1:]]
    print(json.dumps(speed(args[0] if args else 1e4, int(args[1]) if len(args) > 1 else 12), indent=2))
