"""The Explore tab's model: a scenario run beside the baseline run with the same seed.

:class:`DashboardRun` is a ``mesa.Model`` whose ``step()`` advances one policy month of the
scenario (the chosen interventions) and of the baseline with the same seed and scale, so every
person meets the same dice in both (common random numbers) and their difference is the
interventions' effect, not noise. It never raises for bad input: a problem with an intervention,
a parameter or a setting becomes :attr:`DashboardRun.error`, one line the page shows.

The burn-in (30 years from an empty population) does not depend on interventions that start at or
after the policy start, so it is simulated once per (config, seed, scale) and forked
(``UtenforskModel(burn_in_from=...)``); the baseline run is kept too, and a later run with the
same key reuses the baseline months already simulated. Nothing here imports Solara: it is tested
without a browser.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import mesa
import numpy as np
import yaml

from utenforsk.config.loader import config_hash, validate
from utenforsk.errors import ConfigError, UserError
from utenforsk.metrics import headline

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "configs" / "norway" / "baseline.yaml"
SCALES = (0.002, 0.005, 0.01, 0.02, 0.05)
DEFAULT_SCALE = 0.005
HORIZONS = (5, 10, 20)
DEFAULT_HORIZON = 10
AGE_GROUPS = ("15_19", "20_24", "25_29", "15_29")
_CACHE_SIZE = 4


# ---- the library and the parameters ---------------------------------------------------------
@dataclass(frozen=True)
class LibraryEntry:
    """One intervention file in configs/interventions/: its name, summary, or why it is invalid."""

    name: str
    description: str = ""
    coverage: float | None = None
    coverage_range: tuple[float, float] | None = None
    start_year: int | None = None
    evidence: str = ""
    error: str | None = None


def library(folder: Path | None = None) -> list[LibraryEntry]:
    """The intervention library; a file that fails validation is listed with its message."""
    from utenforsk.interventions import engine

    folder = folder or engine.LIBRARY
    out = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            iv = engine.load_intervention(path)
        except UserError as exc:
            out.append(LibraryEntry(path.stem, error=exc.render()))
            continue
        out.append(LibraryEntry(path.stem, iv.description, iv.coverage.value, tuple(iv.coverage.range),
                                iv.when.start_year, " ".join(iv.evidence.split())))
    return out


@dataclass(frozen=True)
class ParamInfo:
    path: str          # dotted path to the Param in the model config
    value: float
    low: float
    high: float
    source: str
    unit: str | None = None


@lru_cache(maxsize=1)
def baseline_config():
    """The baseline model config (composed and validated once per process)."""
    from utenforsk.config.loader import load_model_config

    return load_model_config(BASELINE)


@lru_cache(maxsize=1)
def _baseline_parameters() -> dict:
    return parameters(baseline_config())


def parameters(cfg=None) -> dict[str, ParamInfo]:
    """Every Param of the baseline config reachable by a dotted path of mapping keys (those a
    ``{"path.value": v}`` override can set), with its value, range and source."""
    if cfg is None:
        return dict(_baseline_parameters())
    data = cfg.model_dump(by_alias=True, exclude_none=True)
    out: dict[str, ParamInfo] = {}

    def walk(node, path):
        if isinstance(node, dict):
            if {"value", "range", "source"} <= set(node):
                lo, hi = node["range"]
                out[".".join(path)] = ParamInfo(".".join(path), float(node["value"]), float(lo), float(hi),
                                                str(node["source"]), node.get("unit"))
                return
            for k, v in node.items():
                walk(v, path + [str(k)])

    walk(data, [])
    return dict(sorted(out.items()))


def municipalities(cfg=None) -> list[str]:
    """The municipality types of the model (real municipalities come in a later issue)."""
    cfg = cfg or baseline_config()
    return list(cfg.attributes["municipality"].categories)


# ---- settings -> validated config and interventions -------------------------------------------
def _custom_intervention(text: str):
    from utenforsk.config.interventions import Intervention

    where = "custom intervention (YAML in the page)"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{at}: {getattr(exc, 'problem', None) or exc}", file=where) from None
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping (name:, description:, evidence:, who:, what:, ...)", file=where,
                          value=type(data).__name__)
    return validate(Intervention, data, where)


def build_interventions(names, coverage=None, start_year=None, target=None, custom_yaml="",
                        policy_start=2025, policy_end=None, all_municipalities=None):
    """The chosen library interventions with the page's coverage, start year and target
    municipality types applied, each validated again; plus the custom YAML intervention, if any."""
    from utenforsk.config.interventions import Intervention
    from utenforsk.interventions import engine

    out = []
    for name in names:
        iv = engine.load_intervention(name)
        data = iv.model_dump(by_alias=True, exclude_none=True)
        if coverage is not None:
            lo, hi = data["coverage"]["range"]
            data["coverage"] = {**data["coverage"], "value": float(coverage),
                                "range": [min(lo, float(coverage)), max(hi, float(coverage))],
                                "source": f"set in the dashboard (library: {data['coverage']['source']})"}
        if start_year is not None:
            data["when"] = {**data["when"], "start_year": int(start_year)}
        if target is not None and all_municipalities is not None and set(target) != set(all_municipalities):
            if not target:
                raise ConfigError("no target municipality type chosen", key="target municipalities",
                                  allowed=", ".join(all_municipalities))
            attrs = dict(data["who"].get("attributes", {}))
            own = attrs.get("municipality")
            attrs["municipality"] = [m for m in all_municipalities if m in target and (own is None or m in own)]
            if not attrs["municipality"]:
                raise ConfigError("none of the chosen municipality types is one this intervention targets",
                                  file=name, key="who.attributes.municipality", value=sorted(target),
                                  allowed=", ".join(own or []))
            data["who"] = {**data["who"], "attributes": attrs}
        out.append(validate(Intervention, data, f"{name} (as set in the dashboard)"))
    if custom_yaml and custom_yaml.strip():
        out.append(_custom_intervention(custom_yaml))
    for iv in out:
        if iv.when.start_year < policy_start or (policy_end is not None and iv.when.start_year > policy_end):
            raise ConfigError("start year outside the simulated policy years", file=iv.name, key="when.start_year",
                              value=iv.when.start_year, allowed=f"{policy_start} .. {policy_end}")
    names_seen = [iv.name for iv in out]
    if len(set(names_seen)) != len(names_seen):
        raise ConfigError("two interventions share a name", value=names_seen,
                          allowed="rename the custom intervention")
    return out


# ---- shared burn-ins and baseline runs ----------------------------------------------------------
@dataclass
class _Shared:
    """A finished burn-in and the baseline run forked from it, shared by runs with the same key."""

    burn_in: object
    baseline: object = None
    records: list = field(default_factory=list)   # baseline's per-month records, in order
    lock: threading.Lock = field(default_factory=threading.Lock)


_SHARED: OrderedDict[str, _Shared] = OrderedDict()
_SHARED_LOCK = threading.Lock()
_SERIAL = itertools.count(1)


def clear_cache() -> None:
    with _SHARED_LOCK:
        _SHARED.clear()


def _month_record(model, month: dict) -> dict:
    rates = headline.rates(model.state_masks, month["age_state"])
    sv = month["sv"]
    from utenforsk.core.kernel import SV_WAITING

    waiting = {name: float(sv[s, :, SV_WAITING].sum() / model.config.scale)
               for s, name in enumerate(model.compiled.services)}
    return {"year": int(month["year"]), "month": int(month["month"]), "rates": rates, "waiting": waiting,
            "age_state": month["age_state"].copy()}


class DashboardRun(mesa.Model):
    """A scenario and its same-seed baseline, advanced together one policy month per ``step()``.

    Args:
        interventions: library names (configs/interventions/NAME.yaml).
        coverage: coverage for every chosen intervention (None: each its library value).
        start_year: start year for every chosen intervention (None: each its library value).
        target: municipality types the interventions act in (None: all).
        seed: the run's seed (the baseline uses the same: common random numbers).
        scale: simulated persons per real person.
        horizon_years: policy years to simulate (from the config's start year).
        overrides: ``{"dotted.path.to.param": value}`` on the baseline config (both runs).
        custom_yaml: an inline intervention written in the page, validated like a library file.
    """

    def __init__(self, interventions=(), coverage=None, start_year=None, target=None, seed: int = 1,
                 scale: float = DEFAULT_SCALE, horizon_years: int = DEFAULT_HORIZON, overrides=None,
                 custom_yaml: str = ""):
        self.serial = next(_SERIAL)     # which run this is (the page marks its numbers with it)
        self.error: str | None = None
        self.on_progress = None        # called now and then during the burn-in (the page redraws)
        self.phase = "ready"
        self.progress = (0, 1)          # (done, total) of the current phase
        self.months_done = 0
        self.records: list[dict] = []   # scenario months: {"year","month","rates","waiting","age_state"}
        self.base_records: list[dict] = []
        self.timings: dict[str, float] = {}
        self.settings = dict(interventions=list(interventions), coverage=coverage, start_year=start_year,
                             target=None if target is None else list(target), seed=seed, scale=scale,
                             horizon_years=horizon_years, overrides=dict(overrides or {}),
                             custom_yaml=custom_yaml)
        try:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**63:
                raise ConfigError("seed must be an integer 0 .. 2**63-1", key="seed", value=seed)
            super().__init__(seed=int(seed))
            self._validate(**self.settings)
        except UserError as exc:
            if not hasattr(self, "_agents"):
                super().__init__(seed=1)
            self.error = exc.render()
            self.phase = "error"
        self.running = self.error is None
        self._scenario = self._shared = None

    def _validate(self, interventions, coverage, start_year, target, seed, scale, horizon_years, overrides,
                  custom_yaml):
        from utenforsk.model import resolve_config

        if not 0 < float(scale) <= 1:
            raise ConfigError("scale out of range", key="scale", value=scale, allowed="a number in (0, 1]")
        known = parameters()
        for path, value in overrides.items():
            if path not in known:
                raise ConfigError("no such parameter", key=path, allowed="a dotted path listed in the page")
            p = known[path]
            if not p.low <= float(value) <= p.high:
                raise ConfigError("value outside the parameter's range", key=path, value=value,
                                  allowed=f"[{p.low:g}, {p.high:g}] (source: {p.source})")
        self.config = resolve_config(baseline_config(), float(scale), {f"{k}.value": float(v) for k, v in overrides.items()},
                                     horizon_years=int(horizon_years))
        cal = self.config.calendar
        self.policy_start = cal.start_year
        self.total_months = cal.horizon_years * 12
        self.interventions = build_interventions(
            interventions, coverage, start_year, target, custom_yaml, policy_start=cal.start_year,
            policy_end=cal.start_year + cal.horizon_years - 1, all_municipalities=municipalities(self.config))
        self.key = config_hash({"model": self.config.model_dump(mode="json"), "seed": int(seed)})

    # ---- building ---------------------------------------------------------------------------
    def _on_burn_in(self, m: int) -> None:
        self.progress = (m + 1, self.burn_in_months)
        if self.on_progress is not None and (m + 1) % 24 == 0:
            self.on_progress()

    def _build(self) -> None:
        from utenforsk.model import UtenforskModel

        t0 = time.perf_counter()
        seed = int(self.settings["seed"])
        with _SHARED_LOCK:
            shared = _SHARED.get(self.key)
            if shared is not None:
                _SHARED.move_to_end(self.key)
        if shared is None:
            self.phase = "burn-in"
            cal = self.config.calendar
            self.burn_in_months = cal.burn_in_years * 12
            burn = UtenforskModel(self.config, seed=seed, on_month=self._on_burn_in)
            burn.on_month = None
            shared = _Shared(burn)
            with _SHARED_LOCK:
                shared = _SHARED.setdefault(self.key, shared)
                while len(_SHARED) > _CACHE_SIZE:
                    _SHARED.popitem(last=False)
        self.timings["burn_in_s"] = time.perf_counter() - t0
        self.phase = "preparing"
        with shared.lock:
            if shared.baseline is None:
                shared.baseline = UtenforskModel(self.config, seed=seed, burn_in_from=shared.burn_in)
        if self.interventions:
            # every intervention starts at or after the policy start (build_interventions checks
            # it), so the scenario forks the shared burn-in (UtenforskModel.can_fork_burn_in)
            self._scenario = UtenforskModel(self.config, seed=seed, interventions=self.interventions,
                                            burn_in_from=shared.burn_in)
        self._shared = shared
        self.timings["build_s"] = time.perf_counter() - t0
        self.phase = "running"

    # ---- stepping ---------------------------------------------------------------------------
    def _baseline_record(self, i: int) -> dict:
        sh = self._shared
        with sh.lock:
            while len(sh.records) <= i:
                sh.baseline.step()
                sh.records.append(_month_record(sh.baseline, sh.baseline.last_month))
            return sh.records[i]

    def step(self) -> None:
        """One policy month of the scenario and the baseline (the first call also builds them)."""
        if not self.running:
            return
        try:
            if self._shared is None:
                self._build()
            i = self.months_done
            base = self._baseline_record(i)
            if self._scenario is None:
                rec = base
            else:
                self._scenario.step()
                rec = _month_record(self._scenario, self._scenario.last_month)
        except UserError as exc:
            self.error, self.phase, self.running = exc.render(), "error", False
            return
        self.records.append(rec)
        self.base_records.append(base)
        self.months_done += 1
        self.progress = (self.months_done, self.total_months)
        if self.months_done >= self.total_months:
            self.running, self.phase = False, "done"

    # ---- what the page shows ----------------------------------------------------------------
    @property
    def current_year(self) -> int | None:
        return self.records[-1]["year"] if self.records else None

    # Each returns a list of row dicts: the data of one chart (utenforsk/dashboard/charts.py).
    def _masks(self):
        return (self._scenario or self._shared.baseline).state_masks

    def yearly_neet(self) -> list[dict]:
        """NEET rate by age group and year, scenario and baseline (the current year so far)."""
        rows = []
        if not self.records:
            return rows
        masks = self._masks()
        for label, recs in (("scenario", self.records), ("baseline", self.base_records)):
            years: dict[int, np.ndarray] = {}
            for r in recs:
                years[r["year"]] = years.get(r["year"], 0) + r["age_state"]
            for y, a in years.items():
                rates = headline.rates(masks, a)
                for g in AGE_GROUPS:
                    rows.append({"year": y, "age group": g.replace("_", "-"), "run": label,
                                 "neet_rate": rates[f"neet_rate_{g}"]})
        return rows

    def difference(self) -> list[dict]:
        """Scenario minus baseline NEET rate 15-29 per month, in percentage points."""
        return [{"time": r["year"] + (r["month"] % 12) / 12,
                 "difference_pp": 100 * (r["rates"]["neet_rate_15_29"] - b["rates"]["neet_rate_15_29"])}
                for r, b in zip(self.records, self.base_records)]

    def pathways(self, months: int = 12) -> list[dict]:
        """Share of each age in each state over the last ``months`` months of the scenario."""
        if not self.records:
            return []
        a = sum(r["age_state"] for r in self.records[-months:]).astype(float)
        tot = a.sum(axis=1, keepdims=True)
        sh = np.divide(a, tot, out=np.zeros_like(a), where=tot > 0)
        states = (self._scenario or self._shared.baseline).compiled.states
        return [{"age": age, "state": st, "share": float(sh[age, k])}
                for age in range(a.shape[0]) for k, st in enumerate(states)]

    def queues(self, every: int = 3) -> list[dict]:
        """People waiting per service (national, real persons), mean per quarter, scenario and
        baseline; services nobody waits for are left out."""
        rows = []
        for label, recs in (("scenario", self.records), ("baseline", self.base_records)):
            for i in range(0, len(recs), every):
                chunk = recs[i:i + every]
                t = chunk[0]["year"] + (chunk[0]["month"] % 12) / 12
                for s in chunk[0]["waiting"]:
                    w = sum(r["waiting"][s] for r in chunk) / len(chunk)
                    rows.append({"time": t, "service": s, "run": label, "waiting": w})
        busy = {r["service"] for r in rows if r["waiting"] > 0}
        return [r for r in rows if r["service"] in busy]

    def summary(self) -> dict:
        """The numbers above the figures: NEET 15-29 over the months run, scenario vs baseline."""
        if not self.records:
            return {}
        sc = sum(r["age_state"] for r in self.records)
        bs = sum(r["age_state"] for r in self.base_records)
        masks = (self._scenario or self._shared.baseline).state_masks
        s, b = headline.rates(masks, sc)["neet_rate_15_29"], headline.rates(masks, bs)["neet_rate_15_29"]
        last = self.records[-1]
        return {"neet_scenario": s, "neet_baseline": b, "difference_pp": 100 * (s - b),
                "year": last["year"], "month_of_year": last["month"] % 12 + 1,
                "months": self.months_done, "total_months": self.total_months}
