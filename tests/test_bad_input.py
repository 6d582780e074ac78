"""Bad input gives one clear message and exit status 2.

Every case runs the real command (``python -m utenforsk.cli``) and checks: exit status 2, the
message on stderr names the file, the key path, the bad value and what is allowed, and there is no
traceback (unless ``--debug``). Bad configs are small overrides of the real baseline (``base:``),
so they fail in validation, before any simulation. One test runs a tiny real simulation to check
that a failed second run into the same directory loses nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NORWAY = ROOT / "configs" / "norway"
BASELINE = NORWAY / "baseline.yaml"
P = "{value: 0.1, range: [0, 1], source: test}"  # a valid parameter


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    # a narrow terminal: the message must not be wrapped (a wrapped path or key would not be found)
    env = dict(os.environ, COLUMNS="60", NO_COLOR="1", TERM="dumb")
    return subprocess.run([sys.executable, "-m", "utenforsk.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def override(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    """A config that is the real baseline plus ``text``."""
    path = tmp_path / name
    path.write_text(f"base: {BASELINE}\n{text}\n", encoding="utf-8")
    return path


def assert_bad(res: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, one error message containing every needle, no traceback; returns stderr."""
    err = res.stderr
    assert res.returncode == 2, (res.returncode, err, res.stdout[-2000:])
    assert "Traceback" not in err, err
    assert err.count("error:") == 1, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in stderr:\n{err}"
    return err


def run_bad(tmp_path: Path, path: Path, *needles: str, flags=()) -> str:
    res = cli("run", path, *flags, "--out", tmp_path / "out", cwd=tmp_path)
    err = assert_bad(res, *needles)
    assert not (tmp_path / "out").exists(), "nothing may be written before the input is valid"
    return err


# ---- files ----------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    run_bad(tmp_path, tmp_path / "nope.yaml", "nope.yaml", "file not found")


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "adir").mkdir()
    run_bad(tmp_path, tmp_path / "adir", "adir", "is a directory", "expected a YAML file")


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "syntax.yaml"
    path.write_text("name: x\ncalendar: {start_year: 2025\nscale: 0.1\n", encoding="utf-8")
    run_bad(tmp_path, path, "syntax.yaml", "YAML syntax error", "line 3")


def test_duplicate_key(tmp_path):
    """A key written twice would silently lose the first value; it is an error."""
    text = "calendar:\n  horizon_years: 5\n  burn_in_years: 30\n  horizon_years: 10"
    path = override(tmp_path, text, "dup.yaml")
    run_bad(tmp_path, path, "dup.yaml", "line 5", "duplicate key 'horizon_years'", "each key may appear once")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# only a comment\n", encoding="utf-8")
    run_bad(tmp_path, path, "empty.yaml", "file is empty", "allowed: a YAML mapping")


def test_top_level_list(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- name: x\n- scale: 0.1\n", encoding="utf-8")
    run_bad(tmp_path, path, "list.yaml", "top level is a list", "allowed: a YAML mapping")


def test_missing_include_names_both_files(tmp_path):
    path = override(tmp_path, "include: [nothere.yaml]")
    run_bad(tmp_path, path, "nothere.yaml", "file not found", "bad.yaml")


# ---- keys and values ------------------------------------------------------------------------

CASES = {
    "unknown top-level key": (
        "colour: blue",
        ["colour", "unknown key", "allowed:", "calendar", "transitions", "report_by"]),
    "unknown key in a transition (misspelt)": (
        f"transitions: {{job_finding: {{probabilty: {P}}}}}",
        ["transitions.job_finding.probabilty", "unknown key", "did you mean 'probability'",
         "allowed:", "annual_rate", "coefficients", "requires_service"]),
    "unknown key inside a parameter": (
        "transitions: {job_finding: {probability: {value: 0.1, range: [0, 1], sorce: x}}}",
        ["transitions.job_finding.probability.sorce", "unknown key", "allowed: value, range, source"]),
    "unknown key in a continuous trait": (
        "traits: {achievement: {colour: blue}}",
        ["traits.achievement.colour", "unknown key", "allowed: kind, description, initial, dynamics"]),
    "unknown key deep in a trait": (
        "traits: {achievement: {initial: {sdd: 1}}}",
        ["traits.achievement.initial.sdd", "did you mean 'sd'", "allowed: at_age, mean, sd"]),
    "unknown key in a binary trait's hazard": (
        f"traits: {{mental_health: {{onset: {{probability: {P}, agess: [0, 30]}}}}}}",
        ["traits.mental_health.onset.agess", "unknown key",
         "allowed: ages, probability, annual_rate, age_profile, coefficients"]),
    "unknown key in a list item": (
        f"traits: {{achievement: {{dynamics: [{{ages: [6, 19], rate: {P}, sd: {P}, rte: 1}}]}}}}",
        ["traits.achievement.dynamics[0].rte", "unknown key", "allowed: ages, rate, target, sd, stationary_sd"]),
    "unknown key in a scheduled outcome": (
        "scheduled: {school_start: {to: {school: {wieght: {value: 1, range: [1, 1], source: x}}}}}",
        ["scheduled.school_start.to.school.wieght", "did you mean 'weight'",
         "allowed: weight, coefficients"]),
    "probability above 1": (
        "transitions: {job_finding: {probability: {value: 1.5, range: [0, 2], source: x}}}",
        ["transitions.job_finding.probability", "1.5", "probability", "allowed: [0, 1]"]),
    "value outside its own range": (
        "transitions: {job_finding: {probability: {value: 0.5, range: [0.1, 0.2], source: x}}}",
        ["transitions.job_finding.probability", "0.5", "outside its range [0.1, 0.2]"]),
    "unknown state in a transition": (
        "transitions: {job_finding: {to: employd}}",
        ["transitions.job_finding.to", "unknown state 'employd'", "allowed:", "employed", "unemployed"]),
    "unknown covariate": (
        f"transitions: {{job_finding: {{coefficients: {{achievment: {P}}}}}}}",
        ["transitions.job_finding.coefficients.achievment", "unknown covariate 'achievment'",
         "allowed: ATTRIBUTE=CATEGORY, a trait"]),
    "unknown trait kind": (
        "traits: {achievement: {kind: discrete}}",
        ["traits.achievement.kind", "'discrete'", "allowed: continuous, binary"]),
    "missing required key": (
        "transitions: {brand_new: {from: [unemployed], probability: " + P + "}}",
        ["transitions.brand_new.to", "missing required key 'to'"]),
    "a list where a mapping belongs": (
        "calendar: [2025, 20]",
        ["calendar", "expected a mapping", "[2025, 20]", "start_year, horizon_years, burn_in_years"]),
    "not one of the allowed words": (
        "services: {nav: {kind: outreach}}",
        ["services.nav.kind", "'outreach'", "allowed: 'follow_up' or 'gate'"]),
    "integer below its minimum": (
        "calendar: {horizon_years: 0}",
        ["calendar.horizon_years", "(got 0)", "greater than or equal to 1"]),
    # gate services have no clients, no detection and no queue: where they cannot act, say so
    "requires_service naming a gate": (
        "transitions: {job_finding: {requires_service: nav_measures}}",
        ["transitions.job_finding.requires_service", "'nav_measures'", "is a gate",
         "allowed: a follow_up service", "health_station"]),
    "a referral to a gate": (
        "handoffs: {school_to_ot_at_dropout: {to_service: nav_measures}}",
        ["handoffs.school_to_ot_at_dropout.to_service", "'nav_measures'", "is a gate",
         "allowed: a follow_up service"]),
    "an exit handoff from a gate": (
        "handoffs: {ot_to_nav_at_21: {from_service: kindergarten}}",
        ["handoffs.ot_to_nav_at_21.from_service", "'kindergarten'", "is a gate",
         "allowed: a follow_up service"]),
    "arrival rules leaving ages uncovered": (
        "population: {immigration: {states: [{ages: [0, 16], to: {home: {}}}, {ages: [19, 30], to: {employed: {}}}]}}",
        ["population.immigration.states", "no arrival rule covers ages [16, 19)",
         "allowed: rules whose ages together cover 0-30"]),
    "an arrival flag that does not exist": (
        "population: {immigration: {states: [{ages: [0, 30], to: {home: {}}, flags: {has_degree: " + P + "}}]}}",
        ["population.immigration.states[0].flags.has_degree", "unknown flag 'has_degree'",
         "completed_upper_secondary"]),
    "text that looks like terminal markup": (
        "transitions: {job_finding: {to: '[bold]x'}}",
        ["transitions.job_finding.to", "'[bold]x'"]),
}


@pytest.mark.parametrize("text, needles", CASES.values(), ids=CASES.keys())
def test_bad_config(tmp_path, text, needles):
    path = override(tmp_path, text, "scenario.yaml")
    err = run_bad(tmp_path, path, "scenario.yaml", *needles)
    assert str(BASELINE) not in err  # the bad key is in the override, not in the baseline


def test_bad_key_in_included_file_names_that_file(tmp_path):
    """The real baseline folder, with one key misspelt in pathways.yaml (an `include:`)."""
    folder = shutil.copytree(NORWAY, tmp_path / "norway")
    pathways = folder / "pathways.yaml"
    text = pathways.read_text(encoding="utf-8")
    assert text.count("\n    probability: {value: 0.088,") == 1  # job_finding's line
    pathways.write_text(text.replace("\n    probability: {value: 0.088,", "\n    probabilty: {value: 0.088,"),
                        encoding="utf-8")
    err = run_bad(tmp_path, folder / "baseline.yaml", str(pathways), "transitions.job_finding.probabilty",
                  "unknown key", "allowed:", "annual_rate")
    assert "baseline.yaml" not in err


def test_bad_key_in_nested_include_names_that_file(tmp_path):
    """override -> include: sub/extra.yaml -> include: deeper.yaml, which has the bad key."""
    path = override(tmp_path, "include: [sub/extra.yaml]", "scenario.yaml")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "extra.yaml").write_text("include: [deeper.yaml]\nscale: 0.01\n", encoding="utf-8")
    (tmp_path / "sub" / "deeper.yaml").write_text(
        f"transitions:\n  job_finding:\n    description: moved\n    annual_rat: {P}\n", encoding="utf-8")
    err = run_bad(tmp_path, path, "deeper.yaml", "transitions.job_finding.annual_rat",
                  "did you mean 'annual_rate'")
    assert "extra.yaml" not in err and "scenario.yaml" not in err


def test_debug_shows_traceback(tmp_path):
    path = override(tmp_path, "colour: blue")
    res = cli("--debug", "run", path, "--out", tmp_path / "out", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" in res.stderr and "ConfigError" in res.stderr
    assert "colour" in res.stderr and "bad.yaml" in res.stderr
    assert not (tmp_path / "out").exists()


# ---- flags ----------------------------------------------------------------------------------

FLAGS = {
    "scale negative": (["--scale", "-1"], ["--scale", "-1", "out of range", "allowed: a number in (0, 1]"]),
    "scale above 1": (["--scale", "2"], ["--scale", "2", "out of range", "allowed: a number in (0, 1]"]),
    "scale not a number": (["--scale", "abc"], ["--scale", "'abc'", "not a number", "(0, 1]"]),
    "seed not an integer": (["--seed", "abc"], ["--seed", "'abc'", "not an integer", "allowed: an integer"]),
    "seed negative": (["--seed", "-3"], ["--seed", "-3", "out of range", "allowed: an integer"]),
    "threads zero": (["--threads", "0"], ["--threads", "greater than or equal to 1"]),
    "unknown flag": (["--sead", "1"], ["--sead"]),
}


@pytest.mark.parametrize("flags, needles", FLAGS.values(), ids=FLAGS.keys())
def test_bad_flag(tmp_path, flags, needles):
    # a valid, tiny config: if the flag were accepted, the run would start (and the test fail)
    path = override(tmp_path, "calendar: {burn_in_years: 30, horizon_years: 1}", "tiny.yaml")
    tiny = [] if "--scale" in flags else ["--scale", "0.002"]
    run_bad(tmp_path, path, *needles, flags=[*flags, *tiny])


def test_out_is_a_file(tmp_path):
    path = override(tmp_path, "calendar: {burn_in_years: 30, horizon_years: 1}", "tiny.yaml")
    (tmp_path / "out").write_text("keep me", encoding="utf-8")
    res = cli("run", path, "--scale", "0.002", "--out", tmp_path / "out", cwd=tmp_path)
    assert_bad(res, "--out", "not a directory", str(tmp_path / "out"))
    assert (tmp_path / "out").read_text(encoding="utf-8") == "keep me"


def test_failed_run_keeps_existing_outputs(tmp_path):
    """The one real (tiny) simulation: a good run, then a bad config into the same directory."""
    good = override(tmp_path, "calendar: {burn_in_years: 30, horizon_years: 1}", "tiny.yaml")
    out = tmp_path / "out"
    res = cli("run", good, "--scale", "0.002", "--out", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "run.json" in before and "periods.parquet" in before
    bad = override(tmp_path, "transitions: {job_finding: {probability: {value: 1.5, range: [0, 2], source: x}}}",
                   "bad.yaml")
    res = cli("run", bad, "--scale", "0.002", "--out", out, cwd=tmp_path)
    assert_bad(res, "bad.yaml", "transitions.job_finding.probability", "1.5", "[0, 1]")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# ---- schema ---------------------------------------------------------------------------------

def test_schema_is_json(tmp_path):
    res = cli("schema", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    schema = json.loads(res.stdout)
    assert "transitions" in schema["properties"]
    assert "traits" in schema["properties"]


def test_unknown_schema(tmp_path):
    assert_bad(cli("schema", "scenario", cwd=tmp_path), "'scenario'", "unknown schema", "allowed: model")


# ---- every mapping, in process ---------------------------------------------------------------

def test_unknown_key_anywhere_is_an_error_with_allowed_keys():
    """An extra key in every mapping of the baseline is rejected; where the mapping has fixed keys,
    the message is "unknown key" at the right key path and lists the keys allowed there."""
    import copy

    from utenforsk.config.loader import compose, validate
    from utenforsk.config.schema import ModelConfig
    from utenforsk.errors import ConfigError

    data = compose(BASELINE)
    paths, seen = [], set()

    def walk(node, path):
        if isinstance(node, (dict, list)):
            if id(node) in seen:  # a YAML alias: the same mapping as at its anchor
                return
            seen.add(id(node))
        if isinstance(node, dict):
            paths.append(path)
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + ([i],))  # a list position, written key[i]

    walk(data, ())
    unknown = 0
    for path in paths:
        bad = copy.deepcopy(data)
        node = bad
        for part in path:
            node = node[part[0] if isinstance(part, list) else part]
        node["zzz_bogus"] = 1
        with pytest.raises(ConfigError) as info:
            validate(ModelConfig, bad, "model.yaml")
        exc = info.value
        want = "".join(f"{p}" if isinstance(p, list) else f".{p}" for p in path + ("zzz_bogus",)).lstrip(".")
        assert exc.key == want, (path, exc.render())
        if exc.detail.startswith("unknown key"):
            unknown += 1
            assert exc.allowed and "," in exc.allowed, (path, exc.render())
    assert unknown > 200  # most mappings are models (parameters, transitions, traits, ...)


def test_unwritable_output_directory_is_a_clear_error(tmp_path):
    """An --out directory that cannot be written is reported before any simulation runs."""
    import os

    if os.geteuid() == 0:
        # root ignores directory permissions; use a path under a regular file instead
        blocker = tmp_path / "file"
        blocker.write_text("x")
        target = blocker / "sub"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "sub"
    res = subprocess.run([sys.executable, "-m", "utenforsk.cli", "run", str(BASELINE), "--out", str(target)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "--out" in res.stderr and "Traceback" not in res.stderr
