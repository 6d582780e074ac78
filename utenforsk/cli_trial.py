"""The ``trial`` command: virtual trials (utenforsk/trials/), registered on :data:`utenforsk.cli.app`.

Bad specs (unknown intervention, outcome, state, trait; a follow-up beyond the horizon) exit with
status 2 and one line before anything runs or is written. Exit 1 when a trial is not consistent
with its published interval.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from utenforsk.cli import _fail, _scale, app, out, progress_bar
from utenforsk.errors import UserError


@app.command()
def trial(files: Optional[List[Path]] = typer.Argument(None, help="trial spec YAML(s), e.g. configs/trials/seed_ips.yaml"),
          all_: bool = typer.Option(False, "--all", help="every spec in configs/trials/"),
          replicates: Optional[int] = typer.Option(None, "--replicates", min=1, help="replicates (default: each spec's)"),
          scale: Optional[str] = typer.Option(None, "--scale", help="simulated persons per real person, in (0, 1] (default: each spec's)"),
          threads: Optional[int] = typer.Option(None, "--threads", min=1, help="worker threads"),
          out_dir: Path = typer.Option(Path("results/trials"), "--out", help="output directory")):
    """Simulate virtual trials (CRN-paired arms) and compare them with the published estimates;
    writes trial.csv and trial.png."""
    scale_v = _scale(scale)
    try:
        from utenforsk.trials import all_trials, load_trial, run_trial, write

        paths = list(files or [])
        if all_:
            paths += all_trials()
        if not paths:
            raise UserError("name a trial spec or give --all", key="FILES")
        trials = [load_trial(p) for p in paths]  # every spec checked before anything runs
        names = [t.spec.name for t in trials]
        if len(set(names)) != len(names):
            raise UserError("two trials share a name", key="name", value=names)
        rows = []
        t0 = time.perf_counter()
        with progress_bar("replicates") as bar:
            for t in trials:
                reps = replicates or t.spec.replicates
                task = bar.add_task(t.spec.name, total=reps)
                rows.append(run_trial(t, replicates=replicates, scale=scale_v, threads=threads,
                                      on_replicate=lambda r, task=task: bar.update(task, completed=r + 1)))
        write(rows, trials, out_dir)
    except UserError as exc:
        _fail(exc)
    table = Table("trial", "outcome", "n", "control", "treated", "estimate [95% MC]", "published [95%]", "consistent")
    for row, t in zip(rows, trials):
        pub = t.spec.published
        est = {"odds_ratio": row["odds_ratio"], "level": row["control"]}.get(pub.measure, row["difference"])
        table.add_row(row["trial"], row["outcome"], str(row["n_control"]), f"{row['control']:.3g}",
                      f"{row['treated']:.3g}", f"{est:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}]",
                      f"{pub.estimate:g} [{pub.ci[0]:g}, {pub.ci[1]:g}]", "yes" if row["consistent"] else "NO")
    out.print(table)
    out.print(f"wrote {out_dir / 'trial.csv'} and {out_dir / 'trial.png'} in {time.perf_counter() - t0:.0f} s")
    if not all(r["consistent"] for r in rows):
        raise typer.Exit(1)
