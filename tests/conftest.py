"""Shared fixtures. Models are small (scale 0.002-0.005) except the calibration-target test."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "configs" / "norway" / "baseline.yaml"
MARKOV = ROOT / "tests" / "configs" / "markov.yaml"


@pytest.fixture(scope="session")
def baseline_path() -> Path:
    return BASELINE


@pytest.fixture(scope="session")
def small_run():
    """A small baseline run (scale 0.004, 3 policy years), stepped month by month, with the
    alive count recorded after every month for the conservation test."""
    from utenforsk.model import UtenforskModel

    model = UtenforskModel(BASELINE, seed=11, scale=0.004, horizon_years=3)
    alive = [int(model.pop.alive.sum())]
    events, entries = [], []
    while model.running:
        m = model.month
        model.step()
        alive.append(int(model.pop.alive.sum()))
        events.append(model.last_month["events"].copy())
        entries.append(int(model.births[m] + model.arrivals[m].sum()))
    model.alive_trace = (alive, events, entries)
    return model


@pytest.fixture(scope="module")
def exp_file(tmp_path_factory) -> Path:
    """The tiny experiment of tests/test_experiment.py (2 scenarios x 4 replicates), one per module."""
    from test_experiment import experiment_text

    path = tmp_path_factory.mktemp("exp") / "tiny.yaml"
    path.write_text(experiment_text(), encoding="utf-8")
    return path
