"""Pydantic schema of a model config: the whole life-course model is data.

A researcher adds a state, a transition, a trait or a covariate here (in YAML), never in a kernel.
Cross-references (state, trait, service and covariate names) are checked in
:meth:`ModelConfig._cross_references`, so a typo is an error with its key path, not a silent zero.

Covariate names usable in any ``coefficients:`` mapping (log-odds per unit):

- ``ATTRIBUTE=CATEGORY`` (indicator), e.g. ``parental_education=compulsory``;
- a trait name (continuous value in SD units, or 0/1 for a binary trait);
- a flag name (0/1), e.g. ``completed_upper_secondary``;
- ``state:NAME`` (0/1: currently in that state);
- ``service:NAME`` (0/1: currently a client of that service);
- ``quality:NAME`` (the service's quality in the person's municipality, when a client, else 0);
- ``programme:NAME`` (0/1: enrolled in an intervention, see the interventions issue);
- ``kommune:NAME`` (the person's municipality's random intercept ``NAME`` of
  ``municipality_effects``; its coefficient is the loading, e.g. +1 on NEET entry, -1 on exit);
- ``age_years``, ``neet_spell_years`` (months out of work and education / 12, kept through NAV
  programmes, capped at 3), ``years_in_state``
  (capped at 10).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from utenforsk.config.params import Coefficient, NonNegative, Param, Probability, Strict

Ages = tuple[float, float]
DERIVED_COVARIATES = ("age_years", "neet_spell_years", "years_in_state")
ROLES = ("home", "kindergarten", "school", "upper_secondary", "higher_education", "employed",
         "unemployed", "inactive", "nav_programme", "health_benefit")
MAX_AGE_YEARS = 30.0
#: the model's limits, in one place: the person arrays' bit widths and the random-number decision
#: blocks (utenforsk/core/rng.py) are sized from them
LIMITS = {"states": 127, "flags": 6, "continuous_traits": 16, "binary_traits": 8, "attributes": 32,
          "services": 8, "handoffs": 64, "programmes": 16, "arrival_ages": int(MAX_AGE_YEARS), "donor_tries": 4,
          "municipality_effects": 8}


def _check_ages(ages: Ages, what: str = "ages") -> None:
    lo, hi = ages
    if not (0.0 <= lo < hi <= MAX_AGE_YEARS):
        raise ValueError(f"{what} must satisfy 0 <= low < high <= 30 (years), got {list(ages)}")


class Calendar(Strict):
    """Calendar time: a burn-in from an empty population, then the policy horizon."""

    start_year: int = Field(2025, ge=1950, le=2100, description="first policy year")
    horizon_years: int = Field(20, ge=1, le=80, description="policy years simulated")
    burn_in_years: int = Field(30, ge=0, le=80,
                               description="years simulated before start_year (>=30 fills every age)")


class State(Strict):
    """An activity state; a person is in exactly one."""

    description: str
    neet: bool = Field(description="counts as not in employment, education or training")
    role: Literal[ROLES] | None = Field(  # type: ignore[valid-type]
        None, description="what outputs use the state for (coverage, completion, NEET definition)")


Shares = dict[str, Probability]


class Attribute(Strict):
    """A categorical attribute drawn once, at birth or at arrival (immigration)."""

    description: str
    categories: list[str] = Field(min_length=2)
    given: str | None = Field(None, description="an earlier attribute the shares depend on")
    at_birth: dict[str, Shares] = Field(
        description="shares by category of `given` (or under the key `all`)")
    at_arrival: dict[str, Shares] = Field(description="as at_birth, for immigrants on arrival")


class Municipality(Strict):
    """A municipality type (by centrality and size): a service area."""

    description: str
    capacity_factor: NonNegative = Field(description="multiplies every service's capacity")
    detection_factor: NonNegative = Field(description="multiplies every service's detection")


class MunicipalityEffect(Strict):
    """A random intercept per real municipality on the logit scale of the hazards that read it
    (covariate ``kommune:NAME`` with its loading as coefficient, e.g. +1 on NEET entry, -1 on
    exit): ``u_k = sd * z_k``, ``z_k`` standard normal on the run seed's own decision, centred to
    a population-weighted mean of zero (docs/pilots.md). With ``service_areas: municipality_type``
    the kernel knows no municipality and every intercept is 0."""

    description: str
    sd: NonNegative = Field(description="SD of the intercept across municipalities (logit scale)")


class AgeShare(Strict):
    ages: Ages
    share: Probability


class Destination(Strict):
    """One outcome of a scheduled event; chosen by multinomial logit over the outcomes."""

    weight: Annotated[Param, Field(description="relative weight (before coefficients)")] | None = None
    coefficients: dict[str, Coefficient] = Field(default_factory=dict)


class LinearPredictor(Strict):
    intercept: Coefficient | None = None
    coefficients: dict[str, Coefficient] = Field(default_factory=dict)


class ArrivalRule(Strict):
    """What an immigrant arrives with, by age at arrival: a state, traits and flags.

    Traits already started at that age are those of a native of the same service area and birth
    month (a random donor alive in the population, so the age-specific distribution and the
    traits' correlations are the natives'; kernel.arrival_donor), plus ``trait_shift``; a binary trait with a ``prevalence`` is drawn with
    it instead. Without a donor (early in the burn-in) a trait is drawn from its start
    distribution. ``flags``: the share holding each flag on arrival.
    """

    ages: Ages
    to: dict[str, Destination] = Field(min_length=1)
    trait_shift: dict[str, LinearPredictor] = Field(
        default_factory=dict, description="added to a continuous trait on arrival (SD units)")
    prevalence: dict[str, Probability] = Field(
        default_factory=dict, description="share holding a binary trait on arrival (default: as natives)")
    flags: dict[str, Probability] = Field(default_factory=dict, description="share holding a flag on arrival")


class Immigration(Strict):
    arrivals_per_year: NonNegative = Field(description="immigrants aged 0-29 arriving per year, national")
    age_shares: list[AgeShare] = Field(min_length=1, description="age distribution at arrival")
    states: list[ArrivalRule] = Field(min_length=1, description="state on arrival by age")


class SeriesRow(Strict):
    year: int = Field(ge=1900, le=2200)
    alternative: Literal["registered", "main", "low", "high"]
    births: float = Field(ge=0)
    immigrations: float = Field(ge=0)
    birth_share: float | None = Field(None, ge=0, le=1, description="the `birth_share` category's share of births (optional column)")


class BirthShare(Strict):
    """An at-birth category share that follows the series' ``birth_share`` column over calendar
    years: ``share(y) = share_ref * birth_share(y) / birth_share(reference_year)``, where
    ``share_ref`` is the category's ``at_birth`` share in the config; the attribute's other
    categories are rescaled so the shares still sum to 1 (docs/model.md, Population and time)."""

    attribute: str = Field(description="an attribute drawn at birth (e.g. immigrant_background)")
    category: str = Field(description="its category whose share the series shapes")


class DemographySeries(Strict):
    """Births and immigrations by calendar year (a CSV; docs/model.md, Population and time).

    The series gives the *shape* over time: births in year y are
    ``births_per_year * births(y) / births(reference_year)`` (likewise arrivals with
    immigrations), so ``births_per_year`` and ``arrivals_per_year`` stay the levels of the
    reference year (one place, with their ranges), whatever the calendar. A year uses its ``registered`` row if there is one, else the chosen projection
    ``alternative``; years before the first row or after the last take the nearest row's value.
    """

    file: str = Field(description="CSV with year, alternative, births, immigrations (relative to the YAML naming it)")
    alternative: Literal["main", "low", "high"] = Field("main", description="projection alternative for the horizon")
    reference_year: int = Field(2025, ge=1900, le=2200,
                                description="the year whose births and arrivals are births_per_year and arrivals_per_year")
    birth_share: BirthShare | None = Field(None, description="an at-birth share shaped by the file's birth_share column")
    rows: list[SeriesRow] = Field(default_factory=list, description="read from `file` by the loader")

    def _row(self, table: dict, known: list, y: int):
        if y in table:
            return table[y]
        if known[0] < y < known[-1]:
            return table[max(k for k in known if k < y)]  # a gap inside: the year before
        return table[min(max(y, known[0]), known[-1])]

    def _rows_for(self, years) -> list:
        """The row each calendar year in ``years`` reads: its ``registered`` row, else the
        ``alternative``'s, else as :meth:`_row` says."""
        reg = {r.year: r for r in self.rows if r.alternative == "registered"}
        alt = {r.year: r for r in self.rows if r.alternative == self.alternative}
        table = {**alt, **reg}
        if not table:
            from utenforsk.errors import ConfigError
            raise ConfigError(f"no `registered` or `{self.alternative}` rows (was the file read?)",
                              file=self.file, key="population.series",
                              allowed="rows with alternative registered, main, low or high")
        known = sorted(table)
        return [self._row(table, known, y) for y in years]

    def birth_shares(self, years) -> list[float]:
        """The ``birth_share`` column for each calendar year in ``years`` (the rows of :meth:`values`)."""
        out = []
        for y, row in zip(years, self._rows_for(years), strict=True):
            if row.birth_share is None:
                from utenforsk.errors import ConfigError
                raise ConfigError("population.series.birth_share needs a birth_share value in every row",
                                  file=self.file, key="population.series.birth_share",
                                  value=f"year {y}", allowed="a share in [0, 1] in the birth_share column")
            out.append(row.birth_share)
        return out

    def values(self, years) -> tuple[list[float], list[float]]:
        """(births, immigrations) for each calendar year in ``years``."""
        rows = self._rows_for(years)
        return [r.births for r in rows], [r.immigrations for r in rows]


class Population(Strict):
    births_per_year: NonNegative = Field(description="live births per year, national (in the series' reference_year when one is given)")
    birth_state: str = Field(description="the state a newborn starts in")
    immigration: Immigration | None = None
    series: DemographySeries | None = Field(None, description="births and immigrations by year (shape over time)")


class Hazard(Strict):
    """A monthly hazard: a base probability, an age profile and log-odds coefficients.

    The monthly probability is ``p = logistic(logit(base) + age_profile(age) + sum(beta * x))``;
    competing hazards out of one state are resolved by converting each to a rate ``-log(1-p)``.
    """

    ages: Ages = (0.0, MAX_AGE_YEARS)
    probability: Probability | None = Field(None, description="base monthly probability")
    annual_rate: Probability | None = Field(
        None, description="base annual probability; converted to monthly as 1-(1-q)^(1/12)")
    age_profile: dict[float, Coefficient] = Field(
        default_factory=dict, description="log-odds shift applying from this age (years) upward")
    coefficients: dict[str, Coefficient] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_base(self):
        _check_ages(self.ages)
        if (self.probability is None) == (self.annual_rate is None):
            raise ValueError("give exactly one of `probability` (monthly) or `annual_rate`")
        for age in self.age_profile:
            if not 0 <= age < MAX_AGE_YEARS:
                raise ValueError(f"age_profile age {age} must lie in [0, 30)")
        return self


class Transition(Hazard):
    """A hazard transition between activity states."""

    description: str = ""
    from_: list[str] = Field(alias="from", min_length=1)
    to: str
    gate: str | None = Field(None, description="a gate service whose capacity limits entry")
    requires_service: str | None = Field(None, description="only clients of this service can move")
    set_flags: list[str] = Field(default_factory=list)


class Scheduled(Strict):
    """A deterministic event: at an exact age, or after a number of months in the state."""

    description: str = ""
    from_: list[str] = Field(alias="from", min_length=1)
    at_age: float | None = Field(None, description="fires in the month this age (years) is reached")
    after_months: int | None = Field(None, ge=1, le=360, description="months in state before it fires")
    ages: Ages = (0.0, MAX_AGE_YEARS)
    to: dict[str, Destination] = Field(min_length=1)
    set_flags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_trigger(self):
        _check_ages(self.ages)
        if (self.at_age is None) == (self.after_months is None):
            raise ValueError("give exactly one of `at_age` or `after_months`")
        if self.at_age is not None and not 0 <= self.at_age < MAX_AGE_YEARS:
            raise ValueError("at_age must lie in [0, 30)")
        return self


class TraitStart(Strict):
    at_age: float = Field(0.0, ge=0, lt=MAX_AGE_YEARS,
                          description="age (years) when the trait is set; arrivals older get it on arrival")
    mean: LinearPredictor = Field(default_factory=LinearPredictor)
    sd: NonNegative


class TraitDynamics(Strict):
    """Monthly mean reversion: x += rate * (target - x) + sd * noise.

    Give the monthly noise either directly (`sd`) or through `stationary_sd`, the SD the noise
    alone sustains around a fixed target: `sd = stationary_sd * sqrt(rate * (2 - rate))`, the
    stationary variance of the AR(1) process `x' = (1 - rate) x + sd e`. With `stationary_sd`
    the trait keeps its declared scale whatever the rate (docs/model.md, Traits).
    """

    ages: Ages
    rate: Probability = Field(description="share of the gap to the target closed per month")
    target: LinearPredictor = Field(default_factory=LinearPredictor)
    sd: NonNegative | None = Field(None, description="monthly noise, SD units")
    stationary_sd: NonNegative | None = Field(
        None, description="SD sustained by the noise around a fixed target (sets the monthly noise)")

    @model_validator(mode="after")
    def _one_noise(self):
        if (self.sd is None) == (self.stationary_sd is None):
            raise ValueError("give exactly one of `sd` (monthly noise) or `stationary_sd`")
        return self

    def noise_sd(self) -> float:
        """The monthly noise SD the kernel uses."""
        if self.sd is not None:
            return self.sd.value
        r = self.rate.value
        return self.stationary_sd.value * math.sqrt(r * (2.0 - r))


class ContinuousTrait(Strict):
    kind: Literal["continuous"]
    description: str
    initial: TraitStart
    dynamics: list[TraitDynamics] = Field(default_factory=list)


class BinaryStart(Strict):
    at_age: float = Field(0.0, ge=0, lt=MAX_AGE_YEARS)
    probability: Probability


class BinaryTrait(Strict):
    kind: Literal["binary"]
    description: str
    initial: BinaryStart
    onset: Hazard
    recovery: Hazard


Trait = Annotated[Union[ContinuousTrait, BinaryTrait], Field(discriminator="kind")]


class Exit(Hazard):
    """Leaving the model other than by ageing out at 30: death or emigration."""

    description: str = ""


class NeedCondition(Strict):
    """A trait beyond a threshold (``trait`` with ``below`` or ``above``), being in ``states``, or
    holding (or not holding) a ``flag``: ``{flag: completed_upper_secondary, held: false}``."""

    trait: str | None = None
    below: float | None = None
    above: float | None = None
    states: list[str] | None = None
    flag: str | None = None
    held: bool = Field(True, description="with `flag`: in need when the flag is held (true) or not (false)")

    @model_validator(mode="after")
    def _one_kind(self):
        threshold = self.trait is not None or self.below is not None or self.above is not None
        kinds = (self.states is not None) + threshold + (self.flag is not None)
        if kinds != 1:
            raise ValueError("a need is one of `states`, a `trait` threshold or a `flag`")
        if threshold and (self.trait is None or (self.below is None) == (self.above is None)):
            raise ValueError("give `trait` with exactly one of `below` or `above`")
        return self


class Service(Strict):
    """A service per municipality: capacity, queue, detection, discharge (MODEL.md: services)."""

    description: str
    kind: Literal["follow_up", "gate"] = Field(
        description="follow_up: detects, queues and follows up clients; "
                    "gate: limits entry to its states by places")
    ages: Ages
    states: list[str] = Field(min_length=1, description="eligible states (gate: the states it provides)")
    need: list[NeedCondition] = Field(
        default_factory=list, description="any of these makes an eligible person in need (empty: all)")
    detection: Probability | None = Field(None, description="monthly probability an unserved need is detected")
    discharge: Probability | None = Field(None, description="monthly probability a client is discharged")
    capacity: NonNegative = Field(description="places per 1,000 residents in capacity_ages")
    capacity_ages: Ages | None = None
    quality: NonNegative | None = Field(None, description="quality index (1 = today's average)")

    @model_validator(mode="after")
    def _kind_fields(self):
        _check_ages(self.ages)
        if self.capacity_ages is not None:
            _check_ages(self.capacity_ages, "capacity_ages")
        if self.kind == "follow_up" and (self.detection is None or self.discharge is None):
            raise ValueError("a follow_up service needs `detection` and `discharge`")
        if self.kind == "gate" and (self.detection is not None or self.need):
            raise ValueError("a gate service takes no `detection` or `need`")
        return self


class Handoff(Strict):
    """A referral between services: the silo mechanism.

    ``trigger: transition``: a person moving from ``from_states`` to ``to_states`` is referred;
    ``trigger: exit``: a client of ``from_service`` who stops being eligible is referred;
    ``trigger: detection``: when ``from_service`` detects a need it also refers.
    ``flags`` restricts any trigger to people holding (or not holding) flags: a completion event
    out of upper secondary is not a dropout.
    The referral arrives with ``probability`` after ``delay_months``; otherwise it is lost.
    """

    description: str
    from_service: str
    to_service: str
    trigger: Literal["transition", "exit", "detection"]
    from_states: list[str] = Field(default_factory=list)
    to_states: list[str] = Field(default_factory=list)
    ages: Ages = (0.0, MAX_AGE_YEARS)
    flags: dict[str, bool] = Field(
        default_factory=dict, description="flags the person must hold (true) or not hold (false), "
                                          "read after the month's transition, e.g. "
                                          "{completed_upper_secondary: false}")
    probability: Probability
    delay_months: NonNegative

    @model_validator(mode="after")
    def _states_for_transition(self):
        _check_ages(self.ages)
        if self.delay_months.range[1] > 120:
            raise ValueError("delay_months must be at most 120 (allowed: [0, 120] months)")
        if self.trigger == "transition" and not (self.from_states and self.to_states):
            raise ValueError("`trigger: transition` needs from_states and to_states")
        return self


class ModelConfig(Strict):
    """A complete life-course model (see docs/model.md for the Norway baseline)."""

    name: str
    description: str = ""
    calendar: Calendar = Field(default_factory=Calendar)
    scale: float = Field(0.02, gt=0, le=1, description="simulated persons per real person")
    neet_definition: Literal["register", "programmes_as_neet"] = Field(
        "register", description="register: people in NAV programmes are not NEET (SSB definition)")
    states: dict[str, State] = Field(min_length=1)
    flags: dict[str, str] = Field(default_factory=dict, description="name -> meaning; at most 6")
    attributes: dict[str, Attribute] = Field(default_factory=dict)
    municipalities: dict[str, Municipality] = Field(min_length=1)
    service_areas: Literal["municipality_type", "municipality"] = Field(
        "municipality_type", description="where services keep capacity, queues and tallies: per "
        "municipality type, or per real municipality (configs/norway/data/municipalities.csv; "
        "needs the four types as municipalities): a pilot then moves no other municipality's queues")
    municipality_effects: dict[str, MunicipalityEffect] = Field(
        default_factory=dict, description="random intercepts per real municipality, read by hazards "
                                          "as covariate kommune:NAME (0 unless service_areas: municipality)")
    population: Population
    traits: dict[str, Trait] = Field(default_factory=dict)
    transitions: dict[str, Transition] = Field(default_factory=dict)
    scheduled: dict[str, Scheduled] = Field(default_factory=dict)
    exits: dict[str, Exit] = Field(default_factory=dict)
    services: dict[str, Service] = Field(default_factory=dict)
    handoffs: dict[str, Handoff] = Field(default_factory=dict)
    report_by: list[str] = Field(default_factory=list, description="attributes to break outputs down by")

    # ---- cross-references -------------------------------------------------------------------
    @model_validator(mode="after")
    def _cross_references(self):
        problems: list[tuple[str, str]] = []

        def need(kind: str, names, key: str, pool) -> None:
            for n in ([names] if isinstance(names, str) else names):
                if n not in pool:
                    problems.append((key, f"unknown {kind} {n!r}; known: {', '.join(pool) or 'none'}"))

        states, services = list(self.states), list(self.services)
        follow_up = [n for n, s in self.services.items() if s.kind == "follow_up"]

        def not_gate(key: str, name: str | None, why: str) -> None:
            """Gate services only limit entry to their states: they have no clients, queue or
            detection, so naming one where those are needed would silently do nothing."""
            if name in self.services and self.services[name].kind == "gate":
                problems.append((key, f"service {name!r} is a gate: {why}; "
                                      f"allowed: a follow_up service ({', '.join(follow_up) or 'none'})"))

        counts = {"states": len(self.states), "flags": len(self.flags),
                  "continuous_traits": sum(isinstance(t, ContinuousTrait) for t in self.traits.values()),
                  "binary_traits": sum(isinstance(t, BinaryTrait) for t in self.traits.values()),
                  "attributes": len(self.attributes), "services": len(self.services),
                  "handoffs": len(self.handoffs), "municipality_effects": len(self.municipality_effects)}
        for what, n in counts.items():
            if n > LIMITS[what]:
                key = "traits" if what.endswith("traits") else what
                problems.append((key, f"at most {LIMITS[what]} {what.replace('_', ' ')} (got {n})"))
        if "municipality" not in self.attributes:
            problems.append(("attributes", "an attribute `municipality` is required"))
        else:
            cats = self.attributes["municipality"].categories
            if cats != list(self.municipalities):
                problems.append(("attributes.municipality.categories",
                                 f"must list the municipalities in order: {list(self.municipalities)}"))
        need("state", self.population.birth_state, "population.birth_state", states)
        bs = self.population.series.birth_share if self.population.series is not None else None
        if bs is not None:
            need("attribute", bs.attribute, "population.series.birth_share.attribute", list(self.attributes))
            if bs.attribute in self.attributes:
                need("category", bs.category, "population.series.birth_share.category",
                     self.attributes[bs.attribute].categories)
        seen: list[str] = []
        for name, a in self.attributes.items():
            key = f"attributes.{name}"
            if a.given is not None and a.given not in seen:
                problems.append((f"{key}.given", f"must name an earlier attribute; earlier: {seen or 'none'}"))
            conds = self.attributes[a.given].categories if a.given in self.attributes else ["all"]
            for which in ("at_birth", "at_arrival"):
                table = getattr(a, which)
                for cond, shares in table.items():
                    if cond not in conds:
                        problems.append((f"{key}.{which}.{cond}", f"unknown condition; allowed: {conds}"))
                    need("category", list(shares), f"{key}.{which}.{cond}", a.categories)
                    total = sum(p.value for p in shares.values())
                    if abs(total - 1.0) > 1e-6:
                        problems.append((f"{key}.{which}.{cond}", f"shares sum to {total:.6g}, not 1"))
                missing = [c for c in conds if c not in table]
                if missing:
                    problems.append((f"{key}.{which}", f"missing conditions {missing}"))
            seen.append(name)
        for name, t in self.transitions.items():
            key = f"transitions.{name}"
            need("state", t.from_, f"{key}.from", states)
            need("state", t.to, f"{key}.to", states)
            need("flag", t.set_flags, f"{key}.set_flags", list(self.flags))
            for s in (t.gate, t.requires_service):
                if s is not None:
                    need("service", s, key, services)
            if t.gate is not None and t.gate in self.services and self.services[t.gate].kind != "gate":
                problems.append((f"{key}.gate", f"service {t.gate!r} is not a gate"))
            not_gate(f"{key}.requires_service", t.requires_service, "a gate has no clients to require")
        for name, e in self.scheduled.items():
            key = f"scheduled.{name}"
            need("state", e.from_, f"{key}.from", states)
            need("state", list(e.to), f"{key}.to", states)
            need("flag", e.set_flags, f"{key}.set_flags", list(self.flags))
        if self.population.immigration is not None:
            imm = self.population.immigration
            total = sum(s.share.value for s in imm.age_shares)
            if abs(total - 1.0) > 1e-6:
                problems.append(("population.immigration.age_shares", f"shares sum to {total:.6g}, not 1"))
            ctraits = [n for n, t in self.traits.items() if isinstance(t, ContinuousTrait)]
            btraits = [n for n, t in self.traits.items() if isinstance(t, BinaryTrait)]
            covered = [False] * int(MAX_AGE_YEARS * 12)
            for i, r in enumerate(imm.states):
                key = f"population.immigration.states[{i}]"
                need("state", list(r.to), f"{key}.to", states)
                for kind, names, field, pool in (("continuous trait", r.trait_shift, "trait_shift", ctraits),
                                                 ("binary trait", r.prevalence, "prevalence", btraits),
                                                 ("flag", r.flags, "flags", list(self.flags))):
                    for n in names:
                        need(kind, n, f"{key}.{field}.{n}", pool)
                for m in range(round(r.ages[0] * 12), round(r.ages[1] * 12)):
                    covered[m] = True
            if not all(covered):
                lo = covered.index(False)
                hi = covered.index(True, lo) if True in covered[lo:] else len(covered)
                problems.append(("population.immigration.states",
                                 f"no arrival rule covers ages [{lo / 12:g}, {hi / 12:g}) (an arrival "
                                 "would stay in the birth state for ever); allowed: rules whose "
                                 "ages together cover 0-30"))
        for name, s in self.services.items():
            need("state", s.states, f"services.{name}.states", states)
            for c in s.need:
                if c.states is not None:
                    need("state", c.states, f"services.{name}.need", states)
                elif c.flag is not None:
                    need("flag", c.flag, f"services.{name}.need", list(self.flags))
                else:
                    need("trait", c.trait, f"services.{name}.need", list(self.traits))
        for a in self.report_by:
            need("attribute", a, "report_by", list(self.attributes))
        for name, h in self.handoffs.items():
            key = f"handoffs.{name}"
            need("service", [h.from_service, h.to_service], key, services)
            not_gate(f"{key}.to_service", h.to_service, "a referral waits in a queue, and a gate has none")
            if h.trigger != "transition":  # transition handoffs do not read from_service
                not_gate(f"{key}.from_service", h.from_service,
                         f"a gate has no clients to {'leave' if h.trigger == 'exit' else 'detect'}")
            need("state", h.from_states + h.to_states, key, states)
            for f in h.flags:
                need("flag", f, f"{key}.flags.{f}", list(self.flags))
        for key, cov in self._coefficient_names():
            problem = self.covariate_problem(cov)
            if problem:
                problems.append((key, problem))
        if problems:
            key, msg = problems[0]
            raise ValueError(f"[{key}] {msg}")
        return self

    def _coefficient_names(self):
        def from_mapping(prefix: str, coefs: dict):
            for c in coefs:
                yield f"{prefix}.coefficients.{c}", c

        for n, t in self.transitions.items():
            yield from from_mapping(f"transitions.{n}", t.coefficients)
        for n, e in self.exits.items():
            yield from from_mapping(f"exits.{n}", e.coefficients)
        for n, e in self.scheduled.items():
            for d, dest in e.to.items():
                yield from from_mapping(f"scheduled.{n}.to.{d}", dest.coefficients)
        if self.population.immigration is not None:
            for i, r in enumerate(self.population.immigration.states):
                for d, dest in r.to.items():
                    yield from from_mapping(f"population.immigration.states[{i}].to.{d}", dest.coefficients)
                for t, shift in r.trait_shift.items():
                    yield from from_mapping(f"population.immigration.states[{i}].trait_shift.{t}",
                                            shift.coefficients)
        for n, t in self.traits.items():
            if isinstance(t, ContinuousTrait):
                yield from from_mapping(f"traits.{n}.initial.mean", t.initial.mean.coefficients)
                for i, d in enumerate(t.dynamics):
                    yield from from_mapping(f"traits.{n}.dynamics[{i}].target", d.target.coefficients)
            else:
                yield from from_mapping(f"traits.{n}.onset", t.onset.coefficients)
                yield from from_mapping(f"traits.{n}.recovery", t.recovery.coefficients)

    def covariate_problem(self, name: str) -> str | None:
        """Why ``name`` is not a covariate of this model, or None if it is."""
        allowed = ("ATTRIBUTE=CATEGORY, a trait, a flag, state:NAME, service:NAME, quality:NAME, "
                   "programme:NAME, kommune:NAME (a municipality_effects entry), " + ", ".join(DERIVED_COVARIATES))
        if name in DERIVED_COVARIATES or name in self.traits or name in self.flags:
            return None
        if "=" in name:
            attr, cat = name.split("=", 1)
            if attr not in self.attributes:
                return f"unknown attribute {attr!r} in covariate {name!r}; allowed: {allowed}"
            if cat not in self.attributes[attr].categories:
                return (f"unknown category {cat!r} of {attr!r}; "
                        f"allowed: {self.attributes[attr].categories}")
            return None
        if ":" in name:
            kind, ref = name.split(":", 1)
            pools = {"state": self.states, "service": self.services, "quality": self.services,
                     "kommune": self.municipality_effects}
            if kind == "programme":
                return None  # resolved against the scenario's interventions
            if kind in pools:
                return None if ref in pools[kind] else f"unknown {kind} {ref!r} in covariate {name!r}"
        return f"unknown covariate {name!r}; allowed: {allowed}"

    # ---- derived views ------------------------------------------------------------------------
    def is_neet(self, state: str, definition: str | None = None) -> bool:
        """NEET by ``definition`` (default: the config's ``neet_definition``, used for reporting).

        The kernel's NEET bookkeeping (spells, months NEET, the 12-month flag) always uses the
        register definition, so choosing a reporting definition never changes a simulated life.
        """
        s = self.states[state]
        if s.role == "nav_programme":
            return (definition or self.neet_definition) == "programmes_as_neet"
        return s.neet
