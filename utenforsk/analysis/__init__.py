"""Analysis of experiment results (tables only; nothing here runs a simulation).

Input is the long ``runs`` table written by the experiment runner: columns ``scenario``,
``replicate``, ``metric``, ``value``. Replicate *r* of every scenario used the same seed (common
random numbers), so every comparison is paired by replicate.
"""

from utenforsk.analysis.economics import (Valuation, acceptability, discount_factors, economics,
                                          economics_by_replicate, ledger)
from utenforsk.analysis.ledger import load_costs
from utenforsk.analysis.effects import paired_effects
from utenforsk.analysis.hypotheses import Hypothesis, evaluate, validate_hypotheses

__all__ = ["Hypothesis", "Valuation", "acceptability", "discount_factors", "economics",
           "economics_by_replicate", "evaluate", "ledger", "load_costs", "paired_effects",
           "validate_hypotheses"]
