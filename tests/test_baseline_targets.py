"""The Norway baseline lands on its calibration targets (policy-horizon means, scale 0.02).

Target bands are those of the core-engine issue, from ../shared/EVIDENCE.md. Monte Carlo error of a
20-year horizon mean at scale 0.02 (~20,000 simulated people aged 15-29 each month, correlated over
a few years) is about 0.1-0.2 percentage points; the bands are 3-12 points wide, so a fixed seed
landing inside them is a real check of the calibration, not of luck. Two seeds guard against a
calibration that only fits one draw.
"""

from __future__ import annotations

import pytest

from utenforsk.model import UtenforskModel
from utenforsk.outputs import cohorts, periods

TARGETS = {  # metric: (low, high, source)
    "neet_rate_15_29": (0.085, 0.115, "SSB register NEET 15-29: 9.5-11.0% (2019-2022)"),
    "kindergarten_coverage_1_2": (0.80, 0.92, "SSB table 414919: 84-88% at ages 1-2"),
    "kindergarten_coverage_3_5": (0.94, 0.995, "SSB: 97% at ages 3-5"),
    "health_benefit_rate_18_29": (0.03, 0.08, "NAV: AAP 3.4% (2015) + disability 1.7% (2016) of 18-29"),
}
COMPLETION = (0.76, 0.86, "SSB/Udir: ~80-82% complete within 5-6 years")


@pytest.fixture(scope="module", params=[1, 2])
def baseline(request, baseline_path):
    model = UtenforskModel(baseline_path, seed=request.param, scale=0.02)
    model.run_model()
    return periods(model), cohorts(model)


@pytest.mark.parametrize("metric", list(TARGETS))
def test_period_target(baseline, metric):
    low, high, source = TARGETS[metric]
    value = baseline[0][metric].mean()
    assert low <= value <= high, f"{metric} = {value:.4f}, target [{low}, {high}] ({source})"


def test_upper_secondary_completion_target(baseline):
    low, high, source = COMPLETION
    observed = baseline[1]["upper_secondary_completion_5y"].dropna()
    # cohorts that complete (or not) within the policy horizon
    value = observed[-20:].mean()
    assert len(observed) >= 10
    assert low <= value <= high, f"completion {value:.4f}, target [{low}, {high}] ({source})"
