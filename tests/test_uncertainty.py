"""Monte Carlo vs parameter variance on a hand-computable case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utenforsk.analysis.uncertainty import variance_decomposition


def _runs(diffs):
    rows = []
    for r, d in enumerate(diffs):
        rows += [("baseline", r, "m", 10.0), ("s", r, "m", 10.0 + d)]
    return pd.DataFrame(rows, columns=["scenario", "replicate", "metric", "value"])


def test_parameter_mode_splits_within_and_between_draws():
    # four draws with effects 0, 2, 4, 6; two seeds each at -1 / +1 around the draw's effect
    diffs = [a + e for a in (0, 2, 4, 6) for e in (-1, 1)]
    out = variance_decomposition(_runs(diffs), ["m"], {r: r // 2 for r in range(8)}).iloc[0]
    within = 2.0                                   # var of (a-1, a+1), ddof 1
    between = np.var([0, 2, 4, 6], ddof=1) - within / 2
    assert out.sd_monte_carlo == pytest.approx(np.sqrt(within))
    assert out.sd_parameter == pytest.approx(np.sqrt(between))
    assert out.parameter_share == pytest.approx(between / (between + within))
    assert out.n_draws == 4 and out.n_replicates == 8


def test_monte_carlo_mode_has_no_parameter_part():
    out = variance_decomposition(_runs([1.0, 2.0, 4.0]), ["m"], None).iloc[0]
    assert out.sd_parameter == 0 and out.sd_monte_carlo == pytest.approx(np.std([1, 2, 4], ddof=1))


def test_parameter_share_is_zero_when_draws_do_not_matter():
    diffs = [e for _ in range(4) for e in (-1, 1)]  # identical draw means
    out = variance_decomposition(_runs(diffs), ["m"], {r: r // 2 for r in range(8)}).iloc[0]
    assert out.sd_parameter == 0.0 and out.parameter_share == 0.0
