"""Golden outputs: the engine's results must not move, bit for bit, when its code is reorganised.

Each case runs a small model (the Norway baseline with and without interventions, the test
models in tests/configs) or a tiny 2-scenario experiment, and compares a SHA-256 digest of every
population field, every tally and every reported month with ``tests/golden/engine.json``. The
digests were recorded on the code before the month was rebuilt from component declarations
(issue 11); a change that moves any random number, any order of operations or any count fails
here. A change that is *meant* to move results regenerates the file, and says so in its commit:

    UTENFORSK_REGEN_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_golden.py
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from utenforsk.model import UtenforskModel

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "engine.json"
REGEN = os.environ.get("UTENFORSK_REGEN_GOLDEN") == "1"
BASELINE = "configs/norway/baseline.yaml"
ALL_INTERVENTIONS = ["thousand_days", "kindergarten_enrolment", "kindergarten_quality",
                     "early_school_support", "dropout_prevention", "ot_reengagement",
                     "nav_youth_guarantee", "ips_youth", "cross_sector_coordination"]

#: name -> (config, keyword arguments of UtenforskModel)
MODEL_CASES = {
    "baseline_s3": (BASELINE, dict(seed=3, scale=0.002, burn_in_years=30, horizon_years=3)),
    "baseline_all_interventions": (BASELINE, dict(seed=5, scale=0.002, burn_in_years=30, horizon_years=4,
                                                   interventions=ALL_INTERVENTIONS)),
    "baseline_ips_nav": (BASELINE, dict(seed=8, scale=0.002, burn_in_years=20, horizon_years=3,
                                        interventions=["ips_youth", "nav_youth_guarantee"])),
    "markov": ("tests/configs/markov.yaml", dict(seed=2, burn_in_years=0, horizon_years=5)),
    "markov_ranges": ("tests/configs/markov_ranges.yaml", dict(seed=4, burn_in_years=0, horizon_years=3)),
}

EXPERIMENT = f"""name: golden
model: {ROOT / BASELINE}
scale: 0.002
horizon_years: 2
burn_in_years: 10
replicates: 2
seed: 13
scenarios:
  baseline: {{}}
  programmes: {{interventions: [ips_youth, ot_reengagement, early_school_support]}}
hypotheses:
  - name: reduces_neet
    statement: the scenario reduces the NEET rate 15-29
    metric: neet_rate_15_29
    scenario: programmes
    compare_to: baseline
    direction: reduces
"""


def _digest(a) -> str:
    a = np.ascontiguousarray(np.asarray(a))
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:20]


def model_digests(config: str, kw: dict) -> dict[str, str]:
    m = UtenforskModel(str(ROOT / config), **kw)
    while m.running:
        m.step()
    out = {f"pop.{f}": _digest(x) for f, x in zip(m.pop._fields, m.pop, strict=True)}
    out |= {f"tally.{f}": _digest(x.sum(axis=0)) for f, x in zip(m.tally._fields, m.tally, strict=True)}
    keys = sorted(m.history[0]) if m.history else []
    for k in keys:
        h = hashlib.sha256()
        for month in m.history:
            h.update(_digest(month[k]).encode())
        out[f"history.{k}"] = h.hexdigest()[:20]
    out["months"] = str(len(m.history))
    return out


def experiment_digests(tmp: Path) -> dict[str, str]:
    spec = tmp / "golden.yaml"
    spec.write_text(EXPERIMENT, encoding="utf-8")
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    res = subprocess.run([sys.executable, "-m", "utenforsk.cli", "experiment", str(spec), "--out",
                          str(tmp / "out")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    df = pd.read_parquet(tmp / "out" / "runs.parquet")
    df = df.sort_values(["scenario", "replicate", "metric"], kind="stable").reset_index(drop=True)
    return {f"runs.{c}": hashlib.sha256(df[c].astype(str).str.cat(sep="|").encode()).hexdigest()[:20]
            for c in df.columns}


def _check(name: str, got: dict[str, str]) -> None:
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if REGEN:
        golden[name] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        return
    assert name in golden, f"no golden digests for {name}: regenerate (see the module docstring)"
    moved = sorted(k for k in golden[name] if got.get(k) != golden[name][k])
    assert not moved and set(got) == set(golden[name]), f"{name}: results moved in {moved}"


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_model_outputs_are_unchanged(name):
    config, kw = MODEL_CASES[name]
    _check(name, model_digests(config, kw))


def test_experiment_outputs_are_unchanged(tmp_path):
    _check("experiment", experiment_digests(tmp_path))
