"""Schema of an experiment: a base model, scenarios x replicates, metrics, hypotheses, uncertainty.

Replicate ``r`` of every scenario runs with the same seed (common random numbers), so scenario
differences are paired. In ``uncertainty.mode: parameter`` replicates come in groups of
``seeds_per_draw`` that share one draw of every listed parameter (uniform over its range; model
paths and ``interventions.NAME.<path>``), and of a row of the calibrated ``ensemble`` when one is
given; a draw is shared by all scenarios of its replicates.
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
        default_factory=dict, description=(
            "dotted config paths -> values, e.g. transitions.job_finding.probability.value; "
            "interventions.NAME.<path> changes one of this scenario's interventions, e.g. "
            "interventions.thousand_days.when.end_year: 2030"))


class Uncertainty(Strict):
    mode: Literal["monte_carlo", "parameter"] = "monte_carlo"
    parameters: list[str] = Field(
        default_factory=list, description=(
            "dotted paths of Params drawn per draw in parameter mode: model paths, or "
            "interventions.NAME.<path> (e.g. interventions.ips_youth.what.odds.job_finding)"))
    ensemble: str | None = Field(None, description=(
        "parameter mode: a CSV of calibrated model parameter sets (one row each, one column per "
        "dotted model path), relative to the experiment file; draw d uses row d mod rows"))
    seeds_per_draw: int = Field(2, ge=1, le=100, description=(
        "parameter mode: replicates sharing one parameter draw (different seeds), so the report can "
        "separate Monte Carlo noise from parameter uncertainty"))
    supported_at: float = Field(0.95, gt=0.5, lt=1.0, description=(
        "parameter mode: a claim is supported when it holds in at least this share of parameter "
        "draws, not supported when in at most 1 - this share"))

    @model_validator(mode="after")
    def _params_for_mode(self):
        if self.mode == "parameter" and not self.parameters and self.ensemble is None:
            raise ValueError("mode `parameter` needs a list of `parameters` (dotted paths of Params) "
                             "or an `ensemble` file")
        if self.mode != "parameter" and self.ensemble is not None:
            raise ValueError("[ensemble] an ensemble is drawn from in `mode: parameter` only")
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
    follow_cohorts_to_age: int | None = Field(None, ge=16, le=30, description=(
        "extend the horizon until every birth cohort an intervention treated inside the stated "
        "horizon has reached this age (interventions stop at the stated horizon's end)"))
    municipality_metrics: bool = Field(False, description=(
        "add each real municipality's Q4 figures to every task's metrics "
        "(kommune:NNNN:METRIC and kommune:NNNN:METRIC@YEAR; `utenforsk municipality NAME "
        "--experiment DIR` and `utenforsk power` with `world: replicates` read them)"))
    for_whom: list[str] | None = Field(None, description=(
        "attributes the report breaks effects down by, e.g. [parental_education, "
        "immigrant_background, sex, municipality]; they become the model's report_by "
        "(default: the model's own report_by)"))

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
