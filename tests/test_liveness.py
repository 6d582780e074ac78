"""The live-variable map by strongly connected components (utenforsk/core/liveness.py) equals
numba's own, on the generated month kernel, on small functions with every loop shape, and on
random control-flow graphs; and numba's compile uses it only inside a LeanCompiler compile."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba.core import analysis
from numba.core.compiler import run_frontend
from numba.core.controlflow import CFGraph

from utenforsk.core import liveness
from utenforsk.core.kernel_cache import LeanCompiler


def _maps(func_ir):
    blocks = func_ir.blocks
    cfg = analysis.compute_cfg_from_blocks(blocks)
    ud = analysis.compute_use_defs(blocks)
    return (liveness.NUMBA_COMPUTE_LIVE_MAP(cfg, blocks, ud.usemap, ud.defmap),
            liveness.compute_live_map(cfg, blocks, ud.usemap, ud.defmap))


def test_the_month_kernels_live_map_is_numbas(small_run):
    """The generated month kernel: one loop over persons holding nearly every block."""
    py = small_run._gen.month_chunk.py_func
    numba_map, ours = _maps(run_frontend(py))
    assert len(numba_map) > 100 and sum(map(len, numba_map.values())) > 1000  # a real kernel
    assert ours == numba_map


def _nested(a, n):
    s = 0.0
    for i in range(n):
        if a[i] < 0:
            continue
        j = 0
        while j < i:
            if a[j] > 5:
                break
            s += a[j]
            j += 1
        else:
            s -= 1.0
        if s > 100:
            return s
    t = s * 2
    return t


def _straight(x):
    y = x + 1
    if y > 2:
        z = y * 3
    else:
        z = y - 3
    return z


def _endless(x):
    while True:  # a loop left only by a return (dead blocks: the random graphs' job)
        x += 1
        if x > 10:
            return x


@pytest.mark.parametrize("fn", [_nested, _straight, _endless])
def test_small_functions_live_maps_are_numbas(fn):
    numba_map, ours = _maps(run_frontend(fn))
    assert ours == numba_map


def test_random_control_flow_graphs_give_numbas_map():
    """Random graphs with cycles, self-loops, several components and blocks no path reaches,
    labelled like bytecode offsets (sparse, unordered) with a random entry; random use and
    definition sets from 30 names."""
    rng = np.random.default_rng(20261203)
    names = [f"v{i}" for i in range(30)]
    for _ in range(200):
        n = int(rng.integers(1, 25))
        label = [int(x) for x in rng.choice(10 * n, n, replace=False)]
        cfg = CFGraph()
        for b in label:
            cfg.add_node(b)
        for _e in range(int(rng.integers(0, 3 * n))):
            cfg.add_edge(label[int(rng.integers(n))], label[int(rng.integers(n))])
        cfg.set_entry_point(label[int(rng.integers(n))])
        cfg.process()
        use = {b: set(rng.choice(names, int(rng.integers(0, 6)))) for b in label}
        defs = {b: set(rng.choice(names, int(rng.integers(0, 6)))) for b in label}
        blocks = dict.fromkeys(label)
        expected = liveness.NUMBA_COMPUTE_LIVE_MAP(cfg, blocks, use, defs)
        assert liveness.compute_live_map(cfg, blocks, use, defs) == expected


def test_numba_uses_it_inside_lean_compiles_only():
    calls = []
    real = liveness.compute_live_map

    def counted(*args):
        calls.append(1)
        return real(*args)

    liveness.compute_live_map = counted
    try:
        @numba.njit(pipeline_class=LeanCompiler)
        def f(a):
            s = 0.0
            for x in a:
                s += x
            return s

        assert f(np.arange(4.0)) == 6.0
        lean = len(calls)

        @numba.njit
        def g(a):
            return a.sum()

        assert g(np.arange(4.0)) == 6.0
    finally:
        liveness.compute_live_map = real
    assert analysis.compute_live_map is liveness.NUMBA_COMPUTE_LIVE_MAP  # restored
    if liveness.applies():
        assert lean > 0 and len(calls) == lean  # the default pipeline kept numba's
    else:
        assert not calls


@pytest.mark.skipif(numba.__version__ != "0.68.1", reason="the source check is for numba 0.68.1")
def test_it_applies_to_the_numba_it_was_written_against():
    assert liveness.applies()


def test_a_failed_compile_restores_numbas_function():
    @numba.njit(pipeline_class=LeanCompiler)
    def bad(a):
        return a.no_such_attribute

    with pytest.raises(numba.core.errors.TypingError):
        bad(np.arange(3.0))
    assert analysis.compute_live_map is liveness.NUMBA_COMPUTE_LIVE_MAP
