"""UtenforskModel is a proper Mesa model: agents, DataCollector, batch_run."""

from __future__ import annotations

import mesa

from utenforsk.model import UtenforskModel
from utenforsk.services import ServiceAgent

SMALL = dict(scale=0.002, horizon_years=1)


def test_model_steps_and_services_are_agents(baseline_path):
    model = UtenforskModel(config=str(baseline_path), seed=1, **SMALL)
    assert isinstance(model, mesa.Model)
    cfg = model.config
    agents = list(model.agents)
    assert len(agents) == len(cfg.services) * len(model.area_type)  # per service and service area
    assert len(model.area_type) == (357 if cfg.service_areas == "municipality" else len(cfg.municipalities))
    assert all(isinstance(a, ServiceAgent) for a in agents)
    assert {a.service for a in agents} == set(cfg.services)
    year0 = model.year
    for _ in range(12):
        model.step()
    assert model.steps == 12 and model.year == year0 + 1
    assert not model.running  # one-year horizon done
    nav = [a for a in model.agents if a.service == "nav"]
    # at scale 0.002 a small municipality may have nobody of NAV's ages: capacity 0 there
    assert sum(a.clients for a in nav) > 0 and all(a.capacity >= 0 for a in nav) and sum(a.capacity for a in nav) > 0


def test_datacollector_collects_headline_metrics(baseline_path):
    model = UtenforskModel(baseline_path, seed=1, **SMALL)
    model.run_model()
    df = model.datacollector.get_model_vars_dataframe()
    assert len(df) == 12
    assert {"neet_rate_15_29", "health_benefit_rate_18_29", "kindergarten_coverage_1_2"} <= set(df.columns)
    assert df["neet_rate_15_29"].between(0.0, 1.0).all()


def test_batch_run_two_seeds(baseline_path):
    results = mesa.batch_run(
        UtenforskModel,
        parameters={"config": str(baseline_path), "seed": [1, 2], **SMALL},
        iterations=1, max_steps=12, number_processes=1, data_collection_period=-1,
        display_progress=False)
    assert len(results) == 2
    assert {r["seed"] for r in results} == {1, 2}
    assert results[0]["neet_rate_15_29"] != results[1]["neet_rate_15_29"]


def test_config_object_and_overrides(baseline_path):
    from utenforsk.config.loader import load_model_config

    cfg = load_model_config(baseline_path)
    model = UtenforskModel(cfg, seed=1, overrides={"transitions.job_finding.probability.value": 0.15}, **SMALL)
    assert model.config.transitions["job_finding"].probability.value == 0.15
    assert model.config.scale == 0.002
