"""The generated month kernel (utenforsk/core/codegen.py) against the table-driven kernel.

The generated kernel must be the same model, not an approximation of it: same order of
operations, same random numbers, so every person, every tally and every reported month must be
identical, bit for bit. A difference anywhere (a wrong covariate index, a missed window, a swapped
draw) changes trajectories and fails these tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from utenforsk.core import codegen
from utenforsk.core.tables import CompiledModel
from utenforsk.errors import ConfigError
from utenforsk.model import UtenforskModel, resolve_config

BASELINE = "configs/norway/baseline.yaml"
ALL_INTERVENTIONS = ["thousand_days", "kindergarten_enrolment", "kindergarten_quality",
                     "early_school_support", "dropout_prevention", "ot_reengagement",
                     "nav_youth_guarantee", "ips_youth", "cross_sector_coordination"]


def _run(kind: str, config=BASELINE, **kw) -> UtenforskModel:
    m = UtenforskModel(config, kernel_kind=kind, **kw)
    while m.running:
        m.step()
    return m


def _assert_identical(a: UtenforskModel, b: UtenforskModel) -> None:
    for field, x, y in zip(a.pop._fields, a.pop, b.pop):
        assert np.array_equal(x, y, equal_nan=True), f"population field {field} differs"
    for field, x, y in zip(a.tally._fields, a.tally, b.tally):
        assert np.array_equal(x.sum(axis=0), y.sum(axis=0)), f"tally {field} differs"
    assert len(a.history) == len(b.history) > 0
    for ha, hb in zip(a.history, b.history):
        for k in ha:
            assert np.array_equal(np.asarray(ha[k]), np.asarray(hb[k])), f"month {ha['month']}: {k}"


@pytest.mark.parametrize("seed", [3, 11])
def test_baseline_identical_to_table_kernel(seed):
    kw = dict(seed=seed, scale=0.002, burn_in_years=30, horizon_years=3)
    gen, tab = _run("generated", **kw), _run("tables", **kw)
    assert int(gen.pop.alive.sum()) > 1500
    _assert_identical(gen, tab)


def test_interventions_identical_to_table_kernel():
    """Programmes (enrolment, trait shifts, sticky and conditional), changed handoffs, detection
    and places: every intervention in the library at once, starting in the first policy year."""
    kw = dict(seed=5, scale=0.002, burn_in_years=30, horizon_years=4, interventions=ALL_INTERVENTIONS)
    gen, tab = _run("generated", **kw), _run("tables", **kw)
    assert gen.tally.prog.sum() > 0, "no one was enrolled: the test would not exercise programmes"
    _assert_identical(gen, tab)


def test_markov_model_identical_to_table_kernel():
    kw = dict(seed=2, burn_in_years=0, horizon_years=5)
    _assert_identical(_run("generated", "tests/configs/markov.yaml", **kw),
                      _run("tables", "tests/configs/markov.yaml", **kw))


def test_threads_do_not_change_the_generated_kernel():
    kw = dict(seed=7, scale=0.002, burn_in_years=30, horizon_years=2)
    _assert_identical(_run("generated", threads=1, **kw), _run("generated", threads=2, **kw))


def _source(config, interventions=()):
    m = UtenforskModel(config, seed=1, scale=0.0005, burn_in_years=0, horizon_years=1,
                       interventions=list(interventions), kernel_kind="tables")
    return codegen.kernel_source(m.compiled, m.muni_attr, m.us_flag, m.us_states, m.hb_states)


def test_source_depends_on_structure_not_values():
    """Calibration and sensitivity change values only: they must reuse the compiled kernel."""
    base = _source(BASELINE)
    cfg = resolve_config(BASELINE, overrides={"transitions.job_finding.probability.value": 0.15})
    assert _source(cfg) == base
    assert _source(BASELINE, ["ips_youth"]) != base  # a programme is structure


def test_values_reach_the_kernel():
    """The same compiled kernel with another parameter value gives another result."""
    kw = dict(seed=4, scale=0.002, burn_in_years=10, horizon_years=1)
    a = _run("generated", **kw)
    b = _run("generated", resolve_config(BASELINE, overrides={
        "transitions.job_finding.probability.value": 0.15}), **kw)
    assert a._gen.module is b._gen.module
    assert not np.array_equal(a.pop.state, b.pop.state)


def test_float_layout_covers_every_value():
    t = CompiledModel(resolve_config(BASELINE)).tables
    off, F = codegen.float_offsets(t), codegen.float_params(t)
    for name in codegen.FLOAT_TABLES:
        values = np.ravel(np.asarray(getattr(t, name), np.float64))
        assert np.array_equal(F[off[name]:off[name] + values.size], values), name


def test_generated_file_is_written_once(tmp_path, monkeypatch):
    """numba's cache is keyed by the source file's modification time: never rewrite it."""
    monkeypatch.setenv("UTENFORSK_KERNEL_CACHE", str(tmp_path))
    src = "X = 1\n"
    codegen._write_once(tmp_path / "k.py", src)
    stamp = (tmp_path / "k.py").stat().st_mtime_ns
    codegen._write_once(tmp_path / "k.py", "X = 2\n")
    assert (tmp_path / "k.py").read_text() == src
    assert (tmp_path / "k.py").stat().st_mtime_ns == stamp
    assert codegen.cache_dir() == tmp_path
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_unknown_kernel_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="kernel"):
        UtenforskModel(BASELINE, scale=0.0005, burn_in_years=0, horizon_years=1, kernel_kind="fast")
