"""Same config and seed give identical outputs, whatever the thread count; seeds matter."""

from __future__ import annotations

import pandas as pd

from utenforsk.model import UtenforskModel
from utenforsk.outputs import cohorts, periods, snapshot


def _run(path, seed, threads):
    m = UtenforskModel(path, seed=seed, scale=0.003, horizon_years=2, threads=threads)
    m.run_model()
    return periods(m), cohorts(m), snapshot(m)


def test_same_seed_same_outputs_any_thread_count(baseline_path):
    one = _run(baseline_path, 5, threads=1)
    two = _run(baseline_path, 5, threads=2)
    again = _run(baseline_path, 5, threads=2)
    for a, b, c in zip(one, two, again):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        pd.testing.assert_frame_equal(b, c, check_exact=True)


def test_different_seeds_differ(baseline_path):
    a = _run(baseline_path, 5, threads=2)[2]
    b = _run(baseline_path, 6, threads=2)[2]
    assert not a.equals(b)
