"""Fit the SDs of the municipality intercepts to the observed spread across municipalities.

``python -m utenforsk.pilots.spread [--scale S] [--seed N] [--trial-sd X] [--years Y]``

One run with trial SDs (``--trial-sd``, logit scale, for every effect) and services per
municipality. For each municipality ``k`` the simulated Q4 NEET rate 15-29 and the share of
21-year-olds who have completed upper secondary, pooled over the policy years, are regressed on
the run's own intercepts ``u_ek`` (weighted least squares, weights = simulated persons, with
statsmodels): ``rate_k = a + sum_e b_e u_ek + noise``. With independent intercepts the spread the
intercepts cause is ``Var(rate) = sum_e b_e^2 sd_e^2``, one equation per outcome, linear in the
``sd_e^2``; the fitted SDs solve it for the target SDs by non-negative least squares in relative
terms (binomial noise at the run's scale is in the residual, not in the slopes).

Targets (configs/norway/data/municipal_spread.yaml): NEET 15-29, between-municipality SD 1.2 pp
(the pilots' central value; the between-county SD 0.7 pp [U] is its lower bound, no municipal
table was found); completion, SD 4.7 pp (between-county, 2012 cohort [U]; the nine Rogaland
municipalities of the 2011 cohort there have SD 4.7 pp).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

BASELINE = Path(__file__).resolve().parents[2] / "configs" / "norway" / "baseline.yaml"
TARGETS = {"neet_rate_15_29": 0.012, "completed_upper_secondary_21": 0.047}


def slopes(model_path=BASELINE, scale=0.02, seed=1, trial_sd=0.3, years=5):
    """(effect names, slopes [outcome, effect], the run's simulated SDs) from one run."""
    import pandas as pd
    import statsmodels.api as sm

    from utenforsk.model import UtenforskModel
    from utenforsk.outputs import periods_by_municipality

    from utenforsk.model import resolve_config

    cfg = resolve_config(model_path)
    names = list(cfg.municipality_effects)
    over = {f"municipality_effects.{n}.sd.value": trial_sd for n in names}
    m = UtenforskModel(model_path, seed=seed, scale=scale, horizon_years=years, overrides=over)
    m.run_model()
    df = periods_by_municipality(m)
    g = df.groupby("kommunenummer", sort=False)
    n = g.simulated_persons_15_29.sum().to_numpy()
    neet = (g.neet_15_29.sum() / g.population_15_29.sum()).to_numpy()
    comp = g.completed_upper_secondary_21.mean().to_numpy()
    X = sm.add_constant(m.kre[:len(names)].T)
    out, sds = [], {}
    for name, y in (("neet_rate_15_29", neet), ("completed_upper_secondary_21", comp)):
        ok = np.isfinite(y) & (n > 0)
        fit = sm.WLS(y[ok], X[ok], weights=n[ok]).fit()
        out.append(fit.params[1:])
        print(f"{name}: slopes {np.round(fit.params[1:], 4)} (SE {np.round(fit.bse[1:], 4)})")
        sds[name] = float(np.sqrt(np.cov(y[ok], aweights=n[ok])))
    return names, np.array(out), sds, pd.Series(n)


def fit(b: np.ndarray, targets=TARGETS) -> np.ndarray:
    """SDs with ``sum_e b[o, e]^2 sd_e^2`` closest to ``target_o^2`` in relative terms, variances
    non-negative (scipy's NNLS on ``b^2 / target^2``, each outcome weighing the same)."""
    from scipy.optimize import nnls

    t2 = np.array([targets[k] ** 2 for k in targets])
    v, _ = nnls(b ** 2 / t2[:, None], np.ones(len(t2)))
    return np.sqrt(v)


def implied(b: np.ndarray, sd: np.ndarray) -> dict[str, float]:
    """Between-municipality SD of each outcome the intercepts ``sd`` cause (no binomial noise)."""
    return {k: float(np.sqrt((b[o] ** 2 * sd ** 2).sum())) for o, k in enumerate(TARGETS)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trial-sd", type=float, default=0.3)
    ap.add_argument("--years", type=int, default=5)
    a = ap.parse_args(argv)
    names, b, sds, _ = slopes(scale=a.scale, seed=a.seed, trial_sd=a.trial_sd, years=a.years)
    sd = fit(b)
    print(f"slopes (outcome per logit unit), rows {list(TARGETS)}, columns {names}:\n{np.round(b, 4)}")
    print(f"simulated spread at trial SD {a.trial_sd} (incl. binomial noise): {sds}")
    print("fitted SDs:", {n: round(float(s), 3) for n, s in zip(names, sd)})
    print("the spread they cause (targets " + str(TARGETS) + "):",
          {k: round(v, 4) for k, v in implied(b, sd).items()})


if __name__ == "__main__":
    main()
