"""The generated parameter table (utenforsk.paramtable) and docs/model.md. Fast: no simulation."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from utenforsk.config.loader import PARAM_KEYS, compose, load_model_config
from utenforsk.paramtable import START, check, iter_params, main, markdown_table

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "configs" / "norway" / "baseline.yaml"
MODEL_MD = ROOT / "docs" / "model.md"


@pytest.fixture(scope="module")
def cfg():
    return load_model_config(BASELINE)


@pytest.fixture(scope="module")
def rows(cfg):
    return iter_params(cfg)


def _raw_params(data, path=""):
    """Every Param in the composed YAML (a mapping with value, range and source), by key path.

    Independent of the pydantic walk: it reads the merged YAML, not the validated objects."""
    if isinstance(data, dict):
        if PARAM_KEYS <= set(data):
            yield path, data
            return
        for k, v in data.items():
            key = "from" if k == "from_" else str(k)
            yield from _raw_params(v, f"{path}.{key}" if path else key)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _raw_params(v, f"{path}[{i}]")


def test_every_param_appears_exactly_once(rows):
    raw = dict(_raw_params(compose(BASELINE)))
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)), "a parameter path appears twice"
    assert set(paths) == set(raw)
    assert len(rows) == len(raw)
    for r in rows:
        p = raw[r["path"]]
        assert r["value"] == pytest.approx(p["value"]), r["path"]
        assert (r["low"], r["high"]) == pytest.approx(tuple(p["range"])), r["path"]
        assert r["source"] == p["source"], r["path"]


def test_rows_have_source_unit_and_value_inside_range(rows):
    assert rows
    for r in rows:
        assert r["source"].strip(), r["path"]
        assert r["unit"] and r["unit"] != "-", f"no unit for {r['path']}"
        assert r["low"] <= r["value"] <= r["high"], r["path"]
        assert r["assumption"] == r["source"].lower().startswith("assumption")


def test_units_and_descriptions_follow_the_schema(rows):
    by = {r["path"]: r for r in rows}
    assert by["transitions.job_finding.probability"]["unit"] == "probability/month"
    assert by["transitions.job_finding.coefficients.engagement"]["unit"] == "log-odds"
    assert by["exits.death.annual_rate"]["unit"] == "probability/year"
    assert by["exits.death.age_profile.15"]["unit"] == "log-odds shift"
    assert by["traits.mental_health.initial.probability"]["unit"] == "share"
    assert by["traits.achievement.initial.mean.coefficients.early_development"]["unit"] == "SD"
    assert by["traits.engagement.dynamics[0].rate"]["unit"] == "share of gap/month"
    assert by["services.nav.capacity"]["unit"] == "per 1,000 residents"
    assert by["handoffs.ot_to_nav_at_21.delay_months"]["unit"] == "months"
    assert by["handoffs.ot_to_nav_at_21.probability"]["unit"] == "probability"
    assert by["attributes.sex.at_birth.all.female"]["unit"] == "share"
    assert by["scheduled.upper_secondary_start.to.inactive.weight"]["unit"] == "relative weight"
    assert by["transitions.job_finding.probability"]["description"] == "finding work while unemployed"
    assert by["population.births_per_year"]["description"] == ""  # not the model's description


def test_markdown_table_sections_and_escaping(cfg, rows):
    md = markdown_table(cfg)
    headings = [line[4:] for line in md.splitlines() if line.startswith("### ")]
    assert headings == ["population", "attributes", "municipalities", "municipality_effects", "traits",
                        "scheduled", "transitions", "exits", "services", "handoffs"]
    table_rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(table_rows) == len(rows)
    assert all(line.count(" | ") - line.count("\\|") == 4 for line in table_rows)


def test_docs_model_md_is_up_to_date():
    out = io.StringIO()
    code = check(BASELINE, MODEL_MD, out=out)
    assert code == 0, ("docs/model.md is out of date; run `python -m utenforsk.paramtable "
                       "configs/norway/baseline.yaml --write docs/model.md`\n" + out.getvalue())
    text = MODEL_MD.read_text(encoding="utf-8")
    assert "## Equations" in text
    assert text.index("## Evidence and assumptions") > text.index(START)  # counts are checked too


def test_check_detects_a_stale_table_and_write_fixes_it(tmp_path):
    md = tmp_path / "model.md"
    md.write_text(MODEL_MD.read_text(encoding="utf-8").replace("| 54897 |", "| 53000 |"),
                  encoding="utf-8")
    out = io.StringIO()
    assert check(BASELINE, md, out=out) == 1
    assert "-| `population.births_per_year` | 53000" in out.getvalue()
    assert main([str(BASELINE), "--write", str(md)]) == 0
    assert check(BASELINE, md, out=io.StringIO()) == 0
    assert md.read_text(encoding="utf-8") == MODEL_MD.read_text(encoding="utf-8")
    md.write_text("no markers\n", encoding="utf-8")
    assert check(BASELINE, md, out=io.StringIO()) == 2


def test_a_param_added_by_an_override_appears(tmp_path):
    over = tmp_path / "override.yaml"
    over.write_text(
        f"base: {BASELINE.resolve()}\n"
        "transitions:\n"
        "  job_finding:\n"
        "    coefficients:\n"
        "      sex=female: {value: 0.1, range: [-0.1, 0.3], source: 'test | override'}\n",
        encoding="utf-8")
    cfg = load_model_config(over)
    rows = iter_params(cfg)
    base_rows = iter_params(load_model_config(BASELINE))
    assert len(rows) == len(base_rows) + 1
    new = [r for r in rows if r["path"] == "transitions.job_finding.coefficients.sex=female"]
    assert len(new) == 1 and new[0]["value"] == 0.1 and new[0]["unit"] == "log-odds"
    assert ("| `transitions.job_finding.coefficients.sex=female` | 0.1 | [-0.1, 0.3] | log-odds | "
            "test \\| override |") in markdown_table(cfg)
    # the other coefficients of job_finding survive the merge
    assert "transitions.job_finding.coefficients.engagement" in {r["path"] for r in rows}
    # and docs/model.md, generated from the baseline, is now stale for this model
    assert check(over, MODEL_MD, out=io.StringIO()) == 1
