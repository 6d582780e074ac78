"""The real municipalities: data file, names, grouping, and who lives where (issue 15, part 1)."""

from __future__ import annotations

import numpy as np
import pytest

from utenforsk.errors import ConfigError
from utenforsk.pilots import municipalities as km

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return km.load()


def test_data_file_totals(data):
    t = data.table
    assert len(t) == 357 and t.kommunenummer.is_unique
    # the sidecar's totals: 5,550,203 residents on 1 Jan 2024; 1,965,607 aged 0-29 (2023 shares)
    assert int(t.population_2024_01_01.sum()) == 5_550_203
    assert abs(t.population_0_29.sum() - 1_965_607) < 400  # shares are rounded to 4 decimals
    bands = t[[f"population_{b}" for b in km.AGE_BANDS]].sum(axis=1)
    assert np.allclose(bands, t.population_0_29)
    assert set(t.type) == set(km.TYPES)
    # every row says how it was grouped; the interim rule covers exactly the rows without a 2020 class
    assert (t.group_source == "centrality_2020").sum() == t.centrality_class_1to6.notna().sum() == 171


def test_names_numbers_and_closest_matches(data):
    t = data.table
    rows = data.resolve(["Larvik", "fredrikstad", "3909", "Oslo - Oslove", "301"])
    assert list(t.kommunenummer.iloc[rows]) == ["3909", "3107", "3909", "0301", "0301"]
    with pytest.raises(ConfigError, match="closest: Fredrikstad"):
        data.resolve(["Fredrikstadd"])
    with pytest.raises(ConfigError, match=r"ambiguous.*Herøy \(Nordland\)"):
        data.resolve(["Herøy"])
    assert t.kommunenummer.iloc[data.resolve(["Herøy (Nordland)"])[0]] == "1818"


def test_bad_data_file(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("kommunenummer,name\n0301,Oslo\n")
    with pytest.raises(ConfigError, match="lacks columns"):
        km.load(bad)


@pytest.fixture(scope="module")
def run():
    from utenforsk.model import UtenforskModel

    m = UtenforskModel("configs/norway/baseline.yaml", seed=5, scale=0.01, horizon_years=1)
    m.run_model()
    return m


def test_populations_sum_to_national(run):
    from utenforsk import outputs

    ids = run.alive_ids()
    assert (ids % run.capacity == run.alive_slots()).all()
    k = run.kommune_of(ids)
    assert (k >= 0).all()  # everyone alive lives in a municipality
    # the December count by municipality sums to everyone alive (exact: the same persons)
    assert np.bincount(k, minlength=len(run.kommuner)).sum() == len(ids)
    df = outputs.periods_by_municipality(run)
    p = outputs.periods(run)
    q4 = df.groupby("year").population_0_29.sum()
    # Q4 mean vs the yearly person-month mean: the population is near-stationary within a year
    assert abs(q4.iloc[0] / p.population_0_29.iloc[0] - 1) < 0.01


@pytest.mark.parametrize("areas", ["municipality", "municipality_type"])
def test_q4_counts_match_a_recount(areas):
    """The December Q4 counts per municipality equal a recount in numpy from each person's
    municipality draw (kommune_of), with services per municipality (where the pass reads the
    service area) and per type (where it draws the municipality itself)."""
    from utenforsk.model import KQ_FIELDS, UtenforskModel

    m = UtenforskModel(ROOT / "configs/norway/baseline.yaml", seed=7, scale=0.005, burn_in_years=30,
                       horizon_years=1, overrides={"service_areas": areas})
    m.run_model()
    ids = m.alive_ids()
    slots = ids % m.capacity
    k = m.kommune_of(ids).astype(np.int64)
    age = (m.month - 1 - m.pop.birth[slots].astype(np.int64)) // 12
    st = m.pop.state[slots]
    done = (m.pop.flags[slots] >> m.us_flag) & 1 == 1
    what = {"all": np.ones(len(ids), bool), "neet": m.state_masks["neet"][st],
            "health_benefit": m.hb_states[st], "completed": done}
    want = np.zeros((len(m.kommuner), len(KQ_FIELDS)))
    for f, (lo, hi, w) in enumerate(KQ_FIELDS.values()):
        np.add.at(want[:, f], k[(age >= lo) & (age < hi) & what[w]], 1.0)
    (year,) = m.kommune_q4
    assert np.array_equal(m.kommune_q4[year], want)


def test_within_type_shares_match_data_file(run, data):
    """Each municipality's share of its type's simulated residents matches its share of the
    type's population 0-29 in the data file, within 4 binomial SEs (fixed seed)."""
    ids = run.alive_ids()
    k = run.kommune_of(ids).astype(np.int64)
    types = run.pop.attrs[run.muni_attr, ids % run.capacity]
    t = data.table
    assert (t.type_index.to_numpy()[k] == types).all()  # municipality within the person's type
    worst = 0.0
    for ti in range(len(km.TYPES)):
        rows = np.flatnonzero(t.type_index.to_numpy() == ti)
        n = (types == ti).sum()
        expected = t.population_0_29.to_numpy()[rows] / t.population_0_29.to_numpy()[rows].sum()
        observed = np.bincount(k[types == ti], minlength=len(t))[rows] / n
        se = np.sqrt(expected * (1 - expected) / n)
        worst = max(worst, float(np.max(np.abs(observed - expected) / se)))
    assert worst < 4.5, worst  # ~357 comparisons: the largest |z| of 357 normals is ~3.0-3.5


def test_national_results_unchanged_by_municipalities(monkeypatch):
    """With services per municipality type the municipality draw (on its own decision) and the
    intercepts' covariates (all 0) change nothing: national periods are bit-for-bit those of a
    model without real municipalities."""
    from utenforsk import outputs
    from utenforsk.model import UtenforskModel

    kw = dict(seed=5, scale=0.01, horizon_years=1, overrides={"service_areas": "municipality_type"})
    run = UtenforskModel("configs/norway/baseline.yaml", **kw)
    run.run_model()
    assert run.kommuner is not None and not run.kre.any()
    monkeypatch.setattr(km, "TYPES", ("none",))
    m = UtenforskModel("configs/norway/baseline.yaml", **kw)
    m.run_model()
    assert m.kommuner is None
    a, b = outputs.periods(run), outputs.periods(m)
    assert a.equals(b)


def test_area_is_the_municipality_and_intercepts_centred(data):
    """With services per municipality every person's service area is their municipality (the
    draw of kommune_of), and each intercept has a population-weighted mean of 0."""
    from utenforsk.model import UtenforskModel

    from utenforsk.model import KQ_CODES

    run = UtenforskModel(ROOT / "configs/norway/baseline.yaml", seed=5, scale=0.01, horizon_years=1)
    run.run_model()
    ids = run.alive_ids()
    types = run.pop.attrs[run.muni_attr, ids % run.capacity].astype(np.int64)
    drawn = km.assign(run.seed_key, ids, types, run._k_index, run._k_cdf)
    assert np.array_equal(run.pop.area[ids % run.capacity], drawn)
    assert np.array_equal(run.kommune_of(ids), drawn)  # (which reads pop.area)
    # the Q4 tally reads the area too: the same counts as drawing each person's municipality
    m, p = run.month - 1, run.pop
    lo, hi = int(run.cum_entries[max(0, m - 360)]), int(run.cum_entries[m + 1])
    counts = {}
    for by_area in (True, False):
        counts[by_area] = np.zeros((len(data), len(KQ_CODES)))
        cells = np.zeros((len(data), km.Q4_AGES, km.Q4_STATUS), np.int64)
        km.tally_q4(run.seed_key, lo, hi, run.capacity, p.alive, p.birth, p.attrs[run.muni_attr],
                    p.state, p.flags, m, run.state_masks["neet"], run.hb_states, run.us_flag,
                    run._k_index, run._k_cdf, cells, p.area, by_area)
        km.fold_q4(cells, KQ_CODES, counts[by_area])
    assert counts[True].sum() > 0 and np.array_equal(counts[True], counts[False])
    w = data.table.population_0_29.to_numpy()
    for e in range(run.kre.shape[0]):
        assert abs(np.dot(w, run.kre[e])) < 1e-9 * w.sum()
    assert run.kre.std(axis=1).max() > 0 and len(run.area_type) == len(data)


def test_municipality_command(tmp_path):
    """`utenforsk municipality NAME`: a known name prints its data; unknown/ambiguous -> exit 2."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    call = lambda *a: subprocess.run([sys.executable, "-m", "utenforsk.cli", "municipality", *a],  # noqa: E731
                                     env=env, capture_output=True, text=True, timeout=120)
    ok = call("Sola")
    assert ok.returncode == 0 and "Sola (1124), Rogaland" in ok.stdout and "80.3%" in ok.stdout
    bad = call("Larvk")
    assert bad.returncode == 2 and "closest: Larvik" in bad.stderr and "Traceback" not in bad.stderr
    amb = call("Herøy")
    assert amb.returncode == 2 and "1515" in amb.stderr and "1818" in amb.stderr
    missing = call("Sola", "--run", str(tmp_path))
    assert missing.returncode == 2 and "periods_by_municipality.parquet" in missing.stderr


# ---- pilots in named municipalities -------------------------------------------------------------
PILOT_TOWNS = ["Larvik", "3107"]  # a name and a number (Fredrikstad)


def _ips(municipalities):
    from utenforsk.interventions import engine

    data = engine.load_intervention("ips_youth").model_dump(by_alias=True, exclude_none=True)
    data["who"]["municipalities"] = municipalities
    data["cost"].update(fixed_per_year={"value": 1.2e6, "range": [1.2e6, 1.2e6], "source": "test"},
                        staff_positions={"value": 10, "range": [10, 10], "source": "test"},
                        cost_per_position={"value": 1e6, "range": [1e6, 1e6], "source": "test"})
    return engine.load_intervention(data)


def test_pilot_costs_scale_with_population_covered(data):
    """Fixed and staff costs of a pilot are the national figures times the covered share of the
    population 0-29; per-participant costs follow enrolment as before."""
    from types import SimpleNamespace

    from utenforsk.experiment.metrics import monthly_programme_costs
    from utenforsk.interventions import engine

    t = data.table
    rows = data.resolve(PILOT_TOWNS)
    assert [t.name_short.iloc[r] for r in rows] == ["Larvik", "Fredrikstad"]
    share = t.population_0_29.iloc[rows].sum() / t.population_0_29.sum()
    pilot, national = _ips(PILOT_TOWNS), _ips([])
    assert engine.population_share(pilot) == pytest.approx(share) and engine.population_share(national) == 1.0
    month = {"prog": np.zeros((2, 2)), "pg_cover": np.array([0.2, 0.2])}
    cost = lambda iv: monthly_programme_costs(SimpleNamespace(interventions=[iv], config=SimpleNamespace(scale=0.01)),  # noqa: E731
                                              month)["ips_youth"]
    assert cost(national) == pytest.approx((1.2e6 + 10 * 1e6) / 12)
    assert cost(pilot) == pytest.approx((1.2e6 + 10 * 1e6) / 12 * share)
    # a municipality named twice (by name and by number) is covered and costed once
    twice = _ips(PILOT_TOWNS + ["Fredrikstad"])  # 3107 again, by name
    assert engine.covered_kommuner(twice) == engine.covered_kommuner(pilot)
    assert engine.population_share(twice) == pytest.approx(share)


def test_experiment_records_municipality_metrics(tmp_path):
    """An experiment with `municipality_metrics: true` records every municipality's Q4 figures in
    its tasks (kommune:NNNN:METRIC rows), although tasks keep no monthly metrics (collect=False),
    in forked scenarios as in the first; without the key it records none."""
    from utenforsk.experiment.runner import Plan, collect, run

    for on in (True, False):
        exp = tmp_path / f"e{on}.yaml"
        exp.write_text(f"name: e\nmodel: {ROOT / 'configs/norway/baseline.yaml'}\nscale: 0.002\nreplicates: 1\n"
                       f"horizon_years: 1\nmunicipality_metrics: {str(on).lower()}\n"
                       "scenarios:\n  baseline: {}\n  pilot:\n    interventions: [ips_youth]\n")
        plan = Plan(exp)
        run(plan, tmp_path / f"o{on}", workers=1)
        runs = collect(tmp_path / f"o{on}", plan)
        k = runs[runs.metric.str.startswith("kommune:")]
        if on:
            assert set(k.scenario) == {"baseline", "pilot"}
            larvik = k[k.metric.str.startswith("kommune:3909:population_15_29@")]
            assert len(larvik) == 2 and (larvik.value > 0).all()
        else:
            assert k.empty


def test_pilot_unknown_municipality_exits_2(tmp_path):
    """An experiment whose pilot names an unknown municipality fails before any run: exit 2,
    the file and key, and the closest matches."""
    import os
    import subprocess
    import sys

    exp = tmp_path / "e.yaml"
    exp.write_text(f"name: e\nmodel: {ROOT / 'configs/norway/baseline.yaml'}\nscale: 0.001\nreplicates: 1\n"
                   "scenarios:\n  baseline: {}\n  pilot:\n    interventions: [ips_youth]\n"
                   "    overrides: {interventions.ips_youth.who.municipalities: [Larvik, Fredrikstd]}\n")
    r = subprocess.run([sys.executable, "-m", "utenforsk.cli", "experiment", str(exp), "--out", str(tmp_path / "o")],
                       env=dict(os.environ, COLUMNS="200"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "closest: Fredrikstad" in r.stderr and "who.municipalities" in r.stderr and "Traceback" not in r.stderr


def test_municipality_command_with_experiment(tmp_path):
    """`utenforsk municipality NAME --experiment DIR` prints each scenario's effect there, paired
    by replicate; an experiment without municipality metrics -> exit 2."""
    import os
    import subprocess
    import sys

    import pandas as pd

    rows = []
    for r in range(3):
        for sc, rate in (("baseline", 0.10 + 0.01 * r), ("pilot", 0.08 + 0.01 * r)):
            rows.append((sc, r, "kommune:3909:neet_rate_15_29", rate))
            rows.append((sc, r, "kommune:3909:neet_rate_15_29@2027", rate))
            rows.append((sc, r, "neet_rate_15_29", 0.1))
    (tmp_path / "e").mkdir()
    pd.DataFrame(rows, columns=["scenario", "replicate", "metric", "value"]).to_parquet(tmp_path / "e" / "runs.parquet")
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    call = lambda *a: subprocess.run([sys.executable, "-m", "utenforsk.cli", "municipality", *a],  # noqa: E731
                                     env=env, capture_output=True, text=True, timeout=120)
    ok = call("Larvik", "--experiment", str(tmp_path / "e"))
    assert ok.returncode == 0, ok.stderr
    line = next(x for x in ok.stdout.splitlines() if "pilot" in x and "all" in x)
    assert "11.00%" in line and "9.00%" in line and "-2.00" in line and "-18.2%" in line
    pd.DataFrame(rows[2::3]).rename(columns={0: "scenario", 1: "replicate", 2: "metric", 3: "value"}).to_parquet(
        tmp_path / "e" / "runs.parquet")
    bad = call("Larvik", "--experiment", str(tmp_path / "e"))
    assert bad.returncode == 2 and "municipality_metrics: true" in bad.stderr


def _in_towns(name, towns=PILOT_TOWNS):
    from utenforsk.interventions import engine

    data = engine.load_intervention(name).model_dump(by_alias=True, exclude_none=True)
    data["who"]["municipalities"] = list(towns)
    return data


def _assert_pilot_isolated(data, interventions, seed):
    """Services per municipality, a pilot in PILOT_TOWNS: every person elsewhere ends in the same
    state with the same traits, and every other municipality's yearly figures and service
    tallies are bit-for-bit the baseline's; the towns' are not."""
    import pandas as pd

    from utenforsk import outputs
    from utenforsk.model import UtenforskModel

    kw = dict(seed=seed, scale=0.01, horizon_years=3)  # the baseline: services per municipality
    a = UtenforskModel(ROOT / "configs/norway/baseline.yaml", **kw)
    b = UtenforskModel(ROOT / "configs/norway/baseline.yaml", interventions=interventions, **kw)
    a.run_model()
    b.run_model()
    towns = [data.numbers[r] for r in data.resolve(PILOT_TOWNS)]
    sa, sb = outputs.snapshot(a), outputs.snapshot(b)
    ka, kb = sa.kommunenummer.isin(towns).to_numpy(), sb.kommunenummer.isin(towns).to_numpy()
    pd.testing.assert_frame_equal(sa[~ka].reset_index(drop=True), sb[~kb].reset_index(drop=True), check_exact=True)
    pa, pb = outputs.periods_by_municipality(a), outputs.periods_by_municipality(b)
    ia, ib = pa.kommunenummer.isin(towns).to_numpy(), pb.kommunenummer.isin(towns).to_numpy()
    pd.testing.assert_frame_equal(pa[~ia].reset_index(drop=True), pb[~ib].reset_index(drop=True), check_exact=True)
    rows = np.array(data.resolve(PILOT_TOWNS))
    others = np.setdiff1d(np.arange(len(data)), rows)
    for year in a.kommune_sv:
        assert np.array_equal(a.kommune_sv[year][:, others], b.kommune_sv[year][:, others])
    assert not sa[ka].reset_index(drop=True).equals(sb[kb].reset_index(drop=True))  # the pilot acted there
    return sa[ka].reset_index(drop=True), sb[kb].reset_index(drop=True)


def test_named_pilot_leaves_other_municipalities_bit_for_bit(data):
    """NAV youth guarantee (service capacity, detection and odds) and IPS (odds) in Larvik and
    Fredrikstad."""
    _assert_pilot_isolated(data, [_in_towns("nav_youth_guarantee"), _in_towns("ips_youth")], seed=5)


def test_trait_shifting_pilot_leaves_other_municipalities_bit_for_bit(data):
    """A pilot that moves traits (the first 1000 days' early-development target, and kindergarten
    quality) in the towns: arrivals elsewhere take the traits of a native donor of their own
    municipality (kernel.arrival_donor), so the shifted traits cannot reach them. The towns'
    children's early development moves."""
    ta, tb = _assert_pilot_isolated(data, [_in_towns("thousand_days"), _in_towns("kindergarten_quality")],
                                    seed=7)
    young = (ta.age <= 5).to_numpy()
    assert not np.array_equal(ta.early_development[young].to_numpy(), tb.early_development[young].to_numpy())


def test_entry_reads_the_entrants_own_municipality():
    """With services per municipality, a covariate an entrant's first values read (here a
    municipality intercept in a trait's start mean) is the entrant's own municipality's: the
    entry kernel indexed the per-area inputs (``d_kre``, ``d_quality``) by the municipality
    *type* (rows 0-3 of the 357) before this was fixed."""
    from utenforsk.config.loader import validate
    from utenforsk.config.schema import ModelConfig
    from utenforsk.model import UtenforskModel, resolve_config

    data = resolve_config(ROOT / "configs/norway/baseline.yaml").model_dump(by_alias=True, exclude_none=True)
    mean = data["traits"]["early_development"]["initial"]["mean"]
    mean.setdefault("coefficients", {})["kommune:dropout"] = {"value": 1.0, "range": [1.0, 1.0], "source": "test"}
    with_effect = validate(ModelConfig, data, "<test>")

    def newborns(config):
        m = UtenforskModel(config, seed=3, scale=0.05, burn_in_years=0, horizon_years=1)
        m._gen.compile(m.pop, m.dyn, m.prog, m.tally, m.seed_key, m.cum_entries, m.births)
        m._F = m._gen.params()
        m._enter(0)  # month 0's births, before their first month
        slots = np.arange(int(m.births[0])) % m.capacity
        return m, slots

    a, slots = newborns(with_effect)
    b, _ = newborns(ROOT / "configs/norway/baseline.yaml")
    assert len(slots) > 50 and a.service_areas_by_kommune
    e = list(a.config.municipality_effects).index("dropout")
    got = a.pop.ctraits[0, slots].astype(np.float64) - b.pop.ctraits[0, slots]
    want = a.kre[e, a.pop.area[slots]]
    assert np.allclose(got, want, atol=1e-5), np.abs(got - want).max()
    assert np.abs(want).max() > 0.1


def test_index_births_orders_like_a_stable_argsort():
    """kernel.index_births (a counting sort since the cold-start work) gives exactly the order of
    a stable argsort by area, ties by person id, also across the ring's wrap-around."""
    from utenforsk.core import kernel

    rng = np.random.default_rng(3)
    for cap, start, n, areas in ((50, 40, 30, 4), (1000, 0, 700, 357), (20, 5, 1, 2), (64, 60, 64, 1)):
        area = rng.integers(0, areas, cap).astype(np.uint16)
        rank = np.zeros(cap, np.uint16)
        births_area = np.zeros((kernel.BIRTHS_RING, areas + 1), np.int32)
        kernel.index_births(start, n, cap, area, rank, births_area, 7)
        slots = (start + np.arange(n)) % cap
        assert np.array_equal(rank[slots], np.argsort(area[slots], kind="stable"))
        assert np.array_equal(births_area[7], np.r_[0, np.cumsum(np.bincount(area[slots], minlength=areas))])
