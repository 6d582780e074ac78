"""The dashboard without a browser: the run model, the experiment reader, the CLI's bad input, and
the Solara widgets rendered as Mesa tests SolaraViz (``solara.render(..., handle_error=False)``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("solara")

import ipyvuetify as v  # noqa: E402
import solara  # noqa: E402

from utenforsk.dashboard import app, results, run as drun  # noqa: E402

SMALL = dict(seed=2, scale=0.002, horizon_years=5)


def _text(rc) -> str:
    """Everything the rendered page says (its widget tree, as reacton prints it)."""
    import ipyvue

    widgets = rc.find(ipyvue.VueTemplate).widgets
    md = [w.template for w in widgets if isinstance(w.template, str)]
    # solara.HTML's markup in full (the structure printout abbreviates long strings)
    html = [w.unsafe_innerHTML for w in widgets if isinstance(getattr(w, "unsafe_innerHTML", None), str)]
    return rc.find()._current_structure() + "\n".join(md + html)


# ---- the run model --------------------------------------------------------------------------
def test_library_lists_every_intervention_and_parameters_carry_ranges_and_sources():
    names = [e.name for e in drun.library()]
    assert "ips_youth" in names and all(e.error is None for e in drun.library())
    ps = drun.parameters()
    p = ps["transitions.job_finding.probability"]
    assert p.low <= p.value <= p.high and p.source
    assert drun.municipalities() == ["central_large", "central_medium", "less_central", "least_central"]


def test_run_steps_scenario_beside_same_seed_baseline():
    base = drun.DashboardRun(**SMALL)
    for _ in range(3):
        base.step()
    assert base.error is None and base.months_done == 3 and base.steps == 3
    assert base.summary()["difference_pp"] == 0.0  # no intervention: the scenario is the baseline
    sc = drun.DashboardRun(interventions=["nav_youth_guarantee"], start_year=2025, coverage=1.0, **SMALL)
    for _ in range(14):
        sc.step()
    # the same seed gives the same baseline months (common random numbers), shared, not re-simulated
    assert [r["rates"] for r in sc.base_records[:3]] == [r["rates"] for r in base.records[:3]]
    assert sc.base_records[0] is base.records[0]
    assert sum(abs(r["difference_pp"]) for r in sc.difference()) > 0  # the programme changes something
    assert {r["run"] for r in sc.yearly_neet()} == {"scenario", "baseline"}
    assert sc.pathways() and sc.queues()


@pytest.mark.parametrize("kwargs, words", [
    (dict(interventions=["ips_youth"], coverage=1.5), "coverage"),
    (dict(interventions=["nope"]), "unknown intervention"),
    (dict(interventions=["ips_youth"], target=[]), "no target municipality"),
    (dict(custom_yaml="name: [x\n"), "not valid YAML"),
    (dict(custom_yaml="name: x\ndescription: y\n"), "missing required key"),
    (dict(overrides={"transitions.job_finding.probability": 7.0}), "outside the parameter's range"),
    (dict(scale=-1), "scale"),
])
def test_bad_input_is_one_message_not_an_exception(kwargs, words):
    r = drun.DashboardRun(**{**SMALL, **kwargs})
    assert r.error and words in r.error and "\n" not in r.error and not r.running
    r.step()  # harmless
    assert r.months_done == 0


# ---- the experiment reader --------------------------------------------------------------------
def _tiny_experiment(tmp_path, with_files=("effects", "hypotheses")):
    d = tmp_path / "exp"
    d.mkdir()
    (d / "experiment.json").write_text(json.dumps({"name": "tiny", "replicates": 2}))
    if "effects" in with_files:
        (d / "effects.csv").write_text(
            "scenario,metric,baseline_mean,scenario_mean,difference,ci_low,ci_high,relative_change,n_replicates\n"
            "a,neet_rate_15_29,0.1,0.09,-0.01,-0.02,0.0,-0.1,2\n"
            "a,neet_rate_15_29@2030,0.1,0.09,-0.01,-0.02,0.0,-0.1,2\n"
            "a,gap_neet_rate_15_29_parental_education,0.05,0.04,-0.01,-0.02,0.0,-0.2,2\n")
    if "hypotheses" in with_files:
        (d / "hypotheses.csv").write_text("name,statement,verdict\nh1,a reduces NEET,supported\n")
    return d


def test_experiment_reader_reads_what_is_there_and_marks_the_rest_missing(tmp_path):
    exp = results.load(_tiny_experiment(tmp_path))
    assert exp.name == "tiny" and exp.effect_metrics() == ["neet_rate_15_29"]
    assert list(exp.timing()["year"]) == [2030] and len(exp.gaps()) == 1
    assert exp.get("ledger") is None and exp.get("economics") is None and exp.get("trial") is None


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing", "no such directory"),
    (lambda p: p, "not an experiment directory"),
    (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "not a directory"),
])
def test_foreign_or_missing_directory_is_a_user_error(tmp_path, make, words):
    with pytest.raises(results.UserError, match=words):
        results.check_experiment_dir(make(tmp_path))


@pytest.mark.parametrize("arg", ["missing", "foreign"])
def test_cli_missing_or_foreign_experiment_exits_2_with_one_line(tmp_path, arg):
    path = tmp_path / "nothing" if arg == "missing" else tmp_path
    proc = subprocess.run([sys.executable, "-m", "utenforsk.cli", "dashboard", "--experiment", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error: --experiment") and "Traceback" not in proc.stderr


def test_cli_busy_port_exits_2(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "utenforsk.cli", "dashboard", "--port", str(port)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "error: --port" in proc.stderr and "Traceback" not in proc.stderr


# ---- Solara component tests (as Mesa tests SolaraViz) -------------------------------------------
def test_page_renders_both_tabs():
    box, rc = solara.render(app.Page(), handle_error=False)
    assert rc.find(v.Btn, children=["Run"]).widget
    assert rc.find(v.Checkbox, label="ips_youth").widget
    assert rc.find(v.Tab, children=["Results"]).widget


def test_explore_step_shows_figures_and_numbers():
    box, rc = solara.render(app.Explore(), handle_error=False)
    rc.find(v.Checkbox, label="ips_youth").widget.v_model = True
    rc.find(v.Btn, children=["Step"]).widget.click()
    rc.find(v.Btn, children=["Step"]).widget.click()
    assert "month 2 of 120" in _text(rc)  # the number above the figures
    assert rc.find(v.Html, class_="figure-neet has-data").widget
    assert rc.find(v.Html, class_="figure-difference has-data").widget


def test_explore_shows_a_validation_message_not_a_traceback():
    box, rc = solara.render(app.Explore(), handle_error=False)
    rc.find(v.Checkbox, label="set coverage for all chosen").widget.v_model = True
    rc.find(v.Checkbox, label="ips_youth").widget.v_model = True
    rc.find(v.Textarea).widget.v_model = "name: [broken\n"
    rc.find(v.Btn, children=["Run"]).widget.click()
    rc.find(v.Alert).wait_for(timeout=10)
    assert "not valid YAML" in _text(rc) and "Traceback" not in _text(rc)


def test_results_shows_present_sections_and_marks_missing_ones(tmp_path, monkeypatch):
    d = _tiny_experiment(tmp_path)
    monkeypatch.setenv(app.ENV_EXPERIMENT, str(d))
    box, rc = solara.render(app.Results(), handle_error=False)
    text = _text(rc)
    assert "Effects with 95% intervals" in text and "h1: a reduces NEET" in text
    assert text.count("not in this experiment") >= 4  # economics, ledger, trial, municipality
    assert "not in this experiment (no ledger.csv)" in text


def test_results_bad_directory_shows_the_message(tmp_path):
    box, rc = solara.render(app.Results(), handle_error=False)
    rc.find(v.TextField).widget.v_model = str(tmp_path / "nope")
    rc.find(v.Btn, children=["Open"]).widget.click()
    assert "no such directory" in _text(rc) and "Traceback" not in _text(rc)


def test_explore_chart_specs_with_a_runs_rows_are_valid_vega_lite():
    import altair as alt

    from utenforsk.dashboard import charts

    r = drun.DashboardRun(interventions=["ips_youth"], **SMALL)
    for _ in range(4):
        r.step()
    rows = {"neet_by_year": r.yearly_neet(), "difference": r.difference(), "pathways": r.pathways(),
            "queues": r.queues()}
    for name, data in rows.items():
        spec = charts.with_rows(name, data)
        assert spec["datasets"][charts.DATA] == data and charts.spec(name).get("datasets", {}).get(charts.DATA) is None
        alt.Chart.from_dict(spec) if "layer" not in spec else alt.LayerChart.from_dict(spec)  # validates


def test_parameter_slider_overrides_a_parameter_within_its_range():
    box, rc = solara.render(app.Explore(), handle_error=False)
    slider = rc.find(v.Slider, label="value")
    assert slider.widget
    p = drun.parameters()["transitions.job_finding.probability"]  # the baseline's own Param
    inside = round((p.low + p.high) / 2, 4)
    if inside == p.value:  # the slider starts at the baseline's value: move it somewhere else inside
        inside = round((p.low + p.value) / 2, 4)
    slider.widget.v_model = inside
    text = _text(rc)
    assert f"transitions.job_finding.probability</code> = {inside:g}" in text
    assert f"range {p.low:g} - {p.high:g}; source: " in text and app.esc(p.source)[:40] in text


def test_the_page_asks_only_for_assets_that_are_installed(tmp_path):
    """Every CDN file Solara's page template names (at this Solara's versions) is in the
    offline asset folder the server builds, so the page loads with no network."""
    import re
    from pathlib import Path

    import solara.server

    from utenforsk.dashboard import server

    cdn = server.asset_dir(tmp_path / "cdn")
    template = (Path(solara.server.__file__).parent / "templates" / "solara.html.j2").read_text()
    wanted = set(re.findall(r"\{\{cdn\}\}/(@widgetti/solara-vuetify-app@[\w.]+)/", template))
    wanted |= {"requirejs@2.3.6", "font-awesome@4.5.0", *server.ALIASES}
    assert wanted and all((cdn / w).exists() for w in wanted), [w for w in wanted if not (cdn / w).exists()]


def test_parameter_override_reaches_the_model_config_and_its_own_burn_in():
    a = drun.DashboardRun(**SMALL)
    b = drun.DashboardRun(overrides={"transitions.job_finding.probability": 0.1}, **SMALL)
    assert b.config.transitions["job_finding"].probability.value == 0.1
    assert a.key != b.key  # another config: its own burn-in and baseline, never the shared one


def test_a_library_file_that_fails_validation_is_listed_with_its_message(tmp_path):
    import shutil

    shutil.copy(drun.BASELINE.parents[1] / "interventions" / "ips_youth.yaml", tmp_path / "ips_youth.yaml")
    (tmp_path / "broken.yaml").write_text("name: broken\ncoverage: {value: 2, range: [0, 1], source: x}\n")
    entries = {e.name: e for e in drun.library(tmp_path)}
    assert entries["ips_youth"].error is None and entries["ips_youth"].coverage == 0.3
    assert "broken.yaml" in entries["broken"].error and "\n" not in entries["broken"].error


def test_server_setup_is_offline_and_without_telemetry(monkeypatch):
    import solara.server.cdn_helper as cdn_helper
    import solara.server.settings as ssettings

    from utenforsk.dashboard import server

    monkeypatch.setattr(cdn_helper, "fetch_from_cdn", cdn_helper.fetch_from_cdn)  # restored afterwards
    for name in ("SOLARA_APP", "SERVER_NAME", "SERVER_PORT", "SOLARA_ASSETS_PROXY", "SOLARA_ASSETS_PROXY_CACHE_DIR",
                 "SOLARA_TELEMETRY_MIXPANEL_ENABLE"):
        monkeypatch.setenv(name, "")  # so that the test's end restores the environment
        monkeypatch.delenv(name)
    monkeypatch.setattr(ssettings.telemetry, "mixpanel_enable", True)
    monkeypatch.setattr(ssettings.assets, "proxy_cache_dir", ssettings.assets.proxy_cache_dir)
    monkeypatch.setattr(ssettings.main, "mode", ssettings.main.mode)
    cdn = server.configure("127.0.0.1", 1234)
    assert ssettings.telemetry.mixpanel_enable is False and ssettings.assets.proxy_cache_dir == cdn
    with pytest.raises(RuntimeError, match="offline"):
        cdn_helper.get_data(cdn, "not-a-package@1.0.0/x.js")  # a missing file is an error, not a download


def test_results_shows_for_whom_and_ledger_charts_and_other_tables(tmp_path, monkeypatch):
    d = _tiny_experiment(tmp_path)
    (d / "for_whom.csv").write_text(
        "scenario,attribute,category,metric,baseline_mean,scenario_mean,difference,ci_low,ci_high,relative_change,"
        "n_replicates\na,sex,female,neet_rate_15_29,0.1,0.09,-0.01,-0.02,0.0,-0.1,2\n"
        "a,sex,male,neet_rate_15_29,0.1,0.095,-0.005,-0.01,0.0,-0.05,2\n")
    (d / "ledger.csv").write_text("scenario,payer,sector,item,kind,year,cost_change_nok,pv_cost_change_nok\n"
                                  "a,state,nav,benefits,benefit,2026,-5,-4.5\na,municipality,x,programme:a,programme,"
                                  "2026,10,9.5\n")
    (d / "ceac.csv").write_text("scenario,wtp_nok,probability\na,0,0.5\n")
    monkeypatch.setenv(app.ENV_EXPERIMENT, str(d))
    box, rc = solara.render(app.Results(), handle_error=False)
    text = _text(rc)
    assert "Effect on neet_rate_15_29 by sex" in str([w.spec for w in rc.find(solara.widgets.VegaLite).widgets])
    assert "Who pays, who gains: present value" in str([w.spec for w in rc.find(solara.widgets.VegaLite).widgets])
    assert "More stored tables" in text and "not in this experiment (no ledger.csv)" not in text
