"""Random numbers as a pure function of (seed, decision, person, month).

A splitmix64 finaliser mixes the four counters, so a person meets the same dice in every scenario
(common random numbers), results do not depend on thread count or sharding, and no generator
state is carried. ``person_month_key`` is mixed once per person and month; each decision then
costs one more mix.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from utenforsk.config.schema import LIMITS  # noqa: F401 - read as rng.LIMITS
from utenforsk.core.month import DECISIONS, SERVICE_DRAWS  # noqa: F401 - re-exported

M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
P_PERSON = np.uint64(0xD6E8FEB86659FD93)
P_MONTH = np.uint64(0xA0761D6478BD642F)
INV53 = 1.0 / 9007199254740992.0  # 2**-53
SHIFT30, SHIFT27, SHIFT31, SHIFT11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
MASK16 = np.uint64(0xFFFF)

# ---- decision codes ---------------------------------------------------------------------------
#: every random decision of a person's month is declared once, by the component that makes it
#: (utenforsk/core/month.py): ``DECISIONS`` = (name, number of codes) in registry order. Codes
#: are assigned consecutively from 1 in that order, so blocks are disjoint by construction
#: (asserted below); a block sized by a schema limit (LIMITS) grows with it. Programme enrolment
#: draws are keyed by a hash of the intervention's name instead (:func:`programme_decision`),
#: above every declared code.


def _bases(decls) -> dict[str, int]:
    out, nxt = {}, 1
    for name, size in decls:
        out[name] = nxt
        nxt += size
    return out


BASE = _bases(DECISIONS)
#: programme enrolment decisions: the top bit set, so no declared code can reach them
PROGRAMME_BIT = 1 << 63


def check_disjoint(decls, bases: dict[str, int]) -> None:
    """Raise AssertionError unless the blocks ``bases[name] .. + size`` are disjoint, start at
    1 or above, stay below the programme block, and each name is declared once."""
    codes = [bases[n] + j for n, size in decls for j in range(size)]
    assert len({n for n, _ in decls}) == len(decls), "a decision is declared twice"
    assert len(set(codes)) == len(codes) and min(codes) >= 1, "decision blocks overlap"
    assert max(codes) < PROGRAMME_BIT, "declared decisions reach the programme block"


check_disjoint(DECISIONS, BASE)

D_EXIT, D_EXIT_WHICH, D_TRANSITION = BASE["exit"], BASE["exit_which"], BASE["transition"]
D_DESTINATION, D_GATE, D_SCHEDULED = BASE["destination"], BASE["gate"], BASE["scheduled"]
D_BIRTHS, D_ARRIVALS, D_ARRIVAL_AGE = BASE["births"], BASE["arrivals"], BASE["arrival_age"]
D_ARRIVAL_STATE, D_ARRIVAL_DONOR = BASE["arrival_state"], BASE["arrival_donor"]
D_ARRIVAL_FLAG, D_ARRIVAL_BTRAIT = BASE["arrival_flag"], BASE["arrival_btrait"]
D_TRAIT, D_BTRAIT = BASE["trait_noise"], BASE["btrait_change"]   # + trait index
D_TRAIT_INIT, D_BTRAIT_INIT = BASE["trait_init"], BASE["btrait_init"]  # + trait index
D_ATTRIBUTE = BASE["attribute"]  # + attribute index
D_SERVICE = BASE["service"]      # + SERVICE_DRAWS * service index + {0: admit, 1: detect, 2: discharge}
D_HANDOFF = BASE["handoff"]      # + handoff index
D_KOMMUNE = BASE["kommune"]


def decision_name(code: int) -> str:
    """The declared decision a code belongs to, e.g. ``service9`` (for generated source)."""
    for name, size in DECISIONS:
        if BASE[name] <= code < BASE[name] + size:
            return name if size == 1 else f"{name}{code - BASE[name]}"
    return "programme" if code >= PROGRAMME_BIT else f"decision{code}"


def programme_decision(h: int) -> int:
    """The decision code of a programme's enrolment draw, from a 64-bit hash ``h`` of its name."""
    return PROGRAMME_BIT | (int(h) & (PROGRAMME_BIT - 1))


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
