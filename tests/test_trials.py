"""Virtual trials (utenforsk/trials/): the estimator on a model with a known answer, the paired
design, and bad specs.

- Markov test model (tests/configs/markov.yaml): an odds ratio of 3 on the monthly a->c hazard,
  for everyone in state a at ages 10-29 in the first policy month; the trial's outcome is "in c
  after one month". The exact one-month probabilities follow from the competing rates as the
  kernel resolves them (as in tests/test_exactness.py); the simulated arms and the odds ratio must
  each lie within 4 Monte Carlo SE of them (|z| < 4: a false alarm about once in 16,000 runs).
- A null intervention (coverage 1, no effect) gives a difference whose interval covers 0 (with
  common random numbers the arms are the same people meeting the same dice: exactly 0).
- Bad specs exit with status 2 and one line, before anything runs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MARKOV = ROOT / "tests" / "configs" / "markov.yaml"
P = {"value": 1.0, "range": [1.0, 1.0], "source": "test"}
OR = 3.0


def _iv(odds: dict) -> dict:
    return {"name": "test_programme", "description": "test", "evidence": "test",
            "what": {"odds": odds}, "coverage": P, "take_up": P, "when": {"start_year": 2000}}


def _spec(tmp_path: Path, odds: dict, **extra) -> Path:
    spec = {"name": "markov_or", "model": str(MARKOV), "intervention": _iv(odds),
            "population": {"ages": [10, 30], "states": ["a"]},
            "enrolment": {"months": 1},
            "outcome": {"kind": "ever_in_states", "states": ["c"], "months": 1, "label": "in c after 1 month"},
            "published": {"measure": "odds_ratio", "estimate": OR, "ci": [OR * 0.999, OR * 1.001],
                          "source": "test: the odds ratio put in"},
            "scale": 0.25, "replicates": 1, "seed": 7}
    spec.update(extra)
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _exact(or_c: float) -> float:
    """P(a -> c within one month) with the a->c probability's odds multiplied by ``or_c``."""
    pb, pc = 0.02, 0.01
    oc = or_c * pc / (1 - pc)
    pc = oc / (1 + oc)
    lb, lc = -math.log1p(-pb), -math.log1p(-pc)
    return lc / (lb + lc) * -math.expm1(-(lb + lc))


@pytest.fixture(scope="module")
def markov_or(tmp_path_factory):
    from utenforsk.trials import load_trial, run_trial

    os.environ.setdefault("UTENFORSK_KERNEL_CACHE", str(ROOT / ".kcache"))
    trial = load_trial(_spec(tmp_path_factory.mktemp("t"), {"a_to_c": {**P, "value": OR, "range": [OR, OR]}}))
    return run_trial(trial, threads=1)


def test_known_odds_ratio_recovered(markov_or):
    row = markov_or
    n = row["n_control"]
    assert n > 20000
    for arm, p in (("control", _exact(1.0)), ("treated", _exact(OR))):
        se = math.sqrt(p * (1 - p) / n)
        assert abs(row[arm] - p) < 4 * se, (arm, row[arm], p, se)
    want = (_exact(OR) / (1 - _exact(OR))) / (_exact(1.0) / (1 - _exact(1.0)))
    # the log odds ratio's Monte Carlo SE is the interval's half-width / 1.96
    se_log = (math.log(row["ci_high"]) - math.log(row["ci_low"])) / (2 * 1.959964)
    assert abs(math.log(row["odds_ratio"]) - math.log(want)) < 4 * se_log, (row["odds_ratio"], want, se_log)
    assert row["ci_low"] < want < row["ci_high"] or abs(math.log(row["odds_ratio"] / want)) < 4 * se_log


def test_null_intervention_covers_zero(tmp_path):
    from utenforsk.trials import load_trial, run_trial

    spec = _spec(tmp_path, {"a_to_c": P}, name="markov_null",
                 published={"measure": "difference", "estimate": 0.0, "ci": [-0.01, 0.01], "source": "test"})
    row = run_trial(load_trial(spec), threads=1)
    assert row["ci_low"] <= 0.0 <= row["ci_high"]
    assert row["difference"] == 0.0  # the same people, the same dice
    assert row["consistent"]


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="60", NO_COLOR="1", TERM="dumb")
    return subprocess.run([sys.executable, "-m", "utenforsk.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _seed_spec(tmp_path: Path, **change) -> Path:
    spec = yaml.safe_load((ROOT / "configs" / "trials" / "seed_ips.yaml").read_text())
    spec["model"] = str(ROOT / "configs" / "norway" / "baseline.yaml")
    for dotted, value in change.items():
        node = spec
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("change, words", [
    ({"intervention": "no_such_programme"}, ["unknown intervention", "no_such_programme", "ips_youth"]),
    ({"outcome__states": ["employd"]}, ["outcome.states", "employd", "employed"]),
    ({"outcome__kind": "happiness"}, ["outcome.kind", "happiness"]),
    ({"population__states": ["retired"]}, ["unknown state", "retired"]),
    ({"outcome__months": 200}, ["follow-up beyond the horizon", "outcome.months", "200"]),
])
def test_bad_spec_exits_2(tmp_path, change, words):
    res = cli("trial", _seed_spec(tmp_path, **change), "--out", tmp_path / "out", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    msg = " ".join(res.stderr.split())
    for w in words:
        assert w in msg, (w, msg)
    assert not (tmp_path / "out").exists()


def test_no_spec_exits_2(tmp_path):
    res = cli("trial", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def _exact_two_months(or_month1: float, or_month2: float) -> float:
    """P(in c at some time within two months) from a, the a->c odds multiplied by ``or_month1``
    in the first month and by ``or_month2`` in the second (competing rates as the kernel
    resolves them; from b: b->a 0.05 and b->c 0.03)."""
    def month_from_a(or_c):
        pb, pc = 0.02, 0.01
        oc = or_c * pc / (1 - pc)
        pc = oc / (1 + oc)
        lb, lc = -math.log1p(-pb), -math.log1p(-pc)
        tot = -math.expm1(-(lb + lc))
        return lb / (lb + lc) * tot, lc / (lb + lc) * tot  # to b, to c

    to_b, to_c = month_from_a(or_month1)
    la, lc = -math.log1p(-0.05), -math.log1p(-0.03)
    b_to_c = lc / (la + lc) * -math.expm1(-(la + lc))
    return to_c + (1 - to_b - to_c) * month_from_a(or_month2)[1] + to_b * b_to_c


def test_programme_period_and_persistence_exact(tmp_path):
    """A programme of mean length D = 2 months (a monthly exit hazard 1/2) whose effect persists
    at half strength (persistence 0.5 on the log odds ratio): the first month after enrolment
    carries the full odds ratio 3; in the second, half the people are still enrolled (OR 3) and
    half have ended the programme (OR 3^0.5). The treated arm's two-month probability of
    reaching c must lie within 4 Monte Carlo SE of that exact value, and the control arm's of
    the untreated chain's."""
    from utenforsk.trials import load_trial, run_trial

    iv = _iv({"a_to_c": {**P, "value": OR, "range": [OR, OR]}})
    iv["programme"] = {"duration_months": {"value": 2.0, "range": [2.0, 2.0], "source": "test"},
                       "persistence": {"value": 0.5, "range": [0.5, 0.5], "source": "test"}}
    spec = _spec(tmp_path, {}, name="markov_period", intervention=iv, scale=1.0,
                 population={"ages": [10, 29], "states": ["a"]},
                 outcome={"kind": "ever_in_states", "states": ["c"], "months": 2, "label": "in c within 2 months"},
                 published={"measure": "difference", "estimate": 0.0, "ci": [-1.0, 1.0], "source": "test"})
    row = run_trial(load_trial(spec), threads=1)
    n = row["n_control"]
    assert n > 50000
    want = {"control": _exact_two_months(1.0, 1.0),
            # the exit draw is independent of the hazards: a 50/50 mixture of the two chains
            "treated": 0.5 * (_exact_two_months(OR, OR) + _exact_two_months(OR, OR ** 0.5))}
    for arm, p in want.items():
        se = math.sqrt(p * (1 - p) / n)
        assert abs(row[arm] - p) < 4 * se, (arm, row[arm], p, se)
    # without the period and the persistence the second month carries the full odds ratio: the
    # two predictions differ by more than 4 SE, so the test tells them apart
    full = _exact_two_months(OR, OR)
    assert abs(full - want["treated"]) > 4 * math.sqrt(full * (1 - full) / n)
