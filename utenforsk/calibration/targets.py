"""Schemas of a targets file (``configs/norway/targets.yaml``) and a calibration PARAMS file.

Both are validated with pydantic; every problem is one ConfigError naming the file, key, value and
what is allowed (exit status 2 in the CLI). A target is checked against the model it is used with
(states, attributes, services and traits it names must exist) before anything runs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from utenforsk.calibration.metrics import MetricSpec
from utenforsk.calibration.params import check_param
from utenforsk.config.loader import compose, validate
from utenforsk.config.params import Strict
from utenforsk.errors import ConfigError


class Simulation(Strict):
    """How targets are simulated (command-line flags override)."""

    scale: float | None = Field(None, gt=0, le=1, description="default: the model's")
    horizon_years: int = Field(5, ge=1, le=80, description="the window: first policy years averaged")
    burn_in_years: int | None = Field(None, ge=0, le=80, description="default: the model's")
    replicates: int = Field(8, ge=1, le=10_000)
    seed: int = Field(20240601, ge=0, description="replicate r uses replicate_seed(seed, r), as experiments do")


class Target(MetricSpec):
    """An observed value, its provenance and tolerance, and the simulated metric it maps to."""

    value: float
    tolerance: float = Field(gt=0, description="pass when |simulated mean - value| <= tolerance")
    year: str = Field(min_length=1, description="year or period the value refers to")
    definition: str = Field(min_length=1)
    source: str = Field(min_length=1, description="source, with [V]/[U] as in EVIDENCE.md")
    tolerance_basis: str = Field(min_length=1, description="why this tolerance (data spread + structure)")
    unit: str = Field("share", description="share (shown as %), persons, or another unit")
    monitor_only: bool = Field(False, description="shown, but neither a pass/fail check nor fitted")
    weight: float = Field(1.0, ge=0, description="weight in the calibration loss")
    holdout: bool = Field(False, description="chosen before fitting; never read by `calibrate`, checked by `validate`")
    # provenance carried over from configs/norway/data/targets_candidates.yaml
    position: int | None = Field(None, description="number under the candidates file's hold-out rule")
    family: str | None = Field(None, description="source family")
    address: str | None = Field(None, description="where the figure was read")
    evidence: str | None = Field(None, description="V (read in the source) or U (approximate)")
    grouping: str | None = Field(None, description="breakdown the target belongs to (age, sex, background)")


class TargetsFile(Strict):
    name: str
    description: str = ""
    tolerance_rule: str = Field(min_length=1, description="the rule every tolerance follows")
    simulation: Simulation = Field(default_factory=Simulation)
    targets: dict[str, Target] = Field(min_length=1)


class Optimizer(Strict):
    sampler: str = Field("tpe", pattern="^(tpe|random|qmc)$", description="tpe, random or qmc (Optuna samplers)")
    trials: int = Field(40, ge=1, le=100_000)
    seed: int = Field(1, ge=0)
    startup_trials: int | None = Field(None, ge=1, description="random trials before TPE models the loss")


class HistoryMatching(Strict):
    """Settings of ``calibrate --ensemble --method history-matching`` (utenforsk/calibration/history.py)."""

    accepted: int = Field(100, ge=1, le=100_000, description="stop once this many simulated sets are accepted")
    first_wave: int = Field(128, ge=4, le=100_000, description="points of wave 1 (a Latin hypercube over the priors)")
    wave_points: int = Field(128, ge=4, le=100_000, description="points of each later wave (uniform over the NROY space)")
    max_waves: int = Field(6, ge=1, le=100)
    max_evaluations: int = Field(2000, ge=4, le=1_000_000, description="most points simulated in all")
    cut: float = Field(3.0, gt=0, description="implausibility cut (Pukelsheim's 3-sigma rule)")
    cut_rule: str = Field("max", pattern="^(max|second_max)$",
                          description="max: every target's I below the cut; second_max: all but the worst")
    candidates: int = Field(16384, ge=256, le=4_194_304, description="Sobol' candidates tested on the emulators per wave")
    max_train: int = Field(600, ge=8, le=20_000, description="most recent non-implausible runs an emulator is trained on")
    seed: int = Field(1, ge=0)


class FreeParam(Strict):
    range: tuple[float, float] | None = Field(None, description="search range; default the parameter's own range")
    log: bool = Field(False, description="search on a log scale")

    @model_validator(mode="after")
    def _order(self):
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"range low {self.range[0]} must be below high {self.range[1]}")
        return self


class ParamsFile(Strict):
    """What `utenforsk calibrate` fits: free parameters with ranges, targets used, optimiser."""

    description: str = ""
    parameters: dict[str, FreeParam] = Field(min_length=1, description="dotted parameter path -> search range")
    targets: list[str] | None = Field(None, description="names of targets to fit (default: all not monitor_only)")
    optimizer: Optimizer = Field(default_factory=Optimizer)
    simulation: Simulation | None = Field(None, description="default: the targets file's")
    history_matching: HistoryMatching = Field(default_factory=HistoryMatching)


def _load(cls, path):
    path = Path(path)
    origin: dict = {}
    return validate(cls, compose(path, origin), str(path), origin)


def without_holdouts(tf: TargetsFile) -> TargetsFile:
    """The targets `calibrate` may read: hold-outs removed before anything is simulated."""
    return tf.model_copy(update={"targets": {n: t for n, t in tf.targets.items() if not t.holdout}})


def holdout_names(tf: TargetsFile) -> set[str]:
    return {n for n, t in tf.targets.items() if t.holdout}


def target_set(t: Target) -> str:
    """calibration, hold-out or monitor (what validate reports separately)."""
    return "monitor" if t.monitor_only else ("hold-out" if t.holdout else "calibration")


def load_targets(path, cfg=None) -> TargetsFile:
    """Validate a targets file (and, given a model config, that every target can be produced)."""
    tf = _load(TargetsFile, path)
    if cfg is not None:
        for name, t in tf.targets.items():
            for key, msg, value, allowed in t.check_against(cfg):
                raise ConfigError(f"{msg} (the model cannot produce this target)", file=str(path),
                                  key=f"targets.{name}.{key}", value=value, allowed=allowed)
    return tf


def load_params(path, cfg, targets: TargetsFile, holdouts: set[str] = frozenset()
                ) -> tuple[ParamsFile, dict[str, tuple[float, float]]]:
    """Validate a PARAMS file against the model and targets; returns it and the search ranges.

    ``holdouts``: names of hold-out targets (already removed from ``targets``): naming one is an error."""
    pf = _load(ParamsFile, path)
    data = cfg.model_dump(by_alias=True)
    ranges = {}
    for dotted, fp in pf.parameters.items():
        key = f"parameters.{dotted}"
        value, (lo, hi) = check_param(data, dotted, str(path), key)
        if fp.range is not None:
            if fp.range[0] < lo or fp.range[1] > hi:
                raise ConfigError("search range leaves the parameter's uncertainty range", file=str(path),
                                  key=f"{key}.range", value=list(fp.range), allowed=f"inside [{lo}, {hi}]")
            lo, hi = fp.range
        if not lo < hi:
            raise ConfigError("the parameter's range is a single value: nothing to fit", file=str(path),
                              key=key, value=[lo, hi], allowed="a parameter with low < high")
        if fp.log and lo <= 0:
            raise ConfigError("a log-scale search needs a positive range", file=str(path),
                              key=f"{key}.log", value=[lo, hi], allowed="low > 0")
        ranges[dotted] = (lo, hi)
    for i, name in enumerate(pf.targets or []):
        if name in holdouts:
            raise ConfigError("a hold-out target is never fitted", file=str(path), key=f"targets[{i}]",
                              value=name, allowed="targets without `holdout: true`: " + ", ".join(targets.targets))
        if name not in targets.targets:
            raise ConfigError("unknown target", file=str(path), key=f"targets[{i}]", value=name,
                              allowed=", ".join(targets.targets))
    names = pf.targets or [n for n, t in targets.targets.items() if not t.monitor_only]
    if not any(targets.targets[n].weight > 0 for n in names):
        raise ConfigError("no target to fit: every target named is monitor_only or has weight 0",
                          file=str(path), key="targets", value=names or None,
                          allowed="at least one target with weight > 0 (not monitor_only unless named here), "
                                  "of " + ", ".join(targets.targets))
    return pf, ranges
