"""Power of municipal pilots (issue 15, part 4): closed form, type I error, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from utenforsk.config.pilot import PilotConfig
from utenforsk.pilots import power

ROOT = Path(__file__).resolve().parents[1]
P = lambda v: {"value": v, "range": [v, v], "source": "test"}  # noqa: E731


def test_cluster_randomised_matches_design_effect_formula():
    """Equal cluster sizes (1,000), known ICC (between SD 1 pp at p = 10%: ICC = 1.1e-3, design
    effect 2.1), 40 municipalities, one year: simulated power equals the noncentral-t power with
    the design effect within 3 Monte Carlo SEs (2,000 pilots, SE ~0.011); zero effect: 5% +- 3 SE."""
    cfg = PilotConfig(name="t", design="cluster_randomised", n_municipalities=[40], years=[1],
                      baseline_rate=P(0.1), between_sd=P(0.01), year_sd=P(0.0), effects=[0, -0.1],
                      n_sims=2000, seed=3)
    df = power.run_power(cfg, sizes=np.full(357, 1000)).set_index("effect")
    icc = 0.01 ** 2 / (0.01 ** 2 + 0.09)
    assert power.design_effect(1000, icc) == pytest.approx(2.11, abs=0.01)
    for e in (0.0, -0.1):
        r = df.loc[e]
        analytic = power.analytic_power(0.1, e, 0.01, 1000, 20, 20)
        assert r.power_analytic_equal_sizes == pytest.approx(analytic)
        se = np.sqrt(analytic * (1 - analytic) / 2000)
        assert abs(r.power - analytic) < 3 * se, (e, r.power, analytic, se)
    assert power.analytic_power(0.1, 0.0, 0.01, 1000, 20, 20) == pytest.approx(0.05)


@pytest.mark.parametrize("design", ["stepped_wedge", "did"])
def test_zero_effect_rejects_at_nominal_rate(design):
    """Real sizes and heterogeneity, 12 municipalities, 2 years: type I error 5% +- 3 SE (1,000 pilots)."""
    cfg = PilotConfig(name="t", design=design, n_municipalities=[12], years=[2], baseline_rate=P(0.097),
                      between_sd=P(0.012), year_sd=P(0.005), effects=[0], n_sims=1000, seed=5)
    rej = power.run_power(cfg).power.iloc[0]
    assert abs(rej - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 1000), rej


def test_did_with_named_municipalities_matches_comparisons():
    from utenforsk.pilots import municipalities as km

    data = km.load()
    t = data.table
    N = power.sizes_15_29(t)
    treated = np.array(data.resolve(["Larvik", "Fredrikstad"]))
    comp = power.match_comparisons(power.match_order(t, N, np.arange(len(t))), treated)
    assert not set(comp) & set(treated) and len(set(comp)) == 2
    assert (t.type_index.to_numpy()[comp] == t.type_index.to_numpy()[treated]).all()


def _cli(tmp_path, text):
    """The worked IPS pilot with the keys in ``text`` replaced."""
    import yaml

    f = tmp_path / "pilot.yaml"
    data = yaml.safe_load((ROOT / "experiments" / "pilot_ips_youth.yaml").read_text())
    data.update(yaml.safe_load(text))
    f.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    env = dict(os.environ, COLUMNS="300", NO_COLOR="1", TERM="dumb")
    return subprocess.run([sys.executable, "-m", "utenforsk.cli", "power", str(f), "--out", str(tmp_path / "o"),
                           "--sims", "10"], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("text,needle", [
    ("municipalities: [Larvik, Fredrikstadd]\n", "closest: Fredrikstad"),
    ("n_municipalities: [400]\n", "n_municipalities"),
    ("n_municipalities: [9]\n", "at most 8"),
    ("years: [0, 1]\n", "years"),
    ("design: trial\n", "design"),
])
def test_bad_pilot_exits_2(tmp_path, text, needle):
    res = _cli(tmp_path, text)
    assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.count("error:") == 1


def test_power_command_writes_csv_and_figure(tmp_path):
    res = _cli(tmp_path, "n_municipalities: [2]\nyears: [1]\n")
    assert res.returncode == 0, res.stderr
    import pandas as pd

    df = pd.read_csv(tmp_path / "o" / "power.csv")
    assert {"power", "power_mc_se", "mde_simulated_relative", "between_sd"} <= set(df.columns)
    assert sorted(df.between_sd.unique()) == [0.007, 0.012, 0.025]  # the range ends as well
    assert (tmp_path / "o" / "power.png").stat().st_size > 1000


def test_true_effect_read_from_effects_csv(tmp_path):
    import pandas as pd

    from utenforsk.errors import ConfigError

    pd.DataFrame({"scenario": ["ips_youth"], "metric": ["neet_rate_15_29"], "relative_change": [-0.0035]}) \
        .to_csv(tmp_path / "effects.csv", index=False)
    base = dict(name="t", design="did", n_municipalities=[2], years=[1], baseline_rate=P(0.097),
                between_sd=P(0.012), year_sd=P(0.005), effects=[0], n_sims=10)
    cfg = PilotConfig(**base, true_effect={"experiment": str(tmp_path), "scenario": "ips_youth"})
    assert power.true_effect(cfg, "f") == -0.0035
    df = power.run_power(cfg)
    assert df.effect_is_simulated.sum() == 1 and set(df.effect) == {0.0, -0.0035}  # one between_sd (range [v, v])
    bad = PilotConfig(**base, true_effect={"experiment": str(tmp_path), "scenario": "nope"})
    with pytest.raises(ConfigError, match="no such scenario"):
        power.true_effect(bad, "f")


# ---- the model's own replicate runs as the register world ---------------------------------------
def _fake_experiment(path: Path, reps: int, effect: float, seed: int = 11) -> None:
    """A runs.parquet with per-municipality yearly NEET 15-29 as an experiment with
    municipality_metrics writes it: binomial counts around 10% with municipal intercepts (SD
    1 pp), 2,000 simulated persons each, years 2024-2029; the scenario ``pilot`` multiplies the
    rates by (1 + effect) from 2026."""
    import pandas as pd

    from utenforsk.pilots import municipalities as km

    rng = np.random.default_rng(seed)
    nrs = km.load().numbers
    rows = []
    for r in range(reps):
        u = rng.normal(0, 0.01, len(nrs))
        unif = rng.random((len(nrs), 6))
        for sc, e in (("baseline", 0.0), ("pilot", effect)):
            for j, y in enumerate(range(2024, 2030)):
                p = (0.1 + u) * (1 + (e if y >= 2026 else 0.0))
                rate = __import__("scipy").stats.binom.ppf(unif[:, j], 2000, p) / 2000
                for k, nr in enumerate(nrs):
                    rows += [(sc, r, f"kommune:{nr}:neet_rate_15_29@{y}", rate[k]),
                             (sc, r, f"kommune:{nr}:simulated_persons_15_29@{y}", 2000.0)]
    df = pd.DataFrame(rows, columns=["scenario", "replicate", "metric", "value"])
    path.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path / "runs.parquet")


def test_replicate_world_type_one_error_and_simulated_effect(tmp_path):
    """Cluster-randomised, 20 municipalities, 2 years, on 4 replicate runs: 1,000 pilots (250
    random allocations per replicate) reject a zero effect at 5% +- 3 MC SE, and the simulated
    effect (-15% relative from 2026) is what the power rows call the simulation's own."""
    _fake_experiment(tmp_path / "exp", reps=4, effect=-0.15)
    cfg = PilotConfig(name="t", design="cluster_randomised", n_municipalities=[20], years=[2],
                      effects=[0.0], n_sims=1000, seed=2,
                      replicates={"experiment": str(tmp_path / "exp"), "scenario": "pilot", "start_year": 2026})
    df = power.run_power(cfg)
    zero = df[~df.effect_is_simulated].iloc[0]
    assert zero.world == "replicates" and zero.n_sims == 1000
    assert abs(zero.power - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 1000), zero.power
    sim = df[df.effect_is_simulated].iloc[0]
    assert sim.effect == pytest.approx(-0.15, abs=0.01)
    assert sim.power > 0.5


def test_replicate_world_bad_input_exits_2(tmp_path):
    from utenforsk.errors import UserError

    _fake_experiment(tmp_path / "exp", reps=1, effect=0.0)
    base = dict(name="t", design="did", n_municipalities=[2], years=[3], pre_years=3, effects=[0.0])
    cfg = PilotConfig(**base, replicates={"experiment": str(tmp_path / "exp"), "scenario": "pilot",
                                          "start_year": 2026})
    with pytest.raises(UserError, match="years do not cover"):  # 3 pre-years before 2026: from 2023
        power.run_power(cfg)
    cfg = PilotConfig(**{**base, "pre_years": 2}, replicates={"experiment": str(tmp_path / "exp"),
                                                             "scenario": "nope", "start_year": 2026})
    with pytest.raises(UserError, match="no such scenario"):
        power.run_power(cfg)
    with pytest.raises(Exception, match="parametric world needs"):
        PilotConfig(**base)
