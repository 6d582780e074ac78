"""Calibration commands (``validate``, ``calibrate``, ``sensitivity``): registered on :data:`utenforsk.cli.app`.

Bad target, parameter or experiment files exit with status 2 and one line (file, key, value,
allowed) before anything runs or is written. ``validate`` exits 1 when a target is missed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from utenforsk.cli import _fail, _scale, _seed, app, err, out, progress_bar
from utenforsk.errors import UserError


def _simulation(sim, cfg, replicates, scale, horizon_years, seed):
    """The targets' simulation settings with flags applied and defaults resolved from the model."""
    upd = {"replicates": replicates, "scale": scale, "horizon_years": horizon_years, "seed": seed}
    sim = sim.model_copy(update={k: v for k, v in upd.items() if v is not None})
    return sim.model_copy(update={"scale": sim.scale or cfg.scale,
                                  "burn_in_years": sim.burn_in_years if sim.burn_in_years is not None
                                  else cfg.calendar.burn_in_years})


@app.command()
def validate(model: Path = typer.Argument(..., help="model config YAML, e.g. configs/norway/baseline.yaml"),
             targets: Path = typer.Option(..., "--targets", help="targets YAML, e.g. configs/norway/targets.yaml"),
             replicates: Optional[int] = typer.Option(None, "--replicates", min=2, help="replicates (default: the targets file's)"),
             scale: Optional[str] = typer.Option(None, "--scale", help="simulated persons per real person, in (0, 1]"),
             horizon_years: Optional[int] = typer.Option(None, "--horizon-years", min=1, max=80,
                                                         help="policy years averaged (default: the targets file's)"),
             seed: Optional[str] = typer.Option(None, "--seed", help="base seed of the replicates"),
             workers: int = typer.Option(2, "--workers", min=1, help="parallel worker processes"),
             out_dir: Path = typer.Option(Path("results/validation"), "--out", help="output directory")):
    """Simulated vs observed targets with replicate intervals; writes validation.md, .csv and a figure.

    Exit status 0 when every target is within its tolerance, 1 when one is not, 2 on bad input."""
    scale_v = _scale(scale)
    seed_v = _seed(seed) if seed is not None else None
    try:
        from utenforsk.calibration import simulate
        from utenforsk.calibration.targets import load_targets
        from utenforsk.config.loader import load_model_config

        cfg = load_model_config(model)
        tf = load_targets(targets, cfg)
        sim = _simulation(tf.simulation, cfg, replicates, scale_v, horizon_years, seed_v)
        rcfg = simulate.resolved(cfg, sim)
        from utenforsk.outputs import ensure_output_dir

        ensure_output_dir(out_dir)
        seeds = simulate.replicate_seeds(sim.seed, sim.replicates)
        specs = list(tf.targets.values())
        t0 = time.perf_counter()
        with progress_bar() as bar, simulate.Pool(workers) as pool:
            task = bar.add_task(f"validate: {sim.replicates} replicates", total=len(seeds))
            rows = []
            for i in range(0, len(seeds), pool.workers):  # in batches, for progress
                rows.append(simulate.simulate(rcfg, specs, seeds[i:i + pool.workers], None, pool))
                bar.update(task, completed=min(i + pool.workers, len(seeds)))
        import numpy as np

        from utenforsk.calibration.validate import fit_table, fmt, write_report

        table = fit_table(tf, np.vstack(rows))
        write_report(table, tf, out_dir, model_path=str(model), targets_path=str(targets), sim=sim,
                     command="utenforsk " + " ".join(sys.argv[1:]))
    except UserError as exc:
        _fail(exc)
    t = Table(title=f"{model.name} vs {targets.name}: {sim.replicates} replicates, scale {sim.scale}, "
                    f"{sim.horizon_years}-year window")
    for c, j in (("target", "left"), ("observed", "right"), ("tolerance", "right"), ("simulated", "right"),
                 ("95% CI", "right"), ("status", "left")):
        t.add_column(c, justify=j, overflow="fold")
    for r in table.itertuples():
        style = "bold red" if r.status == "FAIL" else ("dim" if r.status.startswith("monitor") else "")
        t.add_row(r.target, fmt(r.observed, r.unit), fmt(r.tolerance, r.unit), fmt(r.simulated, r.unit, 2),
                  f"{fmt(r.ci_low, r.unit, 2)}-{fmt(r.ci_high, r.unit, 2)}", r.status, style=style)
    out.print(t)
    from utenforsk.calibration.validate import HOLDOUT_PASS_SHARE, summary

    ok, lines = summary(table)
    for line in lines:
        out.print(line)
    out.print(f"wrote {out_dir}/validation.md, validation.csv, figures/validation.png "
              f"in {time.perf_counter() - t0:.0f} s")
    if not ok:
        out.print(f"FAILED: a calibration target is outside its tolerance, or fewer than "
                  f"{HOLDOUT_PASS_SHARE:.0%} of hold-out targets pass")
        raise typer.Exit(1)


def _pool(executor: str, scheduler: Optional[str], workers: int):
    from utenforsk.calibration import simulate

    return simulate.DaskPool(scheduler, workers) if executor == "dask" else simulate.Pool(workers)


@app.command()
def calibrate(model: Path = typer.Argument(..., help="model config YAML to calibrate"),
              targets: Path = typer.Option(..., "--targets", help="targets YAML"),
              params: Path = typer.Option(..., "--params", help="PARAMS YAML: free parameters, targets, optimiser"),
              out_file: Path = typer.Option(..., "--out", help="calibrated config to write (YAML, `base:` MODEL)"),
              trials: Optional[int] = typer.Option(None, "--trials", min=1, help="total trials (default: the PARAMS file's)"),
              replicates: Optional[int] = typer.Option(None, "--replicates", min=1, help="replicates per evaluation"),
              scale: Optional[str] = typer.Option(None, "--scale", help="simulated persons per real person, in (0, 1]"),
              workers: int = typer.Option(2, "--workers", min=1, help="parallel worker processes"),
              storage: Optional[Path] = typer.Option(None, "--storage",
                                                     help="Optuna journal file (default: OUT with .journal); rerun to resume"),
              ensemble_file: Optional[Path] = typer.Option(
                  None, "--ensemble", help="write an ensemble of accepted parameter sets (CSV for uncertainty.ensemble)"),
              method: Optional[str] = typer.Option(
                  None, "--method", help="how the ensemble is made: history-matching (default) or rejection "
                                         "(over the Optuna trials; sampler random or qmc)"),
              executor: str = typer.Option("local", "--executor", help="local (a process pool of --workers) or dask"),
              scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                                      help="with --executor dask: tcp://HOST:8786, or local")):
    """Fit free parameters to targets: Optuna (CRN replicates, parallel, resumable), or with
    --ensemble an ensemble of accepted sets by history matching in waves or rejection ABC
    (docs/calibration.md)."""
    scale_v = _scale(scale)
    try:
        from utenforsk.calibration import calibrate as cal
        from utenforsk.calibration import simulate
        from utenforsk.calibration.targets import holdout_names, load_params, load_targets, without_holdouts
        from utenforsk.config.loader import load_model_config

        if method is not None and method not in cal.METHODS:
            raise UserError("unknown ensemble method", key="--method", value=method, allowed=", ".join(cal.METHODS))
        if method is not None and ensemble_file is None:
            raise UserError("--method says how an ensemble is made", key="--method", value=method,
                            allowed="use it with --ensemble FILE.csv")
        if executor not in ("local", "dask"):
            raise UserError("unknown executor", key="--executor", value=executor, allowed="local, dask")
        if executor == "dask" and not scheduler:
            raise UserError("the Dask executor needs a scheduler", key="--scheduler", value=None,
                            allowed="tcp://HOST:8786, or local")
        method = method or "history-matching"
        if ensemble_file is not None and (ensemble_file.suffix != ".csv" or ensemble_file.is_dir()):
            raise UserError("the ensemble must be a CSV file", key="--ensemble", value=str(ensemble_file),
                            allowed="a path ending in .csv")
        cfg = load_model_config(model)
        full = load_targets(targets, cfg)
        tf = without_holdouts(full)  # hold-out targets are never simulated, fitted or shown here
        pf, ranges = load_params(params, cfg, tf, holdout_names(full))
        if out_file.exists() and out_file.is_dir():
            raise UserError("is a directory, expected a YAML file path", key="--out", value=str(out_file),
                            allowed="a file path, e.g. configs/norway/calibrated.yaml")
        if out_file.suffix not in (".yaml", ".yml"):
            raise UserError("the calibrated config must be a YAML file", key="--out", value=str(out_file),
                            allowed="a path ending in .yaml or .yml")
        if trials is not None:
            pf = pf.model_copy(update={"optimizer": pf.optimizer.model_copy(update={"trials": trials})})
        if ensemble_file is not None and method == "rejection" and pf.optimizer.sampler not in cal.ENSEMBLE_SAMPLERS:
            raise UserError("an ensemble needs draws from the prior", file=str(params), key="optimizer.sampler",
                            value=pf.optimizer.sampler, allowed=" or ".join(cal.ENSEMBLE_SAMPLERS))
        sim = _simulation(pf.simulation or tf.simulation, cfg, replicates, scale_v, None, None)
        rcfg = simulate.resolved(cfg, sim)
        command = "utenforsk " + " ".join(sys.argv[1:])
        if ensemble_file is not None and method == "history-matching":
            _history_matching(rcfg, cfg, tf, pf, ranges, sim, model, targets, params, out_file, ensemble_file,
                              command, executor, scheduler, workers)
            return
        storage = storage or out_file.with_suffix(".journal")
        t0 = time.perf_counter()
        with progress_bar() as bar, _pool(executor, scheduler, workers) as pool:
            task = bar.add_task("calibrate", total=pf.optimizer.trials)

            def progress(done, total, best):
                bar.update(task, completed=done, total=total, description=f"calibrate (best loss {best:.4g})")

            study, names = cal.run(rcfg, tf, pf, ranges, sim, storage, workers=workers, progress=progress, pool=pool)
        record = cal.fit_record(study, tf, names, sim, command=command, targets_file=targets, params_file=params)
        cal.write_config(out_file, model, dict(study.best_trial.params), record)
        accepted = None
        if ensemble_file is not None:
            accepted, n_draws = cal.ensemble(study, tf, names)
            meta = {**cal.provenance(cfg, tf, names, pf, ranges, sim, "rejection"), "accepted": len(accepted),
                    "draws": n_draws, "rule": f"every fitted target within {cal.ACCEPT_MAX_Z:g} tolerance of its "
                                              f"observed value (replicate mean)",
                    "targets": names, "command": command, "seconds": time.perf_counter() - t0}
            if len(accepted):
                cal.write_ensemble(accepted, ensemble_file, meta)
            else:
                from utenforsk.outputs import write_json

                ensemble_file.parent.mkdir(parents=True, exist_ok=True)
                write_json(meta, ensemble_file.with_suffix(".json"))
    except UserError as exc:
        _fail(exc)
    t = Table(title=f"fit: loss {record['loss']:.4g} (start {record['start_loss']:.4g}), "
                    f"{record['trials']} trials, best #{record['best_trial']}")
    for c in ("target", "observed", "simulated", "z"):
        t.add_column(c, justify="left" if c == "target" else "right")
    for name, r in record["fit"].items():
        t.add_row(name, f"{r['observed']:.4g}", f"{r['simulated']:.4g}", f"{r['z']:+.2f}")
    out.print(t)
    for k, v in study.best_trial.params.items():
        out.print(f"  {k} = {v:.6g}  (start {record['start'].get(k, float('nan')):.6g})")
    out.print(f"wrote {out_file} and {out_file.with_name(out_file.stem + '.fit.json')}; study in {storage} "
              f"({time.perf_counter() - t0:.0f} s)")
    if accepted is not None:
        out.print(f"ensemble: {len(accepted)} of {n_draws} prior draws accepted"
                  + (f"; wrote {ensemble_file}" if len(accepted) else "; none accepted, no CSV written"))
        if not len(accepted):
            raise typer.Exit(1)


def _history_matching(rcfg, cfg, tf, pf, ranges, sim, model, targets, params, out_file, ensemble_file,
                      command, executor, scheduler, workers):
    """calibrate --ensemble --method history-matching: waves, then the CSV, runs, record, best config."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    from utenforsk.calibration import calibrate as cal
    from utenforsk.calibration.history import HistoryMatch
    from utenforsk.calibration.params import param_node
    from utenforsk.outputs import write_json

    names = cal.fitted_targets(tf, pf)
    t0 = time.perf_counter()
    with progress_bar("runs") as bar, _pool(executor, scheduler, workers) as pool:
        task = bar.add_task("history matching", total=None)

        def progress(wave, done, total, accepted):
            what = "the model's own values" if wave == 0 else f"wave {wave}"
            bar.update(task, completed=done, total=total, description=f"history matching, {what} "
                                                                       f"({accepted} accepted so far)")

        hm = HistoryMatch(rcfg, tf, names, pf, ranges, sim, pool, progress, log=lambda m: err.print(m, highlight=False))
        data = cfg.model_dump(by_alias=True)
        start = {k: float(np.clip(param_node(data, k)["value"], *ranges[k])) for k in ranges}
        start_reps = hm.evaluate(hm.space.unit(np.array([[start[k] for k in hm.space.names]])), 0, 0)
        result = hm.run()
    seconds = time.perf_counter() - t0
    means = result.means
    losses = np.array([cal.loss(tf, names, dict(zip(names, m))) for m in means])
    pool_idx = np.flatnonzero(result.accepted) if result.accepted.any() else np.arange(len(losses))
    best = int(pool_idx[np.argmin(losses[pool_idx])])
    start_means = dict(zip(names, np.nanmean(start_reps[0], axis=0)))
    best_values = dict(zip(result.names, map(float, result.values[best])))
    fit = {n: {"observed": tf.targets[n].value, "simulated": float(means[best, j]), "tolerance": tf.targets[n].tolerance,
               "z": float((means[best, j] - tf.targets[n].value) / tf.targets[n].tolerance)} for j, n in enumerate(names)}
    record = {"date": dt.date.today().isoformat(), "version": cal.__version__, "command": command,
              "targets_file": str(targets), "params_file": str(params), "targets": names,
              "loss": float(losses[best]), "start_loss": cal.loss(tf, names, start_means), "start": start,
              "trials": len(losses), "best_trial": best, "replicates": sim.replicates, "scale": sim.scale,
              "horizon_years": sim.horizon_years, "seed": sim.seed, "fit": fit, "method": "history-matching"}
    cal.write_config(out_file, model, best_values, record)
    accepted = pd.DataFrame(result.values[result.accepted], columns=result.names)
    hmset = pf.history_matching
    meta = {**cal.provenance(cfg, tf, names, pf, ranges, sim, "history-matching"),
            "accepted": int(result.accepted.sum()), "draws": len(losses), "targets": names,
            "rule": f"every fitted target within {cal.ACCEPT_MAX_Z:g} tolerance of its observed value "
                    f"(replicate mean of a simulated run)",
            "implausibility": f"I = |z - E[f]| / sqrt(Var_em + (tolerance/{hmset.cut:g})^2 + Var_MC), "
                              f"cut {hmset.cut:g} on the {hmset.cut_rule.replace('_', '-')} over targets",
            "history_matching": hmset.model_dump(mode="json"), "waves": result.waves, "stopped": result.stopped,
            "command": command, "seconds": round(seconds, 1), "executor": executor,
            "workers": getattr(pool, "workers", workers)}
    ensemble_file.parent.mkdir(parents=True, exist_ok=True)
    if len(accepted):
        cal.write_ensemble(accepted, ensemble_file, meta)
    else:
        write_json(meta, ensemble_file.with_suffix(".json"))
    runs = pd.DataFrame(result.values, columns=result.names)
    runs.insert(0, "wave", result.wave)
    runs.insert(1, "accepted", result.accepted)
    runs.insert(2, "max_abs_z", result.max_z)
    for j, n in enumerate(names):
        runs[f"sim:{n}"] = means[:, j]
    runs_file = ensemble_file.with_name(ensemble_file.stem + ".runs.csv")
    runs.to_csv(runs_file, index=False, float_format="%.8g")
    t = Table(title=f"history matching: {meta['accepted']} accepted of {meta['draws']} simulated "
                    f"({sim.replicates} replicates x scale {sim.scale}), {seconds:.0f} s; {result.stopped}")
    for c in ("wave", "points", "NROY share of prior", "accepted", "rate", "emulator within 3 sd"):
        t.add_column(c, justify="right")
    for w in result.waves:
        chk = w["emulator_within_3sd"]
        t.add_row(str(w["wave"]), str(w["points"]), f"{w['nroy_share_of_prior']:.3g}", str(w["accepted_in_wave"]),
                  f"{w['acceptance_rate']:.0%}", "-" if chk is None else f"{chk:.0%}")
    out.print(t)
    if len(accepted):
        q = accepted.quantile([0.05, 0.5, 0.95])
        for k in result.names:
            lo, hi = ranges[k]
            out.print(f"  {k}: prior [{lo:.4g}, {hi:.4g}], accepted 5-50-95% "
                      f"{q[k].iloc[0]:.4g} / {q[k].iloc[1]:.4g} / {q[k].iloc[2]:.4g}")
    out.print(f"wrote {ensemble_file if len(accepted) else '(no CSV: none accepted)'}, "
              f"{ensemble_file.with_suffix('.json')}, {runs_file}; best accepted set as {out_file} "
              f"(loss {losses[best]:.3g}, start {record['start_loss']:.3g})")
    if not len(accepted):
        raise typer.Exit(1)


@app.command()
def sensitivity(experiment: Path = typer.Argument(..., help="experiment YAML; uncertainty.parameters are varied"),
                method: str = typer.Option("morris", "--method", help="morris or sobol"),
                metric: str = typer.Option("neet_rate_15_29", "--metric", help="an experiment metric"),
                samples: int = typer.Option(10, "--samples", min=2,
                                            help="morris: trajectories; sobol: base samples (a power of 2)"),
                scenario: Optional[list[str]] = typer.Option(None, "--scenario", help="scenarios to analyse (default: all)"),
                replicates: int = typer.Option(1, "--replicates", min=1, help="seeds per sample point (CRN)"),
                seed: Optional[str] = typer.Option(None, "--seed", help="base seed (default: the experiment's)"),
                workers: int = typer.Option(2, "--workers", min=1, help="parallel worker processes"),
                out_dir: Optional[Path] = typer.Option(None, "--out", help="output directory (default results/sensitivity-NAME)")):
    """Morris or Sobol' sensitivity (SALib) of each intervention's paired effect and the baseline level."""
    if method not in ("morris", "sobol"):
        _fail(UserError("unknown method", key="--method", value=method, allowed="morris, sobol"))
    seed_v = _seed(seed) if seed is not None else None
    try:
        from utenforsk.calibration import sensitivity as sa
        from utenforsk.calibration.simulate import replicate_seeds

        setup = sa.Setup(experiment, metric, scenario)
        if method == "sobol" and not sa.is_power_of_two(samples):
            raise UserError("Sobol' sampling needs a power of 2", key="--samples", value=samples,
                            allowed="2, 4, 8, 16, 32, ...")
        out_dir = out_dir or Path("results") / f"sensitivity-{setup.exp.name}"
        from utenforsk.outputs import ensure_output_dir

        ensure_output_dir(out_dir)
        base_seed = seed_v if seed_v is not None else setup.exp.seed
        X = sa.sample(setup, method, samples, base_seed % 2**32)
        seeds = replicate_seeds(base_seed, replicates)
        t0 = time.perf_counter()
        with progress_bar() as bar:
            task = bar.add_task(f"{method}: {len(X)} points x {len(setup.outputs)} scenarios", total=len(X))
            Y = sa.evaluate(setup, X, seeds, workers, progress=lambda d, n: bar.update(task, completed=d))
        table = sa.analyse(setup, method, X, Y, base_seed % 2**32)
        import pandas as pd

        (out_dir / "figures").mkdir(exist_ok=True)
        pts = pd.DataFrame(X, columns=setup.names)
        for k, o in enumerate(setup.outputs):
            pts[o if o == "baseline" else f"{o} - baseline"] = Y[:, k]
        pts.to_csv(out_dir / "samples.csv", index=False)
        table.to_csv(out_dir / "sensitivity.csv", index=False)
        sa.figure(table, out_dir / "figures" / "sensitivity.png", method)
        command = "utenforsk " + " ".join(sys.argv[1:])
        (out_dir / "sensitivity.md").write_text(
            sa.markdown(table, method, command, len(X), len(seeds)) + "\n![sensitivity](figures/sensitivity.png)\n",
            encoding="utf-8")
    except UserError as exc:
        _fail(exc)
    idx = "mu_star" if method == "morris" else "ST"
    for output in dict.fromkeys(table.output):
        t = Table(title=f"{output}: {metric} ({method}, {len(X)} points)")
        for c in ("rank", "parameter", idx, "95% CI"):
            t.add_column(c, justify="left" if c == "parameter" else "right", overflow="fold")
        for r in table[table.output == output].itertuples():
            t.add_row(str(r.rank), r.parameter, f"{r.index:.4g}", f"{r.ci_low:.3g} to {r.ci_high:.3g}")
        out.print(t)
    out.print(f"wrote {out_dir}/sensitivity.md, sensitivity.csv, samples.csv, figures/sensitivity.png "
              f"in {time.perf_counter() - t0:.0f} s")


@app.command("ensemble-summary")
def ensemble_summary(ensemble: Path = typer.Argument(..., help="an ensemble CSV from calibrate --ensemble"),
                     out_dir: Path = typer.Option(Path("results/calibration"), "--out", help="output directory")):
    """Prior against posterior spread of an ensemble: ensemble_summary.md and a seaborn figure."""
    try:
        from utenforsk.calibration import ensemble_report as er
        from utenforsk.outputs import ensure_output_dir, write_text

        ens, meta = er.load(ensemble)
        ensure_output_dir(out_dir)
        table = er.summary(ens, meta)
        command = "utenforsk " + " ".join(sys.argv[1:])
        write_text(er.markdown(table, meta, command) + "\n![prior and posterior](ensemble_spread.png)\n",
                   out_dir / "ensemble_summary.md")
        er.figure(ens, meta, out_dir / "ensemble_spread.png")
    except UserError as exc:
        _fail(exc)
    t = Table(title=f"{ensemble.name}: {meta['accepted']} accepted of {meta['draws']} ({meta['method']})")
    for c in ("parameter", "prior", "posterior 5/50/95%", "90% width ratio"):
        t.add_column(c, justify="left" if c == "parameter" else "right", overflow="fold")
    for r in table.itertuples():
        t.add_row(r.parameter, f"[{r.prior_low:.4g}, {r.prior_high:.4g}]",
                  f"{r.posterior_5:.4g} / {r.posterior_50:.4g} / {r.posterior_95:.4g}", f"{r.width_ratio_90:.2f}")
    out.print(t)
    out.print(f"wrote {out_dir}/ensemble_summary.md and ensemble_spread.png")
