"""Simulated metrics that calibration targets map to, computed from the model's public state.

A :class:`MetricSpec` names a metric kind and its arguments (ages, states, a subgroup...). A
:class:`Probe` is passed as the model's ``on_month`` callback: after every simulated month it reads
``model.pop`` (who is alive, their age, state, attributes, traits, services, upper-secondary start
and completion) and accumulates what each spec needs. The kernel and its outputs are untouched.

The *window* is the policy horizon (``start_year`` .. ``start_year + horizon_years - 1``), or the
calendar years a spec names in ``calendar_years`` (``[first, last]``, inclusive; burn-in years
included), so a target that describes a past year (births in 2022, shares in 2016) is compared
with that year of the simulated history (the burn-in follows SSB's series, population.series):

- period kinds are person-month means over the window (as the model's period tables: a person
  counts in a month when alive at its end, at their age that month, in their state after it);
- ``upper_secondary_completion_5y`` counts people whose fifth anniversary of first starting upper
  secondary falls in the window, as the kernel's cohort tally does (completed by then / due; people
  who died or emigrated before are not due); ``track`` is the state they started in;
- ``trait_ever`` counts people in the last month of age ``ages[1]`` in the window who had the
  binary trait in any month since their ``ages[0]`` birthday (followed since then in the model);
- ``service_users_during_year``: people who were clients of the service in any month of a
  calendar year while inside ``ages``, per mean resident at those ages (SSB's "during the year").

Population counts are divided by the scale (real persons).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from utenforsk.config.params import Strict
from utenforsk.core.population import NEVER

KINDS = {
    "neet_rate": "register NEET rate (the model's reporting definition), person-month share",
    "state_share": "share of person-months in `states`",
    "health_benefit_rate": "share in health-related benefit states (role health_benefit)",
    "kindergarten_coverage": "share in kindergarten states (role kindergarten)",
    "upper_secondary_completion_5y": "completed within 5 years of first starting upper secondary (optionally by `track`)",
    "attribute_share": "share of person-months with `attribute` in `categories`",
    "service_users_during_year": "clients of `service` at any time in a calendar year, per mean resident",
    "trait_prevalence": "share of person-months with the binary `trait`",
    "trait_ever": "had the binary `trait` at any time between ages[0] and the end of ages[1]-1",
    "population": "mean number of residents (real persons)",
    "births_per_year": "births per year (real persons)",
}
DEFAULT_AGES = {"neet_rate": (15, 30), "health_benefit_rate": (18, 30), "kindergarten_coverage": (1, 6),
                "state_share": (0, 30), "attribute_share": (0, 30), "service_users_during_year": (0, 18),
                "trait_prevalence": (0, 30), "trait_ever": (15, 22), "population": (0, 30),
                "upper_secondary_completion_5y": (0, 30), "births_per_year": (0, 30)}


class MetricSpec(Strict):
    """What a target is compared with: a metric kind and its arguments."""

    metric: Literal[tuple(KINDS)] = Field(description="; ".join(f"{k}: {v}" for k, v in KINDS.items()))  # type: ignore[valid-type]
    ages: tuple[int, int] | None = Field(None, description="[low, high) in whole years; default by metric")
    states: list[str] | None = Field(None, description="state_share: the states counted")
    track: str | None = Field(None, description="upper_secondary_completion_5y: the state started in")
    attribute: str | None = Field(None, description="attribute_share: the attribute")
    categories: list[str] | None = Field(None, description="attribute_share: its categories counted")
    service: str | None = Field(None, description="service_users_during_year: a follow_up service")
    trait: str | None = Field(None, description="trait_prevalence, trait_ever: a binary trait")
    subgroup: dict[str, list[str]] = Field(
        default_factory=dict, description="only people with these attribute categories, e.g. {sex: [female]}")
    calendar_years: tuple[int, int] | None = Field(
        None, description="[first, last] calendar years compared (inclusive; burn-in years allowed); "
                          "default: the policy window")

    @model_validator(mode="after")
    def _arguments(self):
        need = {"state_share": ["states"], "attribute_share": ["attribute", "categories"],
                "service_users_during_year": ["service"], "trait_prevalence": ["trait"],
                "trait_ever": ["trait"]}.get(self.metric, [])
        for k in need:
            if getattr(self, k) is None:
                raise ValueError(f"[{k}] metric {self.metric} needs `{k}`")
        if self.metric == "births_per_year":
            for k in ("ages", "subgroup"):
                if getattr(self, k):
                    raise ValueError(f"[{k}] births_per_year counts all births: it takes no `{k}`")
        if self.calendar_years is not None and self.calendar_years[0] > self.calendar_years[1]:
            raise ValueError("[calendar_years] first year after the last")
        if self.ages is not None and not 0 <= self.ages[0] < self.ages[1] <= 30:
            raise ValueError("[ages] ages must satisfy 0 <= low < high <= 30 (allowed: whole years 0..30)")
        return self

    @property
    def age_range(self) -> tuple[int, int]:
        return tuple(self.ages) if self.ages is not None else DEFAULT_AGES[self.metric]

    def check_against(self, cfg) -> list[tuple[str, str, object, str]]:
        """Problems with this spec for a model config: ``(key, message, value, allowed)``."""
        problems = []
        states = list(cfg.states)
        for s in (self.states or []) + ([self.track] if self.track else []):
            if s not in states:
                problems.append(("states" if s in (self.states or []) else "track", "unknown state", s, ", ".join(states)))
        attrs = cfg.attributes
        for a, cats in list(self.subgroup.items()) + ([(self.attribute, self.categories)] if self.attribute else []):
            if a not in attrs:
                problems.append(("subgroup" if a in self.subgroup else "attribute", "unknown attribute", a,
                                 ", ".join(attrs) or "none"))
                continue
            for c in cats or []:
                if c not in attrs[a].categories:
                    problems.append((f"subgroup.{a}" if a in self.subgroup else "categories",
                                     f"unknown category of {a}", c, ", ".join(attrs[a].categories)))
        if self.service is not None:
            follow = [n for n, s in cfg.services.items() if s.kind == "follow_up"]
            if self.service not in follow:
                problems.append(("service", "not a follow_up service of the model", self.service, ", ".join(follow) or "none"))
        if self.trait is not None:
            binary = [n for n, t in cfg.traits.items() if t.kind == "binary"]
            if self.trait not in binary:
                problems.append(("trait", "not a binary trait of the model", self.trait, ", ".join(binary) or "none"))
        if self.calendar_years is not None:
            cal = cfg.calendar
            first, last = cal.start_year - cal.burn_in_years, cal.start_year + cal.horizon_years - 1
            if not first <= self.calendar_years[0] <= self.calendar_years[1] <= last:
                problems.append(("calendar_years", "outside the simulated years", list(self.calendar_years),
                                 f"years {first}..{last}"))
        roles = {"health_benefit_rate": "health_benefit", "kindergarten_coverage": "kindergarten",
                 "upper_secondary_completion_5y": "upper_secondary"}
        if self.metric in roles and not any(s.role == roles[self.metric] for s in cfg.states.values()):
            problems.append(("metric", f"the model has no state with role {roles[self.metric]}", self.metric,
                             "a metric the model can produce"))
        return problems

    def label(self) -> str:
        a0, a1 = self.age_range
        extra = []
        for k in ("states", "track", "attribute", "categories", "service", "trait"):
            v = getattr(self, k)
            if v is not None:
                extra.append(f"{k}={'+'.join(v) if isinstance(v, list) else v}")
        extra += [f"{a}={'+'.join(c)}" for a, c in self.subgroup.items()]
        if self.calendar_years is not None:
            y0, y1 = self.calendar_years
            extra.append(f"in {y0}" if y0 == y1 else f"in {y0}-{y1}")
        return f"{self.metric}[{a0}-{a1 - 1}{'; ' + ', '.join(extra) if extra else ''}]"


class _Acc:
    """Accumulator of one spec: numerator and denominator (person-months or persons)."""

    def __init__(self):
        self.num = 0.0
        self.den = 0.0


class Probe:
    """Called after every simulated month with ``(model, month)`` (see :class:`ProbedModel`);
    then :meth:`values` gives one value per spec."""

    def __init__(self, specs: list[MetricSpec], cfg):
        self.specs = specs
        self.cfg = cfg
        self.model = None
        self.acc = [_Acc() for _ in specs]
        cal = cfg.calendar
        self.first_month = cal.burn_in_years * 12                  # first policy month (model index)
        self.end_month = (cal.burn_in_years + cal.horizon_years) * 12
        # each spec's window [start, end) in model months: the policy window or its calendar_years
        year0 = cal.start_year - cal.burn_in_years                 # calendar year of model month 0
        self.windows = [((s.calendar_years[0] - year0) * 12, (s.calendar_years[1] - year0 + 1) * 12)
                        if s.calendar_years is not None else (self.first_month, self.end_month)
                        for s in specs]
        self.earliest = min(w[0] for w in self.windows)
        self.latest = max(w[1] for w in self.windows)
        self.masks: dict[str, np.ndarray] = {}  # set by attach: the model's state masks and orders
        # how far before the window each spec must start following people
        self.lookback = 0
        for s in specs:
            if s.metric == "upper_secondary_completion_5y":
                self.lookback = max(self.lookback, 61)
            elif s.metric == "trait_ever":
                a0, a1 = s.age_range
                self.lookback = max(self.lookback, (a1 - a0) * 12 + 1)
        self._track = None  # per slot: state at first start of upper secondary
        self._ever: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._year_users: dict[int, np.ndarray] = {}

    def attach(self, model) -> None:
        self.model = model
        c = model.compiled
        self.masks = model.state_masks  # NEET: the reporting (register) definition, as the outputs
        self.state_index = {s: i for i, s in enumerate(c.states)}
        self.attr_index = {a: i for i, a in enumerate(c.attributes)}
        self.services = list(c.services)
        self.btraits = list(c.btraits)
        self.us_flag = model.us_flag
        cap = model.capacity
        self._track = np.full(cap, -1, np.int16)
        for j, s in enumerate(self.specs):
            if s.metric == "trait_ever":
                self._ever[j] = (np.zeros(cap, np.uint8), np.full(cap, np.iinfo(np.int32).min, np.int32))
            elif s.metric == "service_users_during_year":
                self._year_users[j] = np.zeros(cap, bool)

    def _mask(self, spec, slots, age_m, attrs_cache) -> np.ndarray:
        a0, a1 = spec.age_range
        m = (age_m >= a0 * 12) & (age_m < a1 * 12)
        for attr, cats in spec.subgroup.items():
            a = self.attr_index[attr]
            codes = attrs_cache.setdefault(a, self.model.pop.attrs[a, slots])
            allowed = [self.cfg.attributes[attr].categories.index(c) for c in cats]
            m &= np.isin(codes, allowed)
        return m

    def __call__(self, model, month: int) -> None:
        if month < self.earliest - self.lookback or month >= self.latest:
            return
        if self.model is None:
            self.attach(model)
        pop = model.pop
        slots = model.alive_slots()
        birth = pop.birth[slots].astype(np.int64)
        age_m = month - birth
        state = pop.state[slots].astype(np.int64)
        cache: dict = {}
        us = pop.us_start[slots]
        started = us == month
        if started.any():
            self._track[slots[started]] = state[started]
        due = (us != NEVER) & (month - us.astype(np.int64) == 60)
        done = None  # completion flag of the alive slots, read once per month when needed
        for j, spec in enumerate(self.specs):
            acc = self.acc[j]
            k = spec.metric
            w0, w1 = self.windows[j]
            if month >= w1 or month < w0 - self.lookback:
                continue
            in_window = month >= w0
            if k == "upper_secondary_completion_5y":
                if not in_window:
                    continue
                m = due & self._mask(spec, slots, age_m, cache)
                if spec.track is not None:
                    m &= self._track[slots] == self.state_index[spec.track]
                if done is None:
                    done = (((pop.flags[slots] >> self.us_flag) & 1) == 1 if self.us_flag >= 0
                            else np.zeros(len(slots), bool))
                acc.num += float((m & done).sum())
                acc.den += float(m.sum())
                continue
            if k == "trait_ever":
                a0, a1 = spec.age_range
                ever, stamp = self._ever[j]
                bit = (pop.btraits[slots] >> self.btraits.index(spec.trait)) & 1
                sub = self._mask(spec, slots, age_m, cache)
                start = age_m == a0 * 12
                ever[slots[start]] = bit[start]
                stamp[slots[start]] = birth[start]
                followed = (stamp[slots] == birth) & (age_m > a0 * 12) & (age_m < a1 * 12)
                ever[slots[followed]] |= bit[followed]
                if in_window:
                    last = sub & (age_m == a1 * 12 - 1) & (stamp[slots] == birth)
                    acc.num += float(ever[slots[last]].sum())
                    acc.den += float(last.sum())
                continue
            if not in_window:
                continue
            m = self._mask(spec, slots, age_m, cache)
            if k == "neet_rate":
                acc.num += float((m & self.masks["neet"][state]).sum())
                acc.den += float(m.sum())
            elif k in ("health_benefit_rate", "kindergarten_coverage"):
                role = "health_benefit" if k == "health_benefit_rate" else "kindergarten"
                acc.num += float((m & self.masks[role][state]).sum())
                acc.den += float(m.sum())
            elif k == "state_share":
                sel = np.isin(state, [self.state_index[s] for s in spec.states])
                acc.num += float((m & sel).sum())
                acc.den += float(m.sum())
            elif k == "attribute_share":
                a = self.attr_index[spec.attribute]
                codes = cache.setdefault(a, pop.attrs[a, slots])
                allowed = [self.cfg.attributes[spec.attribute].categories.index(c) for c in spec.categories]
                acc.num += float((m & np.isin(codes, allowed)).sum())
                acc.den += float(m.sum())
            elif k == "trait_prevalence":
                bit = (pop.btraits[slots] >> self.btraits.index(spec.trait)) & 1
                acc.num += float(bit[m].sum())
                acc.den += float(m.sum())
            elif k == "service_users_during_year":
                users = self._year_users[j]
                s = self.services.index(spec.service)
                client = ((pop.clients[slots] >> s) & 1) == 1
                users[slots[m & client]] = True
                acc.den += float(m.sum()) / 12.0  # mean residents over the year
                if month % 12 == 11:  # end of a calendar year
                    acc.num += float(users.sum())
                    users[:] = False
            elif k == "population":
                acc.num += float(m.sum()) / model.config.scale
                acc.den += 1.0
            elif k == "births_per_year":
                acc.num += float(model.births[month]) / model.config.scale
                acc.den += 1.0 / 12.0

    def values(self) -> list[float]:
        return [a.num / a.den if a.den else float("nan") for a in self.acc]


def probed_model(config, probe: Probe, **kwargs):
    """A :class:`~utenforsk.model.UtenforskModel` whose every month (burn-in included) is shown
    to ``probe`` (through the model's public ``on_month`` hook)."""
    from utenforsk.model import UtenforskModel

    holder: dict = {}

    def on_month(m: int) -> None:
        probe(holder["model"], m)

    class _Model(UtenforskModel):
        def __init__(self, *a, **kw):
            holder["model"] = self
            super().__init__(*a, **kw)

    return _Model(config, on_month=on_month, **kwargs)
