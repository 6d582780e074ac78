"""From stored tasks to results: runs.parquet, effects.csv, economics.csv, hypotheses.csv, report.

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
from utenforsk.errors import UserError


def pathways(runs: pd.DataFrame) -> pd.DataFrame | None:
    """Baseline state shares by age (mean over replicates) from the ``pathway:AGE:STATE`` metrics."""
    rows = runs[(runs.scenario == "baseline") & runs.metric.str.startswith("pathway:")]
    if rows.empty:
        return None
    parts = rows.metric.str.split(":", expand=True)
    table = rows.assign(age=parts[1].astype(int), state=parts[2]).groupby(["age", "state"], sort=False).value.mean()
    return table.unstack("state").reset_index()


def finalize(out: Path, plan: Plan) -> dict:
    """Write every result file; refuse (exit 2) while tasks are missing."""
    from utenforsk.analysis.economics import economics
    from utenforsk.analysis.effects import paired_effects
    from utenforsk.analysis.hypotheses import evaluate
    from utenforsk.report import write_report

    gaps = missing(out, plan)
    if gaps:
        raise UserError(f"{len(gaps)} of {len(plan.tasks())} tasks are missing (first: "
                        f"{gaps[0].scenario} replicate {gaps[0].replicate})", key="DIR", value=str(out),
                        allowed="run the remaining shards first (`utenforsk experiment ... --shard K/N`)")
    runs = collect(out, plan)
    main = runs[~runs.metric.str.startswith(("pathway:", "parameter:"))]
    meta = {"experiment": plan.exp.name, "experiment_hash": plan.hash, "seed": plan.exp.seed,
            "replicates": plan.exp.replicates, "scale": plan.config.scale,
            "start_year": plan.config.calendar.start_year, "horizon_years": plan.config.calendar.horizon_years,
            "version": json.loads((out / "experiment.json").read_text()).get("version"),
            "config_hash": plan.hash, "uncertainty": plan.exp.uncertainty.mode}
    write_parquet(runs, out / "runs.parquet", meta)
    report_metrics = [m for m in main.metric.unique() if "@" not in m] + [
        f"{m}@{y}" for y in plan.exp.report_years for m in ("neet_rate_15_29", "health_benefit_rate_18_29")]
    effects = paired_effects(main, metrics=report_metrics)
    econ = economics(main)
    hyps = evaluate(plan.hypotheses, main)
    from utenforsk.analysis.uncertainty import variance_decomposition

    draw_of = ({r: plan.draw_of(r) for r in range(plan.exp.replicates)}
               if plan.exp.uncertainty.mode == "parameter" else None)
    spread = variance_decomposition(main, [m for m in plan.exp.metrics if m in set(main.metric)], draw_of)
    spread.to_csv(out / "uncertainty.csv", index=False)
    effects.to_csv(out / "effects.csv", index=False)
    econ.to_csv(out / "economics.csv", index=False)
    hyps.to_csv(out / "hypotheses.csv", index=False)
    report = write_report(out, main, effects, econ, hyps, pathways(runs), meta, main_metrics=plan.exp.metrics,
                          uncertainty=spread)
    write_json(meta, out / "results.json")
    return {"runs": len(runs), "report": str(report)}
