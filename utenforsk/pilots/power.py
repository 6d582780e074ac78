"""Power of a municipal pilot: simulate the register outcome, analyse as an evaluator would.

The outcome is NEET 15-29 in Q4 per municipality and year (a register count). A simulated pilot:

* the municipalities: real sizes (population 15-29 from configs/norway/data/municipalities.csv:
  bands 16-19, 20-24, 25-29 plus a tenth of 6-15 for age 15, an assumption);
* the register world, drawn once per simulation for all 357 municipalities and reused by every
  design size, follow-up length and assumed effect (common random numbers): a municipality
  intercept ``u_k ~ N(0, between_sd^2)``, a municipality-year deviation ``v_kt ~ N(0, year_sd^2)``,
  and one uniform per municipality-year turned into a binomial count by its inverse CDF, so
  ``NEET_kt ~ Binomial(N_k, p_kt)`` with ``p_kt = (p0 + u_k + v_kt) * (1 + effect * treated_kt)``;
* the allocation: municipalities drawn from the pool and allocated at random (cluster-randomised:
  half treated; stepped wedge: one baseline year, then equal groups cross over year by year; did:
  the treated and as many comparison municipalities matched by type and size);
* the analysis: OLS of the municipality-year rates on treatment with year effects (and
  municipality fixed effects for stepped wedge and did), standard errors clustered by
  municipality, t with G-1 degrees of freedom (statsmodels); or a random-intercept mixed model.

Power is the share of simulated pilots that reject "no effect" at ``alpha``; the minimum detectable
effect (MDE) the smallest assumed effect in the grid reaching ``power_target``, with the analytic
design-effect MDE of a two-arm cluster-randomised design beside it (docs/pilots.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from utenforsk.config.loader import read_yaml_mapping, validate
from utenforsk.config.pilot import PilotConfig
from utenforsk.errors import ConfigError
from utenforsk.pilots import municipalities as km


def load_pilot(path: str | Path) -> PilotConfig:
    return validate(PilotConfig, read_yaml_mapping(path), str(path))


def sizes_15_29(table: pd.DataFrame) -> np.ndarray:
    """Residents 15-29 per municipality (15 = a tenth of the 6-15 band: an assumption)."""
    return (table.population_16_19 + table.population_20_24 + table.population_25_29
            + table.population_6_15 / 10).round().astype(int).to_numpy()


# ---- the closed form ------------------------------------------------------------------------
def design_effect(m: float, icc: float) -> float:
    """Variance inflation of a cluster mean of ``m`` persons with intra-cluster correlation ``icc``."""
    return 1.0 + (m - 1.0) * icc


def analytic_power(p0: float, effect: float, between_sd: float, m: int, n_treated: int,
                   n_control: int, alpha: float = 0.05) -> float:
    """Power of a two-arm cluster-randomised comparison of means, one follow-up year, equal
    cluster sizes ``m``: the variance of a cluster mean is ``sigma^2 * DE / m`` with
    ``sigma^2 = between_sd^2 + p(1-p)``, ``ICC = between_sd^2 / sigma^2``, ``DE = 1 + (m-1) ICC``;
    a t test with ``G-2`` degrees of freedom (noncentral t)."""
    p1 = p0 * (1 + effect)
    var = 0.0
    for p, n in ((p0, n_control), (p1, n_treated)):
        sigma2 = between_sd ** 2 + p * (1 - p)
        var += sigma2 * design_effect(m, between_sd ** 2 / sigma2) / m / n
    df = n_treated + n_control - 2
    nc = abs(p1 - p0) / np.sqrt(var)
    tc = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(tc, df, nc) + stats.nct.cdf(-tc, df, nc))


def analytic_mde(p0: float, between_sd: float, year_sd: float, sizes: np.ndarray, n_treated: int,
                 n_control: int, years: int, alpha: float, power: float) -> float:
    """Relative MDE of a two-arm cluster-randomised design (means over ``years``; sizes unequal:
    the mean binomial variance), ``(t_{1-a/2} + t_power) * SE / p0``."""
    binom = np.mean(p0 * (1 - p0) / sizes)
    var_mean = between_sd ** 2 + (year_sd ** 2 + binom) / years
    se = np.sqrt(var_mean * (1 / n_treated + 1 / n_control))
    df = n_treated + n_control - 2
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se / p0)


# ---- one simulated pilot ----------------------------------------------------------------------
@dataclass
class World:
    """One simulation's register world for every municipality and year (0 = first pre-year)."""

    u: np.ndarray   # [K] municipality intercepts
    v: np.ndarray   # [K, T] municipality-year deviations
    unif: np.ndarray  # [K, T] uniforms for the binomial counts


def draw_world(rng: np.random.Generator, K: int, T: int, between_sd: float, year_sd: float) -> World:
    return World(u=rng.normal(0, between_sd, K), v=rng.normal(0, year_sd, (K, T)),
                 unif=rng.random((K, T)))


def rates(world: World, rows: np.ndarray, T: int, p0: float, N: np.ndarray, treat: np.ndarray,
          effect: float) -> np.ndarray:
    """Observed NEET rates [len(rows), T] of the municipalities ``rows``; ``treat`` [len(rows), T]."""
    p = np.clip(p0 + world.u[rows, None] + world.v[rows, :T], 1e-4, 1 - 1e-4) * (1 + effect * treat)
    n = N[rows, None]
    return stats.binom.ppf(world.unif[rows, :T], n, np.clip(p, 0, 1)) / n


def analyse(y: np.ndarray, treat: np.ndarray, fixed_effects: bool, analysis: str = "cluster_ols") -> tuple[float, float]:
    """Estimate and two-sided p-value of the treatment effect from rates ``y`` [G, T]."""
    import statsmodels.api as sm

    G, T = y.shape
    muni = np.repeat(np.arange(G), T)
    year = np.tile(np.arange(T), G)
    cols = [treat.ravel().astype(float)] + [(year == t).astype(float) for t in range(1, T)]
    X = np.column_stack(cols)
    yy = y.ravel()
    if analysis == "mixed":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.MixedLM(yy, np.column_stack([X, np.ones(G * T)]), groups=muni).fit(reml=True)
        return float(fit.fe_params[0]), float(fit.pvalues[0])
    if fixed_effects:  # the within transformation (as xtreg, fe): the absorbed municipality
        # effects do not enter the small-sample correction, which dummies would overcorrect
        X = (X.reshape(G, T, -1) - X.reshape(G, T, -1).mean(axis=1, keepdims=True)).reshape(G * T, -1)
        yy = (y - y.mean(axis=1, keepdims=True)).ravel()
    else:
        X = np.column_stack([X, np.ones(G * T)])
    fit = sm.OLS(yy, X).fit(cov_type="cluster", cov_kwds={"groups": muni}, use_t=True)
    return float(fit.params[0]), float(fit.pvalues[0])


def allocation(design: str, G: int, years: int, pre: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Treatment indicator [G, T] for a design with ``G`` municipalities (did: G treated first,
    then G comparisons) and the number of periods T."""
    if design == "cluster_randomised":
        treat = np.zeros((G, years))
        treat[rng.permutation(G)[:G // 2]] = 1
        return treat, years
    if design == "stepped_wedge":
        T = years + 1
        treat = np.zeros((G, T))
        for step, group in enumerate(np.array_split(rng.permutation(G), years)):
            treat[group, step + 1:] = 1
        return treat, T
    T = pre + years  # did: rows 0..G-1 treated, G..2G-1 comparisons
    treat = np.zeros((2 * G, T))
    treat[:G, pre:] = 1
    return treat, T


def match_order(table: pd.DataFrame, N: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """For each municipality, the pool's municipalities of the same type by nearness in size
    (log scale), then the other types likewise: ``order[k]`` (computed once per power run)."""
    ln = np.log(N)
    ty = table.type_index.to_numpy()
    out = np.empty((len(table), len(pool)), np.int64)
    for k in range(len(table)):
        key = np.lexsort((pool, np.abs(ln[pool] - ln[k]), ty[pool] != ty[k]))
        out[k] = pool[key]
    return out


def choose_municipalities(cfg, G: int, fixed, order, pool, rng) -> np.ndarray:
    """The G pilot municipalities (named ones first, else drawn from ``pool``), followed by their
    matched comparisons in a difference-in-differences design (``order``: the matching order)."""
    if fixed is not None:
        return np.concatenate([fixed[:G], match_comparisons(order, fixed[:G])])
    if cfg.design == "did":
        treated = rng.choice(pool, G, replace=False)
        return np.concatenate([treated, match_comparisons(order, treated)])
    return rng.choice(pool, G, replace=False)


def match_comparisons(order: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """For each treated municipality in turn, the first untreated, unmatched one in its order."""
    taken = set(int(k) for k in treated)
    out = []
    for k in treated:
        for j in order[k]:
            if int(j) not in taken:
                taken.add(int(j))
                out.append(int(j))
                break
        else:
            raise ConfigError("not enough municipalities left to match comparisons", key="n_municipalities")
    return np.array(out, np.int64)


def pool_rows(cfg: PilotConfig, data: km.Municipalities, file: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(the pool of rows pilots draw from, the fixed treated rows for did with named ones)."""
    t = data.table
    if cfg.municipalities:
        named = np.array(data.resolve(cfg.municipalities, file=file, key="municipalities"), np.int64)
        if cfg.design == "did":
            return np.arange(len(t)), named
        return named, None
    ok = np.ones(len(t), bool)
    d = cfg.draw_from
    for ty in d.types:
        if ty not in km.TYPES:
            raise ConfigError("unknown municipality type", file=file, key="draw_from.types", value=ty,
                              allowed=", ".join(km.TYPES))
    for f in d.fylker:
        if f not in set(t.fylke):
            raise ConfigError("unknown county", file=file, key="draw_from.fylker", value=f,
                              allowed=", ".join(sorted(set(t.fylke))))
    if d.types:
        ok &= t.type.isin(d.types).to_numpy()
    if d.fylker:
        ok &= t.fylke.isin(d.fylker).to_numpy()
    ok &= (t.population_2024_01_01 >= d.min_population).to_numpy()
    return np.flatnonzero(ok), None


def true_effect(cfg: PilotConfig, file: str) -> float | None:
    te = cfg.true_effect
    if te is None:
        return None
    path = Path(te.experiment) / "effects.csv"
    if not path.exists():
        raise ConfigError("no effects.csv in the experiment directory", file=file,
                          key="true_effect.experiment", value=te.experiment,
                          allowed="the --out directory of a finished `utenforsk experiment`")
    eff = pd.read_csv(path)
    row = eff[(eff.scenario == te.scenario) & (eff.metric == te.metric)]
    if row.empty:
        raise ConfigError("no such scenario and metric in effects.csv", file=file, key="true_effect",
                          value=f"{te.scenario}/{te.metric}",
                          allowed=", ".join(sorted(set(eff.scenario))))
    return float(row.relative_change.iloc[0])


def check_design(cfg: PilotConfig, pool: np.ndarray, fixed: np.ndarray | None, file: str) -> None:
    need = max(cfg.n_municipalities)
    if fixed is not None:
        if need > len(fixed):
            raise ConfigError("more treated municipalities than named", file=file, key="n_municipalities",
                              value=need, allowed=f"at most {len(fixed)} (the named ones)")
        if 2 * need > len(pool):
            raise ConfigError("not enough municipalities for the comparisons", file=file, key="n_municipalities")
        return
    have = len(pool) // 2 if cfg.design == "did" else len(pool)
    if need > have:
        raise ConfigError("the design needs more municipalities than the pool has", file=file,
                          key="n_municipalities", value=need,
                          allowed=f"at most {have} ({len(pool)} municipalities in the pool"
                                  + (", half of them treated" if cfg.design == "did" else "") + ")")


def run_power(cfg: PilotConfig, file: str = "<pilot>", n_sims: int | None = None,
              sizes: np.ndarray | None = None, between_sds: list[float] | None = None) -> pd.DataFrame:
    """Simulated power for every (between_sd, municipalities, years, effect): one row each (on
    the model's own replicate runs when the pilot file gives ``replicates``)."""
    if cfg.replicates is not None:
        return run_power_replicates(cfg, file, n_sims)
    data = km.load()
    t = data.table
    N = sizes_15_29(t) if sizes is None else np.asarray(sizes)
    pool, fixed = pool_rows(cfg, data, file)
    check_design(cfg, pool, fixed, file)
    effects = list(cfg.effects)
    truth = true_effect(cfg, file)
    if truth is not None and truth not in effects:
        effects.append(truth)
    p0, ysd = cfg.baseline_rate.value, cfg.year_sd.value
    if between_sds is None:
        b = cfg.between_sd
        between_sds = sorted({b.range[0], b.value, b.range[1]})
    n_sims = n_sims or cfg.n_sims
    T_max = cfg.pre_years + max(cfg.years) + 1
    fe = cfg.design != "cluster_randomised"
    order = match_order(t, N, pool) if cfg.design == "did" else None
    rows = []
    for bsd in between_sds:
        rng = np.random.default_rng([cfg.seed, int(round(bsd * 1e6))])
        rej = {}
        for _ in range(n_sims):
            world = draw_world(rng, len(t), T_max, bsd, ysd)
            for G in cfg.n_municipalities:
                chosen = choose_municipalities(cfg, G, fixed, order, pool, rng)
                for Y in cfg.years:
                    treat, T = allocation(cfg.design, G, Y, cfg.pre_years, rng)
                    for e in effects:
                        y = rates(world, chosen, T, p0, N, treat, e)
                        est, pv = analyse(y, treat, fe, cfg.analysis)
                        r = rej.setdefault((G, Y, e), [0, 0.0, 0])
                        r[0] += pv < cfg.alpha
                        r[1] += est
                        r[2] += 1
        for (G, Y, e), (k, s, n) in rej.items():
            power = k / n
            row = {"design": cfg.design, "world": "parametric", "between_sd": bsd, "year_sd": ysd, "n_municipalities": G,
                   "years": Y, "effect": e, "effect_is_simulated": truth is not None and e == truth,
                   "power": power, "power_mc_se": float(np.sqrt(max(power * (1 - power), 1e-12) / n)),
                   "mean_estimate_pp": 100 * s / n, "true_change_pp": 100 * p0 * e, "n_sims": n}
            if cfg.design == "cluster_randomised":
                nt = G // 2
                size = N[pool].mean() if fixed is None else N[pool].mean()
                row["power_analytic_equal_sizes"] = analytic_power(p0, e, bsd, int(size), nt, G - nt, cfg.alpha) \
                    if Y == 1 and ysd == 0 else np.nan
                row["mde_analytic_relative"] = analytic_mde(p0, bsd, ysd, N[pool], nt, G - nt, Y,
                                                            cfg.alpha, cfg.power_target)
            rows.append(row)
    df = pd.DataFrame(rows).sort_values(["between_sd", "n_municipalities", "years", "effect"],
                                        key=lambda c: c.abs() if c.name == "effect" else c)
    mde = (df[(df.power >= cfg.power_target) & (df.effect != 0)]
           .assign(a=lambda d: d.effect.abs()).groupby(["between_sd", "n_municipalities", "years"]).a.min())
    df["mde_simulated_relative"] = [mde.get((r.between_sd, r.n_municipalities, r.years), np.nan)
                                    for r in df.itertuples()]
    return df.reset_index(drop=True)


def central_rows(df: pd.DataFrame, cfg: PilotConfig) -> pd.DataFrame:
    """The rows at the central between-municipality SD (all rows on the replicate world)."""
    if cfg.replicates is not None:
        return df
    return df[np.isclose(df.between_sd, cfg.between_sd.value)]


def world_label(df: pd.DataFrame, cfg: PilotConfig) -> str:
    if cfg.replicates is not None:
        return (f"the model's replicate runs ({int(df.replicates.iloc[0])}) of {cfg.replicates.experiment}, "
                f"simulated between-municipality SD {df.between_sd.iloc[0]:.3f}")
    return f"between-municipality SD {cfg.between_sd.value:.3f}"


def figure(df: pd.DataFrame, cfg: PilotConfig, path: Path) -> None:
    """Power against the number of municipalities, one line per follow-up and assumed effect,
    at the central between-municipality SD."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    central = central_rows(df, cfg)
    fig, axes = plt.subplots(1, len(cfg.years), figsize=(4 * len(cfg.years), 3.4), sharey=True, squeeze=False)
    for ax, Y in zip(axes[0], cfg.years):
        for e, d in central[central.years == Y].groupby("effect"):
            label = f"{e:+.0%}" + (" (simulated)" if d.effect_is_simulated.any() else "")
            ax.errorbar(d.n_municipalities, d.power, yerr=2 * d.power_mc_se, marker="o", label=label, capsize=2)
        ax.axhline(cfg.power_target, color="grey", ls="--", lw=0.8)
        ax.axhline(cfg.alpha, color="grey", ls=":", lw=0.8)
        ax.set_title(f"{Y} year(s) of follow-up")
        ax.set_xlabel("municipalities" + (" treated (+ as many matched)" if cfg.design == "did" else ""))
    axes[0][0].set_ylabel("power")
    axes[0][-1].legend(title="relative effect", fontsize=7)
    fig.suptitle(f"{cfg.name}: {cfg.design}, NEET 15-29 in Q4 ({world_label(df, cfg)})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- the model's own replicate runs as the register world ---------------------------------------
def replicate_world(cfg: PilotConfig, data: km.Municipalities, file: str):
    """``(base[R, K, T], treated[R, K, T], persons[R, K, T], years, ok[K])`` from the
    experiment named in ``cfg.replicates``, municipalities in the data file's order; ``ok`` marks
    those with at least ``min_persons`` simulated persons 15-29 in every replicate-year."""
    from utenforsk.pilots.replicates import outcome_panel

    w = cfg.replicates
    years, nrs, base, treated, persons = outcome_panel(w.experiment, w.scenario, w.baseline)
    pos = {nr: i for i, nr in enumerate(nrs)}
    missing = [nr for nr in data.numbers if nr not in pos]
    if missing:
        raise ConfigError("the experiment's municipality metrics lack municipalities of the data file",
                          file=file, key="replicates.experiment", value=missing[:3])
    order = np.array([pos[nr] for nr in data.numbers])
    base, treated, persons = base[:, order], treated[:, order], persons[:, order]
    ok = (np.nan_to_num(persons) >= w.min_persons).all(axis=(0, 2)) & np.isfinite(base).all(axis=(0, 2)) \
        & np.isfinite(treated).all(axis=(0, 2))
    return base, treated, persons, years, ok


def periods(cfg: PilotConfig) -> int:
    """Register years before pilot year 1 in the design's periods (did: pre_years; stepped wedge:
    its one baseline year; cluster-randomised: none)."""
    return {"did": cfg.pre_years, "stepped_wedge": 1}.get(cfg.design, 0)


def run_power_replicates(cfg: PilotConfig, file: str = "<pilot>", n_sims: int | None = None) -> pd.DataFrame:
    """Power of the pilot design on the model's own replicate runs (``cfg.replicates``).

    One replicate serves many pilots: pilot ``i`` uses replicate ``i mod R`` and its own random
    choice and allocation of municipalities, so the municipalities' simulated heterogeneity
    (their random intercepts, sizes and sampling noise at the experiment's scale) and the
    simulation's own effect (``effect_is_simulated``: treated municipality-years take the
    scenario's simulated rates) replace the parametric world. The assumed effects of the grid
    multiply the baseline's simulated rates. Periods are calendar years: pilot year 1 is
    ``replicates.start_year``. A did with named municipalities has no allocation to randomise:
    it is one pilot per replicate (``n_sims`` = replicates).

    At an experiment ``scale`` below 1 a municipality's simulated rate carries 1/scale times the
    register's binomial variance, so this power is conservative (a lower bound) unless the
    experiment runs at scale 1."""
    data = km.load()
    t = data.table
    base, treated, persons, years, ok = replicate_world(cfg, data, file)
    pool, fixed = pool_rows(cfg, data, file)
    if fixed is not None and not ok[fixed].all():
        bad = [t.name.iloc[k] for k in fixed if not ok[k]]
        raise ConfigError("named municipalities have too few simulated persons in the experiment",
                          file=file, key="municipalities", value=bad,
                          allowed=f"a larger experiment scale, or replicates.min_persons below {cfg.replicates.min_persons}")
    pool = pool[ok[pool]]
    check_design(cfg, pool, fixed, file)
    w = cfg.replicates
    start = years.index(w.start_year) if w.start_year in years else None
    need_pre = periods(cfg)
    if start is None or start - need_pre < 0 or start + max(cfg.years) > len(years):
        raise ConfigError("the experiment's years do not cover the design", file=file, key="replicates.start_year",
                          value=w.start_year, allowed=f"policy years {years[0]}-{years[-1]} must hold "
                                                      f"{need_pre} year(s) before the start and {max(cfg.years)} from it")
    R = base.shape[0]
    follow = slice(start, start + max(cfg.years))
    truth = float(np.mean(treated[:, ok, follow] - base[:, ok, follow]) / np.mean(base[:, ok, follow]))
    effects = sorted(set(cfg.effects), key=abs)
    N = np.nan_to_num(persons).mean(axis=(0, 2))
    order = match_order(t, np.maximum(N, 1.0), pool) if cfg.design == "did" else None
    fe = cfg.design != "cluster_randomised"
    n_sims = n_sims or cfg.n_sims
    if fixed is not None:  # named treated, matched comparisons: nothing to randomise, one pilot per replicate
        n_sims = R
    rng = np.random.default_rng([cfg.seed, 7])
    rej: dict = {}
    for i in range(n_sims):
        r = i % R
        for G in cfg.n_municipalities:
            chosen = choose_municipalities(cfg, G, fixed, order, pool, rng)
            for Y in cfg.years:
                treat, T = allocation(cfg.design, G, Y, cfg.pre_years, rng)
                cols = slice(start - need_pre, start - need_pre + T)
                b = base[r][chosen][:, cols]
                sim = np.where(treat > 0, treated[r][chosen][:, cols], b)
                for e, y in [(e, b * (1 + e * treat)) for e in effects] + [(truth, sim)]:
                    est, pv = analyse(y, treat, fe, cfg.analysis)
                    key = (G, Y, e, e is truth)
                    acc = rej.setdefault(key, [0, 0.0, 0])
                    acc[0] += pv < cfg.alpha
                    acc[1] += est
                    acc[2] += 1
    p0 = float(np.mean(base[:, ok, follow]))
    sd = float(np.mean(np.std(base[:, ok], axis=1)))  # across municipalities, mean over replicates and years
    rows = []
    for (G, Y, e, simulated), (k, s, n) in rej.items():
        power = k / n
        rows.append({"design": cfg.design, "world": "replicates", "between_sd": sd, "year_sd": np.nan,
                     "n_municipalities": G, "years": Y, "effect": e, "effect_is_simulated": simulated,
                     "power": power, "power_mc_se": float(np.sqrt(max(power * (1 - power), 1e-12) / n)),
                     "mean_estimate_pp": 100 * s / n, "true_change_pp": 100 * p0 * e, "n_sims": n,
                     "replicates": R, "pool": len(pool)})
    df = pd.DataFrame(rows).sort_values(["n_municipalities", "years", "effect_is_simulated", "effect"],
                                        key=lambda c: c.abs() if c.name == "effect" else c)
    mde = (df[(df.power >= cfg.power_target) & (df.effect != 0) & ~df.effect_is_simulated]
           .assign(a=lambda d: d.effect.abs()).groupby(["n_municipalities", "years"]).a.min())
    df["mde_simulated_relative"] = [mde.get((r.n_municipalities, r.years), np.nan) for r in df.itertuples()]
    return df.reset_index(drop=True)
