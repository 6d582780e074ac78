"""Python plugins for what YAML cannot express, without touching the kernels.

A plugin subclasses :class:`Plugin` and is registered under a name, either with the
``@register`` decorator in code the user imports, or through the ``utenforsk.plugins``
entry-point group of an installed package. A scenario then lists ``{plugin: NAME, options: {...}}``
among its interventions. YAML only *names* a registered plugin: no code from a YAML file is run.

Hooks (all optional):

- ``modify_config(data) -> data``: change the model config (a plain dict) before it is compiled,
  e.g. add a transition or a covariate coefficient;
- ``before_month(model, year, month_of_year)``: adjust what the kernel and the service agents read
  this month (``model.dyn`` arrays, agents' capacities);
- ``monthly_cost(model, month_tallies) -> NOK``: programme cost this month, national.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from utenforsk.errors import ConfigError

REGISTRY: dict[str, type["Plugin"]] = {}


class Plugin:
    name: str = ""
    price_year: int = 2024

    def __init__(self, **options):
        self.options = options

    def modify_config(self, data: dict) -> dict:
        return data

    def before_month(self, model, year: int, month_of_year: int) -> None:
        return None

    def monthly_cost(self, model, month: dict) -> float:
        return 0.0


def register(cls: type[Plugin]) -> type[Plugin]:
    if not cls.name:
        raise ValueError("a plugin class needs a `name`")
    REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    for ep in entry_points(group="utenforsk.plugins"):
        if ep.name not in REGISTRY:
            register(ep.load())


def make_plugin(spec: dict, where: str | None = None) -> Plugin:
    """A plugin instance from ``{plugin: NAME, options: {...}}``."""
    unknown = set(spec) - {"plugin", "options"}
    if unknown:
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r} in a plugin entry", file=where,
                          allowed="plugin, options")
    name = spec["plugin"]
    if name not in REGISTRY:
        _discover()
    if name not in REGISTRY:
        raise ConfigError(f"unknown plugin {name!r}", file=where,
                          allowed=", ".join(sorted(REGISTRY)) or "none registered")
    try:
        return REGISTRY[name](**(spec.get("options") or {}))
    except TypeError as exc:
        raise ConfigError(f"bad options for plugin {name!r}: {exc}", file=where) from None
