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
effect per NOK. Then
``d = e_s - e_c``; "reduces" holds in a replicate when ``d < -margin``, "increases" when
``d > margin``.

Verdict from the paired t-interval of ``d``: "supported" when the whole interval lies beyond the
margin on the hypothesised side, "not supported" when it lies wholly on the other side (touching
the margin counts as the other side), else "inconclusive" (also with fewer than 2 replicates).
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
RESULT_COLUMNS = ["name", "statement", "verdict", "probability", "estimate", "ci_low", "ci_high",
                  "n_replicates"]
_YEARLY = re.compile(r"^(?P<base>.+)@(?P<year>-?\d+)$")


class Hypothesis(Strict):
    """One testable claim about a scenario's effect on a metric (unknown keys are errors)."""

    name: str = Field(min_length=1, description="short unique identifier")
    statement: str = Field(min_length=1, description="the claim in words (free text)")
    metric: str = Field(min_length=1, description="metric name as in the runs table")
    scenario: str = Field(min_length=1, description="the scenario the claim is about")
    compare_to: str = Field(min_length=1,
                            description="another scenario, or 'baseline' (effect vs no change)")
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
        if h.compare_to not in comparable:
            raise _unknown("scenario", h.compare_to, comparable, file, f"{key}.compare_to")
        if h.compare_to == h.scenario:
            raise ConfigError("compare_to is the same scenario as scenario, the difference is 0",
                              file=file, key=f"{key}.compare_to", value=h.compare_to,
                              allowed=f"'{baseline}' or another scenario")
        if h.per_nok and COST_METRIC not in metrics:
            raise ConfigError(f"per_nok needs the {COST_METRIC} metric, which the experiment does "
                              "not produce", file=file, key=f"{key}.per_nok", value=True,
                              allowed="false")
    return parsed


def _differences(h: Hypothesis, table: pd.DataFrame, baseline: str, key: str,
                 file: str | None) -> np.ndarray:
    """Per-replicate d for one hypothesis, over replicates with every needed value present."""
    metrics = [h.metric] + ([COST_METRIC] if h.per_nok else [])
    needed = [s for s in dict.fromkeys([h.scenario, baseline, h.compare_to])]
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

    return (effect(h.scenario) - effect(h.compare_to)).to_numpy(dtype=float)


def _verdict(h: Hypothesis, low: float, high: float) -> str:
    if np.isnan(low) or np.isnan(high):
        return "inconclusive"
    if h.direction == "reduces":
        if high < -h.margin:
            return "supported"
        if low >= -h.margin:
            return "not supported"
    else:
        if low > h.margin:
            return "supported"
        if high <= h.margin:
            return "not supported"
    return "inconclusive"


def evaluate(hypotheses: list[dict] | list[Hypothesis], runs: pd.DataFrame, level: float = 0.95,
             baseline: str = "baseline", file: str | None = None) -> pd.DataFrame:
    """Test each hypothesis on the runs table; one row per hypothesis, in the given order.

    Columns: ``name, statement, verdict, probability, estimate, ci_low, ci_high, n_replicates``:
    ``estimate`` is the mean of ``d``, ``ci_low``/``ci_high`` its paired t-interval at ``level``,
    ``probability`` the share of replicates in which the hypothesis holds.
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
        d = _differences(h, table, baseline, f"hypotheses[{i}]", file)
        estimate, low, high, n = mean_ci(d, level)
        holds = d < -h.margin if h.direction == "reduces" else d > h.margin
        probability = float(holds.mean()) if n else float("nan")
        rows.append((h.name, h.statement, _verdict(h, low, high), probability, estimate, low, high,
                     n))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS).astype({"n_replicates": int})
