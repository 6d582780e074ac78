"""Schema of an intervention: who, what, how much, when, and what it costs (MODEL.md).

*Who* (eligibility) is separate from *what* (the product), as in Starsim's interventions. A person
is enrolled while they match ``who`` and their personal, scenario-independent draw ``u`` (keyed by
a hash of the intervention's name) is below ``coverage(t) * take_up``; so raising coverage adds people without reshuffling who is in, and a
coverage of 0 changes nothing, bit for bit. With ``sticky: true`` (default) an enrolled person
stays enrolled while inside the age window and states, even if a trait or attribute condition no
longer holds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from utenforsk.config.params import Coefficient, NonNegative, Probability, Strict
from utenforsk.config.schema import MAX_AGE_YEARS

Ages = tuple[float, float]


class TraitCondition(Strict):
    trait: str
    below: float | None = None
    above: float | None = None

    @model_validator(mode="after")
    def _one_side(self):
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of `below` or `above`")
        return self


class Who(Strict):
    """Eligibility: all conditions must hold."""

    ages: Ages = (0.0, MAX_AGE_YEARS)
    states: list[str] | None = Field(None, description="eligible states (default: any)")
    attributes: dict[str, list[str]] = Field(
        default_factory=dict, description="allowed categories per attribute, e.g. municipality for pilots")
    traits: list[TraitCondition] = Field(default_factory=list)
    municipalities: list[str] = Field(
        default_factory=list,
        description="real municipalities (SSB names as in configs/norway/data/municipalities.csv, "
                    "or 4-digit numbers) where the intervention enrols, e.g. [Larvik, Fredrikstad]; "
                    "empty: everywhere. Fixed, staff and capacity costs scale with the population "
                    "0-29 covered (docs/pilots.md)")
    sticky: bool = Field(True, description="once enrolled, stay while inside ages and states")

    @model_validator(mode="after")
    def _ages(self):
        lo, hi = self.ages
        if not 0 <= lo < hi <= MAX_AGE_YEARS:
            raise ValueError(f"ages must satisfy 0 <= low < high <= {MAX_AGE_YEARS:g}, got {list(self.ages)}")
        return self

    @field_validator("municipalities", mode="before")
    @classmethod
    def _names(cls, v):  # YAML reads 3805 as a number: a kommunenummer (0301 must be quoted)
        return [str(m).strip() for m in v] if isinstance(v, list) else v


class ServiceChange(Strict):
    """Multipliers on a service in the covered municipalities (1 = unchanged)."""

    detection: NonNegative | None = None
    capacity: NonNegative | None = None
    quality: NonNegative | None = None


class HandoffChange(Strict):
    """Handoff changes: a new probability, or an odds ratio on the (possibly drawn) baseline
    probability (``odds``: cannot move the handoff the wrong way by accident), and a new delay."""

    probability: Probability | None = None
    odds: NonNegative | None = Field(None, description="odds ratio on the baseline handoff probability")
    delay_months: NonNegative | None = None

    @model_validator(mode="after")
    def _delay(self):
        if self.probability is not None and self.odds is not None:
            raise ValueError("give either `probability` (a new value) or `odds` (a ratio on the "
                             "baseline), not both")
        if self.delay_months is not None and self.delay_months.range[1] > 120:
            raise ValueError("delay_months must be at most 120 (allowed: [0, 120] months)")
        return self


class What(Strict):
    """The product. Odds ratios act while enrolled; a trait shift once per person, at their first
    enrolment (not again when they re-enrol)."""

    trait_target: dict[str, Coefficient] = Field(
        default_factory=dict, description="shift of a trait's dynamics target while enrolled (SD)")
    trait_shift: dict[str, Coefficient] = Field(
        default_factory=dict, description="one-off shift of a trait at a person's first enrolment (SD)")
    odds: dict[str, NonNegative] = Field(
        default_factory=dict, description="odds ratio on a hazard transition while enrolled")
    outcome_odds: dict[str, dict[str, NonNegative]] = Field(
        default_factory=dict, description="odds ratio on a scheduled event's outcome while enrolled")
    services: dict[str, ServiceChange] = Field(
        default_factory=dict, description="service changes, weighted by coverage")
    handoffs: dict[str, HandoffChange] = Field(
        default_factory=dict, description="handoff changes, weighted by coverage")


class Programme(Strict):
    """How long enrolment lasts and what remains after it (docs/model.md, *Interventions*).

    - ``duration_months``: the programme's mean length. Each enrolled month ends the programme with
      probability ``1 / duration_months`` (a monthly exit hazard, so the chain stays Markov), and
      a person whose programme ended is not enrolled in it again. Left out: enrolment lasts as long
      as eligibility (``who``), as before.
    - ``persistence``: the share of the programme's odds ratios (on the log scale) and trait-target
      shifts that remains after enrolment ends, for the rest of the person's life in the model:
      0 = full fade-out (the effect stops with the programme), 1 = a lasting effect. A one-off
      ``trait_shift`` is not scaled: it is a change of the trait itself, which then follows the
      trait's own dynamics.
    """

    duration_months: NonNegative | None = Field(
        None, description="mean months enrolled (monthly exit hazard 1/D); default: as long as eligible")
    persistence: Probability | None = Field(
        None, description="share of the effects that remains after enrolment ends (0: fade-out, 1: lasting)")

    @model_validator(mode="after")
    def _duration(self):
        if self.duration_months is not None and self.duration_months.range[0] < 1:
            raise ValueError("duration_months must be at least 1 month over its whole range "
                             "(allowed: a range of months >= 1)")
        return self


class When(Strict):
    start_year: int
    end_year: int | None = Field(None, description="last active year (default: to the end)")
    ramp_up_years: float = Field(0.0, ge=0, description="coverage rises linearly over these years")

    @model_validator(mode="after")
    def _order(self):
        if self.end_year is not None and self.end_year < self.start_year:
            raise ValueError(f"[end_year] end_year {self.end_year} is before start_year {self.start_year} "
                             f"(allowed: a year >= {self.start_year}, or leave it out to run to the end)")
        return self


class Cost(Strict):
    """Costs in NOK at ``price_year`` prices (EVIDENCE.md: costs and valuation)."""

    price_year: int = 2024
    per_participant: NonNegative | None = Field(None, description="NOK per new participant")
    per_participant_month: NonNegative | None = Field(None, description="NOK per enrolled month")
    fixed_per_year: NonNegative | None = Field(None, description="NOK per active year, national")
    staff_positions: NonNegative | None = Field(None, description="full-time positions, national")
    cost_per_position: NonNegative | None = Field(None, description="NOK per position-year")
    caseload: NonNegative | None = Field(
        None, description="enrolled people per position: positions follow enrolment (instead of "
                          "staff_positions), costed at cost_per_position")

    @model_validator(mode="after")
    def _positions(self):
        if self.caseload is not None:
            if self.staff_positions is not None:
                raise ValueError("give either `staff_positions` (national) or `caseload` (positions "
                                 "follow enrolment), not both")
            if self.cost_per_position is None:
                raise ValueError("`caseload` needs `cost_per_position`")
            if self.caseload.range[0] <= 0:
                raise ValueError("`caseload` must be positive (allowed: a range above 0)")
        return self


class Intervention(Strict):
    """One intervention, written in YAML (configs/interventions/NAME.yaml)."""

    name: str
    description: str
    evidence: str = Field(description="what is known, with sources; say plainly where it is missing")
    who: Who = Field(default_factory=Who)
    what: What
    coverage: Probability = Field(description="share of the eligible who are offered it")
    take_up: Probability = Field(description="share of those offered who take it up")
    when: When
    programme: Programme = Field(default_factory=Programme,
                                 description="programme length and persistence after it (default: "
                                             "enrolled while eligible; effects end with enrolment)")
    cost: Cost = Field(default_factory=Cost)
    effect_basis: Literal["evidence", "assumption"] = Field(
        "evidence", description="'assumption' where no causal estimate exists: the report says so")
    kind: Literal["yaml"] = "yaml"
