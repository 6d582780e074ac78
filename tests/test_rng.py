"""Random-number decision codes are derived from one declaration and checked disjoint."""

from __future__ import annotations

import subprocess
import sys

import pytest

from utenforsk.config.schema import LIMITS
from utenforsk.core import rng
from utenforsk.interventions.slots import enrolment_decision


def test_declared_blocks_are_disjoint_and_sized_by_the_limits():
    rng.check_disjoint(rng.DECISIONS, rng.BASE)
    size = dict(rng.DECISIONS)
    assert size["trait_noise"] == LIMITS["continuous_traits"]
    assert size["service"] == rng.SERVICE_DRAWS * LIMITS["services"]
    assert size["handoff"] == LIMITS["handoffs"]
    assert rng.D_SERVICE + rng.SERVICE_DRAWS * LIMITS["services"] <= rng.D_HANDOFF


def test_an_overlap_is_caught():
    decls = (("a", 2), ("b", 1))
    with pytest.raises(AssertionError, match="overlap"):
        rng.check_disjoint(decls, {"a": 1, "b": 2})  # b's code 2 is a's second code
    with pytest.raises(AssertionError, match="twice"):
        rng.check_disjoint((("a", 1), ("a", 1)), {"a": 1})


def test_enrolment_decisions_are_stable_distinct_and_above_the_declared_codes():
    a, b = enrolment_decision("ips_youth"), enrolment_decision("nav_youth_guarantee")
    assert a != b and a >= rng.PROGRAMME_BIT and b >= rng.PROGRAMME_BIT
    # the same in another process (Python's own str hash is salted per process; this is not)
    out = subprocess.run([sys.executable, "-c", "from utenforsk.interventions.slots import "
                          "enrolment_decision as e; print(e('ips_youth'))"],
                         capture_output=True, text=True, check=True)
    assert int(out.stdout) == a
