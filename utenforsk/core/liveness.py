"""numba's live-variable map, computed by strongly connected components: the same sets, faster.

numba's ``analysis.compute_live_map`` first finds, for every block, the variables defined or used
in any block from which it can be reached (``def_reach``), by propagating sets along every edge
until nothing changes. A generated month kernel is one long loop over persons: nearly all of
its ~530 blocks lie in one strongly connected component and reach thousands of variables, so
that propagation copies those thousands of names along every edge, pass after pass, and took
~17% of a cold kernel compile (benchmarks/README.md, the run of 2026-12-03 11:45). All blocks of a
component are reached from exactly the same blocks, so they share one set: it is the union over the
component's own blocks and over the components before it, built once per component. The
backward liveness pass that follows is numba's own, unchanged, so the returned map is equal to
numba's (``tests/test_liveness.py`` checks it on the month kernel's IR, on small functions and
on random graphs).
It replaces numba's only where numba's source is the one it was written against (numba 0.68.1,
``NUMBA_SOURCE_SHA256``); another numba keeps its own.
"""

from __future__ import annotations

import hashlib
import inspect
from collections import defaultdict
from contextlib import contextmanager
from functools import cache

import numpy as np
from numba.core import analysis

NUMBA_COMPUTE_LIVE_MAP = analysis.compute_live_map
NUMBA_SOURCE_SHA256 = "713c4c094977e93b"  # the first 16 hex digits of numba 0.68.1's function


@cache
def applies() -> bool:
    """Is numba's function the one this module was written against? (Read once, at the first
    cold compile: a process that only loads cached kernels never reads numba's source.)"""
    try:
        text = inspect.getsource(NUMBA_COMPUTE_LIVE_MAP)
    except (OSError, TypeError):  # no source shipped: cannot tell
        return False
    return hashlib.sha256(text.encode()).hexdigest()[:16] == NUMBA_SOURCE_SHA256


def def_reach_by_components(cfg, var_use_map, var_def_map) -> dict:
    """For each block reachable from the entry, the variables defined or used in any block that
    reaches it (itself included): numba's ``def_reach`` fixed point, one set per component."""
    from scipy.sparse import csr_matrix  # here, not at import: only a cold compile needs it
    from scipy.sparse.csgraph import connected_components

    order = list(cfg.topo_order())  # the blocks reachable from the entry (dead ones are removed)
    index = {b: i for i, b in enumerate(order)}
    src, dst = [], []
    for b in order:
        for s, _ in cfg.successors(b):
            src.append(index[b])
            dst.append(index[s])
    n = len(order)
    graph = csr_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))
    _, label = connected_components(graph, directed=True, connection="strong")
    own: dict[int, set] = defaultdict(set)  # each component's own definitions and uses
    preds: dict[int, set] = defaultdict(set)  # the components with an edge into it
    for b in order:
        c = label[index[b]]
        own[c] |= var_def_map[b]
        own[c] |= var_use_map[b]
    for i, j in zip(src, dst):
        if label[i] != label[j]:
            preds[label[j]].add(label[i])
    # the condensation is acyclic: visit it from its sources (depth first, without recursion)
    reach: dict[int, set] = {}
    for start in dict.fromkeys(label[index[b]] for b in order):
        stack = [start]
        while stack:
            c = stack[-1]
            if c in reach:
                stack.pop()
                continue
            waiting = [p for p in preds[c] if p not in reach]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            reach[c] = own[c].union(*(reach[p] for p in preds[c]))
    return {b: reach[label[index[b]]] for b in order}


def compute_live_map(cfg, blocks, var_use_map, var_def_map):
    """``numba.core.analysis.compute_live_map`` with ``def_reach`` by components (above); the
    liveness fixed point is numba's. Returns the same ``{block: set of variable names}``."""
    topo_order = cfg.topo_order()
    def_reach_map = defaultdict(set, def_reach_by_components(cfg, var_use_map, var_def_map))

    def liveness(dct):
        for offset in reversed(topo_order):
            live_vars = dct[offset]
            for inc_blk, _data in cfg.predecessors(offset):
                reachable = live_vars & def_reach_map[inc_blk]
                dct[inc_blk] |= reachable - var_def_map[inc_blk]

    live_map = {offset: set(var_use_map[offset]) for offset in blocks.keys()}
    old, new = None, tuple(len(v) for v in live_map.values())
    while old != new:
        liveness(live_map)
        old, new = new, tuple(len(v) for v in live_map.values())
    return live_map


@contextmanager
def fast_live_map():
    """numba computes live maps with :func:`compute_live_map` inside this block, where
    :func:`applies`. A compile holds numba's compiler lock, so no other thread compiles during
    the swap; code outside a compile that calls numba's analysis meanwhile gets the same maps."""
    before = analysis.compute_live_map
    if applies():
        analysis.compute_live_map = compute_live_map
    try:
        yield
    finally:
        analysis.compute_live_map = before
