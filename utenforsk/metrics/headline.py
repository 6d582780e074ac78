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


def share(age_state: np.ndarray, states_mask: np.ndarray, a0: int, a1: int) -> float:
    """Share of person-months at ages ``a0 .. a1-1`` spent in the masked states."""
    block = age_state[a0:a1]
    total = block.sum()
    return float(block[:, states_mask].sum() / total) if total else float("nan")


def state_masks(cfg, states: list[str]) -> dict[str, np.ndarray]:
    """Boolean masks over ``states``: NEET (reporting definition) and the roles outputs use.

    Computed once per model (``model.state_masks``)."""
    role = lambda r: np.array([cfg.states[s].role == r for s in states])  # noqa: E731
    return {"neet": np.array([cfg.is_neet(s) for s in states]), "health_benefit": role("health_benefit"),
            "kindergarten": role("kindergarten"), "upper_secondary": role("upper_secondary")}


def history_by_year(model) -> dict[int, list[dict]]:
    """The policy months' tallies grouped by calendar year, in order."""
    years: dict[int, list[dict]] = {}
    for month in model.history:
        years.setdefault(month["year"], []).append(month)
    return years


def rates(masks: dict[str, np.ndarray], age_state: np.ndarray) -> dict[str, float]:
    """Headline rates from person-months by age and state; ``masks`` as :func:`state_masks`."""
    out = {f"neet_rate_{k}": share(age_state, masks["neet"], *v) for k, v in AGE_GROUPS.items()}
    out["health_benefit_rate_18_29"] = share(age_state, masks["health_benefit"], 18, 30)
    out["kindergarten_coverage_1_2"] = share(age_state, masks["kindergarten"], 1, 3)
    out["kindergarten_coverage_3_5"] = share(age_state, masks["kindergarten"], 3, 6)
    return out


def monthly(model, month: dict) -> dict[str, float]:
    out = rates(model.state_masks, month["age_state"])
    out["population_0_29"] = float(month["age_state"].sum() / model.config.scale)
    return out
