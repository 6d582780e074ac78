"""The linear predictors' tables of 0/1 terms (utenforsk/core/lp_tables.py) give each row's sum.

The month kernel reads a row's 0/1 terms from its table, at the index the person's bits make;
the rarely used paths (a re-read at the moment of an event, the entry kernel) still add every
term. Both forms are written by the same generator, so here they are evaluated side by side on
every living person of a simulated population, for every tabled row.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from utenforsk.config.loader import validate
from utenforsk.config.schema import ModelConfig
from utenforsk.core import codegen, covariates, lp_tables
from utenforsk.model import UtenforskModel, resolve_config

BASELINE = "configs/norway/baseline.yaml"


@pytest.fixture(scope="module")
def model():
    """The baseline, with a ``programme:`` covariate too (the baseline has none) so every 0/1 kind
    is in a table: job finding then reads whether the person is in IPS."""
    data = resolve_config(BASELINE).model_dump(by_alias=True, exclude_none=True)
    data["transitions"]["job_finding"]["coefficients"]["programme:ips_youth"] = {
        "value": 0.4, "range": [0.0, 0.8], "source": "test"}
    m = UtenforskModel(validate(ModelConfig, data, "test"), seed=11, scale=0.002, burn_in_years=30,
                       horizon_years=2, interventions=["ips_youth", "nav_youth_guarantee"])
    for _ in range(14):  # into 2026: the programmes have clients
        m.step()
    return m


def _namespace(m, g):
    ns = {"np": np, "math": math, "_nz": lambda v: 0.0 if v != v else float(v), "prog": m.prog,
          "F": m._gen.params()}
    ns.update({name: f for name, f in zip(codegen.POP_ARGS, m.pop)})
    ns.update({name: f for name, f in zip(codegen.DYN_ARGS, m.dyn)})
    for name, value in g.consts.items():
        ns[name] = eval(value, ns)
    return ns


def test_every_row_with_a_table_reads_the_sum_of_its_terms(model):
    m = model
    g = codegen._Generator(m.compiled, m.muni_attr, m.us_flag, m.us_states, m.hb_states)
    snap = codegen._Src()
    g.snapshot(snap)
    loads = compile("\n".join(ln for ln in snap.lines if not ln.lstrip().startswith("#")), "snap", "exec")
    lay = lp_tables.layout(m.compiled.tables)
    assert len(lay.rows) >= 10, "the baseline's rows have 0/1 terms: most should have tables"
    t = m.compiled.tables
    kinds = {int(t.cov_kind[t.lp_cov[j]]) for _, terms in lay.rows.values() for j in terms}
    assert kinds == set(covariates.BIT_KINDS), "every 0/1 kind is in some table"
    rows = sorted(lay.rows)
    reread = codegen._Src()
    prefix = g.reread(reread, *rows)
    rereads = compile("\n".join(reread.lines), "reread", "exec")
    tabled = {r: compile(g.lp(r), f"row{r}", "eval") for r in rows}
    added = {r: compile(g.lp(r, prefix), f"row{r}", "eval") for r in rows}
    assert all("F[np.uint64(" in g.lp(r) for r in rows) and not any("F[np.uint64(" in g.lp(r, prefix) for r in rows)
    ns = _namespace(m, g)
    slots = m.alive_slots()
    assert len(slots) > 2000
    worst = 0.0
    seen = {r: set() for r in rows}
    in_ips = 0
    for i in slots:
        i = int(i)
        ns.update(i=i, iu=i, state=int(m.pop.state[i]), age=int(m.month - m.pop.birth[i]),
                  muni=np.uint64(m.pop.area[i]))
        in_ips += int(m.pop.programmes[i] != 0)
        exec(loads, ns)
        exec(rereads, ns)
        for r in rows:
            a, b = eval(tabled[r], ns), eval(added[r], ns)
            worst = max(worst, abs(a - b) / max(1.0, abs(b)))
            seen[r].add(round(b, 9))
    # the sums differ only in their order: a few units in the last place of a handful of terms
    assert worst < 1e-13, worst
    assert in_ips > 0, "someone is enrolled: the programme bit is read as 1 somewhere"
    # and the rows are not trivially constant on this population (a wrong bit would show)
    assert sum(len(v) > 2 for v in seen.values()) >= len(rows) // 2


def test_an_edited_coefficient_reaches_the_table(model):
    """params() (the month's ``F``) rebuilds the tables from ``lp_beta``: a plugin's edit counts."""
    m = model
    t = m.compiled.tables
    lay = lp_tables.layout(t)
    row, (at, terms) = next(iter(lay.rows.items()))
    off = m._gen.params().shape[0] - lay.size
    before = m._gen.params()[off + at:off + at + (1 << len(terms))].copy()
    old = t.lp_beta[terms[0]]
    try:
        t.lp_beta[terms[0]] = old + 1.0
        after = m._gen.params()[off + at:off + at + (1 << len(terms))]
    finally:
        t.lp_beta[terms[0]] = old
    odd = np.arange(1 << len(terms)) & 1 == 1  # the entries where the first term's bit is 1
    np.testing.assert_allclose(after[odd] - before[odd], 1.0, rtol=0, atol=1e-12)
    assert np.array_equal(after[~odd], before[~odd])


def test_values_are_each_entrys_terms_in_order():
    """Against a plain loop over the entries (the same order, so the same bits)."""
    rng = np.random.default_rng(5)

    class T:  # a tiny model: three rows over five covariates, kinds attribute/trait/flag/state
        cov_kind = np.array([0, 1, 3, 4, 0], np.int32)
        lp_start = np.array([0, 4, 5], np.int32)
        lp_end = np.array([4, 5, 9], np.int32)
        lp_cov = np.array([0, 1, 2, 3, 1, 4, 0, 2, 1], np.int32)
        lp_beta = rng.normal(size=9)

    lay = lp_tables.layout(T)
    assert set(lay.rows) == {0, 2}  # row 1 has no 0/1 term
    assert lay.rows[0] == (0, (0, 2, 3)) and lay.rows[2] == (8, (5, 6, 7))
    v = lp_tables.values(lay, T.lp_beta)
    for r, (at, terms) in lay.rows.items():
        for code in range(1 << len(terms)):
            s = 0.0
            for k, j in enumerate(terms):
                s = s + T.lp_beta[j] * float((code >> k) & 1)
            assert v[at + code] == s
