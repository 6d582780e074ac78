"""benchmarks.toy_ratio imports the toy kernel from its source: it must run again in a process
whose numba cache already holds it (a cached function of exec'd source cannot be loaded back:
ModuleNotFoundError: No module named '<dynamic>')."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks.toy_ratio import TOY

PROBE = ("import numpy as np; from benchmarks.toy_ratio import _toy_step; s = _toy_step(); "
         "s(np.zeros(8, np.int8), np.zeros(8, np.float32), 1, np.uint64(7)); print('ok')")


@pytest.mark.skipif(not TOY.exists(), reason="no toy kernel in ../shared/tools")
def test_toy_kernel_runs_twice_on_one_numba_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
