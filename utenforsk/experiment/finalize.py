"""From stored tasks to results: runs.parquet, effects.csv, economics.csv, ledger.csv, ceac.csv,
economics_sensitivity.csv, hypotheses.csv, report.

Used at the end of ``utenforsk experiment`` (when every task is present) and by
``utenforsk report DIR`` (e.g. after merging shards). Deterministic: the same task files give the
same outputs, whichever workers, shards or executors produced them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from utenforsk.experiment.runner import Plan, collect, missing
from utenforsk.outputs import write_json, write_parquet
from utenforsk.errors import ConfigError, UserError


def pathways(runs: pd.DataFrame) -> pd.DataFrame | None:
    """Baseline state shares by age (mean over replicates) from the ``pathway:AGE:STATE`` metrics."""
    rows = runs[(runs.scenario == "baseline") & runs.metric.str.startswith("pathway:")]
    if rows.empty:
        return None
    parts = rows.metric.str.split(":", expand=True)
    table = rows.assign(age=parts[1].astype(int), state=parts[2]).groupby(["age", "state"], sort=False).value.mean()
    return table.unstack("state").reset_index()


def valuation(plan: Plan):
    """The experiment's cost book and value-at-30 switch (``economics:`` in the experiment)."""
    from utenforsk.analysis.economics import Valuation
    from utenforsk.analysis.ledger import load_costs

    opts = plan.exp.economics
    path = None
    if opts.costs is not None:
        path = (plan.base / opts.costs).resolve()
        if not path.is_file():
            raise ConfigError("cost file not found", file=plan.file, key="economics.costs", value=opts.costs,
                              allowed="a YAML file like configs/norway/costs.yaml, relative to the experiment file")
    return Valuation(load_costs(path), opts.value_at_30)


def capacity_bought(plan: Plan) -> dict[str, dict[str, tuple[int, int | None]]]:
    """Per scenario, the model services whose capacity its interventions change, with the years
    they do (``(first, last)``, last None = to the end): their cost blocks pay for that capacity
    in those years, so the ledger does not charge those services' unit costs again then (in the
    follow-up years after a programme it does)."""
    from utenforsk.interventions import engine

    out: dict[str, dict[str, tuple[int, int | None]]] = {}
    for name, refs in plan.scenarios.items():
        bought: dict[str, tuple[int, int | None]] = {}
        for ref in refs:
            if engine.is_plugin_ref(ref):
                continue
            iv = engine.load_intervention(ref, where=plan.file)
            for svc, ch in iv.what.services.items():
                if ch.capacity is None or ch.capacity == 1.0:
                    continue
                lo, hi = iv.when.start_year, iv.when.end_year
                if svc in bought:  # the union of the years, as one span
                    blo, bhi = bought[svc]
                    lo, hi = min(lo, blo), (None if hi is None or bhi is None else max(hi, bhi))
                bought[svc] = (lo, hi)
        out[name] = bought
    return out


def write_economics(out: Path, plan: Plan, main: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """economics.csv, ledger.csv, ceac.csv and economics_sensitivity.csv; returns the first three
    tables and the sensitivity table."""
    from utenforsk.analysis.economics import acceptability, economics, ledger, sensitivity

    import numpy as np

    draw_of = draws(plan)
    central = getattr(plan, "valuation", None) or valuation(plan)
    kw = {"valuation": central, "paid_by_programme": capacity_bought(plan)}
    if draw_of:  # parameter mode: the cost book is drawn once per parameter draw, like the model
        books = {d: central.drawn(np.random.default_rng([plan.exp.seed, d, 0xC057])) for d in sorted(set(draw_of.values()))}
        kw["valuation_of"] = lambda r: books[draw_of[r]]
    econ = economics(main, draw_of=draw_of, scale=plan.config.scale, **kw)
    led = ledger(main, **kw)
    ceac = acceptability(main, draw_of=draw_of, **kw)
    econ.to_csv(out / "economics.csv", index=False)
    led.to_csv(out / "ledger.csv", index=False)
    ceac.to_csv(out / "ceac.csv", index=False)
    sens = sensitivity(main, valuation=central, paid_by_programme=kw["paid_by_programme"])
    sens.to_csv(out / "economics_sensitivity.csv", index=False)
    return econ, led, ceac, sens


DETAIL_PREFIXES = ("pathway:", "parameter:", "cohort:", "group:", "participants:", "kommune:")  # not main metrics


def draws(plan: Plan) -> dict[int, int] | None:
    """Replicate -> parameter draw in parameter mode; None in Monte Carlo mode."""
    if plan.exp.uncertainty.mode != "parameter":
        return None
    return {r: plan.draw_of(r) for r in range(plan.exp.replicates)}


def for_whom_sections(out: Path, plan: Plan, runs: pd.DataFrame, draw_of) -> list[tuple[str, str]]:
    """``cohorts.csv``, ``for_whom.csv``, ``participants.csv`` and their report sections."""
    from utenforsk.analysis.for_whom import cohort_effects, group_effects, participants
    from utenforsk.report import cohort_section, for_whom_section, participants_section

    scale = plan.config.scale
    groups = group_effects(runs, draw_of, scale)
    cohorts = cohort_effects(runs, draw_of, scale)
    people = participants(runs)
    groups.to_csv(out / "for_whom.csv", index=False)
    people.to_csv(out / "participants.csv", index=False)
    sections = []
    if plan.followed is not None:
        cohorts.to_csv(out / "cohorts.csv", index=False)
        sections.append(("Cohort outcomes (followed cohorts)", cohort_section(cohorts, plan.followed,
                                                                             plan.policy_end,
                                                                             plan.config.calendar.start_year)))
    sections.append(("For whom", for_whom_section(groups, followed=plan.followed is not None)))
    sections.append(("Participants, cost per participant, number needed to treat",
                     participants_section(people, followed=plan.followed is not None)))
    return sections


def finalize(out: Path, plan: Plan) -> dict:
    """Write every result file; refuse (exit 2) while tasks are missing."""
    from utenforsk.analysis.effects import paired_effects
    from utenforsk.analysis.hypotheses import evaluate
    from utenforsk.report import write_report

    gaps = missing(out, plan)
    if gaps:
        raise UserError(f"{len(gaps)} of {len(plan.tasks())} tasks are missing (first: "
                        f"{gaps[0].scenario} replicate {gaps[0].replicate})", key="DIR", value=str(out),
                        allowed="run the remaining shards first (`utenforsk experiment ... --shard K/N`)")
    runs = collect(out, plan)
    main = runs[~runs.metric.str.startswith(DETAIL_PREFIXES)]
    meta = {"experiment": plan.exp.name, "experiment_hash": plan.hash, "seed": plan.exp.seed,
            "replicates": plan.exp.replicates, "scale": plan.config.scale,
            "start_year": plan.config.calendar.start_year, "horizon_years": plan.config.calendar.horizon_years,
            "version": json.loads((out / "experiment.json").read_text()).get("version"),
            "config_hash": plan.hash, "uncertainty": plan.exp.uncertainty.mode}
    assumed = sorted({iv["name"] for s in plan.exp.scenarios for iv in plan._scenario_ivs(s)
                      if isinstance(iv, dict) and iv.get("effect_basis") == "assumption"})
    if assumed:
        meta["assumed_effects"] = ", ".join(f"`{n}`" for n in assumed)
    if plan.exp.uncertainty.mode == "parameter":
        meta["parameter_draws"] = len({plan.draw_of(r) for r in range(plan.exp.replicates)})
        meta["seeds_per_draw"] = plan.exp.uncertainty.seeds_per_draw
        meta["supported_at"] = plan.exp.uncertainty.supported_at
    if plan.followed is not None:
        meta["followed_birth_cohorts"] = f"{plan.followed[0]}-{plan.followed[1]}"
        meta["interventions_end"] = plan.policy_end
        meta["followed_to_age"] = plan.exp.follow_cohorts_to_age
    write_parquet(runs, out / "runs.parquet", meta)
    report_metrics = [m for m in main.metric.unique() if "@" not in m] + [
        f"{m}@{y}" for y in plan.exp.report_years for m in ("neet_rate_15_29", "health_benefit_rate_18_29")]
    draw_of, scale = draws(plan), plan.config.scale
    effects = paired_effects(main, metrics=report_metrics, draw_of=draw_of, scale=scale)
    econ, led, ceac, sens = write_economics(out, plan, main)
    hyps = evaluate(plan.hypotheses, main, draw_of=draw_of, scale=scale,
                    supported_at=plan.exp.uncertainty.supported_at)
    from utenforsk.analysis.uncertainty import variance_decomposition

    spread = variance_decomposition(main, [m for m in plan.exp.metrics if m in set(main.metric)], draw_of,
                                    scale=scale)
    sections = for_whom_sections(out, plan, runs, draw_of)
    spread.to_csv(out / "uncertainty.csv", index=False)
    effects.to_csv(out / "effects.csv", index=False)
    hyps.to_csv(out / "hypotheses.csv", index=False)
    report = write_report(out, main, effects, econ, hyps, pathways(runs), meta, main_metrics=plan.exp.metrics,
                          uncertainty=spread, ledger=led, ceac=ceac, economics_sensitivity=sens,
                          sections=sections, draw_of=draw_of)
    write_json(meta, out / "results.json")
    return {"runs": len(runs), "report": str(report)}
