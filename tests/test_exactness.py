"""The engine against an exact answer: a constant-hazard multi-state model (no covariates,
one age window) must reproduce the Markov-chain occupancy computed by matrix products."""

from __future__ import annotations

import math

import numpy as np
import pytest

from utenforsk.config.loader import load_model_config
from utenforsk.core.tables import months
from utenforsk.model import UtenforskModel
from utenforsk.outputs import snapshot

from conftest import MARKOV


def monthly_matrix(cfg, age_months: int) -> np.ndarray:
    """P[i, j] for one month at this age: competing hazards as rates, as the kernel resolves them."""
    states = list(cfg.states)
    n = len(states)
    rates = np.zeros((n, n))
    for t in cfg.transitions.values():
        if not months(t.ages[0]) <= age_months < months(t.ages[1]):
            continue
        for f in t.from_:
            rates[states.index(f), states.index(t.to)] += -math.log1p(-t.probability.value)
    P = np.zeros((n, n))
    for i in range(n):
        total = rates[i].sum()
        leave = -math.expm1(-total)
        if total > 0:
            P[i] = leave * rates[i] / total
        P[i, i] = 1.0 - leave
    return P


def exact_occupancy(cfg, max_age_months: int) -> np.ndarray:
    """occ[a, s]: probability of being in state s at the end of the month in which age is a."""
    n = len(cfg.states)
    v = np.zeros(n)
    v[list(cfg.states).index(cfg.population.birth_state)] = 1.0
    occ = np.zeros((max_age_months, n))
    for a in range(max_age_months):
        v = v @ monthly_matrix(cfg, a)
        occ[a] = v
    return occ


@pytest.fixture(scope="module")
def simulated():
    model = UtenforskModel(MARKOV, seed=2024)
    model.run_model()
    snap = snapshot(model)
    age_m = (model.month - 1) - model.pop.birth[model.alive_slots()].astype(np.int64)
    return age_m, snap["state"].cat.codes.to_numpy()


def worst_z(simulated, exact, n_states) -> float:
    """Largest standardised deviation of simulated state counts from ``exact`` occupancies."""
    age_m, codes = simulated
    worst = 0.0
    # pool single months of age into years: counts are sums of independent Bernoulli trials
    # (different people), so the variance of a pooled count is sum_a n_a p_a (1 - p_a)
    for year in range(30):
        sel = (age_m >= 12 * year) & (age_m < 12 * year + 12)
        n_a = np.bincount(age_m[sel] - 12 * year, minlength=12)
        p = exact[12 * year: 12 * year + 12]
        for s in range(n_states):
            observed = np.sum(codes[sel] == s)
            expected = np.sum(n_a * p[:, s])
            sd = math.sqrt(np.sum(n_a * p[:, s] * (1 - p[:, s])))
            if sd > 0:
                worst = max(worst, abs(observed - expected) / sd)
    return worst


def test_constant_hazards_match_markov_chain(simulated):
    cfg = load_model_config(MARKOV)
    worst = worst_z(simulated, exact_occupancy(cfg, 360), len(cfg.states))
    # 90 cells (30 ages x 3 states); |z| < 4.5 for all has a family-wise false-alarm probability
    # below 0.1% under the null, while a wrong competing-risk rule (e.g. applying hazards one
    # after the other) shifts the middle ages by tens of standard errors at ~1,000 people/month.
    assert worst < 4.5, f"largest standardised deviation from the Markov chain: {worst:.2f}"


def test_a_wrong_chain_is_rejected(simulated):
    """The same simulation against a *wrong* exact answer (the age window dropped) fails the
    check by a wide margin: the test has power against a mistake of this size."""
    from utenforsk.config.schema import ModelConfig

    cfg = load_model_config(MARKOV)
    data = cfg.model_dump(by_alias=True, exclude_none=True)
    data["transitions"]["b_to_c"]["ages"] = [0, 30]
    wrong = exact_occupancy(ModelConfig.model_validate(data), 360)
    assert worst_z(simulated, wrong, len(cfg.states)) > 10
