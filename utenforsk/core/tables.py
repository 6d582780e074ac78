"""Compile a validated :class:`ModelConfig` into flat numeric tables for the kernels.

Everything the monthly kernel needs is here as arrays indexed by small integers: states,
transitions grouped by origin state (CSR), scheduled events, traits, services, handoffs, and one
pool of sparse linear predictors (covariate index, coefficient). Parameter *values* are read here
once; the kernel never sees a name.
"""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np

from utenforsk.config.schema import (MAX_AGE_YEARS, BinaryTrait, ContinuousTrait, Destination, Hazard,
                                     ModelConfig)

# covariate kinds (cov_kind), declared in utenforsk/core/covariates.py
from utenforsk.core.covariates import (DERIVED, K_ATTR, K_BTRAIT, K_FLAG, K_PROGRAMME,  # noqa: F401
                                       K_QUALITY, K_SERVICE, K_STATE, K_TRAIT, N_KINDS, PREFIXED)
from utenforsk.core.covariates import K_AGE, K_KOMMUNE, K_SPELL, K_TIS  # noqa: F401 - re-exported
from utenforsk.core import lp_tables
AGE_YEARS = int(MAX_AGE_YEARS)  # whole age-years 0-29: the age tallies' rows
MAX_MONTHS = AGE_YEARS * 12
#: a handoff's trigger (``handoffs.NAME.trigger``) by its number in ``ho_kind``
HO_TRIGGERS = ("transition", "exit", "detection")
LOGIT_CAP = 30.0  # logit(0) and logit(1) are clipped to -+30: "never" and "always" in practice

def category_shares(attribute, table, cond: str) -> np.ndarray:
    """An attribute's share of each category under condition ``cond`` (``"all"``, or a category
    of the attribute it is given) in ``table`` (``at_birth`` or ``at_arrival``); 0 if unlisted."""
    return np.array([table[cond][c].value if c in table[cond] else 0.0 for c in attribute.categories])


def cumulative_shares(shares) -> np.ndarray:
    """The cumulative shares an attribute's draw inverts (the kernel's ``attr_cum_*``), the last
    exactly 1."""
    c = np.cumsum(shares)
    c[-1] = 1.0
    return c


Tables = namedtuple("Tables", [
    # states
    "st_neet", "st_tr_start", "st_tr_end", "st_sc_start", "st_sc_end",
    # covariates and linear predictors
    "cov_kind", "cov_a", "cov_b", "cov_kstart", "cov_kend", "lp_start", "lp_end", "lp_cov", "lp_beta",
    # hazards (transitions, exits, binary-trait onset/recovery)
    "hz_base", "hz_lo", "hz_hi", "hz_row",
    "tr_hz", "tr_to", "tr_gate", "tr_req", "tr_flags",
    "ex_hz",
    # scheduled events and destinations
    "sc_kind", "sc_at", "sc_lo", "sc_hi", "sc_dstart", "sc_dend", "sc_flags",
    "de_to", "de_logw", "de_row",
    "ar_lo", "ar_hi", "ar_dstart", "ar_dend",
    # arrivals' traits and flags by rule: a shift on the donor's traits (intercept + row),
    # binary-trait prevalences and flag shares where set
    "ar_shift_icpt", "ar_shift_row", "ar_prev", "ar_prev_set", "ar_flag_p", "ar_flag_set",
    # attributes
    "attr_given", "attr_cum_birth", "attr_cum_arrival",
    # traits
    "ct_init_age", "ct_init_icpt", "ct_init_row", "ct_init_sd",
    "ct_dstart", "ct_dend", "dy_lo", "dy_hi", "dy_rate", "dy_sd", "dy_icpt", "dy_row",
    "bt_init_age", "bt_init_p", "bt_onset", "bt_recovery",
    # services and handoffs
    "sv_kind", "sv_lo", "sv_hi", "sv_states", "sv_discharge",
    "sv_nstart", "sv_nend", "nd_kind", "nd_idx", "nd_thr", "nd_below",
    "ho_kind", "ho_from", "ho_to", "ho_from_states", "ho_to_states", "ho_lo", "ho_hi",
    "ho_fmask", "ho_fwant",  # flags a handoff requires: (flags & fmask) == fwant
    # output groups
    "grp_attr",
    # misc scalars as 0-d arrays
    "birth_state",
])


def logit(p: float) -> float:
    if p <= 0.0:
        return -LOGIT_CAP
    if p >= 1.0:
        return LOGIT_CAP
    return max(-LOGIT_CAP, min(LOGIT_CAP, math.log(p / (1.0 - p))))


def monthly_from_annual(q: float) -> float:
    return 1.0 - (1.0 - q) ** (1.0 / 12.0)


def months(age_years: float) -> int:
    return int(round(age_years * 12))


@dataclass
class _LP:
    """Builder for the pool of sparse linear predictors."""

    cov_index: dict
    names: dict = field(default_factory=dict)  # covariate key -> its name in the config
    starts: list = field(default_factory=list)
    ends: list = field(default_factory=list)
    covs: list = field(default_factory=list)
    betas: list = field(default_factory=list)

    def add(self, coefficients: dict, resolve) -> int:
        self.starts.append(len(self.covs))
        for name, p in coefficients.items():
            key = resolve(name)
            if key not in self.cov_index:
                self.cov_index[key] = len(self.cov_index)
                self.names[key] = name
            self.covs.append(self.cov_index[key])
            self.betas.append(p.value)
        self.ends.append(len(self.covs))
        return len(self.starts) - 1


class CompiledModel:
    """Names and numeric tables of one model config. Interventions are not part of it: they are
    values in the programme slots (utenforsk/interventions/slots.py), so every scenario of a model
    shares its tables' structure and its compiled kernel."""

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.states = list(cfg.states)
        self.state_index = {s: i for i, s in enumerate(self.states)}
        self.flags = list(cfg.flags)
        self.attributes = list(cfg.attributes)
        self.attr_index = {a: i for i, a in enumerate(self.attributes)}
        self.municipalities = list(cfg.municipalities)
        self.ctraits = [n for n, t in cfg.traits.items() if isinstance(t, ContinuousTrait)]
        self.btraits = [n for n, t in cfg.traits.items() if isinstance(t, BinaryTrait)]
        self.services = list(cfg.services)
        self.service_index = {s: i for i, s in enumerate(self.services)}
        self.handoffs = list(cfg.handoffs)
        #: interventions named by ``programme:NAME`` covariates of the config (slots are values)
        self.programme_refs: list[str] = []
        #: where interventions act: hazards of each transition, destinations of each scheduled
        #: outcome, dynamics of each trait (filled by _build)
        self.transition_hazards: dict[str, list[int]] = {}
        self.scheduled_destinations: dict[tuple[str, str], list[int]] = {}
        self.trait_dynamics: dict[str, list[int]] = {}
        self.report_by = list(cfg.report_by)
        self.tables = self._build()

    # ---- names -> covariate keys ---------------------------------------------------------------
    def resolve(self, name: str) -> tuple[int, int, int]:
        cfg = self.cfg
        if name in DERIVED:
            return (DERIVED[name], 0, 0)
        if name in self.ctraits:
            return (K_TRAIT, self.ctraits.index(name), 0)
        if name in self.btraits:
            return (K_BTRAIT, self.btraits.index(name), 0)
        if name in self.flags:
            return (K_FLAG, self.flags.index(name), 0)
        if "=" in name:
            a, c = name.split("=", 1)
            return (K_ATTR, self.attr_index[a], cfg.attributes[a].categories.index(c))
        prefix, ref = name.split(":", 1)
        kind = PREFIXED.get(prefix)
        if kind is None:
            raise KeyError(name)
        if kind == K_STATE:
            return (K_STATE, self.state_index[ref], 0)
        if kind in (K_SERVICE, K_QUALITY):
            return (kind, self.service_index[ref], 0)
        if kind == K_KOMMUNE:  # row of the model's municipality_effects (Dyn.kre)
            return (K_KOMMUNE, list(cfg.municipality_effects).index(ref), 0)
        # K_PROGRAMME: the slot is a value (Prog.ref), looked up per scenario
        if ref not in self.programme_refs:
            self.programme_refs.append(ref)
        return (K_PROGRAMME, self.programme_refs.index(ref), 0)

    # ---- build -------------------------------------------------------------------------------
    def _build(self) -> Tables:  # noqa: C901 - one linear pass over the config
        cfg, S = self.cfg, len(self.states)
        lp = _LP(cov_index={})
        res = self.resolve
        i32 = lambda xs: np.asarray(xs, dtype=np.int32)  # noqa: E731
        f64 = lambda xs: np.asarray(xs, dtype=np.float64)  # noqa: E731

        # hazards
        hz_base, hz_lo, hz_hi, hz_row = [], [], [], []
        self.hazard_names: list[str] = []  # what each hazard is, for the generated source

        def add_hazard(h: Hazard, what: str) -> int:
            self.hazard_names.append(what)
            p = h.probability.value if h.probability is not None else monthly_from_annual(h.annual_rate.value)
            base = np.full(AGE_YEARS, logit(p))
            for age in sorted(h.age_profile):
                base[int(math.floor(age)):] = logit(p) + h.age_profile[age].value
            hz_base.append(base)
            hz_lo.append(months(h.ages[0]))
            hz_hi.append(months(h.ages[1]))
            hz_row.append(lp.add(h.coefficients, res))
            return len(hz_row) - 1

        def flag_mask(names) -> int:
            m = 0
            for n in names:
                m |= 1 << self.flags.index(n)
            return m

        # transitions grouped by origin state
        by_state: list[list] = [[] for _ in range(S)]
        tr_name = {id(t): name for name, t in cfg.transitions.items()}
        for name, t in cfg.transitions.items():
            for f in t.from_:
                by_state[self.state_index[f]].append(t)
        tr_hz, tr_to, tr_gate, tr_req, tr_flags, st_tr_start, st_tr_end = [], [], [], [], [], [], []
        for s in range(S):
            st_tr_start.append(len(tr_hz))
            for t in by_state[s]:
                tr_hz.append(add_hazard(t, f"{tr_name[id(t)]} from {self.states[s]}"))
                self.transition_hazards.setdefault(tr_name[id(t)], []).append(tr_hz[-1])
                tr_to.append(self.state_index[t.to])
                tr_gate.append(self.service_index[t.gate] if t.gate else -1)
                tr_req.append(self.service_index[t.requires_service] if t.requires_service else -1)
                tr_flags.append(flag_mask(t.set_flags))
            st_tr_end.append(len(tr_hz))
        ex_hz = [add_hazard(e, name) for name, e in cfg.exits.items()]

        # destinations (scheduled events and arrivals)
        de_to, de_logw, de_row = [], [], []

        def add_destinations(to: dict[str, Destination], event: str | None = None) -> tuple[int, int]:
            start = len(de_to)
            for state, d in to.items():
                if event is not None:
                    self.scheduled_destinations.setdefault((event, state), []).append(len(de_to))
                de_to.append(self.state_index[state])
                w = 1.0 if d.weight is None else d.weight.value
                de_logw.append(math.log(w) if w > 0 else -1e30)
                de_row.append(lp.add(d.coefficients, res))
            return start, len(de_to)

        sc_by_state: list[list] = [[] for _ in range(S)]
        sc_name = {id(e): name for name, e in cfg.scheduled.items()}
        for e in cfg.scheduled.values():
            for f in e.from_:
                sc_by_state[self.state_index[f]].append(e)
        sc = {k: [] for k in ("kind", "at", "lo", "hi", "ds", "de", "flags")}
        st_sc_start, st_sc_end = [], []
        for s in range(S):
            st_sc_start.append(len(sc["kind"]))
            for e in sc_by_state[s]:
                sc["kind"].append(0 if e.at_age is not None else 1)
                sc["at"].append(months(e.at_age) if e.at_age is not None else e.after_months)
                sc["lo"].append(months(e.ages[0]))
                sc["hi"].append(months(e.ages[1]))
                ds, de = add_destinations(e.to, sc_name[id(e)])
                sc["ds"].append(ds)
                sc["de"].append(de)
                sc["flags"].append(flag_mask(e.set_flags))
            st_sc_end.append(len(sc["kind"]))
        ar_lo, ar_hi, ar_ds, ar_de = [], [], [], []
        rules = cfg.population.immigration.states if cfg.population.immigration is not None else []
        R, CT, BT, NF = max(len(rules), 1), max(len(self.ctraits), 1), max(len(self.btraits), 1), max(len(self.flags), 1)
        ar = dict(shift_icpt=np.zeros((R, CT)), shift_row=np.full((R, CT), -1, np.int32),
                  prev=np.zeros((R, BT)), prev_set=np.zeros((R, BT), np.bool_),
                  flag_p=np.zeros((R, NF)), flag_set=np.zeros((R, NF), np.bool_))
        for ri, r in enumerate(rules):
            ar_lo.append(months(r.ages[0]))
            ar_hi.append(months(r.ages[1]))
            ds, de = add_destinations(r.to)
            ar_ds.append(ds)
            ar_de.append(de)
            for trait, shift in r.trait_shift.items():
                k = self.ctraits.index(trait)
                ar["shift_icpt"][ri, k] = shift.intercept.value if shift.intercept else 0.0
                ar["shift_row"][ri, k] = lp.add(shift.coefficients, res)
            for trait, p in r.prevalence.items():
                b = self.btraits.index(trait)
                ar["prev"][ri, b], ar["prev_set"][ri, b] = p.value, True
            for flag, p in r.flags.items():
                f = self.flags.index(flag)
                ar["flag_p"][ri, f], ar["flag_set"][ri, f] = p.value, True

        # attributes: cumulative shares [attr, condition, category]
        A = len(self.attributes)
        kmax = max([len(a.categories) for a in cfg.attributes.values()] + [1])
        attr_given = np.full(A, -1, dtype=np.int32)
        cum_b = np.ones((A, kmax, kmax))
        cum_a = np.ones((A, kmax, kmax))
        for ai, (name, a) in enumerate(cfg.attributes.items()):
            conds = ["all"]
            if a.given is not None:
                attr_given[ai] = self.attr_index[a.given]
                conds = cfg.attributes[a.given].categories
            for table, cum in ((a.at_birth, cum_b), (a.at_arrival, cum_a)):
                for ci, cond in enumerate(conds):
                    c = cumulative_shares(category_shares(a, table, cond))
                    cum[ai, ci, :len(c)] = c

        # continuous traits
        ct = {k: [] for k in ("age", "icpt", "row", "sd", "ds", "de")}
        dy = {k: [] for k in ("lo", "hi", "rate", "sd", "icpt", "row")}
        for n in self.ctraits:
            t = cfg.traits[n]
            ct["age"].append(months(t.initial.at_age))
            ct["icpt"].append(t.initial.mean.intercept.value if t.initial.mean.intercept else 0.0)
            ct["row"].append(lp.add(t.initial.mean.coefficients, res))
            ct["sd"].append(t.initial.sd.value)
            ct["ds"].append(len(dy["lo"]))
            for d in t.dynamics:
                self.trait_dynamics.setdefault(n, []).append(len(dy["lo"]))
                dy["lo"].append(months(d.ages[0]))
                dy["hi"].append(months(d.ages[1]))
                dy["rate"].append(d.rate.value)
                dy["sd"].append(d.noise_sd())
                dy["icpt"].append(d.target.intercept.value if d.target.intercept else 0.0)
                dy["row"].append(lp.add(d.target.coefficients, res))
            ct["de"].append(len(dy["lo"]))
        bt = {k: [] for k in ("age", "p", "on", "rec")}
        for n in self.btraits:
            t = cfg.traits[n]
            bt["age"].append(months(t.initial.at_age))
            bt["p"].append(t.initial.probability.value)
            bt["on"].append(add_hazard(t.onset, f"{n} onset"))
            bt["rec"].append(add_hazard(t.recovery, f"{n} recovery"))

        # services
        SV = len(self.services)
        sv_states = np.zeros((max(SV, 1), S), dtype=np.bool_)
        sv = {k: [] for k in ("kind", "lo", "hi", "dis", "ns", "ne")}
        nd = {k: [] for k in ("kind", "idx", "thr", "below")}
        for si, (name, s) in enumerate(cfg.services.items()):
            sv["kind"].append(0 if s.kind == "follow_up" else 1)
            sv["lo"].append(months(s.ages[0]))
            sv["hi"].append(months(s.ages[1]))
            sv["dis"].append(s.discharge.value if s.discharge else 0.0)
            for st in s.states:
                sv_states[si, self.state_index[st]] = True
            sv["ns"].append(len(nd["kind"]))
            for c in s.need:
                if c.flag is not None:  # kind 3: thr 1.0 = in need when held, 0.0 = when not held
                    nd["kind"].append(3)
                    nd["idx"].append(self.flags.index(c.flag))
                    nd["thr"].append(1.0 if c.held else 0.0)
                    nd["below"].append(False)
                    continue
                if c.states is not None:
                    for st in c.states:
                        nd["kind"].append(2)
                        nd["idx"].append(self.state_index[st])
                        nd["thr"].append(0.0)
                        nd["below"].append(False)
                    continue
                binary = c.trait in self.btraits
                nd["kind"].append(1 if binary else 0)
                nd["idx"].append(self.btraits.index(c.trait) if binary else self.ctraits.index(c.trait))
                nd["thr"].append(c.below if c.below is not None else c.above)
                nd["below"].append(c.below is not None)
            sv["ne"].append(len(nd["kind"]))
        H = len(self.handoffs)
        ho_from_states = np.zeros((max(H, 1), S), dtype=np.bool_)
        ho_to_states = np.zeros((max(H, 1), S), dtype=np.bool_)
        ho = {k: [] for k in ("kind", "from", "to", "lo", "hi", "fmask", "fwant")}
        for hi, h in enumerate(cfg.handoffs.values()):
            ho["kind"].append(HO_TRIGGERS.index(h.trigger))
            ho["from"].append(self.service_index[h.from_service])
            ho["to"].append(self.service_index[h.to_service])
            ho["lo"].append(months(h.ages[0]))
            ho["hi"].append(months(h.ages[1]))
            ho["fmask"].append(flag_mask(h.flags))
            ho["fwant"].append(flag_mask([f for f, held in h.flags.items() if held]))
            for st in h.from_states:
                ho_from_states[hi, self.state_index[st]] = True
            for st in h.to_states:
                ho_to_states[hi, self.state_index[st]] = True

        # covariates sorted by kind, so the kernel fills each kind in one branch-free loop
        keys = sorted(lp.cov_index, key=lambda k: (k[0], lp.cov_index[k]))
        new_index = {k: j for j, k in enumerate(keys)}
        remap = np.zeros(max(len(keys), 1), dtype=np.int32)
        for k, old in lp.cov_index.items():
            remap[old] = new_index[k]
        lp.covs = [int(remap[c]) for c in lp.covs]
        cov = np.array(keys, dtype=np.int32).reshape(-1, 3)
        kinds = cov[:, 0] if len(keys) else np.zeros(0, np.int32)
        cov_kstart = np.searchsorted(kinds, np.arange(N_KINDS), side="left").astype(np.int32)
        cov_kend = np.searchsorted(kinds, np.arange(N_KINDS), side="right").astype(np.int32)
        self.n_covariates = len(keys)
        self.covariate_names = [lp.names[k] for k in keys]
        return Tables(
            st_neet=np.array([cfg.is_neet(s, "register") for s in self.states], dtype=np.bool_),
            st_tr_start=i32(st_tr_start), st_tr_end=i32(st_tr_end),
            st_sc_start=i32(st_sc_start), st_sc_end=i32(st_sc_end),
            cov_kind=i32(cov[:, 0]), cov_a=i32(cov[:, 1]), cov_b=i32(cov[:, 2]),
            cov_kstart=cov_kstart, cov_kend=cov_kend,
            lp_start=i32(lp.starts), lp_end=i32(lp.ends), lp_cov=i32(lp.covs), lp_beta=f64(lp.betas),
            hz_base=np.asarray(hz_base, dtype=np.float64).reshape(-1, AGE_YEARS),
            hz_lo=i32(hz_lo), hz_hi=i32(hz_hi), hz_row=i32(hz_row),
            tr_hz=i32(tr_hz), tr_to=i32(tr_to), tr_gate=i32(tr_gate), tr_req=i32(tr_req),
            tr_flags=i32(tr_flags), ex_hz=i32(ex_hz),
            sc_kind=i32(sc["kind"]), sc_at=i32(sc["at"]), sc_lo=i32(sc["lo"]), sc_hi=i32(sc["hi"]),
            sc_dstart=i32(sc["ds"]), sc_dend=i32(sc["de"]), sc_flags=i32(sc["flags"]),
            de_to=i32(de_to), de_logw=f64(de_logw), de_row=i32(de_row),
            ar_lo=i32(ar_lo), ar_hi=i32(ar_hi), ar_dstart=i32(ar_ds), ar_dend=i32(ar_de),
            ar_shift_icpt=ar["shift_icpt"], ar_shift_row=ar["shift_row"], ar_prev=ar["prev"],
            ar_prev_set=ar["prev_set"], ar_flag_p=ar["flag_p"], ar_flag_set=ar["flag_set"],
            attr_given=attr_given, attr_cum_birth=cum_b, attr_cum_arrival=cum_a,
            ct_init_age=i32(ct["age"]), ct_init_icpt=f64(ct["icpt"]), ct_init_row=i32(ct["row"]),
            ct_init_sd=f64(ct["sd"]), ct_dstart=i32(ct["ds"]), ct_dend=i32(ct["de"]),
            dy_lo=i32(dy["lo"]), dy_hi=i32(dy["hi"]), dy_rate=f64(dy["rate"]), dy_sd=f64(dy["sd"]),
            dy_icpt=f64(dy["icpt"]), dy_row=i32(dy["row"]),
            bt_init_age=i32(bt["age"]), bt_init_p=f64(bt["p"]), bt_onset=i32(bt["on"]),
            bt_recovery=i32(bt["rec"]),
            sv_kind=i32(sv["kind"]), sv_lo=i32(sv["lo"]), sv_hi=i32(sv["hi"]), sv_states=sv_states,
            sv_discharge=f64(sv["dis"]), sv_nstart=i32(sv["ns"]), sv_nend=i32(sv["ne"]),
            nd_kind=i32(nd["kind"]), nd_idx=i32(nd["idx"]), nd_thr=f64(nd["thr"]),
            nd_below=np.asarray(nd["below"], dtype=np.bool_),
            ho_kind=i32(ho["kind"]), ho_from=i32(ho["from"]), ho_to=i32(ho["to"]),
            ho_from_states=ho_from_states, ho_to_states=ho_to_states,
            ho_lo=i32(ho["lo"]), ho_hi=i32(ho["hi"]), ho_fmask=i32(ho["fmask"]), ho_fwant=i32(ho["fwant"]),
            grp_attr=i32([self.attr_index[a] for a in self.report_by]),
            birth_state=np.int32(self.state_index[cfg.population.birth_state]),
        )


# ---- parameter values as one flat array (the generated kernel reads them at constant offsets) ----
#: float tables read through ``F`` (parameter values); everything else is structure
FLOAT_TABLES = ("hz_base", "lp_beta", "de_logw", "dy_rate", "dy_sd", "dy_icpt", "ct_init_icpt",
                "ct_init_sd", "bt_init_p", "sv_discharge", "nd_thr", "attr_cum_birth", "attr_cum_arrival",
                "ar_shift_icpt", "ar_prev", "ar_flag_p")


def float_offsets(tab) -> dict[str, int]:
    """Offset of each float table in ``F`` (depends on table sizes only), then of the linear
    predictors' tables of 0/1 terms (``lp_table``, utenforsk/core/lp_tables.py) after a 0.0."""
    out, n = {}, 0
    for name in FLOAT_TABLES:
        out[name] = n
        n += int(np.size(getattr(tab, name)))
    out["lp_table"] = n + 1
    return out


def float_params(tab) -> np.ndarray:
    """The parameter values, in the layout of :func:`float_offsets`."""
    return np.concatenate([np.ravel(np.asarray(getattr(tab, n), np.float64)) for n in FLOAT_TABLES]
                          + [np.zeros(1), lp_tables.values(lp_tables.layout(tab), tab.lp_beta)])
