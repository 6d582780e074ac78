"""A parameter is a number with provenance: value, uncertainty range, unit and source.

Every number in a model config is a :class:`Param`, written in YAML as a flow mapping, e.g.
``{value: 0.004, range: [0.002, 0.008], source: assumption}``. ``source`` names the evidence
(EVIDENCE.md) or says ``assumption``; ``range`` is the uncertainty range used by sensitivity
analysis and calibration. The *allowed* range (what the model can accept at all, e.g. [0, 1] for a
probability) is a property of the field, enforced by the typed aliases below.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Param(Strict):
    """A number with its provenance."""

    value: float = Field(description="the value used in the baseline")
    range: tuple[float, float] = Field(
        description="uncertainty range [low, high] (sensitivity, calibration, parameter mode)")
    source: str = Field(min_length=1, description="evidence (see EVIDENCE.md) or 'assumption'")
    unit: str | None = Field(None, description="unit, where the field's own unit is not enough")
    note: str | None = Field(None, description="anything a reader should know")

    @model_validator(mode="after")
    def _inside_range(self):
        lo, hi = self.range
        if not all(math.isfinite(x) for x in (self.value, lo, hi)):
            raise ValueError("value and range must be finite numbers")
        if lo > hi:
            raise ValueError(f"range low {lo} is above high {hi}")
        if not lo <= self.value <= hi:
            raise ValueError(f"value {self.value} lies outside its range [{lo}, {hi}]")
        return self

    @classmethod
    def fixed(cls, value: float, source: str = "definition") -> "Param":
        return cls(value=value, range=(value, value), source=source)


def _bounded(lo: float | None, hi: float | None, what: str):
    def check(p: Param) -> Param:
        for x in (p.value, *p.range):
            if (lo is not None and x < lo) or (hi is not None and x > hi):
                raise ValueError(f"{x} is not allowed for {what}")
        return p

    return AfterValidator(check)


#: monthly probability or share, in [0, 1]
Probability = Annotated[Param, _bounded(0.0, 1.0, "a probability (allowed: [0, 1])")]
#: non-negative quantity (rates, counts, capacities, months)
NonNegative = Annotated[Param, _bounded(0.0, None, "a non-negative quantity (allowed: >= 0)")]
#: log-odds (or log-weight) coefficient; any finite number
Coefficient = Param
