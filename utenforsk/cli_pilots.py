"""``utenforsk municipality NAME``: one real municipality's data and simulated figures."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from utenforsk.cli import _fail, app, out
from utenforsk.errors import UserError

SPREAD_FILE = Path(__file__).resolve().parents[1] / "configs" / "norway" / "data" / "municipal_spread.yaml"


def own_ssb_figures(name_short: str) -> dict[str, tuple[float, str]]:
    """The municipality's own published figures in municipal_spread.yaml (few exist):
    ``{metric: (value, what it is)}``."""
    import yaml

    spread = yaml.safe_load(SPREAD_FILE.read_text())
    found = {}
    m = spread.get("upper_secondary_completion_5y", {}).get("municipal_2011_cohort", {})
    if name_short in m.get("values", {}):
        found["completed_upper_secondary_21"] = (
            float(m["values"][name_short]),
            f"5-year completion, 2011 starting cohort (SSB via {m.get('address')}) [U]")
    return found


@app.command()
def municipality(name: str = typer.Argument(..., help="municipality: SSB name, short name or 4-digit number"),
                 run_dir: Optional[Path] = typer.Option(None, "--run", help="a `utenforsk run` output directory"),
                 exp_dir: Optional[Path] = typer.Option(None, "--experiment",
                                                        help="a finished experiment run with municipality_metrics: true")):
    """Print one municipality: its data (population, type, county), its simulated figures from a
    run's periods_by_municipality.parquet, and its own SSB figures where the data files have them;
    with --experiment, each scenario's effect there (paired by replicate)."""
    try:
        from utenforsk.pilots import municipalities as km

        data = km.load()
        row = data.table.iloc[data.resolve([name], key="NAME")[0]]
        if run_dir is not None and not (run_dir / "periods_by_municipality.parquet").exists():
            raise UserError("no periods_by_municipality.parquet in this directory", key="--run",
                            value=str(run_dir), allowed="the --out directory of `utenforsk run`")
        effects = None
        if exp_dir is not None:
            from utenforsk.pilots.replicates import municipality_effects

            effects = municipality_effects(exp_dir, row.kommunenummer)
    except UserError as exc:
        _fail(exc)
    out.print(f"[bold]{row['name']}[/] ({row.kommunenummer}), {row.fylke}: "
              f"{int(row.population_2024_01_01):,} residents on 1 Jan 2024, "
              f"{row.population_0_29:,.0f} aged 0-29 (2023 age shares); type {row.type} "
              f"(grouped by {row.group_source})")
    own = own_ssb_figures(row.name_short)
    if effects is not None:
        print_effects(row, effects, exp_dir)
    if run_dir is None:
        for metric, (value, what) in own.items():
            out.print(f"SSB: {metric} = {value:.1%} ({what})")
        if not own:
            out.print("no municipal SSB figure of NEET or completion in configs/norway/data/ for it")
        return
    import pandas as pd

    df = pd.read_parquet(run_dir / "periods_by_municipality.parquet")
    df = df[df.kommunenummer == row.kommunenummer]
    t = Table(title=f"{row['name']}: simulated (Q4 point-in-time, {run_dir})")
    cols = ["population_15_29", "simulated_persons_15_29", "neet_rate_15_29", "neet_rate_15_19",
            "neet_rate_20_24", "neet_rate_25_29", "health_benefit_rate_18_29", "completed_upper_secondary_21"]
    t.add_column("year")
    for c in cols:
        t.add_column(c.replace("_", " "), justify="right")
    for r in df.itertuples():
        t.add_row(str(r.year), *[f"{getattr(r, c):,.0f}" if "persons" in c or "population" in c
                                 else f"{getattr(r, c):.1%}" for c in cols])
    out.print(t)
    for metric, (value, what) in own.items():
        sim = df[metric].mean()
        out.print(f"{metric}: simulated {sim:.1%} (mean over years) vs SSB {value:.1%} ({what})")
    if not own:
        out.print("no municipal SSB figure of NEET or completion in configs/norway/data/ for it "
                  "(StatBank 13556 by municipality was not reachable: see municipal_spread.yaml)")


def print_effects(row, effects, exp_dir: Path) -> None:
    """Each scenario's effect in the municipality: horizon NEET 15-29 (Q4, pooled over years)
    and the yearly figures, baseline and scenario means with the paired 95% interval."""
    if effects.empty:
        out.print(f"{exp_dir}: only a baseline, no scenario effect to show")
        return
    t = Table(title=f"{row['name']}: effect on NEET 15-29 (Q4) in {exp_dir}, paired over "
                    f"{int(effects.n_replicates.max())} replicates ('all': pooled over the years)")
    for c in ("scenario", "year", "baseline", "scenario NEET", "change pp", "95% interval", "relative"):
        t.add_column(c, justify="left" if c == "scenario" else "right")
    for r in effects.itertuples():
        t.add_row(r.scenario, r.metric.partition("@")[2] or "all", f"{r.baseline_mean:.2%}", f"{r.scenario_mean:.2%}",
                  f"{100 * r.difference:+.2f}", f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]",
                  "" if r.relative_change != r.relative_change else f"{r.relative_change:+.1%}")
    out.print(t)


@app.command()
def power(file: Path = typer.Argument(..., help="pilot YAML, e.g. experiments/pilot_ips_youth.yaml"),
          out_dir: Path = typer.Option(Path("results/power"), "--out", help="output directory"),
          sims: Optional[int] = typer.Option(None, "--sims", min=10, help="simulated pilots per cell (default: the file's n_sims)")):
    """Power and minimum detectable effect of a municipal pilot design: power.csv and power.png."""
    import time

    try:
        from utenforsk.outputs import ensure_output_dir
        from utenforsk.pilots import power as pw

        cfg = pw.load_pilot(file)
        ensure_output_dir(out_dir)
        t0 = time.perf_counter()
        df = pw.run_power(cfg, str(file), n_sims=sims)
    except UserError as exc:
        _fail(exc)
    seconds = time.perf_counter() - t0
    tmp = out_dir / ".power.csv.tmp"
    df.to_csv(tmp, index=False)
    tmp.replace(out_dir / "power.csv")
    pw.figure(df, cfg, out_dir / "power.png")
    central = pw.central_rows(df, cfg)
    t = Table(title=f"{cfg.name}: {cfg.design}, power at alpha {cfg.alpha} "
                    f"({pw.world_label(df, cfg)}; {int(df.n_sims.iloc[0])} pilots per cell)")
    t.add_column("municipalities", justify="right")
    t.add_column("years", justify="right")
    for e in sorted(central.effect.unique(), key=abs):
        t.add_column(f"{e:+.1%}" + ("*" if central[central.effect == e].effect_is_simulated.any() else ""),
                     justify="right")
    t.add_column("MDE (sim.)", justify="right")
    for (G, Y), d in central.groupby(["n_municipalities", "years"]):
        d = d.set_index("effect")
        mde = d.mde_simulated_relative.iloc[0]
        t.add_row(str(G), str(Y), *[f"{d.power[e]:.2f}" for e in sorted(central.effect.unique(), key=abs)],
                  "beyond grid" if mde != mde else f"{mde:.0%}")
    out.print(t)
    out.print(f"wrote {out_dir}/power.csv and power.png in {seconds:.1f} s (* = the simulation's own effect)")
