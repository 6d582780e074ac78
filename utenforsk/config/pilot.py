"""Schema of a pilot design (``utenforsk power PILOT.yaml``; docs/pilots.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from utenforsk.config.params import Param, Strict


class DrawFrom(Strict):
    """The pool municipalities are drawn from (all conditions must hold; empty = all 357)."""

    types: list[str] = Field(default_factory=list, description="municipality types (the four groupings)")
    fylker: list[str] = Field(default_factory=list, description="counties, as the data file writes them")
    min_population: int = Field(0, ge=0, description="smallest population 1 Jan 2024")


class TrueEffect(Strict):
    """The simulation's own effect: the relative change of a metric in an experiment's effects.csv."""

    experiment: str = Field(description="an experiment output directory (with effects.csv)")
    scenario: str
    metric: str = "neet_rate_15_29"


class ReplicateWorld(Strict):
    """The model's own replicate runs as the register world (instead of the parametric one):
    an experiment run with ``municipality_metrics: true``; a treated municipality-year takes the
    scenario's simulated rate, every other one the baseline's, from the same replicate."""

    experiment: str = Field(description="an experiment output directory (runs.parquet with kommune: metrics)")
    scenario: str = Field(description="the scenario with the intervention (its effect is the true effect)")
    baseline: str = "baseline"
    start_year: int = Field(description="the intervention's first year in that scenario (pilot year 1)")
    min_persons: int = Field(5, ge=1, description="municipalities with fewer simulated persons 15-29 in "
                                                  "some replicate-year are left out of the pool (their rates are noise)")


class PilotConfig(Strict):
    name: str
    description: str = ""
    intervention: str | None = Field(None, description="the library intervention piloted (for the record)")
    design: Literal["cluster_randomised", "stepped_wedge", "did"]
    municipalities: list[str] = Field(
        default_factory=list,
        description="named municipalities (SSB names or numbers): the pool (cluster_randomised, "
                    "stepped_wedge) or the treated ones (did); empty: draw from `draw_from`")
    draw_from: DrawFrom = Field(default_factory=DrawFrom)
    n_municipalities: list[int] = Field(description="numbers of municipalities in the pilot (a grid); "
                                                    "for did: the treated (as many comparisons are matched)")
    years: list[int] = Field(description="years of follow-up after the start (a grid)")
    pre_years: int = Field(2, ge=0, le=10, description="register years before the start (did, stepped_wedge: 1 is used)")
    baseline_rate: Param | None = Field(None, description="NEET 15-29 in Q4, national (parametric world)")
    between_sd: Param | None = Field(None, description="SD across municipalities of the NEET rate (probability scale; parametric world)")
    year_sd: Param | None = Field(None, description="SD of a municipality's year-to-year deviation beyond binomial noise (parametric world)")
    effects: list[float] = Field(description="assumed relative effects on the NEET rate in covered municipalities, e.g. -0.05")
    true_effect: TrueEffect | None = None
    replicates: ReplicateWorld | None = Field(
        None, description="simulate pilots on the model's own replicate runs (`world` column "
                          "'replicates'); the parametric world's baseline_rate, between_sd and year_sd are then not used")
    n_sims: int = Field(1000, ge=10, le=100_000)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    power_target: float = Field(0.8, gt=0, lt=1)
    analysis: Literal["cluster_ols", "mixed"] = "cluster_ols"
    seed: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _world(self):
        if self.replicates is None:
            lacking = [k for k in ("baseline_rate", "between_sd", "year_sd") if getattr(self, k) is None]
            if lacking:
                raise ValueError(f"the parametric world needs {', '.join(lacking)} "
                                 "(or give `replicates:` to use the model's own replicate runs)")
        return self

    @field_validator("n_municipalities")
    @classmethod
    def _n(cls, v):
        if not v or min(v) < 2 or max(v) > 357:
            raise ValueError("each number of municipalities must be 2 .. 357 (the municipalities of 2024)")
        return sorted(set(v))

    @field_validator("years")
    @classmethod
    def _years(cls, v):
        if not v or min(v) < 1 or max(v) > 20:
            raise ValueError("each number of follow-up years must be 1 .. 20 (zero years measure nothing)")
        return sorted(set(v))

    @field_validator("effects")
    @classmethod
    def _effects(cls, v):
        if not v or any(not -1 < e < 1 for e in v):
            raise ValueError("give relative effects in (-1, 1), e.g. [0, -0.05, -0.1] (0: the type I error)")
        return sorted(set(v), key=abs)
