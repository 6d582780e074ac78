"""Same config and seed give identical outputs, whatever the thread count; seeds matter."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from utenforsk.core import kernel
from utenforsk.model import UtenforskModel
from utenforsk.outputs import cohorts, periods, snapshot


@pytest.fixture(autouse=True)
def _threads_even_for_small_runs(monkeypatch):
    """These populations are small enough that the engine would use one thread: force two."""
    monkeypatch.setattr(kernel, "MIN_ITEMS_PER_THREAD", 1)


def _run(path, seed, threads):
    m = UtenforskModel(path, seed=seed, scale=0.003, horizon_years=2, threads=threads)
    assert m.n_threads == threads  # the comparison is really 1 thread against 2
    m.run_model()
    return periods(m), cohorts(m), snapshot(m)


@pytest.mark.skipif((os.cpu_count() or 1) < 2 and not os.environ.get("UTENFORSK_THREADS"),
                    reason="needs 2 worker threads (set UTENFORSK_THREADS=2 on a 1-core machine)")
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
