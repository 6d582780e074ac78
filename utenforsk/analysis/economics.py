"""Socio-economic evaluation of scenarios against the baseline, paired by replicate (R-109/2021).

The perspective is society's, as the Ministry of Finance circular R-109/2021 and DFØ's guide
(Veileder i samfunnsøkonomiske analyser) prescribe; the numbers come from the cost book
(configs/norway/costs.yaml, :mod:`utenforsk.analysis.ledger`). Per (scenario, replicate), with
``Δ`` the scenario-minus-baseline change in a year and ``df`` the discount factor:

- **production**: Δ employment person-years 15-29 × the value of a person-year of work (wage plus
  employer costs) × (1 − displacement). Education years are an outcome of their own, reported and
  not valued as production (their value shows later as work, and in the value at 30).
- **resource costs**: each programme's own cost plus every induced service use (kindergarten and
  school places, child welfare, health station, OT and NAV follow-up, programme places) at unit
  cost.
- **tax-financing cost**: 20% of the net change in public budgets (programmes, services,
  transfers, minus taxes). Transfers (benefits, social assistance, student grants) are not
  socio-economic benefits: they enter only here.
- **value at 30**: the cohort turning 30 in each year carries, per state (state mix at age 29),
  an expected share of a permanent exclusion — lost production plus the tax-financing cost of its
  public cost — with its own range in the cost book; ``value_at_30.include: false`` (or
  ``Valuation(include_value_at_30=False)``) leaves it out; ``npv_within_horizon_nok`` never has it.
- costs and effects are discounted with the same schedule (R-109/2021: 4% real for years 0-40,
  3% for 40-75, 2% after, year 0 the policy start = the smallest ``@YEAR`` in the runs table);
  ``cost_per_exclusion_year_avoided_nok`` divides discounted costs by discounted NEET-years
  avoided.

NPV = production + value at 30 − resource costs − tax-financing cost. Prices are real NOK of the
cost book's ``price_year``.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from utenforsk.analysis.effects import _scenarios, check_runs, mean_ci
from utenforsk.analysis.ledger import CostBook, item_flows, ledger_table, load_costs

#: (end year of the segment, annual real rate) per R-109/2021; the last segment is open.
R109_SEGMENTS = ((40.0, 0.04), (75.0, 0.03), (math.inf, 0.02))

COST = "programme_cost_nok"
HEALTH = "health_benefit_person_years_18_29"
NEET = "neet_person_years_15_29"
EMPLOYMENT = "employment_person_years_15_29"
EDUCATION = "education_person_years_15_29"
PROGRAMME_PREFIX = COST + ":"
AGE29_PREFIX = "age29_person_years_"
REQUIRED = (NEET, EMPLOYMENT)
YEARLY_BASES = (COST, HEALTH, NEET, EMPLOYMENT, EDUCATION)
QUANTITIES = ("pv_programme_cost_nok", "pv_service_cost_nok", "pv_public_budget_change_nok",
              "pv_tax_financing_cost_nok", "pv_cost_nok", "pv_production_gain_nok",
              "pv_value_at_30_nok", "npv_within_horizon_nok", "npv_nok",
              "employment_years_gained", "education_years_gained", "exclusion_years_avoided",
              "pv_exclusion_years_avoided")
RATIOS = {  # ratio column: (numerator column, denominator column)
    "cost_per_exclusion_year_avoided_nok": ("pv_cost_nok", "pv_exclusion_years_avoided"),
    "benefit_cost_ratio": ("pv_benefits_nok", "pv_cost_nok"),
}
#: willingness to pay per (discounted) exclusion-year avoided for the acceptability curve, NOK
DEFAULT_WTP = (0, 100_000, 250_000, 500_000, 750_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000)
BOOTSTRAP_RESAMPLES = 4000
_YEARLY = re.compile(r"^(?P<base>.+)@(?P<year>-?\d+)$")


def discount_factors(years_from_start) -> np.ndarray:
    """Discount factor for each year counted from the policy start (year 0 → 1.0).

    Piecewise R-109/2021: ``1/1.04**t`` for t ≤ 40, ``1/(1.04**40 · 1.03**(t-40))`` for
    40 < t ≤ 75, then ``1/(1.04**40 · 1.03**35 · 1.02**(t-75))``. Fractional years are allowed.
    """
    t = np.asarray(years_from_start, dtype=float)
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise ValueError("years from the policy start must be finite and >= 0")
    log_df = np.zeros_like(t)
    start = 0.0
    for end, rate in R109_SEGMENTS:
        years_in_segment = np.clip(t - start, 0.0, end - start)
        log_df -= years_in_segment * math.log1p(rate)
        start = end
    return np.exp(log_df)


@dataclass(frozen=True)
class Valuation:
    """The cost book (default configs/norway/costs.yaml) and whether to value the state at 30
    (default: the book's ``value_at_30.include``)."""

    book: CostBook | None = None
    include_value_at_30: bool | None = None
    _book: CostBook = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        book = self.book if self.book is not None else load_costs()
        object.__setattr__(self, "_book", book)
        if self.include_value_at_30 is None:
            object.__setattr__(self, "include_value_at_30", book.value_at_30.include)

    @property
    def costs(self) -> CostBook:
        return self._book

    @property
    def price_year(self) -> int:
        return self._book.price_year

    @property
    def tax_cost_factor(self) -> float:
        return self._book.tax_cost_factor.value

    def drawn(self, rng: np.random.Generator) -> "Valuation":
        """Every number of the cost book drawn uniformly over its range (parameter mode: one draw
        per parameter draw, so intervals and the acceptability curve include what the unit values
        leave unknown)."""
        values = {path: rng.uniform(*p.range) if p.range[1] > p.range[0] else p.value
                  for path, p in sorted(self._book.params().items())}
        return Valuation(self._book.with_values(values), self.include_value_at_30)


def _yearly(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Yearly metrics as (scenario, replicate) x (base, year) columns, and the policy start year."""
    parsed = runs["metric"].astype(str).str.extract(_YEARLY)
    yearly = runs.assign(base=parsed["base"], year=pd.to_numeric(parsed["year"])).dropna(
        subset=["base"])
    if yearly.empty:
        raise ValueError("runs table has no yearly metrics (NAME@YEAR); economics needs "
                         f"{', '.join(b + '@YEAR' for b in REQUIRED)}")
    start = int(yearly["year"].min())
    table = yearly.astype({"year": int}).pivot(index=["scenario", "replicate"], columns=["base", "year"],
                                               values="value")  # a duplicate row is an error
    return table.astype(float), start


def _replicates(runs: pd.DataFrame, scenario: str) -> list:
    return list(pd.unique(runs.loc[runs["scenario"] == scenario, "replicate"]))


def _block(table: pd.DataFrame, base: str, scenario: str, reps: list, years: list[int]) -> np.ndarray:
    """(replicates x years) values of one yearly base for one scenario; NaN where absent."""
    cols = pd.MultiIndex.from_tuples([(base, y) for y in years], names=["base", "year"])
    rows = pd.MultiIndex.from_tuples([(scenario, r) for r in reps], names=table.index.names)
    return table.reindex(index=rows, columns=cols).to_numpy(dtype=float)


@dataclass
class _Flows:
    """One scenario's paired changes: replicates, and per quantity a (replicates x years) array."""

    reps: list
    delta: dict[str, np.ndarray]
    programmes: dict[str, np.ndarray]
    paid: set[str] | dict  # services whose capacity the interventions buy (or service -> year mask)

    def subset(self, rows: np.ndarray) -> "_Flows":
        return _Flows([self.reps[i] for i in rows], {k: v[rows] for k, v in self.delta.items()},
                      {k: v[rows] for k, v in self.programmes.items()}, self.paid)


def _scenario_flows(runs: pd.DataFrame, baseline: str, valuation: Valuation,
                    paid_by_programme: dict[str, set[str]] | None):
    """(years, discount factors, {scenario: _Flows}) for every non-baseline scenario."""
    check_runs(runs)
    scenarios = _scenarios(runs, baseline)
    table, start = _yearly(runs)
    bases = set(table.columns.get_level_values("base"))
    lacking = [b for b in REQUIRED if b not in bases]
    if lacking:
        names = ", ".join(b + "@YEAR" for b in lacking)
        raise ValueError(f"runs table lacks yearly metric(s) {names} needed for economics "
                         "(runs from an older version: rerun the experiment)")
    years = sorted({int(y) for b, y in table.columns if b in REQUIRED})
    df = discount_factors(np.array(years) - start)
    programmes = sorted(b for b in bases if b.startswith(PROGRAMME_PREFIX))
    if not programmes and COST in bases:  # only the total recorded: one line, payer unassigned
        programmes = [COST]
    book = valuation.costs  # the quantities every book values are the same
    wanted = set(REQUIRED) | {EDUCATION, HEALTH} | {it.quantity for it in book.items.values()} | {
        AGE29_PREFIX + role for role in book.value_at_30.persistence}
    out = {}
    for scenario in scenarios:
        reps = sorted(set(_replicates(runs, scenario)) & set(_replicates(runs, baseline)))
        delta = {}
        for b in sorted(wanted & bases):
            d = _block(table, b, scenario, reps, years) - _block(table, b, baseline, reps, years)
            if b in REQUIRED and np.isnan(d).any():
                rep = reps[int(np.where(np.isnan(d).any(axis=1))[0][0])]
                raise ValueError(f"missing {b}@YEAR values for scenario {scenario!r} or "
                                 f"{baseline!r} in replicate {rep}")
            delta[b] = np.nan_to_num(d)
        prog = {}
        for b in programmes:  # a missing cost is no programme that year: 0
            d = (np.nan_to_num(_block(table, b, scenario, reps, years))
                 - np.nan_to_num(_block(table, b, baseline, reps, years)))
            if np.any(d):  # not another scenario's programme
                prog["all programmes" if b == COST else b[len(PROGRAMME_PREFIX):]] = d
        paid = (paid_by_programme or {}).get(scenario, set())
        if isinstance(paid, dict):  # service -> (first, last) year the programme buys its capacity
            yr = np.array(years)
            paid = {svc: (yr >= lo) & (yr <= (np.inf if hi is None else hi)) for svc, (lo, hi) in paid.items()}
        out[scenario] = _Flows(reps, delta, prog, paid)
    return years, df, out


def _evaluate(f: _Flows, df: np.ndarray, valuation: Valuation, valuation_of=None) -> tuple[dict, list]:
    """(per-replicate quantities, ledger item flows) of one scenario; ``valuation_of(replicate)``
    gives a replicate its own cost book (parameter mode), else ``valuation`` is used for all."""
    if valuation_of is None or not f.reps:
        items = item_flows(f.delta, f.programmes, valuation.costs, f.paid)
        return _per_replicate(f, df, valuation, items), items
    groups: dict[int, tuple[Valuation, list[int]]] = {}
    for i, r in enumerate(f.reps):
        v = valuation_of(r)
        groups.setdefault(id(v), (v, []))[1].append(i)
    quantities: dict[str, np.ndarray] = {}
    items: list | None = None
    for v, rows in groups.values():
        rows = np.array(rows)
        sub = f.subset(rows)
        sub_items = item_flows(sub.delta, sub.programmes, v.costs, sub.paid)
        for k, x in _per_replicate(sub, df, v, sub_items).items():
            quantities.setdefault(k, np.full(len(f.reps), np.nan))[rows] = x
        if items is None:
            items = [(*head, np.full((len(f.reps), len(df)), np.nan)) for *head, _ in sub_items]
        for (*_, full), (*_, part) in zip(items, sub_items):
            full[rows] = part
    return quantities, items


def _per_replicate(f: _Flows, df: np.ndarray, valuation: Valuation, items: list) -> dict[str, np.ndarray]:
    book, tax = valuation.costs, valuation.tax_cost_factor
    pv = lambda x: np.asarray(x, dtype=float) @ df  # noqa: E731  (replicates x years) -> replicates
    zeros = np.zeros((len(f.reps), len(df)))
    d = lambda b: f.delta.get(b, zeros)  # noqa: E731
    by_kind = {k: sum((nok for _, kind, _, _, nok in items if kind == k), zeros)
               for k in ("programme", "service", "transfer", "tax")}
    public = sum(by_kind.values())
    prod = book.production
    production = d(EMPLOYMENT) * prod.value_per_employment_year.value * (1 - prod.displacement_share.value)
    v30 = book.value_at_30
    per_person = v30.production_loss_if_permanent.value + tax * v30.public_cost_if_permanent.value
    value30 = -sum((d(AGE29_PREFIX + role) * p.value * per_person for role, p in v30.persistence.items()),
                   zeros)
    out = {"pv_programme_cost_nok": pv(by_kind["programme"]), "pv_service_cost_nok": pv(by_kind["service"]),
           "pv_public_budget_change_nok": pv(public)}
    out["pv_tax_financing_cost_nok"] = tax * out["pv_public_budget_change_nok"]
    out["pv_cost_nok"] = out["pv_programme_cost_nok"] + out["pv_service_cost_nok"] + out["pv_tax_financing_cost_nok"]
    out["pv_production_gain_nok"] = pv(production)
    out["pv_value_at_30_nok"] = pv(value30)
    out["npv_within_horizon_nok"] = out["pv_production_gain_nok"] - out["pv_cost_nok"]
    included = out["pv_value_at_30_nok"] if valuation.include_value_at_30 else 0.0
    out["npv_nok"] = out["npv_within_horizon_nok"] + included
    out["pv_benefits_nok"] = out["pv_production_gain_nok"] + included
    out["employment_years_gained"] = d(EMPLOYMENT).sum(axis=1)
    out["education_years_gained"] = d(EDUCATION).sum(axis=1)
    out["exclusion_years_avoided"] = -d(NEET).sum(axis=1)
    out["pv_exclusion_years_avoided"] = -pv(d(NEET))
    for ratio, (num, den) in RATIOS.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            out[ratio] = np.where(out[den] > 0, out[num] / np.where(out[den] > 0, out[den], 1.0), np.nan)
    return out


def economics_by_replicate(runs: pd.DataFrame, baseline: str = "baseline",
                           valuation: Valuation | None = None,
                           paid_by_programme: dict[str, set[str]] | None = None,
                           valuation_of=None) -> pd.DataFrame:
    """Per (scenario, replicate): present values vs the baseline in the same replicate.

    Columns: ``scenario, replicate``, :data:`QUANTITIES`, ``pv_benefits_nok`` and the
    per-replicate ratios of :data:`RATIOS` (NaN where the denominator is ≤ 0). Years are every
    YEAR of the required yearly metrics (``neet_person_years_15_29``,
    ``employment_person_years_15_29``), which must be present for every paired replicate; any
    other quantity or programme cost missing counts as 0. Only replicates present in both the
    scenario and the baseline are used. ``paid_by_programme`` maps a scenario to the model services
    whose capacity its interventions buy (those services' unit costs are not charged again);
    ``valuation_of(replicate)`` gives each replicate its own :class:`Valuation` (parameter mode:
    the cost book drawn once per parameter draw, see :meth:`Valuation.drawn`).
    """
    valuation = valuation or Valuation()
    _, df, flows = _scenario_flows(runs, baseline, valuation, paid_by_programme)
    frames = [pd.DataFrame({"scenario": s, "replicate": f.reps, **_evaluate(f, df, valuation, valuation_of)[0]})
              for s, f in flows.items()]
    if not frames:
        return pd.DataFrame(columns=["scenario", "replicate", *QUANTITIES, "pv_benefits_nok", *RATIOS])
    return pd.concat(frames, ignore_index=True)


def ledger(runs: pd.DataFrame, baseline: str = "baseline", valuation: Valuation | None = None,
           paid_by_programme: dict[str, set[str]] | None = None, valuation_of=None) -> pd.DataFrame:
    """Who pays, who gains: each scenario's public spending change per payer, item and year
    (means over paired replicates, undiscounted and discounted); see
    :func:`utenforsk.analysis.ledger.ledger_table`. Its ``pv_cost_change_nok`` sums, per
    scenario, to ``pv_public_budget_change_nok`` of :func:`economics`."""
    valuation = valuation or Valuation()
    years, df, flows = _scenario_flows(runs, baseline, valuation, paid_by_programme)
    return ledger_table({s: _evaluate(f, df, valuation, valuation_of)[1] for s, f in flows.items()}, years, df)


def _units(group: pd.DataFrame, draw_of: dict | None) -> pd.DataFrame:
    """The independent units intervals resample: replicates, or per-draw means in parameter mode
    (replicates sharing a draw are not independent)."""
    if not draw_of:
        return group
    return group.assign(_draw=group["replicate"].map(draw_of)).groupby("_draw", sort=True).mean(
        numeric_only=True)


def ratio_interval(num: np.ndarray, den: np.ndarray, level: float = 0.95,
                   seed: int = 0) -> tuple[float, float, float]:
    """Ratio of means ``mean(num)/mean(den)`` with a paired percentile bootstrap interval
    (scipy.stats.bootstrap over the units).

    The point is NaN when ``mean(den) ≤ 0``. When the t-interval of ``mean(den)`` reaches 0 the
    ratio is unbounded (as Fieller's interval is then) and the interval is ``(-inf, inf)``; with
    fewer than two units it is NaN (no interval can be estimated).
    """
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    m_den = float(den.mean()) if den.size else float("nan")
    point = float(num.mean()) / m_den if den.size and m_den > 0 else float("nan")
    if den.size < 2:
        return point, float("nan"), float("nan")
    _, den_lo, _, _ = mean_ci(den, level)
    if not np.isfinite(point) or not den_lo > 0:
        return point, -math.inf, math.inf
    if np.ptp(num) == 0 and np.ptp(den) == 0:
        return point, point, point
    res = stats.bootstrap((num, den), lambda n, d, axis: n.mean(axis=axis) / d.mean(axis=axis),
                          paired=True, vectorized=True, confidence_level=level, method="percentile",
                          n_resamples=BOOTSTRAP_RESAMPLES, rng=np.random.default_rng(seed))
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _draw_ratio_interval(units: pd.DataFrame, num: str, den: str, level: float) -> tuple[float, float, float]:
    """Parameter mode: the ratio of the means over draws, and the percentile interval of the
    per-draw ratios (unbounded when some draw's denominator is not positive: the ratio is then
    undefined for that draw, as Fieller's interval is unbounded)."""
    from utenforsk.analysis.uncertainty import percentile_interval

    n, d = units[num].to_numpy(dtype=float), units[den].to_numpy(dtype=float)
    m_den = float(d.mean()) if d.size else float("nan")
    point = float(n.mean()) / m_den if d.size and m_den > 0 else float("nan")
    if d.size < 2:
        return point, float("nan"), float("nan")
    if not (np.isfinite(point) and np.all(d > 0)):
        return point, -math.inf, math.inf
    lo, hi = percentile_interval(n / d, level)
    return point, lo, hi


def economics(runs: pd.DataFrame, baseline: str = "baseline", valuation: Valuation | None = None,
              level: float = 0.95, draw_of: dict | None = None,
              paid_by_programme: dict[str, set[str]] | None = None, valuation_of=None,
              scale: float = 1.0) -> pd.DataFrame:
    """One row per non-baseline scenario: mean and interval of each quantity and ratio.

    Columns: ``scenario``; for each of :data:`QUANTITIES` and :data:`RATIOS` the estimate under its
    own name plus ``<name>_low`` and ``<name>_high``; then ``n_replicates``, ``n_units``,
    ``interval_basis``, ``value_at_30_included`` and ``price_year``. Ratios are ratios of means (as
    an incremental cost-effectiveness ratio is).

    Monte Carlo mode: t-intervals of the mean over replicates, and the paired bootstrap interval
    of :func:`ratio_interval` for ratios. Parameter mode (``draw_of`` = replicate → draw): the
    same national-scale percentile intervals over draws as the effects
    (:func:`utenforsk.analysis.uncertainty.national_interval`, ``scale`` = the simulation scale),
    so they describe what we do not know and do not shrink with more draws; ratios get the
    percentile interval of the per-draw ratios (:func:`_draw_ratio_interval`).
    """
    from utenforsk.analysis.uncertainty import national_interval

    valuation = valuation or Valuation()
    per = economics_by_replicate(runs, baseline, valuation, paid_by_programme, valuation_of)
    columns = ["scenario"] + [f"{q}{s}" for q in (*QUANTITIES, *RATIOS) for s in ("", "_low", "_high")] + [
        "n_replicates", "n_units", "interval_basis", "value_at_30_included", "price_year"]
    rows = []
    for scenario in _scenarios(runs, baseline):
        own = per[per["scenario"] == scenario]
        units = _units(own, draw_of)
        row: dict = {"scenario": scenario}
        for q in QUANTITIES:
            row[q], row[f"{q}_low"], row[f"{q}_high"], _ = mean_ci(units[q].to_numpy(), level)
            if draw_of:
                row[f"{q}_low"], row[f"{q}_high"] = national_interval(
                    own.set_index("replicate")[q], draw_of, scale, level)
        for ratio, (num, den) in RATIOS.items():
            if draw_of:
                row[ratio], row[f"{ratio}_low"], row[f"{ratio}_high"] = _draw_ratio_interval(
                    units, num, den, level)
                continue
            seed = zlib.crc32(f"{scenario}:{ratio}".encode())
            row[ratio], row[f"{ratio}_low"], row[f"{ratio}_high"] = ratio_interval(
                units[num].to_numpy(), units[den].to_numpy(), level, seed)
        row["n_replicates"] = int((per["scenario"] == scenario).sum())
        row["n_units"] = len(units)
        row["interval_basis"] = "parameter draws" if draw_of else "replicates (Monte Carlo)"
        row["value_at_30_included"] = bool(valuation.include_value_at_30)
        row["price_year"] = valuation.price_year
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def acceptability(runs: pd.DataFrame, baseline: str = "baseline", valuation: Valuation | None = None,
                  wtp=DEFAULT_WTP, draw_of: dict | None = None,
                  paid_by_programme: dict[str, set[str]] | None = None, valuation_of=None) -> pd.DataFrame:
    """Cost-effectiveness acceptability curve: for each willingness to pay λ (NOK per discounted
    exclusion-year avoided, on top of what the NPV already values), the share of units whose net
    benefit ``NPV + λ · PV exclusion-years avoided`` is positive.

    Units are parameter draws (per-draw means) in parameter mode; in Monte Carlo mode they are
    replicates, and the share then measures simulation noise only (it depends on the scale), which
    the ``basis`` column says. Columns: ``scenario, wtp_nok, probability, basis, n_units``.
    """
    valuation = valuation or Valuation()
    per = economics_by_replicate(runs, baseline, valuation, paid_by_programme, valuation_of)
    basis = "parameter draws" if draw_of else "Monte Carlo replicates (simulation noise only)"
    rows = []
    for scenario in _scenarios(runs, baseline):
        units = _units(per[per["scenario"] == scenario], draw_of)
        npv, avoided = units["npv_nok"].to_numpy(), units["pv_exclusion_years_avoided"].to_numpy()
        for lam in wtp:
            prob = float(np.mean(npv + lam * avoided > 0)) if len(units) else float("nan")
            rows.append((scenario, float(lam), prob, basis, len(units)))
    return pd.DataFrame(rows, columns=["scenario", "wtp_nok", "probability", "basis", "n_units"])


def sensitivity(runs: pd.DataFrame, baseline: str = "baseline", valuation: Valuation | None = None,
                paid_by_programme: dict[str, set[str]] | None = None) -> pd.DataFrame:
    """Which unit value decides the verdict: the NPV and benefit-cost ratio (means over replicates)
    with each number of the cost book at the low and at the high end of its range, the others
    central (one at a time). Columns: ``scenario, parameter, low, high, npv_at_low_nok,
    npv_at_high_nok, npv_central_nok, bcr_at_low, bcr_at_high, swing_nok`` (|NPV high − NPV low|),
    sorted by swing within each scenario."""
    valuation = valuation or Valuation()
    _, df, flows = _scenario_flows(runs, baseline, valuation, paid_by_programme)

    def summary(f: _Flows, v: Valuation) -> tuple[float, float]:
        q, _ = _evaluate(f, df, v)
        cost = float(np.mean(q["pv_cost_nok"])) if len(f.reps) else float("nan")
        bcr = float(np.mean(q["pv_benefits_nok"])) / cost if cost > 0 else float("nan")
        return (float(np.mean(q["npv_nok"])) if len(f.reps) else float("nan")), bcr

    central = {s: summary(f, valuation)[0] for s, f in flows.items()}
    rows = []
    for path, p in valuation.costs.params().items():
        lo, hi = p.range
        if hi <= lo:
            continue
        at = {end: Valuation(valuation.costs.with_values({path: x}), valuation.include_value_at_30)
              for end, x in (("low", lo), ("high", hi))}
        for s, f in flows.items():
            (n_lo, b_lo), (n_hi, b_hi) = summary(f, at["low"]), summary(f, at["high"])
            rows.append((s, path, lo, hi, n_lo, n_hi, central[s], b_lo, b_hi, abs(n_hi - n_lo)))
    out = pd.DataFrame(rows, columns=["scenario", "parameter", "low", "high", "npv_at_low_nok",
                                      "npv_at_high_nok", "npv_central_nok", "bcr_at_low", "bcr_at_high",
                                      "swing_nok"])
    order = {s: i for i, s in enumerate(flows)}
    return out.assign(_o=out["scenario"].map(order)).sort_values(
        ["_o", "swing_nok"], ascending=[True, False], kind="stable").drop(columns="_o").reset_index(drop=True)
