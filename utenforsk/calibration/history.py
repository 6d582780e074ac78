"""History matching in waves: the ensemble of ``calibrate --ensemble --method history-matching``.

Every fitted target ``j`` has an observed value ``z_j`` and a tolerance ``t_j``. A wave is a set of
parameter points, each simulated with the same ``R`` replicate seeds (common random numbers); the
replicate mean ``f_j(x)`` is what the acceptance rule reads:

    accepted  <=>  |f_j(x) - z_j| <= t_j  for every fitted target j

(the pass rule of ``utenforsk validate``). Wave 1 is a Latin hypercube over the uniform priors
(the search ranges; log-uniform where ``log: true``). After each wave one Gaussian-process
emulator per target (scikit-learn, Matern 5/2 with one length scale per parameter plus a white
nugget) is trained on the runs inside the current non-implausible space, and a candidate ``x`` is
implausible when

    I_j(x) = |z_j - E[f_j(x)]| / sqrt(Var_em,j(x) + Var_obs,j + Var_MC,j)

exceeds the cut (3) for any target (``cut_rule: max``) or for any but the worst (``second_max``).
``Var_em`` is the emulator's variance of the smooth response (its nugget removed);
``Var_obs = (t_j / cut)^2`` reads the tolerance as ``cut`` standard deviations of observation and
model discrepancy, so that with an exact emulator and no Monte Carlo noise ``I_j < cut`` is the
acceptance rule itself; ``Var_MC`` is the Monte Carlo variance of an ``R``-replicate mean, the
larger of the pooled within-point replicate variance over ``R`` and the emulator's nugget (with
``R = 1`` only the nugget). The next wave is drawn uniformly from the points of a scrambled
Sobol' set that no wave's emulator rules out (refocusing); when few survive, survivors are
jittered and tested again. Waves stop when ``accepted`` simulated sets pass the rule, after
``max_waves``, or at ``max_evaluations``.

The ensemble is the *simulated* points that pass the acceptance rule (never emulated ones): each
wave samples uniformly inside a space that contains the accepted region (if the emulators are
right), so the accepted sets are draws from the prior restricted to it -- the same posterior as
rejection ABC with a uniform kernel of width the tolerance, at a fraction of the runs.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from utenforsk.calibration import simulate
from utenforsk.calibration.calibrate import ACCEPT_MAX_Z


class Space:
    """The unit cube <-> parameter values (log-uniform where asked), in the PARAMS file's order."""

    def __init__(self, ranges: dict[str, tuple[float, float]], logs: dict[str, bool]):
        self.names = list(ranges)
        self.log = np.array([bool(logs.get(k)) for k in self.names])
        lo = np.array([ranges[k][0] for k in self.names], dtype=float)
        hi = np.array([ranges[k][1] for k in self.names], dtype=float)
        self.lo = np.where(self.log, np.log(np.where(self.log, lo, 1.0)), lo)
        self.hi = np.where(self.log, np.log(np.where(self.log, hi, 1.0)), hi)

    @property
    def d(self) -> int:
        return len(self.names)

    def values(self, u: np.ndarray) -> np.ndarray:
        x = self.lo + np.asarray(u, dtype=float) * (self.hi - self.lo)
        return np.where(self.log, np.exp(x), x)

    def unit(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return (np.where(self.log, np.log(np.where(self.log, x, 1.0)), x) - self.lo) / (self.hi - self.lo)


def _lbfgs(obj_func, initial_theta, bounds):
    """scikit-learn's default optimiser (L-BFGS-B on the log marginal likelihood), capped at 60
    iterations: the hyperparameters settle long before, and an uncapped fit of 16 emulators took
    minutes on 2 busy cores."""
    from scipy.optimize import minimize

    res = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds, options={"maxiter": 60})
    return res.x, res.fun


class Emulator:
    """One Gaussian process per target, trained on replicate means at unit-cube points."""

    def __init__(self, U: np.ndarray, reps: np.ndarray, seed: int):
        """``U``: ``[n, d]`` points; ``reps``: ``[n, R, J]`` simulated values."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        n, R, J = reps.shape
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
            Y = np.nanmean(reps, axis=1)
            within = np.nanvar(reps, axis=1, ddof=1) if R > 1 else np.full((n, J), np.nan)
        self.models: list = []
        self.var_mc = np.zeros(J)
        self.n_train = n
        for j in range(J):
            ok = np.isfinite(Y[:, j])
            y = Y[ok, j]
            if ok.sum() < 4:  # nothing to learn from: this target rules nothing out
                self.models.append(None)
                continue
            mu, sd = float(y.mean()), float(y.std())
            if not sd > 0:
                self.models.append((None, mu, 1.0, 0.0))
                pooled = float(np.nanmean(within[ok, j])) if R > 1 else 0.0
                self.var_mc[j] = (pooled if np.isfinite(pooled) else 0.0) / R
                continue
            kernel = (ConstantKernel(1.0, (1e-3, 1e3))
                      * Matern(length_scale=np.full(U.shape[1], 0.3), length_scale_bounds=(1e-2, 1e2), nu=2.5)
                      + WhiteKernel(1e-2, (1e-8, 1.0)))
            gp = GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=0,
                                          optimizer=_lbfgs, random_state=int(seed) + j)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gp.fit(U[ok], (y - mu) / sd)
            nugget = float(gp.kernel_.k2.noise_level) * sd**2
            pooled = float(np.nanmean(within[ok, j])) / R if R > 1 else 0.0
            self.var_mc[j] = max(nugget, pooled if np.isfinite(pooled) else 0.0)
            self.models.append((gp, mu, sd, float(gp.kernel_.k2.noise_level)))

    def predict(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, Var_em)``, each ``[n, J]``; a target without a model gets NaN."""
        n, J = len(U), len(self.models)
        mean, var = np.full((n, J), np.nan), np.zeros((n, J))
        for j in range(J):
            pred = self.predict_one(j, U)
            if pred is not None:
                mean[:, j], var[:, j] = pred
        return mean, var

    def predict_one(self, j: int, U: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Target ``j``'s ``(mean, Var_em)``, each ``[n]``; None without a model."""
        m = self.models[j]
        if m is None:
            return None
        gp, mu, sd, nugget = m
        if gp is None:
            return np.full(len(U), mu), np.zeros(len(U))
        p, s = gp.predict(U, return_std=True)
        return p * sd + mu, np.maximum(s**2 - nugget, 0.0) * sd**2

    def implausibility(self, U: np.ndarray, z: np.ndarray, var_obs: np.ndarray) -> np.ndarray:
        mean, var = self.predict(U)
        I = np.abs(z - mean) / np.sqrt(var + var_obs + self.var_mc)
        return np.where(np.isfinite(I), I, 0.0)  # an unmodelled target is not evidence against x

    def plausible(self, U: np.ndarray, z: np.ndarray, var_obs: np.ndarray, cut: float, rule: str) -> np.ndarray:
        """``cut_statistic(I) < cut``, target by target: a point out is not predicted again (the
        same answer as :meth:`implausibility`, at a fraction of the cost when most points go)."""
        allowed = 1 if rule == "second_max" and len(self.models) >= 2 else 0  # targets that may miss
        misses = np.zeros(len(U), dtype=int)
        alive = np.arange(len(U))
        for j in range(len(self.models)):
            if not len(alive):
                break
            pred = self.predict_one(j, U[alive])
            if pred is None:
                continue
            I = np.abs(z[j] - pred[0]) / np.sqrt(pred[1] + var_obs[j] + self.var_mc[j])
            misses[alive] += np.isfinite(I) & (I >= cut)
            alive = alive[misses[alive] <= allowed]
        keep = np.zeros(len(U), dtype=bool)
        keep[alive] = True
        return keep


def cut_statistic(I: np.ndarray, rule: str) -> np.ndarray:
    """The implausibility compared with the cut: the largest over targets, or the second largest."""
    if rule == "second_max" and I.shape[1] >= 2:
        return np.sort(I, axis=1)[:, -2]
    return I.max(axis=1)


@dataclass
class Result:
    names: list[str]                 # parameters, in the PARAMS file's order
    targets: list[str]               # fitted targets
    values: np.ndarray               # [n, d] every simulated point
    reps: np.ndarray                 # [n, R, J] simulated target values
    wave: np.ndarray                 # [n] wave of each point
    accepted: np.ndarray             # [n] bool
    max_z: np.ndarray                # [n] largest |f - z| / tolerance
    waves: list[dict] = field(default_factory=list)
    stopped: str = ""

    @property
    def means(self) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.reps, axis=1)


class HistoryMatch:
    """Runs the waves; ``progress(wave, done, total, accepted)`` after every finished replicate."""

    def __init__(self, cfg, targets, names: list[str], params, ranges, sim, pool, progress=None, log=None):
        self.cfg, self.pool, self.progress, self.log = cfg, pool, progress, log
        self.hm = params.history_matching
        self.names = names
        self.specs = [targets.targets[n] for n in names]
        self.z = np.array([t.value for t in self.specs], dtype=float)
        self.tol = np.array([t.tolerance for t in self.specs], dtype=float)
        self.var_obs = (self.tol / self.hm.cut) ** 2
        self.space = Space(ranges, {k: params.parameters[k].log for k in ranges})
        self.seeds = simulate.replicate_seeds(sim.seed, sim.replicates)
        self.rng = np.random.default_rng([self.hm.seed, 0x4D41])
        self.emulators: list[Emulator] = []

    # -- simulation ---------------------------------------------------------------------------------
    def evaluate(self, U: np.ndarray, wave: int, accepted_before: int) -> np.ndarray:
        X = self.space.values(U)
        threads = 1 if self.pool.workers > 1 else None
        jobs = [(self.cfg, self.specs, dict(zip(self.space.names, map(float, x))), s, threads)
                for x in X for s in self.seeds]
        cb = None
        if self.progress is not None:
            self.progress(wave, 0, len(jobs), accepted_before)
            cb = lambda done, total: self.progress(wave, done, total, accepted_before)  # noqa: E731
        rows = self.pool.map(jobs, cb)
        return np.array(rows, dtype=float).reshape(len(U), len(self.seeds), len(self.specs))

    def accept(self, reps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            z = np.abs(np.nanmean(reps, axis=1) - self.z) / self.tol
        max_z = np.where(np.all(np.isfinite(z), axis=1), z.max(axis=1), np.inf)
        return max_z <= ACCEPT_MAX_Z, max_z  # every target within its tolerance

    # -- the non-implausible space ------------------------------------------------------------------
    def plausible(self, U: np.ndarray) -> np.ndarray:
        keep = np.ones(len(U), dtype=bool)
        for em in self.emulators:
            for i in range(0, len(U), 4096):
                sl = slice(i, i + 4096)
                idx = np.flatnonzero(keep[sl]) + i
                if len(idx):
                    keep[idx] = em.plausible(U[idx], self.z, self.var_obs, self.hm.cut, self.hm.cut_rule)
        return keep

    def nroy_sample(self, wave: int, needed: int) -> tuple[np.ndarray, float]:
        """Points no emulator rules out, and the share of the prior's Sobol' candidates they are."""
        from scipy.stats import qmc

        m = int(math.ceil(math.log2(self.hm.candidates)))
        U = qmc.Sobol(self.space.d, scramble=True, seed=self.rng).random_base2(m)
        keep = self.plausible(U)
        frac = float(keep.mean())
        pts = U[keep]
        for _ in range(8):  # a small space: jitter the survivors and test again
            if len(pts) >= 2 * needed or not len(pts):
                break
            sd = np.maximum(pts.std(axis=0), 0.02) / 2
            C = pts[self.rng.integers(len(pts), size=self.hm.candidates)] + self.rng.normal(0, sd, (self.hm.candidates, self.space.d))
            C = np.abs(C)
            C = 1 - np.abs(1 - C)  # reflect into [0, 1]
            C = np.clip(C, 0.0, 1.0)
            pts = np.vstack([pts, C[self.plausible(C)]])
        return pts, frac

    # -- the waves ----------------------------------------------------------------------------------
    def run(self) -> Result:
        from scipy.stats import qmc

        hm, d, J, R = self.hm, self.space.d, len(self.specs), len(self.seeds)
        U_all, reps_all = np.empty((0, d)), np.empty((0, R, J))
        wave_of: list[int] = []
        waves: list[dict] = []
        stopped = f"max_waves ({hm.max_waves}) reached"
        design = qmc.LatinHypercube(d, seed=self.rng).random(hm.first_wave)
        nroy = 1.0
        for wave in range(1, hm.max_waves + 1):
            design = design[:max(0, hm.max_evaluations - len(U_all))]
            t0 = time.perf_counter()
            acc_before = int(self.accept(reps_all)[0].sum()) if len(U_all) else 0
            reps = self.evaluate(design, wave, acc_before)
            seconds = time.perf_counter() - t0
            check = None
            if self.emulators:  # did the last emulator predict this wave's runs?
                em = self.emulators[-1]
                with threadpool_limits(limits=1):
                    mean, var = em.predict(design)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    err = np.abs(np.nanmean(reps, axis=1) - mean) / np.sqrt(var + em.var_mc)
                check = float(np.mean(err[np.isfinite(err)] < 3)) if np.isfinite(err).any() else None
            U_all, reps_all = np.vstack([U_all, design]), np.concatenate([reps_all, reps])
            wave_of += [wave] * len(design)
            acc, _ = self.accept(reps_all)
            acc_wave = int(self.accept(reps)[0].sum())
            waves.append({"wave": wave, "points": len(design), "nroy_share_of_prior": nroy,
                          "accepted_in_wave": acc_wave, "acceptance_rate": acc_wave / max(1, len(design)),
                          "accepted_total": int(acc.sum()), "simulated_total": len(U_all),
                          "seconds": round(seconds, 1), "emulator_within_3sd": check})
            if self.log is not None:
                self.log(f"wave {wave}: {len(design)} points in {seconds:.0f} s, {acc_wave} accepted "
                         f"({int(acc.sum())} in all of {len(U_all)} simulated); NROY share of the prior {nroy:.3g}"
                         + ("" if check is None else f"; last emulator within 3 sd on {check:.0%} of them"))
            if acc.sum() >= hm.accepted:
                stopped = f"{int(acc.sum())} accepted (asked for {hm.accepted})"
                break
            if len(U_all) >= hm.max_evaluations:
                stopped = f"max_evaluations ({hm.max_evaluations}) reached"
                break
            if wave == hm.max_waves:
                break
            t1 = time.perf_counter()
            # one BLAS thread: matrices of a few hundred rows gain nothing from more, and on shared
            # cores oversubscription made the emulators' fit 8x slower (94 s against 12 s)
            with threadpool_limits(limits=1):
                inside = np.flatnonzero(self.plausible(U_all))
                if len(inside) < max(8, 2 * d + 2):
                    inside = np.arange(len(U_all))
                train = inside[-hm.max_train:]
                self.emulators.append(Emulator(U_all[train], reps_all[train], hm.seed + 1000 * wave))
                pts, nroy = self.nroy_sample(wave, hm.wave_points)
            waves[-1]["emulator_seconds"] = round(time.perf_counter() - t1, 1)
            if self.log is not None:
                self.log(f"  emulators of wave {wave} trained on {len(train)} runs; NROY space {nroy:.3g} of the "
                         f"prior ({len(pts)} candidates) in {waves[-1]['emulator_seconds']:.0f} s")
            waves[-1]["emulator_trained_on"] = len(train)
            if not len(pts):
                stopped = f"after wave {wave} the emulators rule out every candidate: no non-implausible space left"
                break
            design = pts[self.rng.choice(len(pts), size=min(hm.wave_points, len(pts)), replace=False)]
        acc, max_z = self.accept(reps_all)
        return Result(self.space.names, self.names, self.space.values(U_all), reps_all, np.array(wave_of),
                      acc, max_z, waves, stopped)
