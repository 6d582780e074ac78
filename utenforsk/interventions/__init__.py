"""Interventions as data (YAML), compiled into the model without touching the kernels."""

from utenforsk.interventions.engine import apply_to_config, coverage, load_intervention

__all__ = ["apply_to_config", "coverage", "load_intervention"]
