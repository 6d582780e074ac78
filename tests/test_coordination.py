"""Cross-sector coordination's honest prior (issue 14): handoffs as odds ratios on the baseline
handoff probability, coordinators costed by caseload, the effect declared an assumption."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from utenforsk.config.interventions import Intervention
from utenforsk.errors import ConfigError
from utenforsk.interventions.engine import load_intervention

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "configs" / "norway" / "baseline.yaml"


def _coord(**change) -> dict:
    d = load_intervention("cross_sector_coordination").model_dump(mode="json", exclude_none=True)
    for dotted, value in change.items():
        node = d
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return d


def test_prior_is_two_sided_around_no_effect():
    iv = load_intervention("cross_sector_coordination")
    assert iv.effect_basis == "assumption"
    params = [s.detection for s in iv.what.services.values()] + [h.odds for h in iv.what.handoffs.values()]
    for p in params:  # ratios: value 1, range symmetric on the log scale
        assert p.value == 1.0 and math.isclose(math.log(p.range[0]), -math.log(p.range[1]), rel_tol=1e-9)
    for p in iv.what.trait_target.values():
        assert p.value == 0.0 and p.range[0] == -p.range[1]
    assert all(h.probability is None for h in iv.what.handoffs.values())


def test_probability_and_odds_exclusive():
    from utenforsk.config.loader import validate

    d = _coord()
    d["what"]["handoffs"]["ot_to_nav_at_21"]["probability"] = {"value": 0.5, "range": [0.4, 0.6], "source": "t"}
    with pytest.raises(ConfigError, match="either `probability`"):
        validate(Intervention, d, "t.yaml")
    d = _coord()
    d["cost"]["staff_positions"] = {"value": 400, "range": [200, 800], "source": "t"}
    with pytest.raises(ConfigError, match="either `staff_positions`"):
        validate(Intervention, d, "t.yaml")


def test_handoff_odds_ratio_on_the_baseline_and_caseload_cost():
    from utenforsk.experiment.metrics import monthly_programme_costs
    from utenforsk.model import UtenforskModel

    OR = 3.0
    d = _coord(**{"what__handoffs__school_to_ot_at_dropout__odds__value": OR,
                  "what__handoffs__school_to_ot_at_dropout__odds__range": [1.0, 4.0],
                  "when__ramp_up_years": 0.0})
    d["when"]["start_year"] = 2025
    mdl = UtenforskModel(BASELINE, seed=3, scale=0.002, horizon_years=1, burn_in_years=10,
                         interventions=[d])
    h = mdl.compiled.handoffs.index("school_to_ot_at_dropout")
    p0 = mdl._base["ho_prob"][h, 0]
    mdl.step()
    cov = float(mdl.dyn.pg_cover[0])
    o = OR * p0 / (1 - p0)
    want = p0 + cov * (o / (1 + o) - p0)
    assert cov > 0 and mdl.dyn.ho_prob[h, 0] == pytest.approx(want, rel=1e-12) and want > p0
    month = mdl.history[-1]
    months = month["prog"][0, 1]
    cost = monthly_programme_costs(mdl, month)["cross_sector_coordination"]
    c = mdl.interventions[0].cost
    assert months > 0
    assert cost == pytest.approx(months / mdl.config.scale * (c.per_participant_month.value
                                 + c.cost_per_position.value / 12.0 / c.caseload.value), rel=1e-9)


def test_report_says_the_effect_is_an_assumption():
    from utenforsk.experiment.runner import Plan
    from utenforsk.report import _how_to_read

    plan = Plan(ROOT / "experiments" / "quickstart.yaml")
    ivs = plan._scenario_ivs("cross_sector_coordination")
    assert [iv["effect_basis"] for iv in ivs] == ["assumption"]
    text = _how_to_read(2024, "baseline", {"assumed_effects": "`cross_sector_coordination`"})
    assert "`cross_sector_coordination` are assumptions, not evidence" in text
    assert "assumptions, not evidence" not in _how_to_read(2024, "baseline", {})
