"""The ``utenforsk`` command.

Bad input (a file, a key in it, a flag) prints one line naming the file, key, value and what is
allowed, and exits with status 2; ``--debug`` shows the traceback instead. Nothing is written
before the input has been validated, and outputs are replaced atomically, file by file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from utenforsk import __version__
from utenforsk.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Simulate youth outsiderhood pathways in Norway (ages 0-29), month by month.")
err = Console(stderr=True)
out = Console()
STATE = {"debug": False}


def _fail(exc: UserError) -> None:
    if STATE["debug"]:
        raise exc
    err.print(f"[bold red]error:[/] {escape(exc.render())}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _seed(value: str) -> int:
    try:
        seed = int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an integer; allowed: an integer 0 .. 2**63-1",
                                 param_hint="'--seed'") from None
    if not 0 <= seed < 2**63:
        raise typer.BadParameter(f"{seed} is out of range; allowed: an integer 0 .. 2**63-1",
                                 param_hint="'--seed'")
    return seed


def _scale(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        scale = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number; allowed: a number in (0, 1]",
                                 param_hint="'--scale'") from None
    if not 0 < scale <= 1:  # also rejects nan
        raise typer.BadParameter(f"{value} is out of range; allowed: a number in (0, 1]",
                                 param_hint="'--scale'")
    return scale


def progress_bar(unit: str = "", auto_refresh: bool = True) -> Progress:
    """A transient progress bar on stderr: description, bar, done/total UNIT, elapsed, remaining.
    ``auto_refresh=False``: no refresh thread (the caller refreshes), so a cold compile may fork
    (kernel_cache._fork_compile does not fork while other threads run)."""
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}" + (f" {unit}" if unit else "")),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True,
                    auto_refresh=auto_refresh)


def _version(value: bool) -> None:
    if value:
        out.print(f"utenforsk {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="show tracebacks for errors"),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")):
    STATE["debug"] = debug


@app.command()
def run(model: Path = typer.Argument(..., help="model config YAML, e.g. configs/norway/baseline.yaml"),
        seed: str = typer.Option("1", "--seed", help="random seed (integer)"),
        scale: Optional[str] = typer.Option(None, "--scale", help="simulated persons per real person, in (0, 1]"),
        out_dir: Path = typer.Option(Path("results/run"), "--out", help="output directory"),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="worker threads (default: all cores)")):
    """Run one simulation; write periods, cohorts, snapshot Parquet files and run.json."""
    seed_v, scale_v = _seed(seed), _scale(scale)
    try:
        from utenforsk.config.loader import load_model_config

        cfg = load_model_config(model)  # validate before anything is written
        from utenforsk.outputs import ensure_output_dir, write_run

        ensure_output_dir(out_dir)
        from utenforsk.model import UtenforskModel  # slow imports (numba, mesa) only for valid input

        t0 = time.perf_counter()
        total = (cfg.calendar.burn_in_years + cfg.calendar.horizon_years) * 12
        with progress_bar("months", auto_refresh=False) as bar:
            task = bar.add_task("compiling + burn-in", total=total)
            shown = [0.0]

            def month_done(m: int) -> None:  # at most ten refreshes a second
                bar.update(task, completed=m + 1)
                if time.perf_counter() - shown[0] > 0.1:
                    shown[0] = time.perf_counter()
                    bar.refresh()

            mdl = UtenforskModel(cfg, seed=seed_v, scale=scale_v, threads=threads, on_month=month_done)
            bar.update(task, description="policy horizon")
            mdl.run_model()
        mdl.timings["total_s"] = time.perf_counter() - t0
        tables = write_run(mdl, out_dir, extra={"command": " ".join(sys.argv), "model_file": str(model)})
    except UserError as exc:
        _fail(exc)
    _summary(mdl, tables, out_dir)


def _summary(mdl, tables, out_dir: Path) -> None:
    p, c = tables["periods"], tables["cohorts"]
    t = Table(title=f"{mdl.config.name}: seed {mdl.run_seed}, scale {mdl.config.scale}, "
                    f"{int(p.year.min())}-{int(p.year.max())}")
    t.add_column("metric")
    t.add_column(f"{int(p.year.min())}", justify="right")
    t.add_column(f"{int(p.year.max())}", justify="right")
    t.add_column("horizon mean", justify="right")
    for col in ("neet_rate_15_29", "neet_rate_15_19", "neet_rate_20_24", "neet_rate_25_29",
                "health_benefit_rate_18_29", "kindergarten_coverage_1_2", "kindergarten_coverage_3_5"):
        t.add_row(col, f"{p[col].iloc[0]:.1%}", f"{p[col].iloc[-1]:.1%}", f"{p[col].mean():.1%}")
    obs = c.dropna(subset=["upper_secondary_completion_5y"])
    if len(obs):
        t.add_row("upper_secondary_completion_5y (cohorts)", "", "",
                  f"{obs.upper_secondary_completion_5y.mean():.1%}")
    out.print(t)
    tm = mdl.timings
    out.print(f"wrote {out_dir}/ (periods, cohorts, cohorts_by_group, snapshot, periods_by_municipality .parquet, run.json) in "
              f"{tm['total_s']:.1f} s; config {mdl.config_hash}, {len(tables['snapshot']):,} persons alive")


def _shard(value: Optional[str]) -> tuple[int, int]:
    if value is None:
        return (1, 1)
    try:
        k, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not K/N; allowed: K/N with 1 <= K <= N, e.g. 2/4",
                                 param_hint="'--shard'") from None
    if not 1 <= k <= n:
        raise typer.BadParameter(f"{value!r} is out of range; allowed: K/N with 1 <= K <= N",
                                 param_hint="'--shard'")
    return (k, n)


@app.command()
def experiment(file: Path = typer.Argument(..., help="experiment YAML, e.g. experiments/quickstart.yaml"),
               out_dir: Optional[Path] = typer.Option(None, "--out", help="output directory (default results/NAME)"),
               replicates: Optional[int] = typer.Option(None, "--replicates", min=1, help="override the replicate count"),
               workers: int = typer.Option(1, "--workers", min=1, help="parallel worker processes"),
               shard: Optional[str] = typer.Option(None, "--shard", help="run only shard K of N (K/N)"),
               executor: str = typer.Option("local", "--executor",
                                            help="local (a process pool of --workers) or dask (see docs/hpc.md)"),
               scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                                       help="Dask scheduler address (tcp://host:8786), or local")):
    """Run scenarios x replicates (resumable), then write runs.parquet, effects.csv and report.md.

    SIGTERM stops it cleanly (exit 143; rerun to continue). Several runs may share one --out; a
    shard whose tasks another runner still holds exits 75 (resubmit later).
    """
    shard_v = _shard(shard)
    try:
        from utenforsk.experiment.runner import Plan, WorkerLost, run as run_tasks
        from utenforsk.hpc import claims
        from utenforsk.hpc.stop import EXIT_STOPPED, Stopped

        plan = Plan(file, replicates)
        out_dir = out_dir or Path("results") / plan.exp.name
        with progress_bar("tasks") as bar:
            task = bar.add_task(f"{plan.exp.name} (shard {shard_v[0]}/{shard_v[1]})", total=None)

            def progress(done, total, seconds):
                bar.update(task, total=total, completed=done)

            try:
                counts = run_tasks(plan, out_dir, workers=workers, shard=shard_v, progress=progress,
                                   executor=executor, scheduler=scheduler)
            except Stopped as stopped:
                bar.stop()
                err.print(f"utenforsk: {stopped} (exit {EXIT_STOPPED})", highlight=False, soft_wrap=True)
                raise typer.Exit(EXIT_STOPPED)
            except WorkerLost as lost:
                bar.stop()
                err.print(f"[bold red]error:[/] {escape(str(lost))}", highlight=False, soft_wrap=True)
                raise typer.Exit(1)
        elsewhere = counts.get("elsewhere", 0)
        out.print(f"{counts['ran']} tasks run, {counts['skipped']} already done"
                  + (f", {elsewhere} run by other runners" if elsewhere else "") + f", in {out_dir}/runs/")
        from utenforsk.experiment.runner import missing

        if shard_v != (1, 1):
            gaps = missing(out_dir, plan)
            k, n = shard_v
            if held := [t for t in gaps if t.replicate % n == k - 1]:
                # claimed by a runner that may be dead on another node: not done, so that
                # SLURM's afterok does not start the report job
                err.print(f"utenforsk: {len(held)} tasks of this shard are held by other runners (claims in "
                          f"{out_dir}/claims); not done here — resubmit after UTENFORSK_CLAIM_STALE_S "
                          f"({claims.stale_s():g} s) (exit {claims.EXIT_HELD})", highlight=False, soft_wrap=True)
                raise typer.Exit(claims.EXIT_HELD)
            if gaps:
                out.print(f"shard {k}/{n} done; when every shard is, run `utenforsk report {out_dir}`")
                return
        elif elsewhere and (gaps := missing(out_dir, plan)):
            out.print(f"{len(gaps)} tasks are still being run by other runners sharing {out_dir}; the last "
                      f"to finish writes the results (`utenforsk status {out_dir}`, `utenforsk report {out_dir}`)")
            return
        _finalize(out_dir, plan)
    except UserError as exc:
        _fail(exc)


def _finalize(out_dir: Path, plan) -> None:
    from utenforsk.experiment.finalize import finalize

    res = finalize(out_dir, plan)
    out.print(f"wrote {out_dir}/runs.parquet, effects.csv, economics.csv, hypotheses.csv, "
              f"report.md and figures/ ({res['runs']:,} rows)")


@app.command()
def report(out_dir: Path = typer.Argument(..., help="an experiment's output directory"),
           experiment_file: Optional[Path] = typer.Option(None, "--experiment",
                                                          help="the experiment YAML (default: as recorded in DIR)")):
    """Rebuild runs.parquet, effects, economics, hypotheses and the report from stored tasks."""
    try:
        from utenforsk.experiment.runner import Plan, check_store

        marker = out_dir / "experiment.json"
        if experiment_file is None:
            if not marker.exists():
                raise UserError("not an experiment directory (no experiment.json)", key="DIR", value=str(out_dir),
                                allowed="a directory written by `utenforsk experiment`")
            experiment_file = Path(json.loads(marker.read_text())["file"])
        recorded = json.loads(marker.read_text()).get("replicates") if marker.exists() else None
        plan = Plan(experiment_file, recorded)
        check_store(out_dir, plan)
        _finalize(out_dir, plan)
    except UserError as exc:
        _fail(exc)


@app.command()
def schema(kind: str = typer.Argument("model", help="which schema: model")):
    """Print the JSON Schema of model configs (for editors that complete and check YAML)."""
    from utenforsk.config.schema import ModelConfig

    schemas = {"model": ModelConfig}
    if kind not in schemas:
        _fail(UserError("unknown schema", key="KIND", value=kind, allowed=", ".join(schemas)))
    out.print_json(json.dumps(schemas[kind].model_json_schema(by_alias=True)))


@app.command()
def dashboard(experiment_dir: Optional[Path] = typer.Option(None, "--experiment",
                                                            help="a stored experiment directory for the Results tab"),
              port: int = typer.Option(8765, "--port", min=0, max=65535, help="port on 127.0.0.1 (0: any free port)"),
              host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (default loopback only)")):
    """Serve the dashboard (Explore: run interventions live; Results: a stored experiment) on localhost."""
    try:
        from utenforsk.dashboard.results import check_experiment_dir
        from utenforsk.dashboard.server import check_port, free_port, serve

        if experiment_dir is not None:
            check_experiment_dir(experiment_dir)
        if port == 0:
            port = free_port(host)
        check_port(host, port)
        url = f"http://{host}:{port}/"
        serve(host=host, port=port, experiment=experiment_dir,
              on_ready=lambda: out.print(f"utenforsk dashboard: {url} (Ctrl-C stops it)", highlight=False))
    except UserError as exc:
        _fail(exc)


# Command groups in their own modules; importing them registers their commands on ``app``.
from utenforsk import cli_hpc, cli_calibration, cli_pilots, cli_trial  # noqa: E402,F401


def main() -> None:
    """Entry point: maps bad command-line usage and UserError to exit status 2."""
    try:
        # without standalone mode, typer.Exit(code) raised in a command comes back as the return value
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors, user errors, bugs
        try:  # typer >= 0.2x vendors click
            from typer._click import exceptions as click
        except ImportError:
            import click  # type: ignore[no-redef]

        if isinstance(exc, getattr(click, "NoArgsIsHelpError", ())):  # help is already printed
            sys.exit(2)
        if isinstance(exc, click.ClickException):
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                err.print(escape(exc.ctx.get_usage()), highlight=False, soft_wrap=True)
            err.print(f"[bold red]error:[/] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
            sys.exit(2)
        if isinstance(exc, UserError):
            if STATE["debug"]:
                import traceback

                traceback.print_exc()
            else:
                err.print(f"[bold red]error:[/] {escape(exc.render())}", highlight=False, soft_wrap=True)
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    # ``python -m utenforsk.cli``: this file runs as ``__main__``, a second copy of the module, while
    # cli_hpc and cli_calibration register their commands on ``utenforsk.cli.app``; run that one.
    from utenforsk.cli import main as _installed_main

    _installed_main()
