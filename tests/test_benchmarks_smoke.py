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
    if (ROOT.parent / "shared" / "tools" / "toy_ceiling.py").exists():
        assert data["toy_ceiling_ratio"] > 0 and data["toy_alive"] == data["sizes"][-1]["alive"]


def test_scenario_start_probe_runs_on_one_kernel():
    """benchmarks/scenario_start.py starts scenarios it never saw on the model's compiled kernel:
    its scratch cache holds one kernel source (structure, not speed, is asserted here)."""
    res = subprocess.run([sys.executable, "-m", "benchmarks.scenario_start", "--scale", "0.0005"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["kernel_sources_generated"] == 1
    assert data["new_scenario_first_month_s"] > 0


def test_bound_passes_counts_every_bound():
    """``benchmarks.bound_passes`` finds each bound test in the generated kernel (a generator
    change that renamed one would otherwise count 0), and the bounds nest as they must."""
    res = subprocess.run([sys.executable, "-m", "benchmarks.bound_passes", "--scale", "0.002"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout.strip().splitlines()[-1])
    assert all(d[k] > 0 for k in ("exit_share", "btrait_share", "transition_state_bound_share",
                                  "transition_person_bound_share", "transition_fired_share"))
    assert d["transition_state_bound_share"] >= d["transition_person_bound_share"] >= d["transition_fired_share"]
    assert max(d["state_bound_max"].values()) > 0 and all(lo <= 0.0 <= hi for lo, hi in d["trait_range"].values())


def test_thread_balance_runs():
    """The tool runs (at this size the month is one worker's: the figures are not checked)."""
    res = subprocess.run([sys.executable, "-m", "benchmarks.thread_balance", "--scale", "0.002",
                          "--months", "2"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout.strip().splitlines()[-1])
    assert d["span_ms"] > 0 and d["half_busy_ms"] > 0 and d["months"] == 2


def test_kernel_profile_maps_machine_code_to_source_lines(tmp_path):
    """``benchmarks.kernel_profile``'s sampled half runs (perf itself is not needed here): the
    kernel compiled with debug information matches its object file's line table, and a sample
    at any instruction of a line is attributed to that line and its section."""
    import os
    import shutil

    import pytest

    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the tool reads x86-64 machine code")
    if shutil.which("objdump") is None and not os.environ.get("UTENFORSK_OBJDUMP_REQUIRED"):
        pytest.skip("objdump (Debian binutils) is not installed; .ci/run installs it and requires it")
    from benchmarks import kernel_profile as kp
    from utenforsk.model import UtenforskModel

    m = UtenforskModel(ROOT / "configs/norway/baseline.yaml", seed=1, scale=0.002, burn_in_years=1,
                       horizon_years=1, threads=1)
    (tmp_path / "k.py").write_text(m._gen.source)
    env = {**os.environ, "NUMBA_DEBUGINFO": "1", "UTENFORSK_KERNEL_CACHE": str(tmp_path / "kc"),
           "NUMBA_CACHE_DIR": str(tmp_path / "nb")}
    res = subprocess.run([sys.executable, "-m", "benchmarks.kernel_profile", str(tmp_path / "k.py"), "--child",
                          "--out", str(tmp_path), "--scale", "0.002", "--seconds", "0", "--iv"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "address.json").read_text())
    assert meta["same_instructions"] >= 0.99
    dump = subprocess.run(["objdump", "-d", "-l", "--no-show-raw-insn", str(tmp_path / "kernel.o")],
                          capture_output=True, text=True, check=True).stdout
    lines, _ = kp.line_table(dump)
    source, path = (tmp_path / "kernel.py").read_text(), meta["source_path"]
    text = source.split("\n")
    exit_line = next(n for n, t in enumerate(text, 1) if t.strip().startswith("if u_exit_") and "< B[" in t)
    offsets = [o for o, w in lines.items() if w == (path, exit_line)]
    assert offsets, "the exit bound's line has machine code"
    other = next(o for o, w in lines.items() if w is not None and w[0] == path and w[1] != exit_line)
    ips = [meta["address"] + o for o in offsets] * 3 + [meta["address"] + other] + [meta["address"] - 64]
    got = kp.attribute(ips, meta["address"], lines, source, path, top=5)
    assert got["samples_in_kernel"] == 3 * len(offsets) + 1  # the one below the function is outside
    assert got["lines"][0]["line"] == exit_line and got["lines"][0]["share"] > 0.5
    assert max(got["sections"], key=got["sections"].get).startswith("exits")
    assert 0.5 < meta["like_normal_build"] <= 1.0
    # code inlined from another file (numba's builtins, kernel.py) is not booked against the
    # generated source's lines
    inlined = [o for o, w in lines.items() if w is not None and w[0] != path]
    assert inlined, "the month kernel inlines code from other files"
    got = kp.attribute([meta["address"] + inlined[0]], meta["address"], lines, source, path, top=5)
    assert got["lines"] == [] and next(iter(got["sections"])).startswith("inlined from ")
