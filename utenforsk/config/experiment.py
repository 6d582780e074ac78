"""Schema of an experiment: a base model, scenarios x replicates, metrics, hypotheses, uncertainty.

Replicate ``r`` of every scenario runs with the same seed (common random numbers), so scenario
differences are paired. In ``uncertainty.mode: parameter`` each replicate also draws one value of
every listed parameter (uniform over its range), shared by all scenarios of that replicate.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from utenforsk.config.params import Strict

DEFAULT_METRICS = ["neet_rate_15_29", "neet_rate_15_19", "neet_rate_20_24", "neet_rate_25_29",
                   "exclusion_years_15_29", "long_term_neet_share", "upper_secondary_completion_5y",
                   "health_benefit_rate_18_29", "gap_neet_rate_15_29_parental_education",
                   "gap_neet_rate_15_29_immigrant_background", "programme_cost_nok"]


class Scenario(Strict):
    description: str = ""
    interventions: list[str | dict[str, Any]] = Field(
        default_factory=list, description="library names (configs/interventions/), YAML paths, or inline mappings")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="dotted config paths -> values, e.g. transitions.job_finding.probability.value")


class Uncertainty(Strict):
    mode: Literal["monte_carlo", "parameter"] = "monte_carlo"
    parameters: list[str] = Field(
        default_factory=list, description="dotted paths of Params drawn per replicate in parameter mode")
    seeds_per_draw: int = Field(2, ge=1, le=100, description=(
        "parameter mode: replicates sharing one parameter draw (different seeds), so the report can "
        "separate Monte Carlo noise from parameter uncertainty"))

    @model_validator(mode="after")
    def _params_for_mode(self):
        if self.mode == "parameter" and not self.parameters:
            raise ValueError("mode `parameter` needs a list of `parameters` (dotted paths of Params)")
        return self


class Economics(Strict):
    """Options of the socio-economic evaluation (utenforsk.analysis.economics); read only by the
    report, so changing them never invalidates finished tasks."""

    costs: str | None = Field(None, description=(
        "cost book YAML relative to this file (default configs/norway/costs.yaml)"))
    value_at_30: bool | None = Field(None, description=(
        "value each person's state at 30 in the NPV (default: the cost book's value_at_30.include)"))


class Experiment(Strict):
    name: str
    description: str = ""
    model: str = Field(description="model config YAML, relative to this file")
    scale: float | None = Field(None, gt=0, le=1)
    start_year: int | None = None
    horizon_years: int | None = Field(None, ge=1, le=80)
    burn_in_years: int | None = Field(None, ge=0, le=80)
    replicates: int = Field(20, ge=1, le=1_000_000)
    seed: int = Field(1, ge=0)
    scenarios: dict[str, Scenario] = Field(min_length=1)
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS),
                               description="main metrics for the report's tables and figures")
    report_years: list[int] = Field(default_factory=list, description="years shown for yearly metrics")
    hypotheses: list[dict[str, Any]] = Field(default_factory=list)
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)
    economics: Economics = Field(default_factory=Economics)

    @model_validator(mode="after")
    def _baseline(self):
        for name in self.scenarios:
            if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
                raise ValueError(f"[scenarios.{name}] a scenario name may use only letters, digits, "
                                 "'_' and '-' (it names a directory)")
        if "baseline" not in self.scenarios:
            raise ValueError("[scenarios] a scenario named `baseline` is required (the reference); "
                             "write `baseline: {}` for the model as it is")
        return self
