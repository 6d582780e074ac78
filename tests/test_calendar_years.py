"""Targets compared in their own calendar years (`calendar_years`, issue 13).

A births target for 2022 reads 2022 of the simulated history (a burn-in year, following SSB's
registered series: 51,480 live births), not the policy window's projection (~56,700 a year in
2025-2029). Births are drawn by stochastic rounding of the expected count: at scale 0.005 about
257 simulated births a year, so the year's total is within ~1 birth (0.4%) of the expectation;
the tolerance is 1%.
"""

from __future__ import annotations

import pytest

from utenforsk.calibration.metrics import MetricSpec, Probe, probed_model
from utenforsk.config.loader import load_model_config
from utenforsk.model import resolve_config


def test_births_in_a_burn_in_year_follow_the_series(baseline_path):
    cfg = resolve_config(load_model_config(baseline_path), 0.005, None, horizon_years=1)
    specs = [MetricSpec(metric="births_per_year", calendar_years=(2022, 2022)),
             MetricSpec(metric="births_per_year")]
    probe = Probe(specs, cfg)
    probed_model(cfg, probe, seed=3).run_model()
    in_2022, window = probe.values()
    assert in_2022 == pytest.approx(51480, rel=0.01)
    assert window > in_2022 + 2000  # the projection path of 2025, not 2022


def test_calendar_years_outside_the_simulation_are_refused(baseline_path):
    cfg = load_model_config(baseline_path)
    first = cfg.calendar.start_year - cfg.calendar.burn_in_years
    spec = MetricSpec(metric="births_per_year", calendar_years=(first - 1, first))
    problems = spec.check_against(cfg)
    assert problems and problems[0][0] == "calendar_years"
    with pytest.raises(ValueError):
        MetricSpec(metric="births_per_year", calendar_years=(2020, 2019))
