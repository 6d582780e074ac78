"""Virtual trials: run an intervention inside the model the way its evidence measured it.

``utenforsk trial TRIAL.yaml`` (configs/trials/) simulates the trial (utenforsk/trials/run.py),
estimates the effect on the published estimate's scale with its Monte Carlo interval
(:func:`estimate`), and writes ``trial.csv`` and ``trial.png`` (docs/experiments.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from utenforsk.errors import UserError
from utenforsk.trials.run import simulate
from utenforsk.trials.spec import Trial, all_trials, load_trial

COLUMNS = ["trial", "outcome", "n_control", "n_treated", "control", "treated", "difference",
           "ci_low", "ci_high", "odds_ratio", "published_control", "published_treated",
           "published_estimate", "published_ci_low", "published_ci_high", "consistent"]
LEVEL = 0.95

__all__ = ["COLUMNS", "estimate", "load_trial", "all_trials", "run_trial", "write"]


def estimate(trial: Trial, control: np.ndarray, treated: np.ndarray,
             exposed: tuple[np.ndarray, np.ndarray] | None = None,
             ref_sd: np.ndarray | None = None) -> dict:
    """One row of trial.csv from the paired per-person outcomes (pooled over replicates).

    ``difference`` is treated minus control (for ``trait_sd`` in SD of the control arm);
    ``ci_low``/``ci_high`` are the 95% Monte Carlo interval of the estimate on the *published*
    measure's scale (the difference, or the odds ratio), from the paired person-level differences
    (common random numbers: the same people in both arms); for the odds ratio by the delta method
    on the log odds ratio, with the arms' covariance. ``consistent``: that interval overlaps the
    published 95% interval. With ``outcome.per_exposure_states`` the difference is divided by the
    difference in years exposed (``exposed``: control, treated; in units of
    ``outcome.exposure_unit_years``), a Wald ratio whose SE comes
    from the linearised per-person differences. With ``measure: level`` the estimate is the
    control arm's mean, with its binomial/normal SE.
    """
    spec, o = trial.spec, trial.spec.outcome
    ok = ~np.isnan(control) & ~np.isnan(treated)
    yc, yt = control[ok], treated[ok]
    if exposed is not None:
        ec, et = exposed[0][ok].astype(float), exposed[1][ok].astype(float)
    n = int(ok.sum())
    z = stats.norm.ppf(0.5 + LEVEL / 2)
    row = {"trial": spec.name, "outcome": o.label or o.kind, "n_control": n, "n_treated": n}
    if n < 2:
        raise UserError("fewer than 2 people in the trial population were followed up", file=trial.file,
                        key="scale", allowed="a larger --scale or more --replicates")
    mc, mt = float(yc.mean()), float(yt.mean())
    d = yt - yc
    se = float(d.std(ddof=1) / math.sqrt(n))
    diff = mt - mc
    if o.kind == "trait_sd":
        # the control arm's trial population, or everyone at that age (sd_of: population)
        sd = float(np.nanmean(ref_sd[ok])) if o.sd_of == "population" else float(yc.std(ddof=1))
        diff, se = diff / sd, se / sd
    if o.per_exposure_states:
        unit = o.exposure_unit_years  # years of exposure per unit of the published estimate
        ec, et = ec / unit, et / unit
        de = float(et.mean() - ec.mean())
        if de <= 0:
            raise UserError("the intervention raised no exposure, so an effect per participant is "
                            "undefined", file=trial.file, key="outcome.per_exposure_states",
                            value=o.per_exposure_states)
        ratio = diff / de
        se = float(((yt - yc) - ratio * (et - ec)).std(ddof=1) / math.sqrt(n)) / de
        diff = ratio
    orr = float("nan")
    binary = o.kind in ("ever_in_states", "in_states", "flag")
    if binary and 0 < mc < 1 and 0 < mt < 1:
        orr = (mt / (1 - mt)) / (mc / (1 - mc))
    lo, hi = diff - z * se, diff + z * se
    pub = spec.published
    if pub.measure == "level":
        s_level = float(yc.std(ddof=1) / math.sqrt(n))
        lo, hi = mc - z * s_level, mc + z * s_level
    if pub.measure == "odds_ratio":
        if math.isnan(orr):
            lo, hi = float("nan"), float("nan")
        else:
            gc, gt = 1 / (mc * (1 - mc)), 1 / (mt * (1 - mt))
            cov = float(np.cov(yt, yc)[0, 1])
            var = (gt ** 2 * yt.var(ddof=1) + gc ** 2 * yc.var(ddof=1) - 2 * gt * gc * cov) / n
            s = math.sqrt(max(var, 0.0))
            lo, hi = orr * math.exp(-z * s), orr * math.exp(z * s)
    consistent = bool(lo <= pub.ci[1] and hi >= pub.ci[0]) if not math.isnan(lo) else False
    row.update(control=mc, treated=mt, difference=diff, ci_low=lo, ci_high=hi, odds_ratio=orr,
               published_control=pub.control, published_treated=pub.treated,
               published_estimate=pub.estimate, published_ci_low=pub.ci[0], published_ci_high=pub.ci[1],
               consistent=consistent)
    return row


def run_trial(trial: Trial, replicates: int | None = None, scale: float | None = None,
              threads: int | None = None, on_replicate=None) -> dict:
    reps = replicates or trial.spec.replicates
    parts = []
    for r in range(reps):
        parts.append(simulate(trial, r, scale=scale, threads=threads))
        if on_replicate is not None:
            on_replicate(r)
    c, t, ec, et, sd = (np.concatenate(x) for x in zip(*parts))
    return estimate(trial, c, t, (ec, et), sd)


def write(rows: list[dict], trials: list[Trial], out_dir: Path) -> None:
    """trial.csv (COLUMNS, one row per trial) and trial.png (simulated vs published)."""
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    tmp = out_dir / "trial.csv.tmp"
    frame.to_csv(tmp, index=False)
    tmp.replace(out_dir / "trial.csv")
    from utenforsk.trials.figure import plot

    plot(rows, trials, out_dir / "trial.png")
