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


# ---- parameter-mode intervals: coverage, width, verdicts (issue 12) ------------------------------

from utenforsk.analysis.effects import paired_effects  # noqa: E402
from utenforsk.analysis.hypotheses import evaluate  # noqa: E402
from utenforsk.analysis.uncertainty import national_interval, percentile_interval  # noqa: E402

REPETITIONS = 2000  # binomial SE of a 95% coverage: sqrt(.95*.05/2000) = 0.49 pp, so 93-97% is
# +-4 SE: a correct interval fails this with probability < 1e-4, one at 91% or 99% almost surely does


def _nested(rng, draws, seeds, tau, sigma):
    """Synthetic draws x seeds design: draw effects theta ~ N(0, tau^2), each seed adds N(0, sigma^2)
    (Monte Carlo noise of one simulated replicate). Returns (d by replicate, replicate -> draw)."""
    theta = rng.normal(0.0, tau, draws)
    d = (theta[:, None] + rng.normal(0.0, sigma, (draws, seeds))).ravel()
    draw_of = {r: r // seeds for r in range(draws * seeds)}
    return pd.Series(d), draw_of


@pytest.mark.parametrize("tau, sigma", [(1.0, 1.0), (1.0, 3.0)])  # noise comparable / dominant
def test_parameter_interval_covers_the_national_truth(tau, sigma):
    """The truth is the national effect at the real (unknown) parameter: a new draw of theta plus
    Monte Carlo noise at national scale (variance sigma^2 * scale). 100 draws x 2 seeds."""
    rng = np.random.default_rng(20261201)
    scale, hits = 0.005, 0
    for _ in range(REPETITIONS):
        d, draw_of = _nested(rng, 100, 2, tau, sigma)
        lo, hi = national_interval(d, draw_of, scale)
        truth = rng.normal(0.0, tau) + np.sqrt(scale) * sigma * rng.normal()
        hits += lo <= truth <= hi
    assert 0.93 <= hits / REPETITIONS <= 0.97, hits / REPETITIONS


def test_ignoring_the_grouping_undercovers():
    """The old interval (a t-interval over replicates as if independent) for the same design
    covers far less than 95%: the check above can fail."""
    from utenforsk.analysis.effects import mean_ci

    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(500):
        d, _ = _nested(rng, 100, 2, 1.0, 1.0)
        _, lo, hi, _ = mean_ci(d.to_numpy())
        hits += lo <= rng.normal(0.0, 1.0) <= hi
    assert hits / 500 < 0.5


def _runs_from(d: pd.Series, cost=None) -> pd.DataFrame:
    rows = []
    for r, v in d.items():
        rows += [("baseline", r, "neet_rate_15_29", 0.10), ("s", r, "neet_rate_15_29", 0.10 + v)]
        if cost is not None:
            rows += [("baseline", r, "programme_cost_nok", 0.0), ("s", r, "programme_cost_nok", cost)]
    return pd.DataFrame(rows, columns=["scenario", "replicate", "metric", "value"])


def test_drawing_an_effect_parameter_widens_the_interval():
    """Same seeds' noise; in one design the effect is fixed (-0.01), in the other it is drawn
    uniformly in [-0.02, 0]: the effect's interval widens, by more than the noise could explain."""
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.004, (40, 2))
    draw_of = {r: r // 2 for r in range(80)}
    fixed = pd.Series((-0.01 + noise).ravel())
    drawn = pd.Series((rng.uniform(-0.02, 0.0, 40)[:, None] + noise).ravel())
    width = {}
    for name, d in (("fixed", fixed), ("drawn", drawn)):
        e = paired_effects(_runs_from(d), draw_of=draw_of, scale=0.005).iloc[0]
        width[name] = e.ci_high - e.ci_low
    # fixed: national-scale noise, the centre's uncertainty and the allowance for the estimated
    # parameter variance (TAU2_ALLOWANCE) remain, ~0.005 wide with 40 draws; drawn: ~95% of a
    # U(-0.02, 0) (0.019) plus a little noise
    assert width["drawn"] > 3 * width["fixed"], width
    assert 0.015 < width["drawn"] < 0.025, width


@pytest.mark.parametrize("draws", [20, 200, 2000])
def test_claim_drawn_around_zero_is_inconclusive_whatever_the_replicates(draws):
    rng = np.random.default_rng(draws)
    d, draw_of = _nested(rng, draws, 2, 0.01, 0.004)  # effect drawn around 0, noise as a replicate's
    h = [{"name": "h", "statement": "s reduces NEET", "metric": "neet_rate_15_29", "scenario": "s",
          "compare_to": "baseline", "direction": "reduces"}]
    out = evaluate(h, _runs_from(d), draw_of=draw_of, scale=0.005).iloc[0]
    assert out.verdict == "inconclusive", out.to_dict()
    # P(claim) is a share of draws: 0.5 +- 3 binomial SEs (the drawn effect is symmetric about 0)
    assert abs(out.probability - 0.5) < 3 * np.sqrt(0.25 / draws), out.probability
    assert out.probability_over.startswith("parameter draws")
    # the same replicates read as if the parameters were fixed: with many replicates the
    # t-interval excludes 0 for a small systematic shift, so MC mode says nothing about truth
    shifted = _runs_from(d - 0.002)
    mc = evaluate(h, shifted).iloc[0]
    if draws == 2000:
        assert mc.verdict == "supported at fixed parameters"


def test_supported_threshold_is_configurable():
    rng = np.random.default_rng(5)
    theta = rng.uniform(-0.02, 0.002, 200)  # P(reduces) ~ 0.91
    d = pd.Series((theta[:, None] + rng.normal(0, 0.001, (200, 2))).ravel())
    draw_of = {r: r // 2 for r in range(400)}
    h = [{"name": "h", "statement": "s", "metric": "neet_rate_15_29", "scenario": "s",
          "compare_to": "baseline", "direction": "reduces"}]
    strict = evaluate(h, _runs_from(d), draw_of=draw_of, scale=0.005).iloc[0]
    lax = evaluate(h, _runs_from(d), draw_of=draw_of, scale=0.005, supported_at=0.8).iloc[0]
    assert 0.85 < strict.probability < 0.95
    assert strict.verdict == "inconclusive" and lax.verdict == "supported"


def test_parameter_share_is_national():
    """Half the variance of one replicate is noise at the simulation scale; at national scale
    (variance x scale) almost none of it is."""
    diffs = [a + e for a in (0, 2, 4, 6) for e in (-1, 1)]
    out = variance_decomposition(_runs(diffs), ["m"], {r: r // 2 for r in range(8)}, scale=0.01).iloc[0]
    within, between = 2.0, np.var([0, 2, 4, 6], ddof=1) - 1.0
    assert out.parameter_share == pytest.approx(between / (between + 0.01 * within))
    assert out.parameter_share_simulation == pytest.approx(between / (between + within))
    assert out.sd_monte_carlo_national == pytest.approx(np.sqrt(0.01 * within))


def test_percentile_interval_order_statistics():
    x = np.arange(1, 100)  # 99 draws: j = floor(0.025 * 100) = 2 -> the 2nd and the 98th
    assert percentile_interval(x) == (2.0, 98.0)
    assert percentile_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)  # few draws: the range
    assert all(np.isnan(percentile_interval([1.0])))


def test_rare_events_do_not_make_a_claim_certain():
    """At a small scale most draws see no difference at all and one sees a person's worth: the
    centre's simulation error keeps the interval around 0 and the claim inconclusive."""
    d = pd.Series(np.zeros(48))
    d.iloc[7] = -0.01  # one person fewer in one replicate of draw 3
    draw_of = {r: r // 2 for r in range(48)}
    lo, hi = national_interval(d, draw_of, 0.002)
    assert lo < 0 < hi
    h = [{"name": "h", "statement": "s", "metric": "neet_rate_15_29", "scenario": "s",
          "compare_to": "baseline", "direction": "reduces"}]
    out = evaluate(h, _runs_from(d), draw_of=draw_of, scale=0.002).iloc[0]
    assert out.verdict == "inconclusive" and out.probability < 0.95
