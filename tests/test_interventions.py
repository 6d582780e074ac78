"""Interventions as data: zero coverage changes nothing, effects go the right way, targeting
holds, and common random numbers make paired differences far less noisy."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from utenforsk.interventions import load_intervention
from utenforsk.model import UtenforskModel
from utenforsk.outputs import cohorts, periods, snapshot

LIBRARY = sorted(Path(p).stem for p in glob.glob(str(Path(__file__).parents[1] / "configs/interventions/*.yaml")))
SMALL = dict(scale=0.003, horizon_years=3)
P = lambda v: {"value": v, "range": [v, v], "source": "test"}  # noqa: E731


def _run(path, seed=3, interventions=(), **kw):
    m = UtenforskModel(path, seed=seed, interventions=list(interventions), **{**SMALL, **kw})
    m.run_model()
    return m


def _zero(name):
    iv = load_intervention(name)
    zero = iv.coverage.model_copy(update={"value": 0.0, "range": (0.0, 0.0)})
    return iv.model_copy(update={"coverage": zero})


def test_library_is_complete_and_valid():
    expected = {"thousand_days", "kindergarten_enrolment", "kindergarten_quality", "early_school_support",
                "dropout_prevention", "ot_reengagement", "nav_youth_guarantee", "ips_youth",
                "cross_sector_coordination"}
    assert expected <= set(LIBRARY)
    for name in LIBRARY:
        iv = load_intervention(name)
        assert iv.name == name and iv.evidence.strip()


def test_zero_coverage_is_bit_for_bit_the_baseline(baseline_path):
    base = _run(baseline_path)
    zero = _run(baseline_path, interventions=[_zero(n) for n in LIBRARY])
    for f in (periods, cohorts, snapshot):
        pd.testing.assert_frame_equal(f(base), f(zero), check_exact=True)


def test_strong_intervention_moves_neet_down(baseline_path):
    strong = {"name": "strong", "description": "synthetic", "evidence": "none: a test",
              "who": {"ages": [16, 30], "states": ["unemployed", "inactive"]},
              "what": {"odds": {"job_finding": P(5.0), "job_finding_inactive": P(5.0)}},
              "coverage": P(1.0), "take_up": P(1.0), "when": {"start_year": 2025}}
    base = periods(_run(baseline_path))
    treated = _run(baseline_path, interventions=[strong])
    p = periods(treated)
    assert (p.neet_rate_20_24 < base.neet_rate_20_24).all()
    assert (p.neet_rate_15_29.mean() < base.neet_rate_15_29.mean() - 0.01)
    assert treated.history[-1]["prog"][0, 1] > 0  # participant-months were counted


def test_targeted_pilot_changes_only_its_municipality(baseline_path):
    """A pilot in one municipality type: everyone elsewhere lives exactly the same life (CRN,
    services per service area, and arrivals' donors from their own service area: before they
    were drawn nationally, an arrival elsewhere took the traits of a donor the pilot had moved)."""
    pilot = {"name": "pilot", "description": "synthetic pilot", "evidence": "none: a test",
             "who": {"ages": [16, 30], "states": ["unemployed", "inactive"],
                     "attributes": {"municipality": ["least_central"]}},
             "what": {"odds": {"job_finding": P(5.0)},
                      "services": {"nav": {"capacity": P(2.0)}}},
             "coverage": P(1.0), "take_up": P(1.0), "when": {"start_year": 2025}}
    a = snapshot(_run(baseline_path))
    b = snapshot(_run(baseline_path, interventions=[pilot]))
    assert len(a) == len(b)
    elsewhere = (a.municipality != "least_central").to_numpy()
    pd.testing.assert_frame_equal(a[elsewhere].reset_index(drop=True), b[elsewhere].reset_index(drop=True),
                                  check_exact=True)
    assert not a[~elsewhere].equals(b[~elsewhere])


def test_common_random_numbers_shrink_the_variance_of_differences(baseline_path):
    """Var(paired difference) with shared seeds vs with independent seeds, 8 replicates each.

    Under CRN only people whose lives the intervention touches differ, so the paired difference
    carries a small part of the between-run noise. We require the CRN variance to be at most a
    quarter of the independent one: with 8 replicates an F ratio of 4 has p < 0.05 if the variances
    were equal (F(7, 7) upper 5% point 3.79), and CRN typically gives far more than 4.
    """
    iv = {"name": "support", "description": "synthetic", "evidence": "none: a test",
          "who": {"ages": [16, 30], "states": ["unemployed", "inactive"]},
          "what": {"odds": {"job_finding": P(1.5)}},
          "coverage": P(1.0), "take_up": P(1.0), "when": {"start_year": 2025}}
    kw = dict(scale=0.002, horizon_years=2, burn_in_years=15)
    crn, indep = [], []
    for r in range(8):
        base = periods(_run(baseline_path, seed=100 + r, **kw)).neet_rate_15_29.mean()
        same = periods(_run(baseline_path, seed=100 + r, interventions=[iv], **kw)).neet_rate_15_29.mean()
        other = periods(_run(baseline_path, seed=900 + r, interventions=[iv], **kw)).neet_rate_15_29.mean()
        crn.append(same - base)
        indep.append(other - base)
    assert np.var(crn, ddof=1) * 4 < np.var(indep, ddof=1)
    assert np.mean(crn) < 0


def test_python_plugin_acts_without_touching_kernels(baseline_path):
    """A registered plugin doubles NAV capacity from 2026 and adds a cost; YAML only names it."""
    from utenforsk.experiment.metrics import task_metrics
    from utenforsk.interventions.registry import Plugin, register

    @register
    class DoubleNav(Plugin):
        name = "double_nav_test"

        def before_month(self, model, year, month_of_year):
            if year >= 2026:
                for agent in model.agents:
                    if agent.service == "nav":
                        agent.places_per_1000 = self.options["factor"] * 60.0

        def monthly_cost(self, model, month):
            return 1e6

    base = _run(baseline_path)
    plug = _run(baseline_path, interventions=[{"plugin": "double_nav_test", "options": {"factor": 2.0}}])
    nav_b = [a.capacity for a in base.agents if a.service == "nav"]
    nav_p = [a.capacity for a in plug.agents if a.service == "nav"]
    assert sum(nav_p) > 1.8 * sum(nav_b)
    assert task_metrics(plug)["programme_cost_nok"] == pytest.approx(1e6 * 36)


def test_unknown_plugin_is_a_config_error(baseline_path):
    from utenforsk.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown plugin"):
        UtenforskModel(baseline_path, seed=1, interventions=[{"plugin": "no_such_plugin"}], **SMALL)


def test_forked_burn_in_gives_identical_results(baseline_path):
    """A scenario started from a copy of a finished baseline burn-in equals one simulated whole."""
    kw = dict(scale=0.003, horizon_years=2)
    burned = UtenforskModel(baseline_path, seed=4, **kw)
    assert burned.month == burned.burn_in_months
    whole = _run(baseline_path, seed=4, interventions=["nav_youth_guarantee", "ips_youth"], **kw)
    forked = UtenforskModel(baseline_path, seed=4, interventions=["nav_youth_guarantee", "ips_youth"],
                            burn_in_from=burned, **kw)
    forked.run_model()
    for f in (periods, cohorts, snapshot):
        pd.testing.assert_frame_equal(f(whole), f(forked), check_exact=True)
    # the baseline itself can continue from the same burn-in
    burned.run_model()
    pd.testing.assert_frame_equal(snapshot(burned), snapshot(_run(baseline_path, seed=4, **kw)), check_exact=True)


def test_fork_in_the_policy_years_before_the_programmes_start(baseline_path):
    """A scenario whose programmes start in 2027 forks a baseline that has run on to January 2027
    (the experiment runner shares those months too): results, history, the Mesa DataCollector and
    the municipality counts equal a scenario simulated whole; a model whose programme started
    earlier refuses the fork."""
    kw = dict(scale=0.003, horizon_years=4)
    ivs = [load_intervention(n).model_copy(update={"when": load_intervention(n).when.model_copy(
        update={"start_year": 2027})}) for n in ("nav_youth_guarantee", "ips_youth")]
    donor = UtenforskModel(baseline_path, seed=4, **kw)
    while donor.year < 2027:
        donor.step()
    assert donor.month == donor.burn_in_months + 24 and donor.quiet_months() == donor.total_months
    whole = _run(baseline_path, seed=4, interventions=ivs, **kw)
    forked = UtenforskModel(baseline_path, seed=4, interventions=ivs, burn_in_from=donor, **kw)
    assert forked.quiet_months() == donor.month
    forked.run_model()
    for f in (periods, cohorts, snapshot):
        pd.testing.assert_frame_equal(f(whole), f(forked), check_exact=True)
    pd.testing.assert_frame_equal(whole.datacollector.get_model_vars_dataframe(),
                                  forked.datacollector.get_model_vars_dataframe(), check_exact=True)
    assert whole.kommune_q4.keys() == forked.kommune_q4.keys()
    assert all(np.array_equal(whole.kommune_q4[y], forked.kommune_q4[y]) for y in whole.kommune_q4)
    assert whole.kommune_sv.keys() == forked.kommune_sv.keys()  # the municipalities' service tallies
    assert all(np.array_equal(whole.kommune_sv[y], forked.kommune_sv[y]) for y in whole.kommune_sv)
    assert whole.steps == forked.steps
    with pytest.raises(ValueError, match="acts before"):  # ips_youth starts in 2026 as shipped
        UtenforskModel(baseline_path, seed=4, interventions=["ips_youth"], burn_in_from=donor, **kw)
    quiet = UtenforskModel(baseline_path, seed=4, burn_in_years=2, collect=False, **kw)
    quiet.step()
    with pytest.raises(ValueError, match="collect=False"):  # it kept no monthly metrics to copy
        UtenforskModel(baseline_path, seed=4, burn_in_years=2, burn_in_from=quiet, **kw)


def test_plugins_see_base_service_values_every_month(baseline_path):
    """A plugin that scales NAV's places in ``before_month`` acts on the base value every month,
    whether or not a YAML intervention is also in the scenario (issue 11, defect 3: the arrays were
    reset only when one was, so the plugin's factor compounded month after month without one)."""
    from utenforsk.interventions.registry import Plugin, register

    @register
    class ScaleNav(Plugin):
        name = "scale_nav_places_test"

        def before_month(self, model, year, month_of_year):
            for agent in model.agents:
                if agent.service == "nav":
                    agent.places_per_1000 *= 1.5

    kw = dict(horizon_years=1, burn_in_years=2)
    alone = _run(baseline_path, interventions=[{"plugin": "scale_nav_places_test"}], **kw)
    with_idle = _run(baseline_path, interventions=[{"plugin": "scale_nav_places_test"}, _zero("ips_youth")], **kw)
    places = lambda m: sorted(a.places_per_1000 for a in m.agents if a.service == "nav")  # noqa: E731
    factor = [m.capacity_factor.value for m in alone.config.municipalities.values()]
    base = sorted(60.0 * factor[t] for t in alone.area_type)  # each service area's type
    assert places(alone) == pytest.approx([1.5 * b for b in base], rel=1e-12)
    assert places(alone) == places(with_idle)
    pd.testing.assert_frame_equal(periods(alone), periods(with_idle), check_exact=True)


def _frames(m):
    return [f(m) for f in (periods, cohorts, snapshot)]


def _assert_same(a, b):
    for x, y in zip(_frames(a), _frames(b), strict=True):
        pd.testing.assert_frame_equal(x, y, check_exact=True)


def test_order_of_interventions_changes_nothing(baseline_path):
    """``[A]`` equals ``[X at coverage 0, A]`` and ``[A, B]`` equals ``[B, A]``, bit for bit (issue 11,
    defect 1: the enrolment draw was keyed by the position in the list, so listing a coverage-0
    intervention first changed who got A)."""
    a, b = "ips_youth", "nav_youth_guarantee"
    kw = dict(scale=0.01, horizon_years=4)  # ips_youth targets health benefits only (issue 14)
    only_a = _run(baseline_path, interventions=[a], **kw)
    assert sum(h["prog"][:, 0].sum() for h in only_a.history) > 30, "A enrolled too few to test"
    _assert_same(only_a, _run(baseline_path, interventions=[_zero("dropout_prevention"), a], **kw))
    both = _run(baseline_path, interventions=[a, b], **kw)
    assert sum(h["prog"][:, 0].sum() for h in both.history) > 100
    _assert_same(both, _run(baseline_path, interventions=[b, a], **kw))


def test_trait_shift_applies_once_per_person(baseline_path):
    """A ``trait_shift`` ("once, at enrolment") is applied at a person's first enrolment only, not
    again when they leave and re-enrol (issue 11, defect 2). ``programme_step`` is the month
    kernel's own slot loop (codegen.programme_loop) as a function; here it runs on one person
    who enrols, leaves school and returns."""
    from utenforsk.core import codegen, kernel
    from utenforsk.core.population import allocate
    from utenforsk.core.tables import CompiledModel
    from utenforsk.interventions.slots import MAX_PROGRAMMES, programme_slots
    from utenforsk.model import resolve_config

    shift = {"name": "shift_once", "description": "synthetic", "evidence": "none: a test",
             "who": {"ages": [6, 16], "states": ["school"], "sticky": False,
                     "traits": [{"trait": "engagement", "below": -0.5}]},
             "what": {"trait_shift": {"engagement": P(0.3)}},
             "coverage": P(1.0), "take_up": P(1.0), "when": {"start_year": 2025}}
    cm = CompiledModel(resolve_config(baseline_path))
    prog = programme_slots(cm, [load_intervention(shift)])
    pop = allocate(1, len(cm.attributes), len(cm.ctraits))
    e = cm.ctraits.index("engagement")
    pop.ctraits[e, 0] = -1.0
    cover, tally = np.zeros(MAX_PROGRAMMES), np.zeros((MAX_PROGRAMMES, 2), np.int64)
    cover[0] = 1.0

    def month(state: str) -> None:
        step(0, np.uint64(12345), np.uint64(678), 120, cm.state_index[state], pop.programmes,
             pop.pg_ever, pop.attrs, pop.ctraits, pop.btraits, prog, cover, tally)

    ns: dict = {}
    exec(codegen.programme_step_source(len(cm.ctraits)), ns)
    step = ns["programme_step"]

    month("school")
    assert pop.programmes[0] == 1 and pop.ctraits[e, 0] == np.float32(-0.7)
    month("home")  # outside the programme's states: leaves it
    assert pop.programmes[0] == 0
    month("school")  # still below -0.5: enrols again, without a second shift
    assert pop.programmes[0] == 1 and tally[0, kernel.PG_ENROLLED] == 2
    assert pop.ctraits[e, 0] == np.float32(-0.7)


@pytest.mark.parametrize("programme, words", [
    ({"duration_months": {"value": 1.0, "range": [0.5, 2.0], "source": "test"}}, ["duration_months", "at least 1 month"]),
    ({"persistence": {"value": 1.2, "range": [0.0, 1.5], "source": "test"}}, ["persistence", "probability"]),
])
def test_bad_programme_is_one_config_error(programme, words):
    """A programme period under a month, or a persistence outside [0, 1], is one ConfigError
    naming the key (exit 2 in the CLI)."""
    from utenforsk.errors import ConfigError

    iv = {"name": "bad_programme", "description": "test", "evidence": "test", "what": {},
          "coverage": P(1.0), "take_up": P(1.0), "when": {"start_year": 2025}, "programme": programme}
    with pytest.raises(ConfigError) as exc:
        load_intervention(iv)
    msg = str(exc.value)
    for w in words:
        assert w in msg, (w, msg)


def test_service_and_handoff_changes_vectorised_equal_the_loop_over_areas():
    """_apply_interventions sets each change on all its areas at once (numpy): the same bits as
    the loop over areas it replaced (detection, quality, capacity, handoff probabilities, odds
    and delays)."""
    import numpy as np

    from utenforsk.interventions import engine
    from utenforsk.model import UtenforskModel

    ivs = ["ot_reengagement", "kindergarten_quality", "cross_sector_coordination", "nav_youth_guarantee"]
    from tests.conftest import BASELINE

    m = UtenforskModel(BASELINE, seed=2, scale=0.001, burn_in_years=0,
                       horizon_years=1, start_year=2026, interventions=ivs)
    # odd values, so every formula matters (odds of p0 near 0 and 1, a delay rounding half)
    for iv in m.interventions:
        for ch in iv.what.handoffs.values():
            if ch.odds is not None:
                object.__setattr__(ch.odds, "value", 1.7)
            if ch.delay_months is not None:
                object.__setattr__(ch.delay_months, "value", 1.0)
    m.dyn.ho_prob[0, :3] = (0.0, 1.0, 0.999)
    m._base["ho_prob"] = m.dyn.ho_prob.copy()
    m._base["ho_delay"][:, :5] = (0, 1, 2, 3, 4)
    month = 14  # February 2027: ramped-up coverage
    m._apply_interventions(month)
    got = (m.dyn.detect_p.copy(), m.dyn.quality.copy(), m.dyn.ho_prob.copy(), m.dyn.ho_delay.copy(),
           m.service_areas.places_per_1000.copy())
    # the loop it replaced
    c, d, base = m.compiled, m.dyn, m._base
    year, moy = m.first_year + month // 12, month % 12
    d.detect_p[:], d.quality[:], d.ho_prob[:], d.ho_delay[:] = (base["detect_p"], base["quality"],
                                                                base["ho_prob"], base["ho_delay"])
    places = base["places"].copy()
    for iv in m.interventions:
        cov = engine.coverage(iv, year, moy)
        if cov <= 0.0:
            continue
        for name, change in iv.what.services.items():
            s = c.service_index[name]
            for a in m._covered_areas(iv):
                if change.detection is not None:
                    d.detect_p[s, a] = min(1.0, d.detect_p[s, a] * (1 + cov * (change.detection.value - 1)))
                if change.quality is not None:
                    d.quality[s, a] *= 1 + cov * (change.quality.value - 1)
                if change.capacity is not None:
                    places[s, a] *= 1 + cov * (change.capacity.value - 1)
        for name, change in iv.what.handoffs.items():
            h = c.handoffs.index(name)
            for a in m._covered_areas(iv):
                if change.probability is not None:
                    d.ho_prob[h, a] += cov * (change.probability.value - d.ho_prob[h, a])
                if change.odds is not None:
                    p0 = d.ho_prob[h, a]
                    o = change.odds.value * p0 / (1.0 - p0) if p0 < 1.0 else float("inf")
                    p1 = 1.0 if o == float("inf") else o / (1.0 + o)
                    d.ho_prob[h, a] += cov * (p1 - p0)
                if change.delay_months is not None:
                    d.ho_delay[h, a] = int(round(d.ho_delay[h, a] + cov * (change.delay_months.value - d.ho_delay[h, a])))
    want = (d.detect_p, d.quality, d.ho_prob, d.ho_delay, places)
    assert any(not np.array_equal(g, b) for g, b in zip(got, (base["detect_p"], base["quality"], base["ho_prob"],
                                                               base["ho_delay"], base["places"])))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and np.array_equal(g, w)


def test_visiting_only_the_open_slots_changes_nothing(baseline_path, monkeypatch):
    """The kernel visits, for a person not enrolled, only the slots ``Dyn.pg_open`` marks for
    their age-year and state (slots.open_cells). Marking every slot with coverage in every cell
    (what the kernel visited before) must give the same results bit for bit; and the mask must
    be narrower than that, or the test would compare a thing with itself."""
    import utenforsk.model as model_mod
    from utenforsk.interventions.slots import MAX_PROGRAMMES, open_cells

    ivs = ["ips_youth", "nav_youth_guarantee", "dropout_prevention", "ot_reengagement",
           "cross_sector_coordination"]
    kw = dict(seed=5, scale=0.003, horizon_years=3)
    narrow = _run(baseline_path, interventions=ivs, **kw)
    cells = narrow.dyn.pg_open
    every = np.bitwise_or.reduce(cells, axis=None)
    assert 0 < np.count_nonzero(cells) and np.any((cells != 0) & (cells != every)), "the mask is not narrower"
    for k in range(MAX_PROGRAMMES):  # each bit marks exactly the slot's age-years and states
        bit = (cells >> k) & 1
        if (every >> k) & 1:
            lo, hi = int(narrow.prog.lo[k]), int(narrow.prog.hi[k])
            want = np.zeros_like(bit)
            want[lo // 12:(hi - 1) // 12 + 1, :] = narrow.prog.states[k][None, :]
            assert np.array_equal(bit, want), k
        else:
            assert not bit.any(), k

    def all_slots_everywhere(prog, cover, out):
        open_cells(prog, cover, out)
        out[:] = np.bitwise_or.reduce(out, axis=None)

    monkeypatch.setattr(model_mod, "open_cells", all_slots_everywhere)
    wide = _run(baseline_path, interventions=ivs, **kw)
    for f in (periods, cohorts, snapshot):
        pd.testing.assert_frame_equal(f(narrow), f(wide), check_exact=True)
    assert np.array_equal(narrow.pop.programmes, wide.pop.programmes)
