"""Parameters named by dotted path, spelt as in docs/model.md's parameter table.

``transitions.kindergarten_entry.age_profile.3`` or ``traits.engagement.dynamics[0].rate`` name a
:class:`~utenforsk.config.params.Param`; setting one changes its ``value`` in a dump of the config,
which is then validated again (so a value the field does not allow is a ConfigError).

Intervention parameters (for sensitivity analysis) are named
``interventions.NAME.what.handoffs.school_to_ot_at_dropout.probability``: ``NAME`` is an
intervention of the experiment's scenarios, the rest a path inside its YAML.
"""

from __future__ import annotations

import copy
from typing import Any

from utenforsk.config.loader import PARAM_KEYS, _child, validate
from utenforsk.errors import ConfigError

def split_path(dotted: str) -> list:
    """``a.b[0].c`` -> ``["a", "b", 0, "c"]``."""
    out: list = []
    for part in dotted.split("."):
        head, *idx = part.split("[")
        if head:
            out.append(head)
        for i in idx:
            out.append(int(i.rstrip("]")))
    return out


def param_node(data: dict, dotted: str) -> dict | None:
    """The Param mapping at ``dotted`` in a config dump, or None."""
    node: Any = data
    for part in split_path(dotted):
        ok, key = _child(node, part)
        if not ok:
            return None
        node = node[key]
    return node if isinstance(node, dict) and PARAM_KEYS <= set(node) else None


def set_values(data: dict, values: dict[str, float]) -> dict:
    """A deep copy of ``data`` with each named Param's value replaced."""
    data = copy.deepcopy(data)
    for dotted, v in values.items():
        node = param_node(data, dotted)
        if node is None:
            raise ConfigError("not the dotted path of a parameter", key=dotted,
                              allowed="a path from docs/model.md's parameter table, e.g. "
                                      "transitions.job_finding.probability")
        node["value"] = float(v)
        lo, hi = node["range"]
        node["range"] = [min(lo, float(v)), max(hi, float(v))]  # a value may leave the range only if asked
    return data


def apply_model_values(cfg, values: dict[str, float], where: str = "<parameters>"):
    """A validated ModelConfig with the named parameters set."""
    from utenforsk.config.schema import ModelConfig

    if not values:
        return cfg
    data = cfg.model_dump(by_alias=True, exclude_none=True)
    return validate(ModelConfig, set_values(data, values), where)


def check_param(data: dict, dotted: str, file: str, key: str) -> tuple[float, tuple[float, float]]:
    """(value, range) of a named parameter, or a ConfigError naming ``file`` and ``key``."""
    if dotted.startswith("attributes.") or ".age_shares" in dotted:
        raise ConfigError("shares must sum to 1, so one cannot be varied on its own", file=file,
                          key=key, value=dotted, allowed="a hazard, coefficient, trait, service or handoff parameter")
    node = param_node(data, dotted)
    if node is None:
        raise ConfigError("not the dotted path of a parameter in the model", file=file, key=key,
                          value=dotted, allowed="a path from docs/model.md's parameter table, e.g. "
                                                "transitions.job_finding.probability")
    return float(node["value"]), (float(node["range"][0]), float(node["range"][1]))
