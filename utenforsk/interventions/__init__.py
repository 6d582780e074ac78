"""Interventions: YAML (configs/interventions/) or Python plugins; see engine.py and slots.py."""

from utenforsk.interventions.engine import coverage, load_intervention
from utenforsk.interventions.slots import programme_slots

__all__ = ["coverage", "load_intervention", "programme_slots"]
