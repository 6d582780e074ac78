"""Fit free parameters to targets with Optuna; resumable; the written config records the fit.

Loss of a parameter set ``theta`` (``m_j``: mean over the replicates, all with the same seeds):

    L(theta) = sum_j w_j ((m_j(theta) - observed_j) / tolerance_j)^2 / sum_j w_j

so a loss below 1 means the targets are, on average, inside their tolerances. Every evaluation
uses the same replicate seeds (common random numbers), so differences in ``L`` between
parameter sets are not Monte Carlo noise of a fresh draw.

The study lives in an Optuna ``JournalStorage`` file (an append-only log with file locks, which
works on NFS/Lustre, unlike SQLite): rerunning the same command resumes it and runs only the
missing trials; several processes (or nodes) may run the same command at once. The study name is a
hash of what the loss depends on (model, targets, parameters, simulation, optimiser, version; not
the number of trials, so ``--trials`` can extend a finished study), so an edited input starts a
new study in the same file instead of mixing trials.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import warnings
from pathlib import Path

import numpy as np
import yaml

from utenforsk import __version__
from utenforsk.calibration import simulate
from utenforsk.calibration.params import _child, param_node, split_path
from utenforsk.config.loader import compose, config_hash


def fitted_targets(targets, params) -> list[str]:
    names = params.targets or [n for n, t in targets.targets.items() if not t.monitor_only]
    return [n for n in names if targets.targets[n].weight > 0]


def loss(targets, names: list[str], means: dict[str, float]) -> float:
    w = np.array([targets.targets[n].weight for n in names])
    z = np.array([(means[n] - targets.targets[n].value) / targets.targets[n].tolerance for n in names])
    if not np.all(np.isfinite(z)):
        return float("inf")
    return float((w * z**2).sum() / w.sum())


def study_name(cfg, targets, names, params, ranges, sim) -> str:
    return "calibrate-" + config_hash({
        "model": cfg.model_dump(mode="json"), "targets": {n: targets.targets[n].model_dump(mode="json") for n in names},
        "parameters": {k: [list(ranges[k]), params.parameters[k].log] for k in ranges},
        "simulation": sim.model_dump(mode="json"),
        "optimizer": params.optimizer.model_dump(mode="json", exclude={"trials"}),  # more trials extend a study
        "version": __version__})


def _make_sampler(optimizer, seed: int):
    import optuna

    if optimizer.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if optimizer.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    startup = optimizer.startup_trials or max(5, min(10, optimizer.trials // 4))
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup)


def open_study(storage_path: Path, name: str, optimizer):
    """Create or load the study; its sampler is seeded with ``optimizer.seed`` plus the number of
    trials already in the study, so a resumed run proposes new points (deterministically for one
    process at a time). Processes that open the same study at the same instant see the same trial
    count and may propose the same first points (harmless: a duplicate evaluation)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage_path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings
        backend = JournalFileBackend(str(storage_path), lock_obj=JournalFileOpenLock(str(storage_path)))
        storage = JournalStorage(backend)
        study = optuna.create_study(study_name=name, storage=storage,
                                    sampler=_make_sampler(optimizer, optimizer.seed),
                                    direction="minimize", load_if_exists=True)
        study.sampler = _make_sampler(optimizer, optimizer.seed + len(study.trials))
        return study


def run(cfg, targets, params, ranges, sim, storage_path: Path, workers: int = 1, progress=None, pool=None):
    """Run the missing trials of the study; returns ``(study, names)``. ``pool``: a
    :class:`~utenforsk.calibration.simulate.Pool` or ``DaskPool`` to use (default: a local pool of
    ``workers``, closed at the end)."""
    import contextlib

    import optuna

    names = fitted_targets(targets, params)
    all_names = list(targets.targets)
    specs = list(targets.targets.values())
    seeds = simulate.replicate_seeds(sim.seed, sim.replicates)
    study = open_study(storage_path, study_name(cfg, targets, names, params, ranges, sim), params.optimizer)
    if not study.trials:  # start from the model's own values (clipped into the search ranges)
        data = cfg.model_dump(by_alias=True)
        start = {k: float(np.clip(param_node(data, k)["value"], *ranges[k])) for k in ranges}
        study.enqueue_trial(start)
    complete = lambda: sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)  # noqa: E731
    with (contextlib.nullcontext(pool) if pool is not None else simulate.Pool(workers)) as pool:
        def objective(trial):
            values = {k: trial.suggest_float(k, lo, hi, log=params.parameters[k].log) for k, (lo, hi) in ranges.items()}
            out = simulate.simulate(cfg, specs, seeds, values, pool)
            means = {n: float(np.nanmean(out[:, j])) for j, n in enumerate(all_names)}
            trial.set_user_attr("means", means)
            return loss(targets, names, means)

        def callback(study_, trial):
            if progress is not None:
                progress(complete(), params.optimizer.trials, study_.best_value if complete() else float("nan"))

        if progress is not None:
            progress(complete(), params.optimizer.trials, study.best_value if complete() else float("nan"))
        # an exception propagates (catch=()); trials failed by a NaN loss are retried, but a round
        # that completes none ends the loop (bounded even if every trial fails)
        while complete() < params.optimizer.trials:
            before = complete()
            study.optimize(objective, n_trials=params.optimizer.trials - complete(), callbacks=[callback],
                           catch=())
            if complete() == before:
                break
    return study, names


def override_tree(composed: dict, values: dict[str, float], source: str, note: str) -> dict:
    """The mapping that, under ``base: MODEL``, sets the fitted values (lists copied whole)."""
    tree: dict = {}
    for dotted, v in values.items():
        parts = split_path(dotted)
        src, dst = composed, tree
        for part in parts[:-1]:
            key = _child(src, part)[1]
            nxt = src[key]
            if isinstance(dst, dict) and key not in dst:
                dst[key] = copy.deepcopy(nxt) if isinstance(nxt, list) else {}
            dst, src = dst[key], nxt
        key = _child(src, parts[-1])[1]
        old = src[key]
        new = {"value": float(v), "range": list(old["range"]),
               "source": f"{source} (before: {old['value']}; {old['source']})"}
        if "unit" in old:
            new["unit"] = old["unit"]
        new["note"] = note
        dst[key] = new
    return tree


def write_config(out: Path, model_path: Path, best_values: dict[str, float], record: dict) -> None:
    """CALIBRATED.yaml: ``base: MODEL`` plus the fitted parameters; the fit in its header."""
    from utenforsk.outputs import write_json, write_text

    composed = compose(model_path)
    date = record["date"]
    source = f"calibrated: utenforsk calibrate {model_path.name} on {date}"
    note = f"loss {record['loss']:.4g} on targets {', '.join(record['targets'])} ({record['targets_file']})"
    tree = override_tree(composed, best_values, source, note)
    try:
        rel = Path(os.path.relpath(model_path.resolve(), out.resolve().parent))
    except ValueError:
        rel = model_path.resolve()
    header = ["# Calibrated by `utenforsk calibrate` (utenforsk/calibration/calibrate.py).",
              f"# date: {date}; utenforsk {record['version']}; command: {record['command']}",
              f"# targets file: {record['targets_file']}; params file: {record['params_file']}",
              f"# loss (mean squared error in tolerance units): {record['loss']:.6g} "
              f"(start {record['start_loss']:.6g}); trials {record['trials']}; "
              f"{record['replicates']} replicates x scale {record['scale']}, {record['horizon_years']}-year window",
              "# fit: target  observed  simulated  (simulated-observed)/tolerance"]
    for name, row in record["fit"].items():
        header.append(f"#   {name}: {row['observed']:.6g}  {row['simulated']:.6g}  {row['z']:+.2f}")
    header.append(f"# fitted: {json.dumps(best_values)}")
    body = {"base": str(rel), **tree}
    text = "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False, width=200, allow_unicode=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(text, out)
    write_json({**record, "fitted": best_values}, out.with_name(out.stem + ".fit.json"))


def fit_record(study, targets, names, sim, *, command, targets_file, params_file) -> dict:
    import optuna

    best = study.best_trial
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    start = done[0] if done else best
    means = best.user_attrs["means"]
    fit = {n: {"observed": targets.targets[n].value, "simulated": means[n], "tolerance": targets.targets[n].tolerance,
               "z": (means[n] - targets.targets[n].value) / targets.targets[n].tolerance} for n in names}
    return {"date": dt.date.today().isoformat(), "version": __version__, "command": command,
            "targets_file": str(targets_file), "params_file": str(params_file), "targets": names,
            "loss": float(best.value), "start_loss": float(start.value), "start": dict(start.params),
            "trials": len(done), "best_trial": best.number, "replicates": sim.replicates, "scale": sim.scale,
            "horizon_years": sim.horizon_years, "seed": sim.seed, "fit": fit}


#: acceptance rule of the ensemble: every fitted target within its tolerance (|z| <= 1), the
#: implausibility cut of history matching with the tolerance as the combined discrepancy
ACCEPT_MAX_Z = 1.0
ENSEMBLE_SAMPLERS = ("random", "qmc")


def ensemble(study, targets, names: list[str], max_z: float = ACCEPT_MAX_Z):
    """Accepted parameter sets: prior draws (uniform over the search ranges, so the sampler must be
    random or qmc) whose replicate-mean fit puts every fitted target within ``max_z`` tolerances.
    That is rejection ABC with a uniform prior and a tolerance-scaled distance; the enqueued start
    trial (the model's own values, not a prior draw) is left out. Returns ``(frame, n_draws)``."""
    import optuna
    import pandas as pd

    rows, n = [], 0
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE or t.system_attrs.get("fixed_params"):
            continue
        n += 1
        means = t.user_attrs["means"]
        z = [abs(means[k] - targets.targets[k].value) / targets.targets[k].tolerance for k in names]
        if all(np.isfinite(z)) and max(z) <= max_z:
            rows.append(dict(t.params))
    return pd.DataFrame(rows, columns=sorted(study.trials[-1].params)) if rows else pd.DataFrame(), n


METHODS = ("history-matching", "rejection")


def provenance(cfg, targets, names, params, ranges, sim, method: str) -> dict:
    """What made an ensemble: hashes of the model, targets and settings, the seed and version."""
    return {"method": method, "version": __version__, "date": dt.date.today().isoformat(),
            "model_config_hash": config_hash(cfg.model_dump(mode="json")),
            "targets_hash": config_hash({n: targets.targets[n].model_dump(mode="json") for n in names}),
            "settings_hash": config_hash({"parameters": {k: [list(ranges[k]), params.parameters[k].log] for k in ranges},
                                          "simulation": sim.model_dump(mode="json"),
                                          "history_matching": params.history_matching.model_dump(mode="json"),
                                          "optimizer": params.optimizer.model_dump(mode="json")}),
            "seed": sim.seed, "replicates": sim.replicates, "scale": sim.scale,
            "horizon_years": sim.horizon_years, "burn_in_years": sim.burn_in_years,
            # the priors, which ensemble-summary reads (for either method)
            "parameters": {k: {"range": list(ranges[k]), "log": params.parameters[k].log} for k in ranges}}


def write_ensemble(frame, path: Path, record: dict) -> None:
    """The accepted sets as CSV, one column per dotted parameter, under one ``#`` provenance line
    (experiments' ``uncertainty.ensemble`` skips it); the full record in the ``.json`` beside it."""
    from utenforsk.outputs import write_json, write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    head = (f"# utenforsk {record['version']} calibrate --method {record['method']}: {record['accepted']} accepted "
            f"of {record['draws']} simulated; model config {record['model_config_hash']}, seed {record['seed']}, "
            f"{record['date']}; see {path.with_suffix('.json').name}\n")
    write_text(head + frame.to_csv(index=False, float_format="%.8g"), path)
    write_json(record, path.with_suffix(".json"))


def read_ensemble(path: Path):
    """An ensemble CSV of :func:`write_ensemble`, under its ``#`` provenance line."""
    import pandas as pd

    return pd.read_csv(path, comment="#")
