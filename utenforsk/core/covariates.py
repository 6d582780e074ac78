"""The covariate kinds a hazard, outcome or trait target can read, each declared once.

A covariate is named in YAML (``engagement``, ``sex=female``, ``state:school``, ...). Each kind
declares here, in one place:

- ``syntax``: how a name of that kind is written (docs and error messages);
- ``code``: its value as an expression in the generated month (utenforsk/core/codegen.py);
  ``{a}`` and ``{b}`` are the kind's two integer arguments (a trait index, an attribute and its
  category, ...), ``{state}`` the variable holding the state, ``{client}`` "is a client of
  service a";
- ``bound``: its range for the draw-first hazard bounds (utenforsk/core/bounds.py): a fixed
  ``(lo, hi)``, or ``"trait"`` (the trait's current minimum and maximum over the population),
  ``"quality"`` (the service's current quality range) or ``"age"`` (age / 12 within each
  age-year);
- ``bit``: for a kind whose value is 0 or 1, the same value as an integer expression, else
  ``None``. A linear predictor's 0/1 terms are summed once a month into a table indexed by
  these bits (utenforsk/core/lp_tables.py), and the kernel reads one entry instead of adding each term.

The kind's number is its position in :data:`KINDS`: covariates are ordered by kind in the
tables, so a new kind goes at the end (the order of existing covariates, and so every
result, stays the same).
"""

from __future__ import annotations

from typing import NamedTuple


class Kind(NamedTuple):
    name: str
    syntax: str
    code: str
    bound: tuple[float, float] | str
    bit: str | None = None


KINDS = (
    Kind("attribute", "ATTRIBUTE=CATEGORY", "np.float64(p_attrs[{a}, i] == {b})", (0.0, 1.0),
         "np.int64(p_attrs[{a}, i] == {b})"),
    Kind("trait", "TRAIT (a continuous trait; 0 before it starts)", "_nz(p_ctraits[{a}, i])", "trait"),
    Kind("binary_trait", "TRAIT (a binary trait)", "float((p_btraits[i] >> {a}) & 1)", (0.0, 1.0),
         "np.int64((p_btraits[i] >> {a}) & 1)"),
    Kind("flag", "FLAG", "float((p_flags[i] >> {a}) & 1)", (0.0, 1.0),
         "np.int64((p_flags[i] >> {a}) & 1)"),
    Kind("state", "state:STATE", "np.float64({state} == {a})", (0.0, 1.0), "np.int64({state} == {a})"),
    Kind("service", "service:SERVICE (a client of it)", "np.float64({client})", (0.0, 1.0),
         "np.int64({client})"),
    # quality >= 0 is finite, so q * 0.0 == 0.0 and q * 1.0 == q
    Kind("quality", "quality:SERVICE (its quality, if a client)", "d_quality[{a}, muni] * np.float64({client})",
         "quality"),
    Kind("programme", "programme:INTERVENTION (enrolled in it)",  # the slot is a value
         "float((np.int64(p_programmes[i]) >> prog.ref[{a}]) & 1)", (0.0, 1.0),
         "((np.int64(p_programmes[i]) >> prog.ref[{a}]) & 1)"),
    Kind("age", "age_years", "age / 12.0", "age"),
    Kind("spell", "neet_spell_years (capped at 3; kept through NAV programmes)",
         "min(p_out_spell[i], 36) / 12.0", (0.0, 3.0)),
    Kind("tis", "years_in_state (capped at 10)", "min(p_tis[i], 120) / 12.0", (0.0, 10.0)),
    # the person's municipality's random intercept (municipality_effects; 0 with services per type)
    Kind("kommune", "kommune:EFFECT (the municipality's intercept of a municipality_effects entry)",
         "d_kre[{a}, muni]", "kommune"),
)
KIND = {k.name: n for n, k in enumerate(KINDS)}
(K_ATTR, K_TRAIT, K_BTRAIT, K_FLAG, K_STATE, K_SERVICE, K_QUALITY, K_PROGRAMME, K_AGE, K_SPELL,
 K_TIS, K_KOMMUNE) = (KIND[n] for n in ("attribute", "trait", "binary_trait", "flag", "state", "service",
                                        "quality", "programme", "age", "spell", "tis", "kommune"))
N_KINDS = len(KINDS)
#: names that are covariates by themselves (no argument)
DERIVED = {"age_years": K_AGE, "neet_spell_years": K_SPELL, "years_in_state": K_TIS}
#: ``PREFIX:NAME`` covariates: prefix -> kind
PREFIXED = {"state": K_STATE, "service": K_SERVICE, "quality": K_QUALITY, "programme": K_PROGRAMME,
            "kommune": K_KOMMUNE}
#: kinds that read "is a client of service a"
CLIENT_KINDS = (K_SERVICE, K_QUALITY)

assert len(set(KIND)) == len(KINDS), "a covariate kind is declared twice"
#: kinds whose value is 0 or 1 (a ``bit``): their terms can come from a linear predictor's table
BIT_KINDS = tuple(n for n, k in enumerate(KINDS) if k.bit is not None)

assert all((k.bit is not None) == (k.bound == (0.0, 1.0)) for k in KINDS), \
    "a kind bounded by (0, 1) must declare its bit, and only such a kind"
assert all(isinstance(k.bound, tuple) or k.bound in ("trait", "quality", "age", "kommune") for k in KINDS)
