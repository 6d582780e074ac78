"""Schema of a virtual-trial spec (configs/trials/NAME.yaml; docs/experiments.md, "Virtual trials").

A trial runs one intervention inside the model on a trial population, in two arms that are the
same people (common random numbers): the control arm carries the intervention with its effects
removed (a placebo in the same programme slot, so enrolment is decided identically), the treated
arm the intervention itself. Its outcome is measured as the trial measured it, and compared with
the published estimate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from utenforsk.config.interventions import Who
from utenforsk.config.params import Strict

OUTCOME_KINDS = ("ever_in_states", "in_states", "flag", "trait_sd", "years_in_states")
MEASURES = ("difference", "odds_ratio", "level")


class Enrolment(Strict):
    """Who is in the trial: everyone matching ``population`` in a month of the window is enrolled
    in their first such month (the window starts in January of ``start_year``)."""

    start_year: int | None = Field(None, description="default: the model's policy start year")
    months: int = Field(1, ge=1, le=120, description="length of the enrolment window in months")


class Outcome(Strict):
    """The outcome as the trial measured it.

    - ``ever_in_states``: share ever in ``states`` during the follow-up (employed at any time within
      12 months);
    - ``in_states``: share in ``states`` at the end of the follow-up (NEET at follow-up);
    - ``flag``: share with ``flag`` set at the end of the follow-up (completion within 5 years);
    - ``trait_sd``: ``trait`` at the end of the follow-up, the difference in SD of the control arm;
    - ``years_in_states``: years spent in ``states`` during the follow-up (years of education).

    The follow-up ends ``months`` after enrolment, or at age ``at_age`` (exactly one of the two).
    People who leave the population (death, emigration, age 30) keep what they had when they left;
    for ``trait_sd`` they are left out.
    """

    kind: Literal[OUTCOME_KINDS]
    states: list[str] | None = None
    flag: str | None = None
    trait: str | None = None
    months: int | None = Field(None, ge=1, le=360, description="follow-up after enrolment")
    at_age: float | None = Field(None, gt=0, lt=30, description="follow-up to this age (years)")
    label: str = Field("", description="how the trial named it, e.g. 'employed within 12 months'")
    sd_of: Literal["control", "population"] = Field(
        "control", description="trait_sd: the SD of the control arm's trial population, or of everyone "
                               "alive at the same age in the control arm (a national test's SD)")
    per_exposure_states: list[str] | None = Field(
        None, description="divide the difference by the difference in years spent in these states "
                          "during the follow-up (an effect per year of exposure, e.g. per kindergarten "
                          "place-year)")
    exposure_unit_years: float = Field(
        1.0, gt=0, le=30, description="with per_exposure_states: years of exposure that make one unit "
                                      "of the published estimate (e.g. a kindergarten place read as one "
                                      "child in kindergarten from 3 to school start: 3 years)")

    @model_validator(mode="after")
    def _fields(self):
        need = {"ever_in_states": "states", "in_states": "states", "years_in_states": "states",
                "flag": "flag", "trait_sd": "trait"}[self.kind]
        if getattr(self, need) is None:
            raise ValueError(f"outcome kind {self.kind!r} needs `{need}`")
        if (self.months is None) == (self.at_age is None):
            raise ValueError("give exactly one of outcome `months` (after enrolment) or `at_age`")
        return self


class Published(Strict):
    """The published estimate: ``measure`` is a difference (percentage points as a share, SD,
    years), an odds ratio, or ``level``: the control arm's mean (a service as it is today, e.g.
    the share OT brings into education or work; the treated arm is then not compared). ``ci`` is its 95% interval; where the source gives none, ``band``
    says how the consistency band was derived."""

    measure: Literal[MEASURES] = "difference"
    estimate: float
    ci: tuple[float, float]
    control: float | None = None
    treated: float | None = None
    source: str
    band: str = Field("", description="how the interval was derived where the source gives none")

    @model_validator(mode="after")
    def _ci(self):
        lo, hi = self.ci
        if not lo <= self.estimate <= hi:
            raise ValueError(f"published estimate {self.estimate} is outside its ci {list(self.ci)}")
        if self.measure == "odds_ratio" and lo <= 0:
            raise ValueError("an odds ratio's ci must be positive")
        return self


class TrialSpec(Strict):
    name: str
    description: str = ""
    model: str = Field("../norway/baseline.yaml", description="model YAML, relative to this file")
    intervention: str | dict = Field(description="library name, YAML path or inline mapping")
    population: Who = Field(description="the trial population at enrolment (replaces the "
                                        "intervention's `who` in both arms)")
    take_up: float = Field(1.0, gt=0, le=1, description="share of the enrolled who receive it (1: ITT "
                                                        "with everyone receiving it)")
    enrolment: Enrolment = Field(default_factory=Enrolment)
    outcome: Outcome
    published: Published
    scale: float = Field(0.01, gt=0, le=1)
    replicates: int = Field(2, ge=1, le=1000)
    seed: int = Field(20261201, ge=0)
    burn_in_years: int | None = Field(None, ge=0, le=80, description="default: the model's")
