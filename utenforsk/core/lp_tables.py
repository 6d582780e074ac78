"""Each linear predictor's 0/1 terms, summed once a month into a table the kernel reads.

Most terms of the month's linear predictors are 0/1 covariates (an attribute's category, a
flag, a binary trait, a state, being a client of a service: the kinds with a ``bit`` in
covariates.py). The kernel read each as a float and added ``beta * x`` in one long chain of
dependent multiply-adds, every person-month. Instead, a row's 0/1 terms (at most
:data:`MAX_BITS`) index a table of their sums: the kernel packs the person's bits into an
integer (independent integer operations) and reads one entry; the row's other terms (traits,
age, quality, ...) are added to it as before.

The layout depends on the model's structure only (which covariates each row reads), the values
on ``lp_beta``: :func:`values` runs whenever the parameter vector ``F`` is built
(tables.float_params), so an edited coefficient takes effect the next month, as before. Each
entry is summed in the row's term order, ``((0.0 + b0 x0) + b1 x1) + ...``, elementwise in
numpy (the same bits on every machine).

A row's sum is now its 0/1 terms first, then the others, where the source used to list them in
the config's order: the two can differ in the last bits of a float, so a result could move
where a value sits exactly at a threshold. The source order was never a guarantee either (the
kernels compile with ``reassoc``, kernel.FAST, and LLVM orders the sum), and the golden digests
(tests/test_golden.py: five models and an experiment) did not move.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from utenforsk.core.covariates import BIT_KINDS

#: a row with fewer 0/1 terms keeps its multiply-add (a table read costs about as much)
MIN_BITS = 2
#: at most 2 ** 8 entries (2 KiB) per row, so the month's tables stay in the core's caches;
#: a row's 0/1 terms beyond these stay multiply-adds
MAX_BITS = 8


class Layout(NamedTuple):
    #: row -> (offset of its table among the tables, the term indices ``j`` it sums, in order)
    rows: dict
    #: entries of all tables
    size: int
    #: (size, MAX_BITS): the ``lp_beta`` index of each entry's k-th term, or -1 for none
    beta_j: np.ndarray
    #: (size, MAX_BITS): that term's 0/1 value in the entry
    bits: np.ndarray


_CACHE: dict = {}


def layout(tab) -> Layout:
    """The tables' layout for ``tab``'s linear predictors (cached by structure)."""
    key = (tab.lp_start.tobytes(), tab.lp_end.tobytes(), tab.lp_cov.tobytes(), tab.cov_kind.tobytes())
    hit = _CACHE.get(key)
    if hit is None:
        hit = _CACHE[key] = _layout(tab)
    return hit


def _layout(tab) -> Layout:
    rows, size, js, bits = {}, 0, [], []
    bit_kind = np.isin(tab.cov_kind, BIT_KINDS)
    for r in range(len(tab.lp_start)):
        terms = tuple(j for j in range(int(tab.lp_start[r]), int(tab.lp_end[r])) if bit_kind[tab.lp_cov[j]])
        terms = terms[:MAX_BITS]
        if len(terms) < MIN_BITS:
            continue
        n = 1 << len(terms)
        code = np.arange(n)[:, None]
        b = np.zeros((n, MAX_BITS), np.float64)
        b[:, :len(terms)] = (code >> np.arange(len(terms))) & 1
        jj = np.full((n, MAX_BITS), -1, np.int64)
        jj[:, :len(terms)] = terms
        rows[r] = (size, terms)
        size += n
        js.append(jj)
        bits.append(b)
    if not rows:
        return Layout({}, 0, np.zeros((0, MAX_BITS), np.int64), np.zeros((0, MAX_BITS)))
    return Layout(rows, size, np.concatenate(js), np.concatenate(bits))


_LAST: dict = {}


def values(lay: Layout, beta: np.ndarray) -> np.ndarray:
    """Every table's entries: the sum of its terms' ``beta * bit``, in the row's term order
    (read-only; the last result per layout is kept, as ``F`` is built every month and the
    coefficients rarely change: 0.3 µs instead of 20, benchmarks/README.md)."""
    beta = np.asarray(beta, np.float64)
    key = beta.tobytes()
    last = _LAST.get(id(lay))
    if last is not None and last[0] is lay and last[1] == key:
        return last[2]
    b = np.append(beta, 0.0)  # index -1: no term (adds 0.0)
    out = np.zeros(lay.size)
    for k in range(MAX_BITS):
        out = out + b[lay.beta_j[:, k]] * lay.bits[:, k]
    out.flags.writeable = False
    _LAST[id(lay)] = (lay, key, out)
    return out
