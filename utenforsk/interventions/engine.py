"""The intervention engine: resolve, compile into the model, and schedule.

Interventions never touch a kernel. Their effects become data:

- ``odds`` / ``outcome_odds`` / ``trait_target`` become coefficients on the covariate
  ``programme:NAME`` (log odds ratio, or SD shift) added to the model config before compiling;
- ``trait_shift`` and the *who* conditions become the kernel's programme tables (enrolment);
- ``services`` / ``handoffs`` changes are applied each month to the arrays the service agents and
  the kernel read, weighted by the programme's current coverage, in the covered municipalities.

So a coverage of 0 leaves every number the kernel sees unchanged, and outputs are bit-for-bit those
of the baseline.
"""

from __future__ import annotations

import math
from pathlib import Path

from utenforsk.config.interventions import Intervention
from utenforsk.config.params import Param
from utenforsk.config.schema import ContinuousTrait, ModelConfig
from utenforsk.errors import ConfigError

LIBRARY = Path(__file__).resolve().parents[2] / "configs" / "interventions"


def load_intervention(ref, library: Path | None = None, where: str | None = None) -> Intervention:
    """An Intervention from a library name, a YAML path, a dict (inline) or an Intervention."""
    from utenforsk.config.loader import compose, validate

    if isinstance(ref, Intervention):
        return ref
    if isinstance(ref, dict):
        return validate(Intervention, ref, where or "<inline intervention>")
    if not isinstance(ref, (str, Path)):
        raise ConfigError("an intervention is a library name, a file path or a mapping", value=ref, file=where)
    lib = library or LIBRARY
    path = Path(ref)
    if path.suffix not in (".yaml", ".yml"):
        path = lib / f"{ref}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in lib.glob("*.yaml"))
            raise ConfigError(f"unknown intervention {str(ref)!r}", file=where,
                              allowed=", ".join(known) or "none in the library")
    origin: dict = {}
    return validate(Intervention, compose(path, origin), str(path), origin)


def is_plugin_ref(ref) -> bool:
    return isinstance(ref, dict) and "plugin" in ref


def resolve_scenario(cfg: ModelConfig, refs: list, where: str | None = None):
    """Split a scenario's intervention list into YAML interventions and plugins, and apply the
    plugins' config changes: returns ``(config, interventions, plugins)``."""
    from utenforsk.config.loader import validate
    from utenforsk.interventions.registry import make_plugin

    plugins = [make_plugin(r, where=where) for r in refs if is_plugin_ref(r)]
    interventions = [load_intervention(r, where=where) for r in refs if not is_plugin_ref(r)]
    if plugins:
        data = cfg.model_dump(by_alias=True, exclude_none=True)
        for plugin in plugins:
            data = plugin.modify_config(data)
        cfg = validate(ModelConfig, data, where or "<plugins>")
    return cfg, interventions, plugins


def _log_param(p: Param, what: str) -> Param:
    if p.range[0] <= 0:
        raise ConfigError("an odds ratio must be > 0 over its whole range", key=what,
                          value=list(p.range), allowed="a range of positive numbers")
    return Param(value=math.log(p.value), range=(math.log(p.range[0]), math.log(p.range[1])),
                 source=p.source, unit="log odds ratio", note=f"log of the odds ratio {p.value}")


def apply_to_config(cfg: ModelConfig, interventions: list[Intervention]) -> ModelConfig:
    """The model config with every intervention's effects as ``programme:NAME`` coefficients."""
    if not interventions:
        return cfg
    data = cfg.model_dump(by_alias=True, exclude_none=True)
    names = [iv.name for iv in interventions]
    if len(set(names)) != len(names):
        raise ConfigError("two interventions in one scenario share a name", value=names)
    for iv in interventions:
        cov, where = f"programme:{iv.name}", f"interventions.{iv.name}"
        _check_references(cfg, iv, where)
        for tr, oratio in iv.what.odds.items():
            data["transitions"][tr].setdefault("coefficients", {})[cov] = _dump(_log_param(oratio, f"{where}.what.odds.{tr}"))
        for ev, outcomes in iv.what.outcome_odds.items():
            for dest, oratio in outcomes.items():
                d = data["scheduled"][ev]["to"][dest]
                d.setdefault("coefficients", {})[cov] = _dump(_log_param(oratio, f"{where}.what.outcome_odds.{ev}.{dest}"))
        for trait, shift in iv.what.trait_target.items():
            for dyn in data["traits"][trait].get("dynamics", []):
                dyn.setdefault("target", {}).setdefault("coefficients", {})[cov] = _dump(shift)
    return ModelConfig.model_validate(data)


def _dump(p: Param) -> dict:
    return p.model_dump(exclude_none=True)


def _check_references(cfg: ModelConfig, iv: Intervention, where: str) -> None:
    def need(kind, name, pool, key):
        if name not in pool:
            raise ConfigError(f"unknown {kind} {name!r}", key=key, allowed=", ".join(pool))

    w = iv.who
    for s in w.states or []:
        need("state", s, list(cfg.states), f"{where}.who.states")
    for attr, cats in w.attributes.items():
        need("attribute", attr, list(cfg.attributes), f"{where}.who.attributes")
        for c in cats:
            need("category", c, cfg.attributes[attr].categories, f"{where}.who.attributes.{attr}")
    for cond in w.traits:
        need("trait", cond.trait, list(cfg.traits), f"{where}.who.traits")
    for tr in iv.what.odds:
        need("transition", tr, list(cfg.transitions), f"{where}.what.odds")
    for ev, outcomes in iv.what.outcome_odds.items():
        need("scheduled event", ev, list(cfg.scheduled), f"{where}.what.outcome_odds")
        for dest in outcomes:
            need("outcome", dest, list(cfg.scheduled[ev].to), f"{where}.what.outcome_odds.{ev}")
    for trait in list(iv.what.trait_target) + list(iv.what.trait_shift):
        need("trait", trait, list(cfg.traits), f"{where}.what")
        if not isinstance(cfg.traits[trait], ContinuousTrait):
            raise ConfigError("only continuous traits can be shifted", key=f"{where}.what", value=trait)
    for s in iv.what.services:
        need("service", s, list(cfg.services), f"{where}.what.services")
    for h in iv.what.handoffs:
        need("handoff", h, list(cfg.handoffs), f"{where}.what.handoffs")


def coverage(iv: Intervention, year: int, month_of_year: int) -> float:
    """Share of the eligible enrolled this month: coverage x take-up, ramped up, 0 when inactive."""
    w = iv.when
    if year < w.start_year or (w.end_year is not None and year > w.end_year):
        return 0.0
    full = iv.coverage.value * iv.take_up.value
    if w.ramp_up_years <= 0:
        return full
    months_in = (year - w.start_year) * 12 + month_of_year + 1
    return full * min(1.0, months_in / (12.0 * w.ramp_up_years))


def covered_municipalities(iv: Intervention, municipalities: list[str]) -> list[int]:
    allowed = iv.who.attributes.get("municipality")
    return [m for m, name in enumerate(municipalities) if allowed is None or name in allowed]
