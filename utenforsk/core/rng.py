"""Random numbers as a pure function of (seed, decision, person, month).

A splitmix64 finaliser mixes the four counters, so a person meets the same dice in every scenario
(common random numbers), results do not depend on thread count or sharding, and no generator
state is carried. ``person_month_key`` is mixed once per person and month; each decision then
costs one more mix.
"""

from __future__ import annotations

import numpy as np
from numba import njit

M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
P_PERSON = np.uint64(0xD6E8FEB86659FD93)
P_MONTH = np.uint64(0xA0761D6478BD642F)
INV53 = 1.0 / 9007199254740992.0  # 2**-53
SHIFT30, SHIFT27, SHIFT31, SHIFT11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
MASK16 = np.uint64(0xFFFF)

# decision codes: every random decision in the model has its own stream
D_EXIT = 1
D_TRANSITION = 2
D_DESTINATION = 3
D_SCHEDULED = 4
D_BIRTHS = 5
D_ARRIVALS = 6
D_ARRIVAL_AGE = 7
D_ARRIVAL_STATE = 8
D_HANDOFF = 9
D_GATE = 10
D_EXIT_WHICH = 11
# blocks below are disjoint given the schema's caps: 16 continuous traits, 8 binary traits,
# 32 attributes, 8 services, 16 programmes; handoffs use D_HANDOFF * 64 + h (>= 576)
D_TRAIT = 16      # + continuous trait index (noise); binary onset/recovery at D_TRAIT + 16 + b
D_TRAIT_INIT = 48  # + continuous trait index
D_BTRAIT_INIT = 64  # + binary trait index
D_ATTRIBUTE = 80   # + attribute index
D_SERVICE = 112    # + 4 * service index + {0: admit, 1: detect, 2: discharge}
D_PROGRAMME = 160  # + programme index (interventions)


@njit(cache=True, inline="always")
def mix(z):
    z = (z ^ (z >> SHIFT30)) * M1
    z = (z ^ (z >> SHIFT27)) * M2
    return z ^ (z >> SHIFT31)


@njit(cache=True, inline="always")
def person_month_key(seed_key, person, month):
    """Key for all of one person's draws in one month; ``seed_key = mix(seed)``."""
    return mix(seed_key ^ (np.uint64(person) * P_PERSON) ^ (np.uint64(month + 100000) * P_MONTH))


@njit(cache=True, inline="always")
def uniform(key, decision):
    """U[0, 1) for one decision, 53 bits."""
    return float(mix(key + np.uint64(decision) * GOLDEN) >> SHIFT11) * INV53


@njit(cache=True, inline="always")
def normal(key, decision):
    """Approximately N(0, 1): the sum of four 16-bit uniforms (Irwin-Hall), rescaled.

    One hash instead of the log/sqrt/cos of Box-Muller; tails are cut at +-3.46 SD, which is
    harmless for monthly trait noise (documented in docs/model.md).
    """
    h = mix(key + np.uint64(decision) * GOLDEN)
    s = float(h & MASK16) + float((h >> np.uint64(16)) & MASK16) \
        + float((h >> np.uint64(32)) & MASK16) + float(h >> np.uint64(48))
    return (s / 65536.0 - 2.0) * 1.7320508075688772


def seed_key(seed: int) -> np.uint64:
    """The per-run key mixed into every draw (always a numpy uint64, so the kernels type it so)."""
    return np.uint64(mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ np.uint64(0x5DEECE66D)))
