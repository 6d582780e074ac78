"""UtenforskModel: the Mesa shell around the array core.

``UtenforskModel(config="configs/norway/baseline.yaml", seed=1, scale=0.01)`` composes and
validates the config, compiles it to tables, preallocates the population, and runs the burn-in
(``calendar.burn_in_years`` from an empty population) in the constructor. Each ``step()`` then
advances one policy month: entrants are born or arrive, service agents (``model.agents``) set
admissions from last month's demand, the numba kernel moves everyone one month, and the
``DataCollector`` records the headline metrics. ``model.running`` turns False after the horizon.
"""

from __future__ import annotations

import time
from pathlib import Path

import mesa
import numpy as np

from utenforsk.config.loader import _child, config_hash, load_model_config, node_at, validate
from utenforsk.config.schema import ModelConfig
from utenforsk.core import kernel, kernel_cache, rng
from utenforsk.core.population import (allocate, arrival_birth_months, bytes_per_slot,
                                       entry_schedule, ring_capacity)
from utenforsk.core.tables import AGE_YEARS, MAX_MONTHS, CompiledModel, category_shares, cumulative_shares, float_offsets
from utenforsk.errors import ConfigError
from utenforsk.interventions import engine
from utenforsk.interventions.slots import MAX_PROGRAMMES, canonical_order, open_cells, programme_slots
from utenforsk.metrics import headline
from utenforsk.pilots import municipalities as kommuner
from utenforsk.services import ServiceAgent, ServiceAreas
from utenforsk.services.agents import step_areas, sum_by_type

#: Q4 (end-of-December) counts per municipality: name -> (age from, age to (exclusive), what is counted)
KQ_FIELDS = {"n_15_29": (15, 30, "all"), "neet_15_29": (15, 30, "neet"),
             "n_15_19": (15, 20, "all"), "neet_15_19": (15, 20, "neet"),
             "n_20_24": (20, 25, "all"), "neet_20_24": (20, 25, "neet"),
             "n_25_29": (25, 30, "all"), "neet_25_29": (25, 30, "neet"),
             "n_18_29": (18, 30, "all"), "health_benefit_18_29": (18, 30, "health_benefit"),
             "n_21": (21, 22, "all"), "completed_21": (21, 22, "completed"),
             "n_0_29": (0, 30, "all")}
KQ_CODES = np.array([[lo, hi, ("all", "neet", "health_benefit", "completed").index(w)]
                     for lo, hi, w in KQ_FIELDS.values()], np.int64)
OVERRIDABLE = ("scale", "start_year", "horizon_years", "burn_in_years", "neet_definition")


def resolve_config(config, scale=None, overrides: dict | None = None, **calendar) -> ModelConfig:
    """A ModelConfig from a path or object, with keyword and dotted-path overrides applied."""
    if isinstance(config, (str, Path)):
        cfg = load_model_config(config)
        source = str(config)
    elif isinstance(config, ModelConfig):
        cfg, source = config, "<config object>"
    else:
        raise ConfigError("config must be a path or a ModelConfig", value=type(config).__name__)
    if scale is None and not overrides and not any(v is not None for v in calendar.values()):
        return cfg  # already validated: nothing to change
    data = cfg.model_dump(by_alias=True, exclude_none=True)
    if scale is not None:
        data["scale"] = scale
    for k in ("start_year", "horizon_years", "burn_in_years"):
        if calendar.get(k) is not None:
            data.setdefault("calendar", {})[k] = calendar[k]
    if calendar.get("neet_definition") is not None:
        data["neet_definition"] = calendar["neet_definition"]
    for dotted, value in (overrides or {}).items():
        parent, _, last = dotted.rpartition(".")
        node = node_at(data, parent) if parent else data
        if isinstance(node, dict):
            last = _child(node, last)[1]
        if not isinstance(node, dict) or last not in node:
            raise ConfigError("override names no such key", key=dotted,
                              allowed="a dotted path into the config, e.g. "
                                      "transitions.job_finding.probability.value")
        node[last] = value
    return validate(ModelConfig, data, source)


def entry_rates(cfg: ModelConfig, first_year: int, total_months: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected births per month and arrivals per month by single year of age 0-29.

    Constant at the configured levels, or shaped over calendar years by ``population.series``
    (levels = the series' reference year's; see :class:`utenforsk.config.schema.DemographySeries`).
    """
    years = first_year + np.arange(total_months) // 12
    births_f = np.ones(total_months)
    arrivals_f = np.ones(total_months)
    series = cfg.population.series
    if series is not None:
        span = list(range(first_year, int(years[-1]) + 1))
        b, i = series.values(span + [series.reference_year])
        b0, i0 = b[-1], i[-1]
        births_f = (np.asarray(b[:-1]) / b0 if b0 > 0 else np.zeros(len(span)))[years - first_year]
        arrivals_f = (np.asarray(i[:-1]) / i0 if i0 > 0 else np.zeros(len(span)))[years - first_year]
    births_pm = cfg.population.births_per_year.value * cfg.scale / 12.0 * births_f
    by_age = np.zeros(AGE_YEARS)
    imm = cfg.population.immigration
    if imm is not None:
        for share in imm.age_shares:
            a0, a1 = int(round(share.ages[0])), int(round(share.ages[1]))
            by_age[a0:a1] += (imm.arrivals_per_year.value * cfg.scale / 12.0
                              * share.share.value / max(a1 - a0, 1))
    return births_pm, arrivals_f[:, None] * by_age[None, :]


def birth_share_tables(cfg: ModelConfig, compiled: CompiledModel, first_year: int,
                       n_years: int) -> tuple[int, np.ndarray] | None:
    """The at-birth cumulative shares of ``population.series.birth_share``'s attribute for each
    calendar year from ``first_year``: (offset of that attribute's block in the float parameters
    ``F``, array [year, block]), or None without it. The category's share is
    ``share_ref * s(y) / s(reference_year)`` (capped at 1), the other categories rescaled to fill
    the rest (docs/model.md, Population and time). Only the entry kernel reads the block, for
    births, so writing a year's block into the month's ``F`` changes nothing else; the draws are
    the same counter-based uniforms."""
    series = cfg.population.series
    if series is None or series.birth_share is None:
        return None
    bs = series.birth_share
    attr = cfg.attributes[bs.attribute]
    years = list(range(first_year, first_year + n_years))
    values = series.birth_shares(years + [series.reference_year])
    ref = values[-1]
    if ref <= 0:
        raise ConfigError("the reference year's birth_share must be above 0", file=series.file,
                          key="population.series.birth_share", value=ref, allowed="a share in (0, 1]")
    tab = compiled.tables
    ai = compiled.attr_index[bs.attribute]
    kmax = int(tab.attr_cum_birth.shape[2])
    conds = ["all"] if attr.given is None else cfg.attributes[attr.given].categories
    k = attr.categories.index(bs.category)
    out = np.repeat(np.asarray(tab.attr_cum_birth[ai], np.float64).reshape(1, -1), len(years), axis=0)
    for yi, v in enumerate(values[:-1]):
        block = out[yi].reshape(kmax, kmax)
        for ci, cond in enumerate(conds):
            shares = category_shares(attr, attr.at_birth, cond)
            s0 = shares[k]
            new = min(1.0, s0 * v / ref)
            rest = 1.0 - s0
            shares = shares * ((1.0 - new) / rest if rest > 0 else 0.0)
            shares[k] = new
            c = cumulative_shares(shares)
            block[ci, :len(c)] = c
    return float_offsets(tab)["attr_cum_birth"] + ai * kmax * kmax, out


def quiet_months(first_year: int, total_months: int, plugins: bool, start_years: list[int]) -> int:
    """Months from the burn-in's start (January of ``first_year``) before any of a scenario's
    interventions can act: an intervention's coverage is 0 before January of its
    ``when.start_year`` (engine.coverage), so until then the scenario is the model without
    interventions, bit for bit. 0 with a plugin (it may act in any month); ``total_months``
    without interventions. Scenarios of one seed share these months (a forked burn-in)."""
    if plugins:
        return 0
    if not start_years:
        return total_months
    return min(total_months, max(0, (min(start_years) - first_year) * 12))


class UtenforskModel(mesa.Model):
    """Life courses 0-29 in monthly steps, with services as Mesa agents.

    Args:
        config: path to a model YAML, or a validated :class:`ModelConfig`.
        seed: the run's seed; every random number is a hash of (seed, decision, person, month).
        scale: simulated persons per real person (overrides the config).
        start_year, horizon_years, burn_in_years, neet_definition: calendar/definition overrides.
        overrides: ``{"dotted.path": value}`` applied to the config before validation.
        threads: worker threads for this model's kernels (results do not depend on it).
        interventions: library names, YAML paths, mappings or Intervention objects; their effects
            start at their ``when.start_year`` (see utenforsk/interventions/engine.py).
        on_month: called with the month index after every simulated month (progress bars).
        burn_in_from: a model whose burn-in is finished, with the same config, seed and overrides,
            at the end of its burn-in or later, with no intervention of either model active before
            the month it has reached: its state (and its policy months' history) is copied instead
            of simulating those months again (see :meth:`quiet_months`). Results are identical.
        collect: ``False`` keeps only what experiment metrics read (``history``, the cohort
            tallies): no Mesa DataCollector rows or ``current_metrics`` each month and no
            municipality Q4 counts (``kommune_q4``), about 8% of an experiment task's time. The
            simulation itself is the same.
    """

    def __init__(self, config="configs/norway/baseline.yaml", seed: int = 1, scale: float | None = None,
                 *, start_year=None, horizon_years=None, burn_in_years=None, neet_definition=None,
                 overrides: dict | None = None, threads: int | None = None,
                 interventions: list | None = None, on_month=None, burn_in_from=None,
                 collect: bool = True, municipal_counts: bool | None = None):
        t0 = time.perf_counter()
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError("seed must be a non-negative integer", key="seed", value=seed)
        super().__init__(seed=int(seed))
        self.run_seed = int(seed)
        self.config = resolve_config(config, scale, overrides, start_year=start_year,
                                     horizon_years=horizon_years, burn_in_years=burn_in_years,
                                     neet_definition=neet_definition)
        self.config, interventions, self.plugins = engine.resolve_scenario(
            self.config, list(interventions or []))
        #: in slot order (by name): the order a scenario lists them in changes nothing
        self.interventions = canonical_order(interventions)
        self.config_hash = config_hash({"model": self.config.model_dump(mode="json"),
                                        "interventions": [iv.model_dump(mode="json") for iv in self.interventions],
                                        "plugins": [[p.name, p.options] for p in self.plugins]})
        cfg = self.config
        self.n_threads = min(threads or kernel.n_threads(), kernel.n_threads())
        self.compiled = CompiledModel(cfg)  # the model's structure: the same for every scenario
        self.prog = programme_slots(self.compiled, self.interventions)  # the scenario: values
        c = self.compiled
        self.seed_key = rng.seed_key(self.run_seed)
        cal = cfg.calendar
        self.first_year = cal.start_year - cal.burn_in_years
        self.burn_in_months = cal.burn_in_years * 12
        self.total_months = (cal.burn_in_years + cal.horizon_years) * 12
        self.month = 0  # next month to simulate, counted from January of first_year

        #: at-birth shares by calendar year (population.series.birth_share), or None
        self._birth_shares = birth_share_tables(cfg, c, self.first_year, self.total_months // 12 + 1)
        if cfg.service_areas == "municipality" and tuple(c.municipalities) != kommuner.TYPES:
            raise ConfigError("service_areas: municipality needs the model's municipality types to be "
                              "the data file's four groupings", key="service_areas", value=cfg.service_areas,
                              allowed=f"municipality_type, or municipalities {', '.join(kommuner.TYPES)}")
        self.service_areas_by_kommune = cfg.service_areas == "municipality"
        self.muni_attr = c.attr_index["municipality"]
        self.us_flag = c.flags.index("completed_upper_secondary") if "completed_upper_secondary" in c.flags else -1
        self.state_masks = headline.state_masks(cfg, c.states)
        self.us_states = self.state_masks["upper_secondary"]
        self.hb_states = self.state_masks["health_benefit"]
        #: the month kernel generated for this model's structure and cached on disk
        #: (utenforsk/core/codegen.py, kernel_cache.py); every scenario of the model shares it
        self._gen = kernel_cache.GeneratedKernel(self.compiled, self.muni_attr, self.us_flag,
                                                 self.us_states, self.hb_states)
        kmax = max(len(a.categories) for a in cfg.attributes.values())
        # the month kernel compiles (if it is not cached) in a forked child from here on, while
        # the rest is built and the other kernels compile (kernel_cache.GeneratedKernel.compile);
        # a compile needs only the arguments' types: arrays of one slot, area and cohort
        self._gen.start_compile(allocate(1, len(c.attributes), len(c.ctraits)), self._allocate_dyn(1),
                                self.prog, kernel.allocate_tally(len(c.states), 1, len(c.report_by), kmax,
                                                                 len(c.services), len(cfg.exits), 1, MAX_PROGRAMMES),
                                self.seed_key, np.zeros(2, np.int64), np.zeros(1, np.int64))

        # entries: births and arrivals by single year of age, fixed by seed and config alone
        births_pm, arrivals_pm = entry_rates(cfg, self.first_year, self.total_months)
        self.births, self.arrivals = entry_schedule(self.seed_key, self.total_months, births_pm, arrivals_pm)
        entries = self.births + self.arrivals.sum(axis=1)
        self.cum_entries = np.concatenate([[0], np.cumsum(entries)]).astype(np.int64)
        self.capacity = ring_capacity(entries)
        self.pop = allocate(self.capacity, len(c.attributes), len(c.ctraits))
        # the real municipality of each person (utenforsk/pilots/municipalities.py): within the
        # person's municipality type, outside the kernel, on its own decision; computed when
        # needed from (seed, id, type), so it costs no per-person state
        #: None unless the model's municipality types are the data file's four groupings
        self.kommuner = kommuner.load() if tuple(c.municipalities) == kommuner.TYPES else None
        if self.kommuner is not None:
            self._k_index, self._k_cdf = self.kommuner.within_type_cdf(len(c.municipalities))

        #: service tallies per policy year, summed over its months: {year: [service, municipality, field]}
        self.kommune_sv: dict[int, np.ndarray] = {}
        #: Q4 point-in-time counts per policy year: {year: [municipality, KQ_FIELDS]}
        self.kommune_q4: dict[int, np.ndarray] = {}
        n_cohorts = (self.total_months + kernel.COHORT_OFFSET) // 12 + 2
        # service areas (utenforsk/services/agents.py): the municipality types, or the real
        # municipalities (service_areas: municipality); area_type[a] = the type of area a
        self.area_type, area_names = kommuner.service_areas(cfg)
        self.tally = kernel.allocate_tally(len(c.states), len(self.area_type), len(c.report_by), kmax,
                                           len(c.services), len(cfg.exits), n_cohorts, MAX_PROGRAMMES)
        #: per worker thread, each continuous trait's (lo, hi) over the people the kernels last
        #: touched (0 included): the month kernel's end-of-month values, widened by the next
        #: month's entrants, are exactly the values the next month's bounds need (utenforsk/core/
        #: bounds.py); without it (the first month, a fork, plugins) the bounds read pop.ctraits
        self.trange = np.zeros((self.tally.age_state.shape[0], max(len(c.ctraits), 1), 2))
        self._trange_ok = False
        self.dyn = self._allocate_dyn(len(self.area_type), self.service_areas_by_kommune)
        if self.service_areas_by_kommune and cfg.municipality_effects:
            # the run's municipality intercepts (logit scale), from its seed: the same in every
            # scenario of a replicate (common random numbers), centred to a zero national mean
            self.dyn.kre[:len(cfg.municipality_effects)] = kommuner.draw_effects(
                self.seed_key, [e.sd.value for e in cfg.municipality_effects.values()],
                self.kommuner.table.population_0_29.to_numpy(), rng.BASE["kommune_effect"])
        #: the intercepts [municipality_effects, service areas] (all 0 with services per type)
        self.kre = self.dyn.kre
        for h, ho in enumerate(cfg.handoffs.values()):
            self.dyn.ho_prob[h, :] = ho.probability.value
            self.dyn.ho_delay[h, :] = int(round(ho.delay_months.value))
        self.service_areas = ServiceAreas(self, self.area_type, area_names)
        self._gen.warm = self._first_months_passes()
        #: the service areas each intervention's service and handoff changes act in (fixed), as
        #: one index array: each change is the same arithmetic, element by element, as a loop
        self._covered = [np.asarray(self._covered_areas(iv), np.int64) for iv in self.interventions]
        self._base = {"detect_p": self.dyn.detect_p.copy(), "quality": self.dyn.quality.copy(),
                      "ho_prob": self.dyn.ho_prob.copy(), "ho_delay": self.dyn.ho_delay.copy(),
                      "places": self.service_areas.places_per_1000.copy()}
        self.last_month: dict | None = None
        self._rows = self.tally.age_state.shape[0]  # worker rows of the monthly tallies written last month
        self.history: list[dict] = []  # one entry per policy month
        self.datacollector = mesa.DataCollector(model_reporters={
            name: (lambda mdl, name=name: mdl.current_metrics.get(name, float("nan")))
            for name in headline.MONTHLY_METRICS})
        self.current_metrics: dict = {}
        self.on_month = on_month
        self.collect = collect
        #: the yearly Q4 counts per municipality (kommune_q4: periods_by_municipality, an
        #: experiment's municipality_metrics); by default with ``collect``
        self.municipal_counts = collect if municipal_counts is None else bool(municipal_counts)
        self.timings = {"setup_s": time.perf_counter() - t0}
        t1 = time.perf_counter()
        if burn_in_from is not None:
            self._fork_burn_in(burn_in_from)
        while self.month < self.burn_in_months:
            self._advance()
        self.timings["burn_in_s"] = time.perf_counter() - t1
        self.timings["horizon_s"] = 0.0
        self.running = self.month < self.total_months

    def _allocate_dyn(self, M: int, by_kommune: bool = False) -> kernel.Dyn:
        """The per-month inputs of the kernels for ``M`` service areas (their base values set
        later); with services per municipality, the within-type municipality shares."""
        c, cfg = self.compiled, self.config
        SV, H = max(len(c.services), 1), max(len(c.handoffs), 1)
        return kernel.Dyn(admit_p=np.zeros((SV, M)), detect_p=np.zeros((SV, M)),
                          quality=np.ones((SV, M)), ho_prob=np.zeros((H, M)),
                          ho_delay=np.zeros((H, M), np.int64),
                          pg_cover=np.zeros(MAX_PROGRAMMES),
                          pg_open=np.zeros((MAX_MONTHS // 12, len(c.states)), np.int64),
                          kre=np.zeros((max(len(cfg.municipality_effects), 1), M)),
                          kidx=(self._k_index if by_kommune else np.zeros((0, 1), np.int64)),
                          kcdf=(self._k_cdf if by_kommune else np.zeros((0, 1))),
                          births_area=np.zeros((kernel.BIRTHS_RING, M + 1), np.int32))

    def _first_months_passes(self) -> list:
        """The small compiled passes of the first months, with arguments of their types: the
        kernel compiles them (only compiles: nothing runs) while the month kernel compiles
        elsewhere (a cold first step)."""
        t, sa = self.tally, self.service_areas
        ids = np.zeros(0, np.int64)
        passes = [(kernel.index_births, (0, 0, self.capacity, self.pop.area, self.pop.donor_rank,
                                        self.dyn.births_area, 0)),
                  (arrival_birth_months, (self.seed_key, ids, ids, 0)),
                  (step_areas, (0, t.muni_pop[0], t.sv[0], sa.ages, sa.follow_up, sa.places_per_1000,
                                sa.capacity, sa.clients, sa.waiting, sa.admitted,
                                self.dyn.admit_p))]
        if self.service_areas_by_kommune:
            passes.append((sum_by_type, (t.sv[0], t.muni_pop[0], t.muni_state[0], self.area_type,
                                         len(self.compiled.municipalities))))
        return passes

    # ---- forking a shared burn-in ----------------------------------------------------------------
    def burn_in_key(self) -> str:
        """What the burn-in depends on: the model config, seed and scale (not interventions)."""
        return config_hash({"model": self.config.model_dump(mode="json"), "seed": self.run_seed})

    def quiet_months(self) -> int:
        """Months (from the burn-in's start) this model's interventions leave untouched: it
        simulates exactly what a model without interventions does until then (see
        :func:`quiet_months`)."""
        return quiet_months(self.first_year, self.total_months, bool(self.plugins),
                            [iv.when.start_year for iv in self.interventions])

    def can_fork_burn_in(self) -> bool:
        """True when no intervention or plugin can act before the policy start."""
        return not self.plugins and self.quiet_months() >= self.burn_in_months

    def _fork_burn_in(self, other: "UtenforskModel") -> None:
        """Copy the state of ``other``, a model at the end of its burn-in or later, when neither
        model's interventions have acted before ``other.month``: both then hold what a model
        without interventions holds at that month (bit for bit)."""
        shared = other.month - other.burn_in_months
        if shared < 0 or len(other.history) != shared:
            raise ValueError("burn_in_from must be a model at the end of its burn-in or later")
        if other.burn_in_key() != self.burn_in_key() or self.quiet_months() < other.month \
                or (shared and other.quiet_months() < other.month):
            raise ValueError("burn_in_from has another config or seed, or an intervention acts "
                             "before the month it is at: simulate the burn-in instead")
        if shared and self.collect and not other.collect:
            raise ValueError("burn_in_from kept no monthly metrics (collect=False) for its policy months")
        if shared and self.municipal_counts and not other.municipal_counts:
            raise ValueError("burn_in_from kept no municipal Q4 counts (municipal_counts=False) for its policy months")
        for mine, theirs in zip(self.pop, other.pop):
            mine[...] = theirs
        self.tally.cohort[...] = other.tally.cohort
        self.tally.cohort_grp[...] = other.tally.cohort_grp
        self.dyn.admit_p[...] = other.dyn.admit_p
        self.dyn.births_area[...] = other.dyn.births_area
        # programme tallies and coverage are this model's: all zero in months its programmes are off
        quiet = {"prog": np.zeros_like(self.tally.prog[0]), "pg_cover": np.zeros_like(self.dyn.pg_cover)}

        def mine(month: dict) -> dict:
            return {k: (quiet[k].copy() if k in quiet else v.copy() if hasattr(v, "copy") else v)
                    for k, v in month.items()}

        self.last_month = mine(other.last_month)
        self.history = [mine(h) for h in other.history]
        if shared and self.municipal_counts:
            self.kommune_q4 = {year: counts.copy() for year, counts in other.kommune_q4.items()}
        if shared:  # the municipalities' service tallies of the shared policy months (_by_type)
            self.kommune_sv = {year: sv.copy() for year, sv in other.kommune_sv.items()}
        if shared and self.collect:
            for name, values in other.datacollector.model_vars.items():
                self.datacollector.model_vars[name] = list(values)
            self.current_metrics = dict(other.current_metrics)
        self.steps = other.steps
        self.month = other.month

    # ---- time ----------------------------------------------------------------------------------
    @property
    def year(self) -> int:
        """Calendar year of the next month to simulate."""
        return self.first_year + self.month // 12

    @property
    def policy_start_year(self) -> int:
        return self.config.calendar.start_year

    def _enter(self, month: int) -> None:
        nb = int(self.births[month])
        start = int(self.cum_entries[month])
        t = self.tally
        na = int(self.arrivals[month].sum())
        for arrival, ids, births in (
                (False, np.arange(start, start + nb, dtype=np.int64), np.full(nb, month, np.int64)),
                (True, np.arange(start + nb, start + nb + na, dtype=np.int64), None)):
            if len(ids) == 0:
                continue
            if arrival:
                ages = np.repeat(np.arange(AGE_YEARS), self.arrivals[month])
                births = arrival_birth_months(self.seed_key, ids, ages, month)
            # births read no other slot, and arrivals only their donors', births of earlier passes
            # that no entrant writes (kernel.arrival_donor): both may use the kernels' threads, a
            # block each (entrants cost alike; a block's call costs ~10 us of Python)
            threads = min(self.n_threads, t.age_state.shape[0])
            n_min = kernel.MIN_ARRIVALS_PER_THREAD if arrival else kernel.MIN_BIRTHS_PER_THREAD
            self._rows = max(self._rows, kernel.chunk_threads(len(ids), threads, n_min))
            g, F = self._gen, self._F
            kernel.run_chunks(g.enter_chunk, len(ids), threads, lambda a, b, tid: g.enter_args(
                ids[a:b], births[a:b], tid, self.pop, F, self.dyn, self.prog, t, arrival, month,
                self.seed_key, self.capacity, self.cum_entries, self.births, self.trange),
                min_items=n_min, blocks_per_thread=1)
            # (the entry kernel set each entrant's service area: with services per municipality,
            # their municipality, the draw kommune_of and the Q4 tally then read)
            if not arrival:  # the month's births by service area: the arrivals' donors (below, and later)
                kernel.index_births(start, nb, self.capacity, self.pop.area, self.pop.donor_rank,
                                    self.dyn.births_area, month)

    def _advance(self) -> None:
        """Simulate month ``self.month`` (burn-in or policy)."""
        m = self.month
        t = self.tally
        for name in kernel.MONTHLY_TALLIES:  # only the worker rows last month wrote are not 0
            getattr(t, name)[:self._rows].fill(0)
        self._rows = 1
        self._gen.compile(self.pop, self.dyn, self.prog, t, self.seed_key, self.cum_entries, self.births)
        self._F = self._gen.params()  # values now: a plugin may have changed a table
        if self._birth_shares is not None:  # this year's at-birth shares (read by births only)
            off, rows = self._birth_shares
            self._F[off:off + rows.shape[1]] = rows[m // 12]
        self._enter(m)
        self._apply_interventions(m)  # always: plugins below must start from the base values
        for plugin in self.plugins:
            plugin.before_month(self, self.first_year + m // 12, m % 12)
        # the slots that may enrol by age-year and state, from this month's coverage (after the
        # plugins: one may change a slot's coverage, window or states)
        open_cells(self.prog, self.dyn.pg_cover, self.dyn.pg_open)
        self.service_areas.step()  # the service agents set admissions from last month's demand
        lo = int(self.cum_entries[max(0, m - MAX_MONTHS)])
        hi = int(self.cum_entries[m + 1])
        threads = min(self.n_threads, t.age_state.shape[0])  # never more workers than tally rows
        self._rows = max(self._rows, kernel.chunk_threads(hi - lo, threads))
        g = self._gen
        # again if a plugin (before_month) may have changed a value since the entries
        F = g.params() if self.plugins else self._F
        trange = None  # the traits' ranges at the month's start, from the kernels if they can tell
        if self._trange_ok and not self.plugins:  # (a plugin may move traits between kernels)
            trange = self.trange[:, :, 0].min(axis=0), self.trange[:, :, 1].max(axis=0)
        B = g.bounds(self.pop, self.dyn, self.prog, F, trange)  # after entries: ranges at the month's start
        self.trange.fill(0.0)
        kernel.run_chunks(g.month_chunk, hi - lo, threads, lambda a, b, tid: g.month_args(
            lo + a, lo + b, tid, self.pop, F, B, self.dyn, self.prog, t, m, self.seed_key,
            self.capacity, self.trange))
        self._trange_ok = True
        r = self._rows  # the worker rows written this month (the others hold 0)
        self.last_month = {f: (getattr(t, f)[0].copy() if r == 1 else getattr(t, f)[:r].sum(axis=0))
                           for f in kernel.MONTHLY_TALLIES}
        self.month += 1
        if self.on_month is not None:
            self.on_month(m)
        if m >= self.burn_in_months and m % 12 == 11 and self.kommuner is not None and self.municipal_counts:  # Q4: December
            self._tally_kommune_q4(self.first_year + m // 12, m)
        if m >= self.burn_in_months:
            self.last_month["pg_cover"] = self.dyn.pg_cover.copy()
            self.last_month["year"] = self.first_year + m // 12
            self.last_month["month"] = m
            self.history.append(self._by_type(self.last_month))

    def _by_type(self, month: dict) -> dict:
        """The month's record for ``history``: with services per municipality, the service and
        municipality tallies summed to the municipality types (what every national output
        reads; a run's history stays small), and the municipalities' service tallies added to
        the year's sum (``kommune_sv``, for periods_by_municipality)."""
        if not self.service_areas_by_kommune:
            return month
        year = month["year"]
        acc = self.kommune_sv.get(year)
        if acc is None:
            self.kommune_sv[year] = month["sv"].copy()
        else:
            np.add(acc, month["sv"], out=acc)
        out = dict(month)  # integer counts summed in one compiled pass (an einsum cost ~0.24 ms a month)
        out["sv"], out["muni_pop"], out["muni_state"] = sum_by_type(
            month["sv"], month["muni_pop"], month["muni_state"], self.area_type, len(self.compiled.municipalities))
        return out

    def _tally_kommune_q4(self, year: int, month: int) -> None:
        """Count the status of everyone alive at the end of December per municipality: a
        register-style Q4 point-in-time count (KQ_FIELDS), once a year."""
        counts = self.kommune_q4.get(year)
        if counts is None:
            counts = self.kommune_q4[year] = np.zeros((len(self.kommuner), len(KQ_FIELDS)))
        lo = int(self.cum_entries[max(0, month - MAX_MONTHS)])
        hi = int(self.cum_entries[month + 1])
        hb = self.hb_states if len(self.hb_states) else np.zeros(len(self.compiled.states), bool)
        # on the kernels' threads, one array of integer cells per worker (exact in any order)
        rows = np.zeros((self.n_threads, len(self.kommuner), kommuner.Q4_AGES, kommuner.Q4_STATUS), np.int64)
        kernel.run_chunks(kommuner.tally_q4, hi - lo, self.n_threads, lambda a, b, tid: (
            self.seed_key, lo + a, lo + b, self.capacity, self.pop.alive, self.pop.birth,
            self.pop.attrs[self.muni_attr], self.pop.state, self.pop.flags, month,
            self.state_masks["neet"], hb, self.us_flag, self._k_index, self._k_cdf, rows[tid],
            self.pop.area, self.service_areas_by_kommune))
        kommuner.fold_q4(rows.sum(axis=0), KQ_CODES, counts)

    def _apply_interventions(self, month: int) -> None:
        """Reset the service and handoff arrays to their base values, then set this month's
        coverage of each programme and its service and handoff changes. The reset happens every
        month, with or without interventions, so a plugin's ``before_month`` always starts from
        the base values (a factor it applies never compounds from month to month)."""
        c, d, base = self.compiled, self.dyn, self._base
        year, moy = self.first_year + month // 12, month % 12
        d.detect_p[:] = base["detect_p"]
        d.quality[:] = base["quality"]
        d.ho_prob[:] = base["ho_prob"]
        d.ho_delay[:] = base["ho_delay"]
        places = base["places"].copy()
        for k, iv in enumerate(self.interventions):
            cov = engine.coverage(iv, year, moy)
            d.pg_cover[k] = cov
            if cov <= 0.0:
                continue
            areas = self._covered[k]
            for name, change in iv.what.services.items():
                s = c.service_index[name]
                if change.detection is not None:
                    d.detect_p[s, areas] = np.minimum(1.0, d.detect_p[s, areas] * (1 + cov * (change.detection.value - 1)))
                if change.quality is not None:
                    d.quality[s, areas] *= 1 + cov * (change.quality.value - 1)
                if change.capacity is not None:
                    places[s, areas] *= 1 + cov * (change.capacity.value - 1)
            for name, change in iv.what.handoffs.items():
                h = c.handoffs.index(name)
                if change.probability is not None:
                    p0 = d.ho_prob[h, areas]
                    d.ho_prob[h, areas] = p0 + cov * (change.probability.value - p0)
                if change.odds is not None:  # odds ratio on this month's (base) probability
                    p0 = d.ho_prob[h, areas]
                    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                        o = np.where(p0 < 1.0, change.odds.value * p0 / (1.0 - p0), np.inf)
                        p1 = np.where(o == np.inf, 1.0, o / (1.0 + o))
                    d.ho_prob[h, areas] = p0 + cov * (p1 - p0)
                if change.delay_months is not None:
                    dl = d.ho_delay[h, areas]
                    d.ho_delay[h, areas] = np.rint(dl + cov * (change.delay_months.value - dl)).astype(np.int64)
        self.service_areas.places_per_1000[...] = places

    def _covered_areas(self, iv) -> list[int]:
        """Service areas an intervention's service and handoff changes act in: the areas of
        the municipality types it covers, and only its named municipalities (who.municipalities,
        which needs services per municipality) if it names some."""
        c = self.compiled
        types = set(engine.covered_municipalities(iv, c.municipalities))
        rows = engine.covered_kommuner(iv)
        areas = range(len(self.area_type)) if rows is None else rows
        return [int(a) for a in areas if int(self.area_type[a]) in types]

    def step(self) -> None:
        """Advance one policy month and collect the headline metrics (unless ``collect`` is off)."""
        if self.month >= self.total_months:
            self.running = False
            return
        t0 = time.perf_counter()
        self._advance()
        if self.collect:
            self.current_metrics = headline.monthly(self, self.last_month)
            self.datacollector.collect(self)
        self.timings["horizon_s"] += time.perf_counter() - t0
        self.running = self.month < self.total_months

    def run_model(self) -> None:
        while self.running:
            self.step()

    # ---- introspection -------------------------------------------------------------------------
    @property
    def services(self):
        return self.agents_by_type.get(ServiceAgent, mesa.agent.AgentSet([], random=self.random))

    def alive_slots(self) -> np.ndarray:
        lo = int(self.cum_entries[max(0, self.month - 1 - MAX_MONTHS)])
        hi = int(self.cum_entries[self.month])
        slots = np.arange(lo, hi) % self.capacity
        return slots[self.pop.alive[slots] == 1]

    @property
    def bytes_per_person(self) -> float:
        return bytes_per_slot(self.pop) * self.capacity / max(len(self.alive_slots()), 1)

    def alive_ids(self) -> np.ndarray:
        """Person ids of everyone alive (their slots are ``ids % capacity``)."""
        lo = int(self.cum_entries[max(0, self.month - 1 - MAX_MONTHS)])
        hi = int(self.cum_entries[self.month])
        ids = np.arange(lo, hi, dtype=np.int64)
        return ids[self.pop.alive[ids % self.capacity] == 1]

    def kommune_of(self, ids: np.ndarray) -> np.ndarray:
        """Municipality row (in ``self.kommuner.table``) of the persons ``ids``: a pure function
        of (seed, person id, municipality type), stored as their service area with services per
        municipality (the entry kernel's draw, kommuner.kommune_row), else drawn now."""
        if self.service_areas_by_kommune:
            return self.pop.area[ids % self.capacity].astype(np.int16)
        types = self.pop.attrs[self.muni_attr, ids % self.capacity].astype(np.int64)
        return kommuner.assign(self.seed_key, ids, types, self._k_index, self._k_cdf)
