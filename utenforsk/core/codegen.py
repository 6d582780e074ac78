"""Writes the month kernel out as Python source for one model's structure (emitting only).

The model's tables (utenforsk/core/tables.py) say which states, covariates, hazards, services
... a model has; interpreting them at run time (loops over index arrays whose lengths depend on
the person's state) cost most of a person-month. The month is therefore generated as straight
Python source, and this is the only month there is:

- covariates are local scalars, read once at the start of the month;
- each linear predictor is an unrolled sum with constant covariate indices;
- each origin state has its own block of scheduled events and competing hazards;
- services, handoffs and tallies are unrolled with their indices as constants;
- the counter-based random numbers are inlined (numba's call inlining dominated compile time).

Only the *structure* (which states, covariates, hazards, ... and how they connect) is baked into
the source. Every parameter *value* is read from one float array ``F`` at a constant offset
(:func:`utenforsk.core.tables.float_offsets`), and interventions are values in the programme
slots (``prog``, utenforsk/interventions/slots.py), so calibration, sensitivity and every
scenario of a model reuse one compiled kernel. The source is sectioned by the month's components
(``# ==== exits``, ``# ==== traits``, ...) so a user can read the kernel their model runs.

The draw-first hazard bounds the kernel reads are in :mod:`utenforsk.core.bounds`; writing the
source to the on-disk cache and compiling it are in :mod:`utenforsk.core.kernel_cache`.
``tests/test_golden.py`` holds its results bit for bit on the Norway baseline, with
interventions, and on the test models; ``tests/test_exactness.py`` holds it to the exact
Markov-chain occupancy; :meth:`_Generator.rates_oracle` writes, with the same emitters, the
oracle the bounds tests use.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

from utenforsk.config.schema import LIMITS
from utenforsk.core import covariates, lp_tables, month, rng
from utenforsk.core.kernel import (
    CO_AGED_OUT,
    CO_AGED_OUT_HB,
    CO_AGED_OUT_LONG,
    CO_ENTERED,
    CO_EXPO_M,
    CO_NEET_M,
    CO_US_DONE,
    CO_US_DUE,
    COHORT_OFFSET,
    EV_AGED_OUT,
    PERSON_MONTH,
    PG_ENROLLED,
    PG_MONTHS,
    RATE_CAP,
    SV_ADMITTED,
    SV_CLIENTS,
    SV_DETECTED,
    SV_DISCHARGED,
    SV_GATE_REFUSED,
    SV_GATE_TRIED,
    SV_IN_NEED,
    SV_REF_ARRIVED,
    SV_REF_EXPIRED,
    SV_REF_LOST,
    SV_WAITING,
    Dyn,
    Tally,
)
from utenforsk.core.population import ENTRY_VALUES, FLAG_LONG_NEET, NEVER, ROW_FIELDS, Pop, SetBy
from utenforsk.core.tables import (
    AGE_YEARS,
    HO_TRIGGERS,
    MAX_MONTHS,
    CompiledModel,
    float_offsets,
)
from utenforsk.interventions.slots import MAX_PROGRAMMES
from utenforsk.core.bounds import BOUND_EXIT, bound_offset_btrait, bound_offset_state

#: bump when the generator changes what it writes for the same structure
GENERATOR_VERSION = 8

M64 = (1 << 64) - 1
POP_ARGS = tuple(f"p_{f}" for f in Pop._fields)
DYN_ARGS = tuple(f"d_{f}" for f in Dyn._fields)
TALLY_ARGS = tuple(f"t_{f}" for f in Tally._fields)


class _Src:
    """Indented source lines."""

    def __init__(self):
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, *lines: str) -> None:
        self.lines.extend("    " * self.depth + ln for ln in lines)

    @contextmanager
    def block(self, head: str):
        self(head)
        self.depth += 1
        yield
        self.depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _window(lo: int, hi: int, var: str = "age") -> str:
    """Condition ``lo <= var < hi`` for ages (0 <= age < 360), simplified."""
    lo_ok, hi_ok = lo <= 0, hi >= MAX_MONTHS
    if lo >= hi:
        return "False"
    if lo_ok and hi_ok:
        return "True"
    if lo_ok:
        return f"{var} < {hi}"
    if hi_ok:
        return f"{var} >= {lo}"
    return f"{lo} <= {var} < {hi}"


def _in(var: str, members, n: int) -> str:
    """``var`` is one of ``members`` (state indices out of ``n``)."""
    members = sorted(int(m) for m in members)
    if not members:
        return "False"
    if len(members) == n:
        return "True"
    return "(" + " or ".join(f"{var} == {m}" for m in members) + ")"


def _ident(text: str) -> str:
    """``text`` as part of a variable name (a readable temporary in the generated source)."""
    return re.sub(r"\W+", "_", text).strip("_")[:48] or "x"


def _and(*conds: str) -> str:
    conds = [c for c in conds if c and c != "True"]
    if "False" in conds:
        return "False"
    return " and ".join(conds) if conds else "True"


#: each covariate kind's value as an expression (declared in utenforsk/core/covariates.py)
COVARIATE_CODE = {n: k.code for n, k in enumerate(covariates.KINDS)}
COVARIATE_BIT = {n: k.bit for n, k in enumerate(covariates.KINDS) if k.bit is not None}
#: a person field read by a covariate's code (``p_<field>[i]``, ``p_<field>[<k>, i]``)
_SLOT_INDEX = re.compile(r"(\[|, )i\]")
_SNAPSHOT_FIELD = re.compile(r"p_(\w+)\[(?:(\d+), )?i\]")


class _Generator:
    """Writes the two kernels. Every temporary gets a fresh name: numba's SSA repair costs time
    for each variable assigned more than once, and that, not LLVM, dominated the compile."""

    def __init__(self, cm: CompiledModel, muni_attr: int, us_flag: int, us_states, hb_states):
        self.cm, self.t = cm, cm.tables
        self.S = len(cm.states)
        self.off = float_offsets(self.t)
        self.lpt = lp_tables.layout(self.t)
        self.muni_attr, self.us_flag = muni_attr, us_flag
        self.us = np.flatnonzero(us_states).tolist()
        self.hb = np.flatnonzero(hb_states).tolist()
        self.consts: dict[str, str] = {}
        self.xexpr: dict[int, str] = {}
        self.n = 0

    # ---- names, constants and values ---------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def F(self, table: str, idx: int | str = 0) -> str:
        if isinstance(idx, str):
            return f"F[{self.off[table]} + {idx}]"
        return f"F[{self.off[table] + idx}]"

    def const(self, value: str, name: str) -> str:
        self.consts[name] = value
        return name

    def index(self, n: int) -> str:
        """``n`` as a typed (non-literal) int64 constant: numba compiles a function once per
        literal argument value, and ``_pe(E, 26, pm)`` with 60 literal indices compiled
        ``programme_effect`` 60 times (seconds of a cold start)."""
        return self.const(f"np.int64({int(n)})", f"_J{int(n)}")

    def u8(self, bit: int) -> str:
        return self.const(f"np.uint8({1 << bit})", f"_B{bit}")

    def not_u8(self, bit: int) -> str:
        return self.const(f"np.uint8({~(1 << bit) & 0xFF})", f"_NB{bit}")

    def member(self, var: str, members) -> str:
        """``var`` (a state index) is one of ``members``: a bit test, no branches."""
        members = sorted(int(m) for m in members)
        if not members:
            return "False"
        if len(members) == self.S:
            return "True"
        if self.S > 62:
            return _in(var, members, self.S)
        mask = sum(1 << m for m in members)
        return f"((({self.const(f'np.int64({mask})', f'_SET{mask:x}')} >> {var}) & 1) == 1)"

    # ---- random numbers (rng.person_month_key / uniform / normal, inlined) -------------------
    def _mix(self, src: _Src, z0: str) -> str:
        a, b, h = self.fresh("_ka"), self.fresh("_kb"), self.fresh("_kh")
        src(f"{a} = {z0}",
            f"{b} = ({a} ^ ({a} >> _S30)) * _M1",
            f"{a}x = ({b} ^ ({b} >> _S27)) * _M2",
            f"{h} = {a}x ^ ({a}x >> _S31)")
        return h

    def _decision(self, src: _Src, key: str, decision: int) -> str:
        k = self.const(f"np.uint64({(decision * int(rng.GOLDEN)) & M64})", f"_D_{rng.decision_name(decision)}")
        return self._mix(src, f"{key} + {k}")

    def uniform(self, src: _Src, decision: int, key: str = "key") -> str:
        """rng.uniform(key, decision): a call (LLVM inlines it; typing a call costs numba less
        than typing the eight integer operations written out)."""
        name = rng.decision_name(decision)
        k = self.const(f"np.uint64({(decision * int(rng.GOLDEN)) & M64})", f"_D_{name}")
        u = self.fresh(f"u_{name}_")
        src(f"{u} = _uniform({key} + {k})")
        return u

    def normal(self, src: _Src, decision: int) -> str:
        """Written out: LLVM did not inline a call to it, and it runs for every trait, monthly."""
        h, n = self._decision(src, "key", decision), self.fresh(f"noise_{rng.decision_name(decision)}_")
        src(f"{n} = ((float({h} & _MASK16) + float(({h} >> _S16) & _MASK16) "
            f"+ float(({h} >> _S32) & _MASK16) + float({h} >> _S48)) / 65536.0 - 2.0) * 1.7320508075688772")
        return n

    def person_key(self, src: _Src, out: str, month_key: str) -> None:
        src(f"{out} = {self._mix(src, f'{month_key} ^ (np.uint64(pid) * _PP)')}")

    # ---- covariates and linear predictors ----------------------------------------------------
    def client(self, s: int, state: str) -> str:
        t = self.t
        if t.sv_kind[s] == 1:
            return self.member(state, np.flatnonzero(t.sv_states[s]))
        return f"(((p_clients[i] >> {s}) & 1) == 1)"

    def covariate_code(self, c: int, state: str, templates: dict = COVARIATE_CODE) -> str:
        """Covariate ``c``'s value as an expression (its kind's code, covariates.KINDS; with
        ``templates=COVARIATE_BIT``, its 0/1 value as an integer), with the person's state in the
        variable ``state``."""
        t = self.t
        kind, a, b = int(t.cov_kind[c]), int(t.cov_a[c]), int(t.cov_b[c])
        client = self.client(a, state) if kind in covariates.CLIENT_KINDS else ""
        return templates[kind].format(a=a, b=b, state=state, client=client)

    def covariate(self, src: _Src, c: int, var: str, state: str) -> None:
        """Assign covariate ``c``'s current value to ``var`` (the month's snapshot and the re-read share it)."""
        src(f"{var} = {self.covariate_code(c, state)}  # {self.cm.covariate_names[c]}")

    def row_covariates(self, *rows: int) -> list[int]:
        t = self.t
        return sorted({int(t.lp_cov[j]) for r in rows for j in range(t.lp_start[r], t.lp_end[r])})

    def reread(self, src: _Src, *rows: int) -> str:
        """Read the covariates of ``rows`` now (for a rarely computed rate); returns their prefix."""
        prefix = self.fresh("_r") + "_"
        for c in self.row_covariates(*rows):
            self.covariate(src, c, f"{prefix}{c}", "p_state[i]")
        return prefix

    def lp(self, row: int, x: str = "x") -> str:
        """Linear predictor ``row``: with ``x == "x"``, over the start-of-month covariates
        (written out where used, from the month's snapshot: :meth:`snapshot`), its 0/1 terms
        read from its table (utenforsk/core/lp_tables.py) at the index their bits make; else
        over the variables ``<x><c>`` of a :meth:`reread`, every term a multiply-add."""
        t = self.t
        js = range(t.lp_start[row], t.lp_end[row])
        if x != "x":
            return "(0.0" + "".join(f" + {self.F('lp_beta', j)} * {x}{int(t.lp_cov[j])}" for j in js) + ")"
        head, tabled = "0.0", ()
        if row in self.lpt.rows:
            at, tabled = self.lpt.rows[row]
            code = " | ".join(f"({self.xbit[int(t.lp_cov[j])]} << {k})" if k else self.xbit[int(t.lp_cov[j])]
                              for k, j in enumerate(tabled))
            head = f"F[np.uint64({self.off['lp_table'] + at} + ({code}))]"
        return ("(" + head + "".join(f" + {self.F('lp_beta', j)} * {self.xexpr[int(t.lp_cov[j])]}"
                                     for j in js if j not in tabled) + ")")

    def snapshot(self, src: _Src) -> None:
        """Read, at the start of the month, each person field a covariate reads (``_s_<field>``,
        local scalars), and set :attr:`xexpr`: each covariate's value as an expression over these
        (kind by kind as :meth:`covariate`). The expressions are pure, so they are written where a
        linear predictor uses them and computed only on the paths that need them (most hazards
        are skipped by the bounds), instead of all at the start of every person-month; the
        values, and so the results, are those of the start of the month, as before."""
        loads: dict[str, str] = {}

        def local(m: re.Match) -> str:
            name = f"_s_{m.group(1)}{m.group(2) or ''}"
            loads[name] = m.group(0)
            return name

        self.xexpr, self.xbit = {}, {}
        for c in range(self.cm.n_covariates):
            self.xexpr[c] = "(" + _SNAPSHOT_FIELD.sub(local, self.covariate_code(c, "_s_state")) + ")"
            if int(self.t.cov_kind[c]) in COVARIATE_BIT:
                self.xbit[c] = "(" + _SNAPSHOT_FIELD.sub(local, self.covariate_code(c, "_s_state", COVARIATE_BIT)) + ")"
        src("_s_state = state")
        for name in sorted(loads):
            src(f"{name} = {loads[name]}")
        src("# the covariates, written out where a linear predictor reads them:",
            *(f"#   {self.cm.covariate_names[c]} = {e}" for c, e in self.xexpr.items()))

    def eta(self, h: int) -> str:
        """Hazard ``h``'s linear predictor this month, as an expression (the argument of ``_rate``)."""
        return (f"{self.F('hz_base', f'{h * AGE_YEARS} + ay')} + {self.lp(int(self.t.hz_row[h]))}"
                f" + _pe(prog.hz, {self.index(h)}, pm)")

    def rate(self, src: _Src, h: int, eta: str | None = None) -> str:
        """Monthly rate of hazard ``h`` (kernel._hazard_rate); returns its variable. ``eta``: a
        variable already holding its linear predictor (:meth:`eta`)."""
        t = self.t
        out = self.fresh(f"rate_{_ident(self.cm.hazard_names[h])}_")
        win = _window(int(t.hz_lo[h]), int(t.hz_hi[h]))
        if win == "False":
            src(f"{out} = 0.0")
            return out
        # a call: rates are rarely needed (see HazardBounds) and a call compiles faster
        body = f"{out} = _rate({self.eta(h) if eta is None else eta})"
        if win == "True":
            src(body)
            return out
        with src.block(f"if {win}:"):
            src(body)
        with src.block("else:"):
            src(f"{out} = 0.0")
        return out

    def prob(self, h: int) -> str:
        """Monthly probability of hazard ``h`` (kernel._hazard_p), as an expression."""
        t = self.t
        win = _window(int(t.hz_lo[h]), int(t.hz_hi[h]))
        p = (f"1.0 / (1.0 + math.exp(-({self.F('hz_base', f'{h * AGE_YEARS} + ay')} "
             f"+ {self.lp(int(t.hz_row[h]))} + _pe(prog.hz, {self.index(h)}, pm))))")
        if win == "False":
            return "0.0"
        return p if win == "True" else f"({p} if {win} else 0.0)"

    def pick(self, src: _Src, weights: list[str], draw: str, out: str) -> None:
        """``out`` = index of the first cumulative weight above ``draw`` (else the last), without
        branches: the cumulative sums do not decrease, so that index is the number of sums at or
        below ``draw``. (A zero weight adds exactly 0.0, so it is never chosen, as in the table
        kernel's ``target < acc and lam > 0`` scan.)"""
        acc, below = "0.0", []
        for w in weights:
            nxt = self.fresh("_acc")
            src(f"{nxt} = {acc} + {w}")
            below.append(f"np.int64({draw} >= {nxt})")
            acc = nxt
        src(f"{out} = min({' + '.join(below)}, {len(weights) - 1})")

    def table(self, values, dtype: str = "int64") -> str:
        """A module-level constant array (numba freezes it into the machine code)."""
        vals = [int(v) for v in values]
        return self.const(f"np.array({vals!r}, dtype=np.{dtype})", f"_T{dtype[0]}{'_'.join(map(str, vals))}".replace("-", "m"))

    def destination(self, src: _Src, out: str, ds: int, de: int, decision: int, x: str,
                    programmes: bool = True) -> None:
        """Multinomial logit over destinations ``ds..de`` (kernel._choose_destination); with
        ``programmes``, the start-of-month programmes' odds ratios on each outcome (an entrant
        is in none: :func:`programme_effect` would add exactly 0.0)."""
        t = self.t
        if de - ds == 1:  # one destination: chosen whatever the draw
            src(f"{out} = {int(t.de_to[ds])}")
            return
        ws = [self.fresh("_w") for _ in range(ds, de)]
        for w, d in zip(ws, range(ds, de), strict=True):
            pe = f" + _pe(prog.de, {self.index(d)}, pm)" if programmes else ""
            src(f"{w} = math.exp({self.F('de_logw', d)} + {self.lp(int(t.de_row[d]), x)}{pe})")
        tot, target, idx = self.fresh("_tot"), self.fresh("_tg"), self.fresh("_ix")
        src(f"{tot} = 0.0" + "".join(f" + {w}" for w in ws))
        u = self.uniform(src, decision)
        src(f"{target} = {u} * {tot}")
        self.pick(src, ws, target, idx)
        src(f"{out} = {self.table(t.de_to[ds:de])}[{idx}]")

    def destination_reread(self, src: _Src, out: str, ds: int, de: int, decision: int) -> None:
        prefix = self.reread(src, *[int(self.t.de_row[d]) for d in range(ds, de)])
        self.destination(src, out, ds, de, decision, prefix, programmes=False)

    def competing(self, src: _Src, rates: list[str], u: str, draw_which: int) -> str:
        """Does one of the competing hazards fire, given the event draw ``u`` (kernel._event)?
        Emits the ``if`` head, leaves the source indented inside it, and returns the variable
        holding the hazard chosen."""
        lt = self.fresh("_lt")
        src(f"{lt} = 0.0" + "".join(f" + {r}" for r in rates))
        src(f"if {lt} > 0.0 and {u} < {lt} and {u} < -math.expm1(-{lt}):")
        src.depth += 1
        if len(rates) == 1:  # the only hazard: no second draw needed
            return "0"
        w, target, choice = self.uniform(src, draw_which), self.fresh("_tg"), self.fresh("_ch")
        src(f"{target} = {w} * {lt}")
        self.pick(src, rates, target, choice)
        return choice

    # ---- pieces of a month -------------------------------------------------------------------
    def init_traits(self, src: _Src, at_entry: bool) -> None:
        """Start traits whose start age is now (kernel._init_traits_at)."""
        t = self.t
        for k in range(len(t.ct_init_age)):
            a0 = int(t.ct_init_age[k])
            when = f"age >= {a0}" if at_entry else f"age == {a0}"
            with src.block(f"if {when} and p_ctraits[{k}, i] != p_ctraits[{k}, i]:"):
                row = int(t.ct_init_row[k])
                prefix = self.reread(src, row)
                n = self.normal(src, rng.D_TRAIT_INIT + k)
                src(f"p_ctraits[{k}, i] = np.float32({self.F('ct_init_icpt', k)} + {self.lp(row, prefix)} "
                    f"+ {self.F('ct_init_sd', k)} * {n})")
        for b in range(len(t.bt_init_age)):
            a0 = int(t.bt_init_age[b])
            with src.block(f"if age >= {a0}:" if at_entry else f"if age == {a0}:"):
                u = self.uniform(src, rng.D_BTRAIT_INIT + b)
                with src.block(f"if {u} < {self.F('bt_init_p', b)}:"):
                    src(f"p_btraits[i] |= {self.u8(b)}")
                with src.block("else:"):
                    src(f"p_btraits[i] &= {self.not_u8(b)}")

    def arrival_traits(self, src: _Src, r: int) -> None:
        """Traits and flags of an arrival under arrival rule ``r`` (kernel._arrival_traits):
        a native donor's traits plus the rule's shift, prevalences and flag shares."""
        t = self.t
        # the donor lives in the arrival's service area (its type, or its municipality)
        src("donor = arrival_donor(birth, np.int64(p_area[i]), month, key, p_alive, p_birth, p_donor_rank, "
            "cum_entries, births_sched, cap, d_births_area)")
        CT, BT, NF = t.ar_shift_icpt.shape[1], t.ar_prev.shape[1], t.ar_flag_p.shape[1]
        for k in range(len(t.ct_init_age)):
            a0, row, srow = int(t.ct_init_age[k]), int(t.ct_init_row[k]), int(t.ar_shift_row[r, k])
            with src.block(f"if age >= {a0}:"):
                prefix = self.reread(src, row, *([srow] if srow >= 0 else []))
                v = self.fresh("_av")
                src(f"{v} = np.nan")
                with src.block(f"if donor >= 0 and age > {a0}:"):
                    src(f"{v} = np.float64(p_ctraits[{k}, donor])")
                with src.block(f"if {v} != {v}:"):
                    n = self.normal(src, rng.D_TRAIT_INIT + k)
                    src(f"{v} = {self.F('ct_init_icpt', k)} + {self.lp(row, prefix)} "
                        f"+ {self.F('ct_init_sd', k)} * {n}")
                if srow >= 0:
                    src(f"{v} = {v} + ({self.F('ar_shift_icpt', r * CT + k)} + {self.lp(srow, prefix)})")
                src(f"p_ctraits[{k}, i] = np.float32({v})")
        for b in range(len(t.bt_init_age)):
            a0, on = int(t.bt_init_age[b]), self.fresh("_on")
            with src.block(f"if age >= {a0}:"):
                head = "if"
                if t.ar_prev_set[r, b]:  # at its start age it starts as for natives
                    with src.block(f"if age > {a0}:"):
                        u = self.uniform(src, rng.D_ARRIVAL_BTRAIT + b)
                        src(f"{on} = {u} < {self.F('ar_prev', r * BT + b)}")
                    head = "elif"
                with src.block(f"{head} donor >= 0 and age > {a0}:"):
                    src(f"{on} = ((p_btraits[donor] >> {b}) & 1) == 1")
                with src.block("else:"):
                    u = self.uniform(src, rng.D_BTRAIT_INIT + b)
                    src(f"{on} = {u} < {self.F('bt_init_p', b)}")
                with src.block(f"if {on}:"):
                    src(f"p_btraits[i] |= {self.u8(b)}")
                with src.block("else:"):
                    src(f"p_btraits[i] &= {self.not_u8(b)}")
        for f in range(NF):
            if t.ar_flag_set[r, f]:
                u = self.uniform(src, rng.D_ARRIVAL_FLAG + f)
                with src.block(f"if {u} < {self.F('ar_flag_p', r * NF + f)}:"):
                    src(f"p_flags[i] |= {self.u8(f)}")

    def trait_dynamics(self, src: _Src) -> None:
        t = self.t
        for k in range(len(t.ct_dstart)):
            ds, de = int(t.ct_dstart[k]), int(t.ct_dend[k])
            if de == ds:
                continue
            v = self.fresh("_v")
            src(f"{v} = np.float64(p_ctraits[{k}, i])")
            with src.block(f"if {v} == {v}:"):
                first = True
                for d in range(ds, de):
                    win = _window(int(t.dy_lo[d]), int(t.dy_hi[d]))
                    if win == "False":
                        continue
                    with src.block(f"{'if' if first else 'elif'} {win}:"):
                        target = self.fresh("_tg")
                        src(f"{target} = {self.F('dy_icpt', d)} + {self.lp(int(t.dy_row[d]))} + _pe(prog.dy, {self.index(d)}, pm)")
                        n = self.normal(src, rng.D_TRAIT + k)
                        src(f"p_ctraits[{k}, i] = np.float32({v} + {self.F('dy_rate', d)} * ({target} - {v}) "
                            f"+ {self.F('dy_sd', d)} * {n})")
                    first = False
                    if win == "True":
                        break
        for b in range(len(t.bt_onset)):
            u = self.uniform(src, rng.D_BTRAIT + b)
            on, rec = bound_offset_btrait(self.S, b)
            with src.block(f"if p_btraits[i] & {self.u8(b)}:"):
                with src.block(f"if {u} < B[{rec} + ay] and {u} < {self.prob(int(t.bt_recovery[b]))}:"):
                    src(f"p_btraits[i] &= {self.not_u8(b)}")
            with src.block(f"elif age >= {int(t.bt_init_age[b])}:"):
                with src.block(f"if {u} < B[{on} + ay] and {u} < {self.prob(int(t.bt_onset[b]))}:"):
                    src(f"p_btraits[i] |= {self.u8(b)}")

    def programmes(self, src: _Src) -> None:
        """Enrol or keep in the programme slots: the loop of :func:`programme_loop`, written
        into the month (a call with the slots' arrays cost more than the loop itself). The
        slots are values, so this code is the same for every scenario of the model."""
        src("popen = d_pg_open[ay, state]  # the slots that may enrol at this age-year and state")
        with src.block("if p_programmes[i] != 0 or popen != 0:  # else no slot can enrol or drop them"):
            self.person_key(src, "pkey", "pmk")
            programme_loop(src, len(self.cm.ctraits))

    # ---- handoffs: the triggers the transition and services record, and the section sending them
    #: the triggers (``ho_kind``, tables.HO_TRIGGERS): a transition, a discharge (a client no longer
    #: eligible: ``trigger: exit``), a detection
    HO_TRANSITION, HO_DISCHARGE, HO_DETECTION = (HO_TRIGGERS.index(k) for k in ("transition", "exit", "detection"))
    #: ho_fired: discharges in bits 0..7, detections in bits 8..15 (p_clients is a uint8 mask too)
    assert LIMITS["services"] <= 8, "ho_fired and p_clients hold at most 8 services"

    def listened(self, kind: int, s: int = -1) -> list[int]:
        """The handoffs trigger ``kind`` (from service ``s``) fires, in handoff order."""
        t = self.t
        return [h for h in range(len(t.ho_kind))
                if t.ho_kind[h] == kind and (kind == self.HO_TRANSITION or t.ho_from[h] == s)]

    def service_triggers_start(self, src: _Src) -> None:
        """At the services' start: no discharge or detection has fired (``ho_fired``), if a
        handoff listens to one."""
        if any(self.listened(k, j) for k in (self.HO_DISCHARGE, self.HO_DETECTION)
               for j in range(len(self.cm.services))):
            src("ho_fired = 0  # handoffs: bit s a discharge from service s, bit 8 + s a detection")

    def trigger(self, src: _Src, kind: int, s: int = -1) -> None:
        """Record, for the handoffs section, that trigger ``kind`` (from service ``s``) fired here:
        a transition keeps the state it leaves (``moved_from``; ``new >= 0`` says one fired), a
        discharge or a detection sets its bit in ``ho_fired`` (discharge: bit ``s``, detection:
        bit ``8 + s``). Nothing is written when no handoff listens to the trigger."""
        if not self.listened(kind, s):
            return
        if kind == self.HO_TRANSITION:
            src("moved_from = state  # handoffs: the state a transition leaves (if new >= 0)")
        else:
            bit = s if kind == self.HO_DISCHARGE else 8 + s
            src(f"ho_fired |= {1 << bit}  # for the handoffs section")

    def send(self, src: _Src, h: int) -> None:
        """A handoff fires: the referral arrives later, or is lost."""
        to_s = int(self.t.ho_to[h])
        u = self.uniform(src, rng.D_HANDOFF + h)
        with src.block(f"if {u} < d_ho_prob[{h}, muni]:"):
            with src.block("if p_ref_service[i] < 0:"):
                src(f"p_ref_service[i] = {to_s}", f"p_ref_due[i] = month + d_ho_delay[{h}, muni]")
        with src.block("else:"):
            src(f"t_sv[{to_s}, muni, {SV_REF_LOST}] += 1")

    def handoff_condition(self, h: int) -> str:
        """When handoff ``h`` is sent once its trigger fired: its ages, flags (and, for a
        transition, the states it leaves and enters)."""
        t = self.t
        extra = ""
        if t.ho_kind[h] == self.HO_TRANSITION:
            extra = _and(self.member("moved_from", np.flatnonzero(t.ho_from_states[h])),
                         self.member("new", np.flatnonzero(t.ho_to_states[h])))
        flags = f"(np.int32(p_flags[i]) & {int(t.ho_fmask[h])}) == {int(t.ho_fwant[h])}" if t.ho_fmask[h] else ""
        return _and(extra, _window(int(t.ho_lo[h]), int(t.ho_hi[h])), flags)

    def handoffs(self, src: _Src) -> None:
        """The referrals the month's triggers send, in the order they fired: the transition's
        (recorded by :meth:`transition`), then each service's discharge or detection (recorded by
        :meth:`services`, in service order). The draws are the handoffs' own (``rng.D_HANDOFF +
        h``, on the month's key) and a referral is read only by the referral section, after this."""
        heads = [("if new >= 0:  # a transition", self.listened(self.HO_TRANSITION))]
        for s, name in enumerate(self.cm.services):
            heads += [(f"if ho_fired & {1 << s}:  # discharged from {name}", self.listened(self.HO_DISCHARGE, s)),
                      (f"if ho_fired & {1 << (8 + s)}:  # detected by {name}", self.listened(self.HO_DETECTION, s))]
        live = []
        for head, hs in heads:
            conds = [(h, self.handoff_condition(h)) for h in hs]
            conds = [(h, c) for h, c in conds if c != "False"]
            if conds:
                live.append((head, conds))

        def emit(head, conds):
            with src.block(head):
                for h, c in conds:
                    if c == "True":
                        self.send(src, h)
                        continue
                    with src.block(f"if {c}:"):
                        self.send(src, h)

        if live and live[0][0] == heads[0][0]:
            emit(*live.pop(0))
        if live:  # most person-months no service fired: one test for them
            with src.block("if ho_fired != 0:"):
                for head, conds in live:
                    emit(head, conds)

    def transition(self, src: _Src) -> None:
        """One activity transition (recording it for the handoffs), then the new state's clocks."""
        self.trigger(src, self.HO_TRANSITION)
        self.activity(src)
        with src.block("if new >= 0:"):
            with src.block(f"if {self.member('new', self.us)} and p_us_start[i] == {int(NEVER)}:"):
                src("p_us_start[i] = month")
            src("state = new", "p_state[i] = new", "p_tis[i] = 0")
        with src.block("elif p_tis[i] < 32767:"):
            src("p_tis[i] += 1")

    def activity(self, src: _Src) -> None:
        """A scheduled event, else competing hazards (maybe gated): the new state in ``new``."""
        t = self.t
        src("new = -1")
        first = True
        for s in range(self.S):
            sc = range(int(t.st_sc_start[s]), int(t.st_sc_end[s]))
            tr = range(int(t.st_tr_start[s]), int(t.st_tr_end[s]))
            if not len(sc) and not len(tr):
                continue
            with src.block(f"{'if' if first else 'elif'} state == {s}:"):
                src(f"# ---- from {self.cm.states[s]}")
                first = False
                for e in sc:
                    due = f"age == {int(t.sc_at[e])}" if t.sc_kind[e] == 0 else f"p_tis[i] + 1 >= {int(t.sc_at[e])}"
                    cond = _and("new < 0", _window(int(t.sc_lo[e]), int(t.sc_hi[e])), due)
                    if cond == "False":
                        continue
                    with src.block(f"if {cond}:"):
                        self.destination(src, "new", int(t.sc_dstart[e]), int(t.sc_dend[e]),
                                         rng.D_SCHEDULED, "x")
                        if t.sc_flags[e]:
                            src(f"p_flags[i] |= np.uint8({int(t.sc_flags[e])})")
                if len(tr) and len(sc):
                    with src.block("if new < 0:"):
                        self.hazards(src, s, tr)
                elif len(tr):
                    self.hazards(src, s, tr)

    def hazards(self, src: _Src, s: int, tr: range) -> None:
        """Competing hazards out of state ``s``: none fires when the draw is above their bound
        for the state and age-year (``B``), or above the person's own bound, the sum of each
        hazard's ``_rate_ub`` (a power of two above ``exp(eta) >= rate``, from the linear
        predictor alone); only then are the rates (exp and log1p) computed, from the same
        linear predictors, so the results are those of computing them always."""
        t = self.t
        depth = src.depth
        u = self.uniform(src, rng.D_TRANSITION)
        src(f"if {u} < B[{bound_offset_state(s)} + ay]:")
        src.depth += 1
        etas, terms = {}, []
        for r in tr:  # a term per competing row, 0 where its rate is 0 (window, client of req)
            h, req = int(t.tr_hz[r]), int(t.tr_req[r])
            cond = _and(_window(int(t.hz_lo[h]), int(t.hz_hi[h])),
                        f"((p_clients[i] >> {req}) & 1) == 1" if req >= 0 else "True")
            if cond == "False":
                continue
            if h not in etas:
                etas[h] = self.fresh(f"eta_{_ident(self.cm.hazard_names[h])}_")
                src(f"{etas[h]} = {self.eta(h)}")
            term = f"_rate_ub({etas[h]})"
            terms.append(term if cond == "True" else f"({term} if {cond} else 0.0)")
        ub = self.fresh("_ub")
        src(f"{ub} = 0.0" + "".join(f" + {x}" for x in terms))
        src(f"if {u} < {ub}:")
        src.depth += 1
        rates = []
        for r in tr:
            h, req = int(t.tr_hz[r]), int(t.tr_req[r])
            if req < 0:
                rates.append(self.rate(src, h, etas.get(h)))
                continue
            lam = self.fresh("_l")
            with src.block(f"if ((p_clients[i] >> {req}) & 1) == 0:"):
                src(f"{lam} = 0.0")
            with src.block("else:"):
                src(f"{lam} = {self.rate(src, h, etas.get(h))}")
            rates.append(lam)
        choice = self.competing(src, rates, u, rng.D_DESTINATION)
        first = True
        for j, r in enumerate(tr):
            g = int(t.tr_gate[r])
            if g < 0:
                continue
            with src.block(f"{'if' if first else 'elif'} {choice} == {j}:"):
                first = False
                src(f"t_sv[{g}, muni, {SV_GATE_TRIED}] += 1")
                u = self.uniform(src, rng.D_GATE)
                with src.block(f"if {u} >= d_admit_p[{g}, muni]:"):
                    src(f"t_sv[{g}, muni, {SV_GATE_REFUSED}] += 1")
                with src.block("else:"):
                    src(f"new = {int(t.tr_to[r])}")
                    if t.tr_flags[r]:
                        src(f"p_flags[i] |= np.uint8({int(t.tr_flags[r])})")
        if all(t.tr_gate[r] >= 0 for r in tr):
            src.depth = depth
            return
        if not first:
            src("else:")
            src.depth += 1
        src(f"new = {self.table(t.tr_to[tr.start:tr.stop])}[{choice}]")
        if any(t.tr_flags[r] for r in tr):
            src(f"p_flags[i] |= np.uint8({self.table(t.tr_flags[tr.start:tr.stop])}[{choice}])")
        src.depth = depth

    def need(self, s: int) -> str:
        t = self.t
        if t.sv_nend[s] == t.sv_nstart[s]:
            return "True"
        parts = []
        for n in range(int(t.sv_nstart[s]), int(t.sv_nend[s])):
            idx = int(t.nd_idx[n])
            if t.nd_kind[n] == 2:
                parts.append(f"state == {idx}")
                continue
            if t.nd_kind[n] == 3:
                parts.append(f"(float((p_flags[i] >> {idx}) & 1) == {self.F('nd_thr', n)})")
                continue
            v = f"p_ctraits[{idx}, i]" if t.nd_kind[n] == 0 else f"float((p_btraits[i] >> {idx}) & 1)"
            parts.append(f"({v} {'<' if t.nd_below[n] else '>'} {self.F('nd_thr', n)})")
        return "(" + " or ".join(parts) + ")"

    def services(self, src: _Src) -> None:
        t = self.t
        self.service_triggers_start(src)
        for s, name in enumerate(self.cm.services):
            src(f"# service {s}: {name}")
            elig = _and(self.member("state", np.flatnonzero(t.sv_states[s])),
                        _window(int(t.sv_lo[s]), int(t.sv_hi[s])))
            if t.sv_kind[s] == 1:
                if elig != "False":
                    with src.block(f"if {elig}:"):
                        src(f"t_sv[{s}, muni, {SV_CLIENTS}] += 1")
                continue
            bit, nbit, base = self.u8(s), self.not_u8(s), rng.D_SERVICE + rng.SERVICE_DRAWS * s
            el = self.fresh("_el")
            src(f"{el} = {elig}")
            with src.block(f"if p_clients[i] & {bit}:"):
                u = self.uniform(src, base + 2)
                with src.block(f"if (not {el}) or {u} < {self.F('sv_discharge', s)}:"):
                    src(f"p_clients[i] &= {nbit}", f"t_sv[{s}, muni, {SV_DISCHARGED}] += 1")
                    with src.block(f"if not {el}:"):
                        src("pass")
                        self.trigger(src, self.HO_DISCHARGE, s)
                with src.block("else:"):
                    src(f"t_sv[{s}, muni, {SV_CLIENTS}] += 1")
            with src.block(f"elif p_waiting[i] & {bit}:"):
                with src.block(f"if not {el}:"):
                    src(f"p_waiting[i] &= {nbit}")
                with src.block("else:"):
                    u = self.uniform(src, base)
                    with src.block(f"if {u} < d_admit_p[{s}, muni]:"):
                        src(f"p_waiting[i] &= {nbit}", f"p_clients[i] |= {bit}",
                            f"t_sv[{s}, muni, {SV_ADMITTED}] += 1",
                            f"t_sv[{s}, muni, {SV_CLIENTS}] += 1")
                    with src.block("else:"):
                        src(f"t_sv[{s}, muni, {SV_WAITING}] += 1")
            with src.block(f"elif {el} and {self.need(s)}:"):
                src(f"t_sv[{s}, muni, {SV_IN_NEED}] += 1")
                u = self.uniform(src, base + 1)
                with src.block(f"if {u} < d_detect_p[{s}, muni]:"):
                    src(f"p_waiting[i] |= {bit}", f"t_sv[{s}, muni, {SV_DETECTED}] += 1",
                        f"t_sv[{s}, muni, {SV_WAITING}] += 1")
                    self.trigger(src, self.HO_DETECTION, s)

    def referral(self, src: _Src) -> None:
        src("r = p_ref_service[i]")
        with src.block("if r >= 0 and p_ref_due[i] <= month:"):
            src("rbit = np.uint8(1 << r)")
            with src.block("if _SV_STATES[r, state] and _SV_LO[r] <= age < _SV_HI[r] "
                           "and (p_clients[i] & rbit) == 0:"):
                with src.block("if (p_waiting[i] & rbit) == 0:"):
                    src("p_waiting[i] |= rbit", f"t_sv[r, muni, {SV_WAITING}] += 1")
                src(f"t_sv[r, muni, {SV_REF_ARRIVED}] += 1")
            with src.block("else:"):
                src(f"t_sv[r, muni, {SV_REF_EXPIRED}] += 1")
            src("p_ref_service[i] = -1")

    def groups(self, src: _Src, line: str, unsigned: bool = False) -> None:
        """Emit ``line`` once per output group ``g``, with ``c`` the person's category (an
        unsigned index in the month kernel)."""
        for g, a in enumerate(self.t.grp_attr):
            c = f"p_attrs[{int(a)}, i]"
            src(line.format(g=g, c=f"np.uint64({c})" if unsigned else c))

    def bookkeeping(self, src: _Src) -> None:
        """NEET spells, completion within five years, and the tallies."""
        src(f"nm = {self.member('state', np.flatnonzero(self.t.st_neet))}")
        with src.block("if nm:"):
            src("p_neet_spell[i] = min(p_neet_spell[i] + 1, 32767)",
                "p_out_spell[i] = min(p_out_spell[i] + 1, 255)",
                "p_months_neet[i] = min(p_months_neet[i] + 1, 32767)",
                "if p_neet_spell[i] >= 12:", f"    p_flags[i] |= {self.u8(FLAG_LONG_NEET)}")
        with src.block("else:"):
            src("p_neet_spell[i] = 0")
            # the duration the hazards read (neet_spell_years) is kept through a NAV programme
            # month (neither counted nor reset); work and education end it (docs/model.md)
            prog = [k for k, n in enumerate(self.cm.states) if self.cm.cfg.states[n].role == "nav_programme"]
            if prog:
                with src.block(f"if not {self.member('state', prog)}:"):
                    src("p_out_spell[i] = 0")
            else:
                src("p_out_spell[i] = 0")
        src("us0 = p_us_start[i]")
        with src.block(f"if us0 != {int(NEVER)} and month - us0 == 60:"):
            src(f"done = (p_flags[i] >> {self.us_flag}) & 1" if self.us_flag >= 0 else "done = 0",
                f"t_cohort[co, {CO_US_DUE}] += 1", f"t_cohort[co, {CO_US_DONE}] += done")
            self.groups(src, f"t_cohort_grp[{{g}}, {{c}}, co, {CO_US_DUE}] += 1", unsigned=True)
            self.groups(src, f"t_cohort_grp[{{g}}, {{c}}, co, {CO_US_DONE}] += done", unsigned=True)
        with src.block("if age >= 180:"):
            src(f"t_cohort[co, {CO_EXPO_M}] += 1", f"t_cohort[co, {CO_NEET_M}] += nm")
            self.groups(src, f"t_cohort_grp[{{g}}, {{c}}, co, {CO_EXPO_M}] += 1", unsigned=True)
            self.groups(src, f"t_cohort_grp[{{g}}, {{c}}, co, {CO_NEET_M}] += nm", unsigned=True)
        src("ayu = np.uint64(ay)", "su = np.uint64(state)",
            "t_age_state[ayu, su] += 1", "t_muni_pop[muni, ayu] += 1",
            "t_muni_state[muni, su] += 1")
        self.groups(src, "t_grp[{g}, {c}, ayu, su] += 1", unsigned=True)
        src("# the traits' range at the end of the month: next month's bounds (HazardBounds)")
        self.widen_trange(src, "_tr{k}_lo", "_tr{k}_hi")

    def widen_trange(self, src: _Src, lo: str, hi: str) -> None:
        """Widen each continuous trait's range (``lo``, ``hi``: where trait ``{k}``'s bounds are
        kept) by person ``i``'s value (a NaN, not started, widens nothing)."""
        for k in range(len(self.cm.ctraits)):
            v, lk, hk = self.fresh("_ve"), lo.format(k=k), hi.format(k=k)
            src(f"{v} = np.float64(p_ctraits[{k}, i])", f"if {v} < {lk}:", f"    {lk} = {v}",
                f"if {v} > {hk}:", f"    {hk} = {v}")

    # ---- the two kernels ---------------------------------------------------------------------
    def age_out(self, src: _Src) -> None:
        with src.block(f"if age >= {MAX_MONTHS}:"):
            src("p_alive[i] = 0", f"t_events[{EV_AGED_OUT}] += 1",
                f"long_neet = (p_flags[i] >> {FLAG_LONG_NEET}) & 1",
                f"hb = 1 if {self.member('state', self.hb)} else 0",
                f"t_cohort[co, {CO_AGED_OUT}] += 1",
                f"t_cohort[co, {CO_AGED_OUT_LONG}] += long_neet",
                f"t_cohort[co, {CO_AGED_OUT_HB}] += hb")
            self.groups(src, f"t_cohort_grp[{{g}}, {{c}}, co, {CO_AGED_OUT}] += 1", unsigned=True)
            self.groups(src, f"t_cohort_grp[{{g}}, {{c}}, co, {CO_AGED_OUT_LONG}] += long_neet", unsigned=True)
            self.groups(src, f"t_cohort_grp[{{g}}, {{c}}, co, {CO_AGED_OUT_HB}] += hb", unsigned=True)
            src("continue")

    def covariates(self, src: _Src) -> None:
        """The person's key for the month, age-year, effect mask, and the start-of-month fields the
        covariates read (:meth:`snapshot`); each covariate is written out where a predictor reads it."""
        self.person_key(src, "key", "mk")
        u12 = self.const("np.uint64(12)", "_U12")
        src(f"ay = np.int64(np.uint64(age) // {u12})  # age >= 0: unsigned division, no floor fix-up",
            EFFECT_MASK)
        self.snapshot(src)

    def exits(self, src: _Src) -> None:
        t = self.t
        depth = src.depth
        u = self.uniform(src, rng.D_EXIT)
        src(f"if {u} < B[{BOUND_EXIT} + ay]:")
        src.depth += 1
        rates = [self.rate(src, int(h)) for h in t.ex_hz]
        which = self.competing(src, rates, u, rng.D_EXIT_WHICH)
        src("p_alive[i] = 0", f"t_events[1 + {which}] += 1", "continue")
        src.depth = depth

    def traits(self, src: _Src) -> None:
        self.init_traits(src, at_entry=False)
        self.trait_dynamics(src)

    def section(self, src: _Src, comp: month.Component) -> None:
        """Component ``comp``'s section of the kernel, under its title (skipped when empty)."""
        if comp.name == "exits" and not len(self.t.ex_hz):
            return
        src(f"# ==== {comp.title}")
        getattr(self, comp.emit)(src)

    # ---- the two kernels ---------------------------------------------------------------------
    def month_chunk(self, src: _Src) -> None:
        """One month of life for ids [id0, id1): the components of month.MONTH, in order."""
        args = ", ".join(("id0", "id1") + POP_ARGS + ("F", "B") + DYN_ARGS + ("prog",) + TALLY_ARGS
                         + ("trange", "month", "seed_key", "cap"))
        src("@njit(cache=True, nogil=True, _nrt=False, error_model='numpy', fastmath=FAST, no_rewrites=True, no_cfunc_wrapper=True, pipeline_class=LeanCompiler)")
        with src.block(f"def month_chunk({args}):"):
            src('"""One month of life for ids [id0, id1) (the components of utenforsk/core/month.py)."""',
                "mk = seed_key ^ (np.uint64(month + 100000) * _PM)",
                f"pmk = seed_key ^ (np.uint64({PERSON_MONTH + 100000}) * _PM)",
                "i = id0 % cap - 1  # the slot pid % cap, advanced without a division per person")
            CT = len(self.cm.ctraits)
            src(*(f"_tr{k}_{e} = trange[{k}, {j}]" for k in range(CT) for j, e in enumerate(("lo", "hi"))))
            first = len(src.lines)
            with src.block("for pid in range(id0, id1):"):
                src("i += 1", "if i == cap:", "    i = 0",
                    "iu = np.uint64(i)  # the slot as an unsigned index: no negative-index fix-up per access",
                    "if p_alive[i] == 0:", "    continue",
                    "age = month - p_birth[i]",
                    f"co = np.uint64(p_birth[i] + {COHORT_OFFSET}) // {self.const('np.uint64(12)', '_U12')}",
                    "muni = np.uint64(p_area[i])  # the service area (a type, or a municipality)",
                    "state = p_state[i]")
                for comp in month.MONTH:
                    self.section(src, comp)
            # every person field is indexed by the unsigned slot (numba adds a wrap-around test to
            # each access with a signed index; 10-15% of the month at 10^5 people)
            src.lines[first:] = [_SLOT_INDEX.sub(r"\1iu]", ln) for ln in src.lines[first:]]
            src(*(f"trange[{k}, {j}] = _tr{k}_{e}" for k in range(CT) for j, e in enumerate(("lo", "hi"))))

    def attributes(self, src: _Src) -> None:
        """Each attribute's category, given the one it depends on (birth or arrival shares)."""
        t = self.t
        A = len(t.attr_given)
        kmax = int(t.attr_cum_birth.shape[2]) if A else 1
        for a in range(A):
            g = int(t.attr_given[a])
            u, c = self.uniform(src, rng.D_ATTRIBUTE + a), f"_cat{a}"
            row = f"cum0 + {a * kmax * kmax}" + ("" if g < 0 else f" + p_attrs[{g}, i] * {kmax}")
            src(f"{c} = 0", f"while {c} < {kmax - 1} and {u} >= F[{row} + {c}]:",
                f"    {c} += 1", f"p_attrs[{a}, i] = {c}")

    def entry_reset(self, src: _Src) -> None:
        """Every person field of the reused slot at its entry value (population.ENTRY_VALUES;
        the fields ``SetBy`` a component are set in its section)."""
        rows = {"attrs": len(self.t.attr_given), "ctraits": len(self.cm.ctraits)}
        assert set(rows) == set(ROW_FIELDS), "a person field [row, slot] without its number of rows"
        for f, v in ENTRY_VALUES.items():
            if isinstance(v, SetBy):
                continue
            if f in rows:
                src(*(f"p_{f}[{k}, i] = {v}" for k in range(rows[f])))
            else:
                src(f"p_{f}[i] = {v}")

    def entrants(self, src: _Src) -> None:
        """A newborn's or an arrival's state, service area, traits and flags (over the values of
        :meth:`entry_reset`); the cohort's entry count."""
        t = self.t
        src(f"p_state[i] = {int(t.birth_state)}")
        # the service area: the type, or with services per municipality (d_kidx not empty) the
        # person's real municipality, drawn within the type (municipalities.kommune_row)
        src(f"mtype = p_attrs[{self.muni_attr}, i]  # the municipality type")
        with src.block("if d_kidx.shape[0] > 0:"):
            src("p_area[i] = kommune_row(seed_key, pid, mtype, d_kidx, d_kcdf)")
        with src.block("else:"):
            src("p_area[i] = mtype")
        # the per-area inputs a covariate reads (d_kre, d_quality) are indexed by the service area,
        # as in the month (they were read at the type's row before: 0-3 of the municipalities)
        src("muni = np.int64(p_area[i])")
        with src.block("if arrival:"):
            src("pass")
            for r in range(len(t.ar_lo)):
                win = _window(int(t.ar_lo[r]), int(t.ar_hi[r]))
                with src.block(f"{'if' if r == 0 else 'elif'} {win}:"):
                    st = self.fresh("_st")
                    self.destination_reread(src, st, int(t.ar_dstart[r]), int(t.ar_dend[r]),
                                            rng.D_ARRIVAL_STATE)
                    src(f"p_state[i] = {st}")
                    self.arrival_traits(src, r)
            with src.block(f"if {self.member('p_state[i]', self.us)}:"):
                src("p_us_start[i] = month")
        with src.block("else:"):
            src("pass")
            self.init_traits(src, at_entry=True)
        src(f"co = (birth + {COHORT_OFFSET}) // 12", f"t_cohort[co, {CO_ENTERED}] += 1")
        self.groups(src, f"t_cohort_grp[{{g}}, {{c}}, co, {CO_ENTERED}] += 1")

    def enter_chunk(self, src: _Src) -> None:
        """Initialise entrants ``ids``: the components of month.ENTRY, in order."""
        args = ", ".join(("ids", "births") + POP_ARGS + ("F",) + DYN_ARGS + ("prog",) + TALLY_ARGS
                         + ("trange", "arrival", "month", "seed_key", "cap", "cum_entries", "births_sched"))
        src("@njit(cache=True, nogil=True, _nrt=False, error_model='numpy', fastmath=FAST, no_rewrites=True, no_cfunc_wrapper=True, pipeline_class=LeanCompiler)")
        with src.block(f"def enter_chunk({args}):"):
            src('"""Initialise entrants (the components of utenforsk/core/month.py: ENTRY)."""',
                f"cum0 = {self.off['attr_cum_arrival']} if arrival else {self.off['attr_cum_birth']}",
                "mk = seed_key ^ (np.uint64(month + 100000) * _PM)")
            with src.block("for j in range(ids.shape[0]):"):
                src("pid = ids[j]", "birth = births[j]", "i = pid % cap")
                self.person_key(src, "key", "mk")
                src("age = month - birth")
                for comp in month.ENTRY:
                    self.section(src, comp)
                src("# the entrant's traits widen the range the month's bounds read")
                self.widen_trange(src, "trange[{k}, 0]", "trange[{k}, 1]")

    def rates_oracle(self) -> str:
        """A module with ``largest_rates(slots, ages, <population>, F, <dyn>, prog, TR, EX, BT)``:
        each person's actual total transition rate, total exit rate and binary-trait onset and
        recovery probabilities, written by the same emitters as the month, folded into their
        maxima by state (or trait) and age-year. The bounds tests hold the draw-first bounds
        against it (tests/test_codegen.py)."""
        t, src = self.t, _Src()
        args = ", ".join(("slots", "ages") + POP_ARGS + ("F",) + DYN_ARGS + ("prog", "TR", "EX", "BT"))
        src("@njit")
        with src.block(f"def largest_rates({args}):"):
            with src.block("for j in range(slots.shape[0]):"):
                src("i = slots[j]", "age = ages[j]", "ay = age // 12", "state = p_state[i]",
                    "muni = np.int64(p_area[i])", EFFECT_MASK)
                self.snapshot(src)
                for st in range(self.S):
                    tr = range(int(t.st_tr_start[st]), int(t.st_tr_end[st]))
                    if len(tr):
                        with src.block(f"if state == {st}:"):
                            rates = [self.rate(src, int(t.tr_hz[r])) for r in tr]
                            src(f"TR[{st}, ay] = max(TR[{st}, ay], 0.0" + "".join(f" + {r}" for r in rates) + ")")
                rates = [self.rate(src, int(h)) for h in t.ex_hz]
                src("EX[ay] = max(EX[ay], 0.0" + "".join(f" + {r}" for r in rates) + ")")
                for b in range(len(t.bt_onset)):
                    src(f"BT[{b}, 0, ay] = max(BT[{b}, 0, ay], {self.prob(int(t.bt_onset[b]))})",
                        f"BT[{b}, 1, ay] = max(BT[{b}, 1, ay], {self.prob(int(t.bt_recovery[b]))})")
        head = _module_head() + [f"{name} = {value}" for name, value in sorted(self.consts.items())]
        return "\n".join(head) + HELPERS.replace("cache=True, ", "") + "\n\n" + src.text()

    def module(self) -> str:
        body = _Src()
        self.month_chunk(body)
        body("", "")
        self.enter_chunk(body)
        t = self.t
        head = _module_head() + [
                f"_SV_STATES = np.array({np.asarray(t.sv_states, bool).tolist()!r}, dtype=np.bool_)",
                f"_SV_LO = np.array({np.asarray(t.sv_lo, np.int64).tolist() or [0]!r}, dtype=np.int64)",
                f"_SV_HI = np.array({np.asarray(t.sv_hi, np.int64).tolist() or [0]!r}, dtype=np.int64)"]
        head += [f"{name} = {value}" for name, value in sorted(self.consts.items())]
        head.append(HELPERS)
        return "\n".join(head) + "\n\n\n" + body.text()


@lru_cache(maxsize=1)
def _helpers_digest() -> str:
    """Digest of the compiled helpers the kernels call from other files (kernel.py's, rng.py's,
    municipalities.kommune_row). numba's on-disk cache checks only the cached function's own
    file, so without this a changed helper would leave kernels compiled against the old one;
    with it in the source, a changed helper gives a new kernel file (kernel_cache.load)."""
    import hashlib
    import inspect
    from pathlib import Path

    from utenforsk.core import kernel
    from utenforsk.pilots import municipalities
    h = hashlib.sha256()
    for path in (kernel.__file__, rng.__file__):
        h.update(Path(path).read_bytes())
    h.update(inspect.getsource(municipalities.kommune_row.py_func).encode())
    return h.hexdigest()[:16]


def _module_head() -> list[str]:
    """The generated module's imports and the random-number constants."""
    return [f'"""Generated by utenforsk.core.codegen (version {GENERATOR_VERSION}) for one model structure."""',
            f"# compiled helpers (kernel.py, rng.py, municipalities.kommune_row): {_helpers_digest()}",
            "import math", "import numpy as np", "from numba import njit",
            "from utenforsk.core.kernel import FAST, arrival_donor, programme_effect as _pe",
            "from utenforsk.core.kernel import programme_match",
            "from utenforsk.pilots.municipalities import kommune_row",
            "from utenforsk.core.kernel_cache import LeanCompiler", "",
            f"_M1 = np.uint64({int(rng.M1)})", f"_M2 = np.uint64({int(rng.M2)})",
            f"_PP = np.uint64({int(rng.P_PERSON)})", f"_GOLDEN = np.uint64({int(rng.GOLDEN)})", f"_PM = np.uint64({int(rng.P_MONTH)})",
            "_S11, _S16, _S27, _S30, _S31, _S32, _S48 = (np.uint64(n) for n in (11, 16, 27, 30, 31, 32, 48))",
            "_MASK16 = np.uint64(0xFFFF)", f"_INV53 = {rng.INV53!r}",
            "_P2 = 2.0 ** np.arange(-60, 31)  # _rate_ub's powers of two"]


#: a person's effect mask at the start of the month: bit k for slot k enrolled, bit 16 + k for
#: slot k whose programme ended and whose effects persist (``prog.after``; the rows 16 + k of
#: ``prog.hz/de/dy`` hold persistence x row k); equal to ``p_programmes[i]`` for anyone never in
#: such a slot, so a scenario without persistence reads exactly what it read before
EFFECT_MASK = (f"pm = np.int64(p_programmes[i]) | ((np.int64(p_pg_ever[i]) & ~np.int64(p_programmes[i]) "
               f"& prog.after[0]) << {MAX_PROGRAMMES})  # effects at the start of the month")


def programme_loop(src: _Src, n_ctraits: int) -> None:
    """The programme slots' month for person ``i`` (the one definition; :func:`programme_step_source`
    wraps the same lines as a function for tests). Enrolled while matching ``who`` and
    ``u < coverage * take_up``, where ``u`` is the person's own draw for that intervention: keyed
    by a hash of its name (``prog.draw``), the same every month and in every scenario, whatever
    the slot. A trait shift applies once per person, at their first enrolment (``p_pg_ever``).
    A programme with a period ends each enrolled month with probability ``prog.pexit[k]``
    (1 / duration_months), drawn on the month's ``key`` with the intervention's own decision code,
    and is not taken again (``prog.once``). Only the slots that can act are visited, in slot
    order: those enrolled in, and those that may enrol the person (``popen``: in the month kernel
    the slots with coverage this month whose age window touches the person's age-year and whose
    states hold their state, ``Dyn.pg_open``, slots.open_cells; in :func:`programme_step_source`
    every slot with coverage, :data:`ACTIVE_SLOTS`). Any other slot would enrol nobody, and
    visiting it cost most of the section (a draw each)."""
    src("pslots = np.int64(p_programmes[i]) | popen  # slots that can act on this person",
        "k = -1")
    with src.block("while pslots != 0:"):
        src("k += 1", "pact = pslots & 1", "pslots >>= 1", "if pact == 0:", "    continue")
        src("pbit = np.uint16(1 << k)", "pcov = d_pg_cover[k]",
            "inside = pcov > 0.0 and prog.lo[k] <= age < prog.hi[k] and prog.states[k, state] "
            "and prog.area_ok[k, muni]")
        with src.block("if p_programmes[i] & pbit:"):
            with src.block("if inside and (prog.sticky[k] or "
                           "programme_match(k, i, p_attrs, p_ctraits, p_btraits, prog)) "
                           "and not (prog.pexit[k] > 0.0 and "
                           "_uniform(key + prog.draw[k] * _GOLDEN) < prog.pexit[k]):"):
                src(f"t_prog[k, {PG_MONTHS}] += 1")
            with src.block("else:  # left the window, or the programme period ended"):
                src("p_programmes[i] &= ~pbit")
        with src.block("elif inside and not (prog.once[k] and (p_pg_ever[i] & pbit) != 0) "
                       "and _uniform(pkey + prog.draw[k] * _GOLDEN) < pcov "
                       "and programme_match(k, i, p_attrs, p_ctraits, p_btraits, prog):"):
            src("p_programmes[i] |= pbit", f"t_prog[k, {PG_ENROLLED}] += 1",
                f"t_prog[k, {PG_MONTHS}] += 1")
            with src.block("if (p_pg_ever[i] & pbit) == 0:  # a trait shift once per person"):
                src("p_pg_ever[i] |= pbit")
                for t in range(n_ctraits):
                    with src.block(f"if prog.shift[k, {t}] != 0.0 and p_ctraits[{t}, i] == p_ctraits[{t}, i]:"):
                        src(f"p_ctraits[{t}, i] = np.float32(p_ctraits[{t}, i] + prog.shift[k, {t}])")


#: the slots with coverage this month, as a bit mask (:func:`programme_step_source`'s ``popen``)
ACTIVE_SLOTS = ("popen = 0", f"for k in range({MAX_PROGRAMMES}):", "    if d_pg_cover[k] > 0.0:",
                "        popen |= 1 << k")


def helpers_namespace() -> dict:
    """The generated modules' helpers (``_uniform``, ``_rate``, ...) compiled on their own, for
    tests of the arithmetic every kernel uses."""
    ns: dict = {}
    exec("\n".join(_module_head()) + HELPERS.replace("cache=True, ", ""), ns)
    return ns


def programme_step_source(n_ctraits: int) -> str:
    """A module with ``programme_step(i, pkey, key, age, state, p_programmes, p_pg_ever, p_attrs,
    p_ctraits, p_btraits, prog, d_pg_cover, t_prog)``: the month kernel's own slot loop
    (:func:`programme_loop`) as a function, so a test can run one person through it (``pkey``:
    the person's key, ``key``: the month's)."""
    src = _Src()
    src("@njit", "def programme_step(i, pkey, key, age, state, p_programmes, p_pg_ever, p_attrs, "
        "p_ctraits, p_btraits, prog, d_pg_cover, t_prog, muni=0):")
    src.depth += 1
    src(*ACTIVE_SLOTS)
    programme_loop(src, n_ctraits)
    return "\n".join(_module_head()) + HELPERS.replace("cache=True, ", "") + "\n\n" + src.text()


#: small functions the kernels call: each call site is cheaper for numba to compile than the
#: same operations written out (measured), and LLVM inlines all but ``_rate``
HELPERS = f'''

@njit(cache=True, nogil=True, _nrt=False, error_model='numpy', fastmath=FAST)
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, nogil=True, _nrt=False, error_model='numpy', fastmath=FAST)
def _uniform(z):
    """rng.uniform(key, decision), given z = key + decision * GOLDEN."""
    return float(_mix(z) >> _S11) * _INV53


@njit(cache=True, nogil=True, _nrt=False, error_model='numpy', fastmath=FAST)
def _rate(eta):
    """kernel._hazard_rate inside the age window: softplus(eta), a series for small exp(eta)."""
    y = math.exp(eta)
    if y < 0.015625:
        return y * (1.0 - y * (0.5 - y * (0.3333333333333333 - y * (0.25 - y * 0.2))))
    return min(math.log1p(y), {RATE_CAP!r})


@njit(cache=True, nogil=True, _nrt=False, error_model='numpy', fastmath=FAST)
def _rate_ub(eta):
    """An upper bound of ``_rate(eta)`` without exp: 2 ** k with k = floor(eta / ln 2 + 1.01),
    at least exp(eta) * 2 ** 0.01 (above exp's and the sum's rounding), clamped to 2 ** -60
    below (exp(eta) is smaller there) and 2 ** 30 above (the rate's cap is smaller); NaN reads
    as the lowest (a NaN rate never fires)."""
    z = eta * 1.4426950408889634 + 61.01
    z = z if z > 0.0 else 0.0  # (NaN too)
    z = z if z < 90.0 else 90.0
    return _P2[np.int64(z)]


@njit(cache=True, nogil=True, _nrt=False, error_model='numpy', fastmath=FAST)
def _nz(v):
    """A continuous trait's value as a covariate: 0 before it has started (NaN)."""
    x = np.float64(v)
    return x if x == x else 0.0
'''


def rates_oracle_source(cm: CompiledModel, muni_attr: int, us_flag: int, us_states, hb_states) -> str:
    """The bounds tests' oracle for ``cm`` (see :meth:`_Generator.rates_oracle`)."""
    return _Generator(cm, muni_attr, us_flag, us_states, hb_states).rates_oracle()


def kernel_source(cm: CompiledModel, muni_attr: int, us_flag: int, us_states, hb_states) -> str:
    """The generated module's source for ``cm``'s structure (values are read from ``F``)."""
    return _Generator(cm, muni_attr, us_flag, us_states, hb_states).module()


assert all(callable(getattr(_Generator, c.emit, None)) for c in month.MONTH + month.ENTRY), \
    "a component of the run plan has no emitter in _Generator"
_READABLE = set(POP_ARGS) | set(DYN_ARGS) | {"covariates", "B", "prog"}
assert all(r in _READABLE for c in month.COMPONENTS for r in c.reads), \
    f"a component reads something the kernel is not given: {[r for c in month.COMPONENTS for r in c.reads if r not in _READABLE]}"
