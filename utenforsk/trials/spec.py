"""Load and check a trial spec: every reference resolved, the follow-up inside what the model can
simulate; bad input raises one ConfigError (exit 2 in the CLI)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from utenforsk.config.interventions import Intervention
from utenforsk.config.loader import load_model_config, validate
from utenforsk.config.schema import ModelConfig
from utenforsk.config.trial import TrialSpec
from utenforsk.errors import ConfigError
from utenforsk.interventions.engine import load_intervention
from utenforsk.interventions.slots import check_references

TRIALS = Path(__file__).resolve().parents[2] / "configs" / "trials"
MAX_HORIZON_YEARS = 80  # the model's calendar limit (config/schema.py)


@dataclass(frozen=True)
class Trial:
    spec: TrialSpec
    file: str
    model: ModelConfig
    treated: Intervention
    placebo: Intervention
    start_year: int
    horizon_years: int


def _intervention_dict(iv: Intervention, spec: TrialSpec, start_year: int, effects: bool) -> dict:
    data = iv.model_dump(mode="json", exclude_none=True)
    # enrolment needs the trial population's conditions; once enrolled, a person stays in the
    # programme while inside the intervention's own ages and states (sticky), as in the model. Only
    # people enrolled as the trial population are followed (run.py), so others the wider window
    # admits do not enter the trial (they act only through shared services).
    pop = spec.population
    who = pop.model_dump(mode="json", exclude_none=True)
    who["ages"] = [pop.ages[0], max(pop.ages[1], iv.who.ages[1])]
    if pop.states is None or iv.who.states is None:
        who.pop("states", None)
    else:
        who["states"] = list(dict.fromkeys(list(pop.states) + list(iv.who.states)))
    who["sticky"] = True
    data["who"] = who
    data["coverage"] = {"value": 1.0, "range": [1.0, 1.0], "source": "trial: everyone randomised is offered it"}
    data["take_up"] = {"value": spec.take_up, "range": [spec.take_up, spec.take_up], "source": "trial"}
    data["when"] = {"start_year": start_year, "ramp_up_years": 0.0,
                    **({"end_year": iv.when.end_year} if iv.when.end_year is not None else {})}
    if not effects:  # the placebo: same slot, same enrolment, no effect of any kind
        data["what"] = {}
    return data


def load_trial(path: Path | str) -> Trial:
    path = Path(path)
    file = str(path)
    if not path.exists():
        raise ConfigError("no such trial spec", file=file)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}".splitlines()[0], file=file) from None
    if not isinstance(raw, dict):
        raise ConfigError("a trial spec is a mapping", file=file, value=type(raw).__name__)
    spec = validate(TrialSpec, raw, file)
    model_path = (path.parent / spec.model).resolve()
    if not model_path.exists():
        raise ConfigError("model file not found", file=file, key="model", value=spec.model)
    cfg = load_model_config(model_path)
    iv = load_intervention(spec.intervention, where=file)
    o = spec.outcome
    states = list(cfg.states)
    for key, names in (("outcome.states", o.states), ("outcome.per_exposure_states", o.per_exposure_states)):
        for s in (names or []):
            if s not in states:
                raise ConfigError("unknown state", file=file, key=key, value=s, allowed=", ".join(states))
    if o.flag is not None and o.flag not in cfg.flags:
        raise ConfigError("unknown flag", file=file, key="outcome.flag", value=o.flag,
                          allowed=", ".join(cfg.flags))
    if o.trait is not None:
        cts = [n for n, t in cfg.traits.items() if t.kind == "continuous"]
        if o.trait not in cts:
            raise ConfigError("unknown continuous trait", file=file, key="outcome.trait", value=o.trait,
                              allowed=", ".join(cts))
    if spec.published.measure == "odds_ratio" and o.kind not in ("ever_in_states", "in_states", "flag"):
        raise ConfigError("an odds ratio needs a yes/no outcome", file=file, key="published.measure",
                          value=o.kind, allowed="ever_in_states, in_states, flag")
    if o.per_exposure_states and spec.published.measure != "difference":
        raise ConfigError("an effect per participant is a difference", file=file, key="published.measure",
                          value=spec.published.measure, allowed="difference")
    start = spec.enrolment.start_year or cfg.calendar.start_year

    lo_age = spec.population.ages[0]
    if o.at_age is not None:
        if o.at_age <= lo_age:
            raise ConfigError("the follow-up age is not after enrolment", file=file, key="outcome.at_age",
                              value=o.at_age, allowed=f"an age above the population's lowest age {lo_age:g}")
        follow = int(math.ceil((o.at_age - lo_age) * 12)) + 1
    else:
        follow = o.months
        if lo_age * 12 + follow > 360:
            raise ConfigError("follow-up beyond the horizon: everyone leaves the model at 30, so no one "
                              "enrolled can be followed that long", file=file, key="outcome.months",
                              value=follow, allowed=f"at most {int(360 - lo_age * 12)} months for ages from {lo_age:g}")
    horizon = int(math.ceil((spec.enrolment.months + follow) / 12))
    if horizon > MAX_HORIZON_YEARS:
        raise ConfigError("follow-up beyond the horizon", file=file, key="outcome",
                          value=f"{horizon} years", allowed=f"at most {MAX_HORIZON_YEARS} years of enrolment and follow-up")
    treated = validate(Intervention, _intervention_dict(iv, spec, start, True), file)
    placebo = validate(Intervention, _intervention_dict(iv, spec, start, False), file)
    check_references(cfg, treated, file)
    return Trial(spec, file, cfg, treated, placebo, start, horizon)


def all_trials(directory: Path = TRIALS) -> list[Path]:
    paths = sorted(Path(directory).glob("*.yaml"))
    if not paths:
        raise ConfigError("no trial specs", file=str(directory))
    return paths
