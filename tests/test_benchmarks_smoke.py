"""The benchmark suite keeps working (nothing here is timed or asserted about speed)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_quick_benchmark_runs_and_writes_json(tmp_path):
    res = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--sizes", "1500",
                          "--no-compile-times", "--experiment-scale", "0.0005", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "latest.json").read_text())
    for key in ("kernel_person_months_per_s_1thread", "kernel_person_months_per_s_2threads",
                "parallel_speedup_2threads", "bytes_per_person", "machine", "mesa_reference_ratio",
                "pool_efficiency_2workers", "experiment_tasks_per_minute"):
        assert key in data
    assert 0 < data["bytes_per_person"] <= 64
    # both implementations simulated the same people: the ratio is of two positive measured rates
    ref = data["mesa_reference"]
    assert ref["reference_pm_per_cpu_s"] > 0 and ref["engine_pm_per_cpu_s"] > 0
    assert "national_run_s" not in data  # --quick leaves the national run out
