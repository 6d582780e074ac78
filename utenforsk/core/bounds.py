"""Draw-first bounds: decide "nothing happens this month" from the draw alone.

Most person-months have no exit, no transition and no onset. The generated kernel draws u first
and computes the hazards (the exp calls) only when u lies below an upper bound of their total rate
for the person's state and age-year; above it, the full computation's answer is "no event" too, so
results stay identical (tests/test_codegen.py checks the bounds hold for every person, and that a
bound set too low is caught). Bounds come from each covariate's range this month (0/1 indicators,
age within the year, the traits' current minimum and maximum over the population, the largest
service quality) and every programme slot's positive log odds ratios, with a relative margin far
above any rounding difference.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from utenforsk.core.kernel import RATE_CAP
from utenforsk.core.covariates import K_AGE, K_KOMMUNE, K_QUALITY, K_TRAIT, KINDS
from utenforsk.core.tables import AGE_YEARS, CompiledModel, float_offsets

BOUND_EXIT = 0
BOUND_MARGIN = 1e-6


def bound_offset_state(s: int) -> int:
    return AGE_YEARS * (1 + int(s))


def bound_offset_btrait(n_states: int, b: int) -> tuple[int, int]:
    """Offsets of binary trait ``b``'s onset and recovery bounds."""
    base = AGE_YEARS * (1 + n_states) + 2 * AGE_YEARS * b
    return base, base + AGE_YEARS


class HazardBounds:
    """The bounds of one model structure, laid out as :data:`BOUND_EXIT`,
    :func:`bound_offset_state` and :func:`bound_offset_btrait`: the total exit rate, the total
    rate out of each state, and the onset and recovery probabilities of each binary trait, by
    age-year. The index arrays are built once; each month costs a few vector operations."""

    def __init__(self, cm: CompiledModel):
        t = cm.tables
        self.S, self.H = len(cm.states), len(t.hz_row)
        self.off = float_offsets(t)
        self.n_beta = len(t.lp_beta)
        kind = np.asarray(t.cov_kind, np.int64)
        self.cov_a = np.asarray(t.cov_a, np.int64)
        self.lo0, self.hi0 = np.zeros(len(kind)), np.ones(len(kind))
        for k, decl in enumerate(KINDS):  # fixed ranges as declared; the others are set monthly
            if isinstance(decl.bound, tuple):
                self.lo0[kind == k], self.hi0[kind == k] = decl.bound
        self.traits = np.flatnonzero(kind == K_TRAIT)
        self.quality = np.flatnonzero(kind == K_QUALITY)
        self.kommune = np.flatnonzero(kind == K_KOMMUNE)
        term_h, term_j = [], []  # every linear-predictor term of every hazard
        for h in range(self.H):
            row = int(t.hz_row[h])
            for j in range(int(t.lp_start[row]), int(t.lp_end[row])):
                term_h.append(h)
                term_j.append(j)
        term_h, term_j = np.asarray(term_h, np.int64), np.asarray(term_j, np.int64)
        term_c = np.asarray(t.lp_cov, np.int64)[term_j] if len(term_j) else term_j
        age = kind[term_c] == K_AGE if len(term_c) else np.zeros(0, bool)
        self.h_other, self.j_other, self.c_other = term_h[~age], term_j[~age], term_c[~age]
        self.h_age, self.j_age = term_h[age], term_j[age]
        years = np.arange(AGE_YEARS, dtype=np.float64)
        self.age_lo, self.age_hi = years, years + 11.0 / 12.0  # age / 12 within each age-year
        first, last = years * 12, years * 12 + 11
        self.outside = ((last[None, :] < np.asarray(t.hz_lo)[:, None])
                        | (first[None, :] >= np.asarray(t.hz_hi)[:, None]))
        self.state_hz = np.zeros((self.S, self.H))  # which hazards compete out of each state
        for st in range(self.S):
            for r in range(int(t.st_tr_start[st]), int(t.st_tr_end[st])):
                self.state_hz[st, int(t.tr_hz[r])] += 1.0
        self.ex_hz = np.asarray(t.ex_hz, np.int64)
        self.bt_on, self.bt_rec = np.asarray(t.bt_onset, np.int64), np.asarray(t.bt_recovery, np.int64)

    def eta_max(self, pop, dyn, prog, F) -> np.ndarray:
        """Upper bound of every hazard's linear predictor, by hazard and age-year: the terms'
        largest values over the covariates' ranges, plus every programme slot's positive log odds
        ratio on the hazard (anyone may be enrolled in all of them)."""
        lo, hi = self.lo0.copy(), self.hi0.copy()
        for c in self.traits:  # a trait not yet started (NaN) reads as 0
            v = pop.ctraits[self.cov_a[c]]
            lo[c], hi[c] = np.fmin.reduce(v, initial=0.0), np.fmax.reduce(v, initial=0.0)
        for c in self.quality:
            q = dyn.quality[self.cov_a[c]]
            lo[c], hi[c] = min(float(q.min()), 0.0), max(float(q.max()), 0.0)
        for c in self.kommune:  # the intercepts' range over the municipalities
            k = dyn.kre[self.cov_a[c]]
            lo[c], hi[c] = min(float(k.min()), 0.0), max(float(k.max()), 0.0)
        beta = F[self.off["lp_beta"]:self.off["lp_beta"] + self.n_beta]
        eta = F[self.off["hz_base"]:self.off["hz_base"] + self.H * AGE_YEARS].reshape(self.H, AGE_YEARS).copy()
        b = beta[self.j_other]
        eta += np.bincount(self.h_other, np.maximum(b * lo[self.c_other], b * hi[self.c_other]),
                           minlength=self.H)[:, None]
        b = beta[self.j_age][:, None]
        np.add.at(eta, self.h_age, np.maximum(b * self.age_lo, b * self.age_hi))
        eta += np.maximum(prog.hz[:, :self.H], 0.0).sum(axis=0)[:, None]
        eta[self.outside] = -np.inf
        return eta

    def __call__(self, pop, dyn, prog, F, trange=None) -> np.ndarray:
        """The bounds of this month (:meth:`eta_max` and the rates and probabilities from it),
        in one compiled pass: the same values as :meth:`reference` up to rounding, which the
        margin covers."""
        args = self.args(pop, dyn, prog, F, trange)
        _bounds(*args)
        return args[-1]

    def args(self, pop, dyn, prog, F, trange=None) -> tuple:
        """The arguments of the compiled pass (``_bounds``), its output array last."""
        H = self.H
        out = np.empty(AGE_YEARS * (1 + self.S + 2 * len(self.bt_on)))
        if trange is None:  # the traits' ranges over every slot (NaN skipped), else as given
            tlo = np.fmin.reduce(pop.ctraits, axis=1, initial=0.0).astype(np.float64)
            thi = np.fmax.reduce(pop.ctraits, axis=1, initial=0.0).astype(np.float64)
        else:
            tlo, thi = trange
        return (F, self.off["lp_beta"], self.off["hz_base"], H, self.lo0, self.hi0, self.cov_a,
                self.traits, tlo, thi, self.quality, dyn.quality, self.kommune, dyn.kre,
                self.h_other, self.j_other, self.c_other, self.h_age, self.j_age, prog.hz,
                self.outside, self.state_hz, self.ex_hz, self.bt_on, self.bt_rec, self.S,
                float(BOUND_MARGIN), out)

    def reference(self, pop, dyn, prog, F) -> np.ndarray:
        """The bounds computed in numpy from :meth:`eta_max` (what ``__call__`` compiles)."""
        with np.errstate(over="ignore"):
            eta = self.eta_max(pop, dyn, prog, F)
            rate = np.minimum(np.logaddexp(0.0, eta), RATE_CAP)
            prob = 1.0 / (1.0 + np.exp(-eta))
        out = np.empty(AGE_YEARS * (1 + self.S + 2 * len(self.bt_on)))
        out[:AGE_YEARS] = rate[self.ex_hz].sum(axis=0)
        out[AGE_YEARS:AGE_YEARS * (1 + self.S)] = (self.state_hz @ rate).ravel()
        for b in range(len(self.bt_on)):
            on, rec = bound_offset_btrait(self.S, b)
            out[on:on + AGE_YEARS] = prob[self.bt_on[b]]
            out[rec:rec + AGE_YEARS] = prob[self.bt_rec[b]]
        return out * (1.0 + BOUND_MARGIN)


@njit(cache=True, nogil=True)
def _range(v, lo, hi):
    """``min(lo, min(v))`` and ``max(hi, max(v))`` over the values of a small array ``v``."""
    for x in v:
        if x < lo:
            lo = x
        if x > hi:
            hi = x
    return lo, hi


@njit(cache=True, nogil=True)
def _bounds(F, off_beta, off_base, H, lo0, hi0, cov_a, traits, tlo, thi, quality, dquality,
            kommune, kre, h_other, j_other, c_other, h_age, j_age, prog_hz, outside, state_hz,
            ex_hz, bt_on, bt_rec, S, margin, out):
    """:meth:`HazardBounds.reference`, compiled: the same terms, summed in another order (equal up to
    rounding, which the bounds' margin covers; tests/test_codegen.py compares them to 1e-12)."""
    lo, hi = lo0.copy(), hi0.copy()
    for c in traits:  # a trait not yet started (NaN) reads as 0: in the ranges already
        lo[c], hi[c] = tlo[cov_a[c]], thi[cov_a[c]]
    for c in quality:
        lo[c], hi[c] = _range(dquality[cov_a[c]], 0.0, 0.0)
    for c in kommune:
        lo[c], hi[c] = _range(kre[cov_a[c]], 0.0, 0.0)
    A = AGE_YEARS  # the age-years of the tables (each hazard row holds one value per age-year)
    eta = np.empty((H, A))
    for h in range(H):
        for a in range(A):
            eta[h, a] = F[off_base + h * A + a]
    other = np.zeros(H)
    for t in range(h_other.shape[0]):
        b, c = F[off_beta + j_other[t]], c_other[t]
        other[h_other[t]] += max(b * lo[c], b * hi[c])
    for t in range(h_age.shape[0]):
        b = F[off_beta + j_age[t]]
        for a in range(A):
            eta[h_age[t], a] += max(b * a, b * (a + 11.0 / 12.0))
    for h in range(H):
        pe = 0.0
        for r in range(prog_hz.shape[0]):
            pe += max(prog_hz[r, h], 0.0)
        for a in range(A):
            eta[h, a] += other[h] + pe
    rate, prob = np.empty((H, A)), np.empty((H, A))
    for h in range(H):
        for a in range(A):
            e = -np.inf if outside[h, a] else eta[h, a]
            if e == -np.inf:
                rate[h, a], prob[h, a] = 0.0, 0.0
                continue
            sp = math.log1p(math.exp(e)) if e < 0.0 else e + math.log1p(math.exp(-e))
            rate[h, a] = min(sp, RATE_CAP)
            prob[h, a] = 1.0 / (1.0 + math.exp(-e))
    scale = 1.0 + margin
    for a in range(A):
        s = 0.0
        for h in ex_hz:
            s += rate[h, a]
        out[a] = s * scale
    for st in range(S):
        for a in range(A):
            s = 0.0
            for h in range(H):
                if state_hz[st, h] != 0.0:
                    s += state_hz[st, h] * rate[h, a]
            out[A * (1 + st) + a] = s * scale
    for b in range(bt_on.shape[0]):
        on = A * (1 + S) + 2 * A * b
        for a in range(A):
            out[on + a] = prob[bt_on[b], a] * scale
            out[on + A + a] = prob[bt_rec[b], a] * scale
