"""Period metrics from age x state counts: NEET rates, benefit rates, kindergarten coverage.

All take ``age_state`` (ages 0-29 in whole years x states, counts of person-months) and the model
for the state definitions, so they work for one month or summed over a year alike.
"""

from __future__ import annotations

import numpy as np

MONTHLY_METRICS = ("neet_rate_15_29", "neet_rate_15_19", "neet_rate_20_24", "neet_rate_25_29",
                   "health_benefit_rate_18_29", "kindergarten_coverage_1_2",
                   "kindergarten_coverage_3_5", "population_0_29")
AGE_GROUPS = {"15_29": (15, 30), "15_19": (15, 20), "20_24": (20, 25), "25_29": (25, 30)}


def _share(age_state: np.ndarray, states_mask: np.ndarray, a0: int, a1: int) -> float:
    block = age_state[a0:a1]
    total = block.sum()
    return float(block[:, states_mask].sum() / total) if total else float("nan")


def state_masks(model) -> dict[str, np.ndarray]:
    cfg, states = model.config, model.compiled.states
    role = lambda r: np.array([cfg.states[s].role == r for s in states])  # noqa: E731
    return {"neet": np.array([cfg.is_neet(s) for s in states]),
            "health_benefit": role("health_benefit"), "kindergarten": role("kindergarten")}


def rates(model, age_state: np.ndarray) -> dict[str, float]:
    masks = state_masks(model)
    out = {f"neet_rate_{k}": _share(age_state, masks["neet"], *v) for k, v in AGE_GROUPS.items()}
    out["health_benefit_rate_18_29"] = _share(age_state, masks["health_benefit"], 18, 30)
    out["kindergarten_coverage_1_2"] = _share(age_state, masks["kindergarten"], 1, 3)
    out["kindergarten_coverage_3_5"] = _share(age_state, masks["kindergarten"], 3, 6)
    return out


def monthly(model, month: dict) -> dict[str, float]:
    out = rates(model, month["age_state"])
    out["population_0_29"] = float(month["age_state"].sum() / model.config.scale)
    return out
