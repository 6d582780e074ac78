"""The intervention engine: resolve and schedule.

Interventions never touch a kernel, nor the model's structure. Their effects are values:

- *who*, the enrolment draw, ``trait_shift``, ``odds``, ``outcome_odds`` and ``trait_target`` fill
  one of the model's programme slots (utenforsk/interventions/slots.py), read by the one compiled
  kernel of the model;
- ``services`` / ``handoffs`` changes are applied each month to the arrays the service agents and
  the kernel read, weighted by the programme's current coverage, in the covered municipalities.

So a coverage of 0 leaves every number the kernel sees unchanged, and outputs are bit-for-bit those
of the baseline.
"""

from __future__ import annotations

from pathlib import Path

from utenforsk.config.interventions import Intervention
from utenforsk.config.schema import ModelConfig
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


def covered_kommuner(iv: Intervention, where: str | None = None):
    """Rows (in configs/norway/data/municipalities.csv) of the real municipalities an intervention
    enrols in (``who.municipalities``), or None when it is not restricted to named ones. Unknown
    or ambiguous names raise ConfigError (exit 2) with the closest matches. Each row once, in the
    order first named."""
    if not iv.who.municipalities:
        return None
    key = (iv.name, tuple(iv.who.municipalities))
    if key not in _RESOLVED:
        from utenforsk.pilots import municipalities as km

        rows = km.load().resolve(iv.who.municipalities, file=where,
                                 key=f"interventions.{iv.name}.who.municipalities")
        # each once: a municipality named twice ("Oslo" and "0301") is covered, and costed, once
        _RESOLVED[key] = list(dict.fromkeys(rows))
    return _RESOLVED[key]


_RESOLVED: dict[tuple, list[int]] = {}


def population_share(iv: Intervention) -> float:
    """Share of the national population 0-29 (data file) living where the intervention enrols:
    1 unless ``who.municipalities`` names some. A pilot's fixed, staff and capacity costs scale
    with it (their national figures are for national coverage)."""
    rows = covered_kommuner(iv)
    if rows is None:
        return 1.0
    from utenforsk.pilots import municipalities as km

    pop = km.load().table.population_0_29.to_numpy()
    return float(pop[rows].sum() / pop.sum())
