"""Births and arrivals follow SSB's series; population by age band lands on its targets (issue 13).

Targets: configs/norway/data/targets_candidates.yaml (population on 1 January 2023, StatBank
07459; immigrant background by age band on 1 January 2016). The model is run with start_year 2022
so that its last month, December 2022, is the count date 1 January 2023 (or 2015 for 2016's
shares). Monte Carlo error: at scale 0.02 a band of ~340,000 real people is ~6,800 simulated, so
the SE of a count from entry rounding and exits is well under 1% (~1,000-3,000 persons) and of a
share ~0.5 pp, small against the targets' tolerances (15,000-60,000 persons; 3 pp).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from test_bad_input import assert_bad, cli, override
from utenforsk.config.loader import load_model_config
from utenforsk.model import UtenforskModel, entry_rates
from utenforsk.outputs import snapshot

from conftest import ROOT

CANDIDATES = yaml.safe_load((ROOT / "configs/norway/data/targets_candidates.yaml").read_text())["targets"]
SCALE = 0.02


def _run(baseline_path, start_year):
    m = UtenforskModel(baseline_path, seed=3, scale=SCALE, start_year=start_year, horizon_years=1)
    m.run_model()
    return snapshot(m)


@pytest.fixture(scope="module")
def snap2023(baseline_path):
    return _run(baseline_path, 2022)


@pytest.fixture(scope="module")
def snap2016(baseline_path):
    return _run(baseline_path, 2015)


@pytest.mark.parametrize("name", ["population_0_29_2023", "population_25_29_2023", "population_0_5_2023"])
def test_population_by_age_band(snap2023, name):
    t = CANDIDATES[name]
    lo, hi = t["ages"]
    simulated = ((snap2023.age >= lo) & (snap2023.age < hi)).sum() / SCALE
    assert abs(simulated - t["value"]) <= t["tolerance"], (name, simulated, t["value"], t["tolerance"])


@pytest.mark.parametrize("name", [
    "immigrant_background_share_0_4_2016",
    pytest.param("immigrant_background_share_15_19_2016", marks=pytest.mark.xfail(strict=True, reason=(
        "Norwegian-born children of immigrants are a constant 16% of births for the whole burn-in; "
        "their share of births in 1995-2005 (far lower) is not in configs/norway/data/ (issue 13, open)"))),
    pytest.param("immigrant_background_share_25_29_2016", marks=pytest.mark.xfail(strict=True, reason=(
        "as 15-19: too many Norwegian-born to immigrants among the 1986-1990 births"))),
])
def test_immigrant_background_share_by_age_band(snap2016, name):
    t = CANDIDATES[name]
    lo, hi = t["ages"]
    x = snap2016[(snap2016.age >= lo) & (snap2016.age < hi)]
    share = x.immigrant_background.isin(t["categories"]).mean()
    assert abs(share - t["value"]) <= t["tolerance"], (name, share, t["value"], t["tolerance"])


def test_entries_follow_the_series(baseline_path):
    """Expected births by year are births_per_year x births(y) / births(2025), read from the CSV,
    with the registered history before 2025 and the chosen alternative after."""
    cfg = load_model_config(baseline_path)
    first = cfg.calendar.start_year - cfg.calendar.burn_in_years
    months = (cfg.calendar.burn_in_years + cfg.calendar.horizon_years) * 12
    births, arrivals = entry_rates(cfg, first, months)
    rows = {(r.year, r.alternative): r for r in cfg.population.series.rows}
    level = cfg.population.births_per_year.value * cfg.scale / 12
    for year in (1995, 2009, 2022, 2030, 2040):
        row = rows.get((year, "registered")) or rows[(year, "main")]
        m = (year - first) * 12
        assert births[m] == pytest.approx(level * row.births / rows[(2025, "main")].births)
        assert arrivals[m].sum() / arrivals[(2025 - first) * 12].sum() == pytest.approx(
            row.immigrations / rows[(2025, "main")].immigrations)
    low_data = UtenforskModel(baseline_path, seed=1, scale=SCALE,
                              overrides={"population.series.alternative": "low"})
    assert low_data.births[-12:].sum() < UtenforskModel(baseline_path, seed=1, scale=SCALE).births[-12:].sum()
    assert np.all(arrivals >= 0)


def test_missing_series_file_is_one_clear_error(tmp_path):
    bad = override(tmp_path, "population: {series: {file: nowhere.csv}}")
    assert_bad(cli("run", bad, "--scale", "0.001", cwd=tmp_path), "population.series.file", "nowhere.csv",
               "file not found")


def test_series_file_with_a_bad_number_is_one_clear_error(tmp_path):
    (tmp_path / "s.csv").write_text("year,alternative,births,immigrations\n2020,registered,many,1\n")
    bad = override(tmp_path, "population: {series: {file: s.csv}}")
    assert_bad(cli("run", bad, "--scale", "0.001", cwd=tmp_path), "population.series.file", "line 2")
