"""Declarative hypotheses about scenario effects, tested on paired replicates.

A hypothesis is data (a mapping, e.g. from YAML), never code: nothing here evaluates a string.
Example::

    name: mentoring_beats_baseline
    statement: Mentoring reduces the NEET rate at ages 15-29
    metric: neet_rate_15_29
    scenario: mentoring
    compare_to: baseline
    direction: reduces

Semantics, per replicate r (common random numbers): ``e_s = metric(scenario) - metric(baseline)``
and ``e_c = metric(compare_to) - metric(baseline)`` (0 when ``compare_to`` is the baseline). With
``per_nok: true`` each effect is divided by its own scenario's programme cost difference
(``programme_cost_nok`` of that scenario minus the baseline's; a missing cost counts as 0), i.e.
effect per NOK. Then ``d = e_s - e_c``; "reduces" holds when ``d < -margin``, "increases" when
``d > margin``.

Verdicts depend on what the uncertainty is over:

- **Parameter mode** (``draw_of`` given): ``d`` is averaged within each parameter draw and turned
  into draws of the national-scale difference (:func:`utenforsk.analysis.uncertainty.national_draws`);
  ``probability`` is P(claim) over parameter draws, each blurred by the simulation error of
  their centre (:func:`~utenforsk.analysis.uncertainty.claim_probability`). "supported" when it is at least
  ``supported_at`` (0.95 by default), "not supported" when at most ``1 - supported_at``, else
  "inconclusive". More replicates make this probability more precise, not closer to 1: a claim
  whose effect is drawn around zero stays inconclusive.
- **Monte Carlo mode**: the parameters are fixed, so the only uncertainty is simulation noise.
  The verdict comes from the paired t-interval of ``d`` ("supported at fixed parameters" when it
  lies wholly beyond the margin on the hypothesised side, "not supported at fixed parameters"
  when wholly on the other side, else "inconclusive"); ``probability`` is the share of simulation
  replicates in which the claim holds, which depends on the simulation's scale and is *not* a
  probability that the claim is true.

``compare_to`` may list several scenarios (e.g. coordination against each single programme):
the claim must hold against every one, and the verdict follows the intersection-union rule —
supported only when supported against each, not supported when not supported against any; the
reported row is the weakest comparison (lowest probability).

Estimates and intervals are reported in display units (``unit``): rates in percentage points,
per-NOK comparisons per million NOK.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from utenforsk.analysis.effects import check_runs, mean_ci, wide
from utenforsk.config.loader import validate
from utenforsk.config.params import Strict
from utenforsk.errors import ConfigError

COST_METRIC = "programme_cost_nok"
RESULT_COLUMNS = ["name", "statement", "verdict", "probability", "probability_over", "estimate",
                  "ci_low", "ci_high", "unit", "compared_with", "n_replicates", "n_draws", "detail"]
OVER_DRAWS = "parameter draws (national scale)"
OVER_REPLICATES = "simulation replicates at fixed parameters (Monte Carlo noise only)"
_RATE_WORDS = ("rate", "share", "completion", "coverage", "proportion", "probability")  # as the report
_YEARLY = re.compile(r"^(?P<base>.+)@(?P<year>-?\d+)$")


class Hypothesis(Strict):
    """One testable claim about a scenario's effect on a metric (unknown keys are errors)."""

    name: str = Field(min_length=1, description="short unique identifier")
    statement: str = Field(min_length=1, description="the claim in words (free text)")
    metric: str = Field(min_length=1, description="metric name as in the runs table")
    scenario: str = Field(min_length=1, description="the scenario the claim is about")
    compare_to: str | list[str] = Field(
        description="another scenario, 'baseline' (effect vs no change), or a list of scenarios "
                    "(the claim must hold against each: intersection-union rule)")
    direction: Literal["reduces", "increases"]
    per_nok: bool = Field(False, strict=True,
                          description="compare effects per NOK of programme cost difference")
    margin: float = Field(0.0, ge=0.0, allow_inf_nan=False,
                          description="the difference must exceed this (in metric units, or "
                                      "metric units per NOK with per_nok)")


class _Hypotheses(Strict):
    hypotheses: list[Hypothesis]


def _allowed(names: set[str]) -> str:
    """Names for an error message; yearly ``NAME@YEAR`` metrics are folded into one entry each."""
    plain, years = [], {}
    for n in names:
        m = _YEARLY.match(n)
        if m:
            years.setdefault(m["base"], []).append(int(m["year"]))
        else:
            plain.append(n)
    folded = [f"{b}@YEAR (YEAR {min(y)}-{max(y)})" for b, y in years.items()]
    return ", ".join(sorted(plain) + sorted(folded))


def _unknown(what: str, value: str, names: set[str], file: str | None, key: str) -> ConfigError:
    close = difflib.get_close_matches(value, sorted(names), 1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {what}{hint}", file=file, key=key, value=value,
                       allowed=_allowed(names))


def validate_hypotheses(hyps: list[dict], metrics: set[str], scenarios: set[str], file: str,
                        baseline: str = "baseline") -> list[Hypothesis]:
    """Validate hypothesis mappings against the metric and scenario names of an experiment.

    Call before running anything. Every problem is a :class:`~utenforsk.errors.ConfigError` with
    key ``hypotheses[i].<field>``. ``compare_to`` may always be ``baseline``; ``per_nok`` needs
    the ``programme_cost_nok`` metric; names must be unique; ``scenario`` and ``compare_to`` must
    differ.
    """
    if isinstance(hyps, list) and all(isinstance(h, Hypothesis) for h in hyps):
        parsed = list(hyps)
    else:
        items = [h.model_dump() if isinstance(h, Hypothesis) else h for h in hyps] \
            if isinstance(hyps, list) else hyps
        parsed = validate(_Hypotheses, {"hypotheses": items}, file).hypotheses
    metrics, scenarios = set(metrics), set(scenarios)
    comparable = scenarios | {baseline}
    seen: dict[str, int] = {}
    for i, h in enumerate(parsed):
        key = f"hypotheses[{i}]"
        if h.name in seen:
            raise ConfigError(f"duplicate name (also used by hypotheses[{seen[h.name]}])",
                              file=file, key=f"{key}.name", value=h.name,
                              allowed="a name not used by another hypothesis")
        seen[h.name] = i
        if h.metric not in metrics:
            raise _unknown("metric", h.metric, metrics, file, f"{key}.metric")
        if h.scenario not in scenarios:
            raise _unknown("scenario", h.scenario, scenarios, file, f"{key}.scenario")
        targets = comparisons(h)
        if not targets or len(set(targets)) != len(targets) or any(not t for t in targets):
            raise ConfigError("compare_to must name one scenario or a list of different scenarios",
                              file=file, key=f"{key}.compare_to", value=h.compare_to,
                              allowed=f"'{baseline}', a scenario, or a list of scenarios")
        for j, target in enumerate(targets):
            where = f"{key}.compare_to" + (f"[{j}]" if isinstance(h.compare_to, list) else "")
            if target not in comparable:
                raise _unknown("scenario", target, comparable, file, where)
            if target == h.scenario:
                raise ConfigError("compare_to is the same scenario as scenario, the difference is 0",
                                  file=file, key=where, value=target,
                                  allowed=f"'{baseline}' or another scenario")
        if h.per_nok and COST_METRIC not in metrics:
            raise ConfigError(f"per_nok needs the {COST_METRIC} metric, which the experiment does "
                              "not produce", file=file, key=f"{key}.per_nok", value=True,
                              allowed="false")
    return parsed


def comparisons(h: Hypothesis) -> list[str]:
    """The scenarios a hypothesis compares against (one, or several: intersection-union)."""
    return list(h.compare_to) if isinstance(h.compare_to, list) else [h.compare_to]


def _differences(h: Hypothesis, table: pd.DataFrame, baseline: str, key: str,
                 file: str | None, target: str) -> pd.Series:
    """Per-replicate d against ``target``, over replicates with every needed value present."""
    metrics = [h.metric] + ([COST_METRIC] if h.per_nok else [])
    needed = [s for s in dict.fromkeys([h.scenario, baseline, target])]
    parts = {s: table.xs(s, level="scenario")[metrics] for s in needed}
    if h.per_nok:  # no programme_cost_nok for a scenario/replicate means no programme: cost 0
        parts = {s: p.fillna({COST_METRIC: 0.0}) for s, p in parts.items()}
    joined = pd.concat(parts, axis=1, join="inner").dropna()

    def effect(s: str) -> pd.Series:
        if s == baseline:
            return pd.Series(0.0, index=joined.index)
        e = joined[(s, h.metric)] - joined[(baseline, h.metric)]
        if h.per_nok:
            cost = joined[(s, COST_METRIC)] - joined[(baseline, COST_METRIC)]
            if (cost == 0).any():
                reps = ", ".join(map(str, cost.index[cost == 0][:5]))
                raise ConfigError(f"per_nok: scenario {s!r} costs the same as {baseline!r} "
                                  f"(programme_cost_nok difference 0 in replicate(s) {reps}), so "
                                  "its effect per NOK is undefined", file=file,
                                  key=f"{key}.per_nok", value=True, allowed="false")
            e = e / cost
        return e

    return (effect(h.scenario) - effect(target)).astype(float)


def _interval_verdict(h: Hypothesis, low: float, high: float) -> str:
    """Monte Carlo mode: from the t-interval of d, at fixed parameters."""
    if np.isnan(low) or np.isnan(high):
        return "inconclusive"
    if h.direction == "reduces":
        if high < -h.margin:
            return "supported at fixed parameters"
        if low >= -h.margin:
            return "not supported at fixed parameters"
    else:
        if low > h.margin:
            return "supported at fixed parameters"
        if high <= h.margin:
            return "not supported at fixed parameters"
    return "inconclusive"


def _probability_verdict(p: float, supported_at: float) -> str:
    """Parameter mode: from P(claim) over parameter draws."""
    if not np.isfinite(p):
        return "inconclusive"
    if p >= supported_at:
        return "supported"
    if p <= 1 - supported_at:
        return "not supported"
    return "inconclusive"


def display_factor(h: Hypothesis) -> tuple[float, str]:
    """(multiplier, unit) turning d into display units: pp for rates, per million NOK."""
    base = h.metric.split("@", 1)[0].lower()
    rate = any(w in base for w in _RATE_WORDS)
    f, unit = (100.0, "pp") if rate else (1.0, "person-years" if "year" in base else "metric units")
    if h.per_nok:
        return f * 1e6, f"{unit} per million NOK"
    return f, unit


def _holds(h: Hypothesis, d: np.ndarray) -> np.ndarray:
    return d < -h.margin if h.direction == "reduces" else d > h.margin


def _one(h: Hypothesis, d: pd.Series, level: float, draw_of, scale: float, supported_at: float) -> dict:
    """Verdict, probability, estimate and interval (raw units) of d against one comparison."""
    if draw_of is None:
        x = d.to_numpy(dtype=float)
        estimate, low, high, n = mean_ci(x, level)
        p = float(_holds(h, x).mean()) if n else float("nan")
        return {"verdict": _interval_verdict(h, low, high), "probability": p, "estimate": estimate,
                "ci_low": low, "ci_high": high, "n_replicates": n, "n_draws": 0}
    from utenforsk.analysis.uncertainty import claim_probability, national_draws, national_interval

    draws, _ = national_draws(d, draw_of, scale)
    low, high = national_interval(d, draw_of, scale, level)
    reduces = h.direction == "reduces"
    p = claim_probability(d, draw_of, scale, -h.margin if reduces else h.margin, below=reduces)
    return {"verdict": _probability_verdict(p, supported_at), "probability": p,
            "estimate": float(np.mean(draws)) if len(draws) else float("nan"), "ci_low": low,
            "ci_high": high, "n_replicates": len(d), "n_draws": len(draws)}


def _combine(results: dict[str, dict]) -> tuple[str, dict]:
    """Intersection-union: supported only if supported against every comparison; not supported
    if not supported against any; the row shown is the weakest comparison."""
    verdicts = [r["verdict"] for r in results.values()]
    name = min(results, key=lambda t: (results[t]["probability"] if np.isfinite(results[t]["probability"])
                                       else -1.0))
    if any(v.startswith("not supported") for v in verdicts):
        name = next(t for t, r in results.items() if r["verdict"].startswith("not supported"))
        return results[name]["verdict"], {**results[name], "compared_with": name}
    if all(v.startswith("supported") for v in verdicts):
        return verdicts[0], {**results[name], "compared_with": name}
    return "inconclusive", {**results[name], "compared_with": name}


def evaluate(hypotheses: list[dict] | list[Hypothesis], runs: pd.DataFrame, level: float = 0.95,
             baseline: str = "baseline", file: str | None = None, draw_of: dict[int, int] | None = None,
             scale: float = 1.0, supported_at: float = 0.95) -> pd.DataFrame:
    """Test each hypothesis on the runs table; one row per hypothesis, in the given order.

    Columns (:data:`RESULT_COLUMNS`): ``verdict``; ``probability`` and what it is over
    (``probability_over``); ``estimate``, ``ci_low``, ``ci_high`` of ``d`` in ``unit``
    (:func:`display_factor`), for the weakest comparison (``compared_with``); counts; ``detail``
    (every comparison's probability). ``draw_of`` (replicate -> parameter draw) selects parameter
    mode, with ``scale`` the simulation's persons per real person (see the module docstring).
    Hypotheses are (re)validated against the names in ``runs`` (ConfigError on unknown names).
    """
    check_runs(runs)
    hyps = validate_hypotheses(hypotheses, set(runs["metric"].astype(str)),
                               set(runs["scenario"].astype(str)), file, baseline=baseline)
    if hyps and baseline not in set(runs["scenario"]):
        raise ValueError(f"baseline scenario {baseline!r} is not in the runs table")
    table = wide(runs)
    rows = []
    for i, h in enumerate(hyps):
        results = {t: _one(h, _differences(h, table, baseline, f"hypotheses[{i}]", file, t), level,
                           draw_of, scale, supported_at) for t in comparisons(h)}
        verdict, r = _combine(results)
        f, unit = display_factor(h)
        detail = "; ".join(f"vs {t}: {100 * x['probability']:.1f}%" for t, x in results.items()
                           if np.isfinite(x["probability"]))
        rows.append((h.name, h.statement, verdict, r["probability"],
                     OVER_DRAWS if draw_of is not None else OVER_REPLICATES,
                     r["estimate"] * f, r["ci_low"] * f, r["ci_high"] * f, unit, r["compared_with"],
                     r["n_replicates"], r["n_draws"], detail))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS).astype({"n_replicates": int, "n_draws": int})
