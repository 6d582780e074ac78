"""Global sensitivity analysis with SALib: which assumptions drive an estimated effect.

The parameters are the experiment's ``uncertainty.parameters`` (model parameters by dotted path,
and intervention parameters as ``interventions.NAME.PATH``), each varied over its own ``range``.
For every sample point, every scenario runs with the same seed(s) as the baseline (common random
numbers; the burn-in is simulated once and forked), and the output analysed is

- for each non-baseline scenario: its paired effect, ``metric(scenario) - metric(baseline)``;
- for ``baseline``: the metric's level.

Every sample point uses the same seeds too, so differences between points are caused by the
parameters, not by fresh dice. Methods:

- ``morris``: elementary effects (``SALib.sample.morris``, 4 levels, ``samples`` trajectories);
  ranking by ``mu_star`` (mean absolute elementary effect) with its bootstrap 95% interval;
- ``sobol``: Saltelli/Sobol' sampling (``SALib.sample.sobol``, ``samples`` base points, no second
  order); ranking by total index ``ST`` with bootstrap 95% intervals, and first-order ``S1``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from utenforsk.calibration.params import check_param, param_node, set_values
from utenforsk.errors import ConfigError

IV_PREFIX = "interventions."


class Setup:
    """A validated sensitivity run: model config, scenarios, parameters and their ranges."""

    def __init__(self, experiment_path, metric: str, scenarios: list[str] | None = None):
        from utenforsk.experiment.metrics import TASK_METRICS
        from utenforsk.experiment.runner import load_experiment
        from utenforsk.interventions import engine
        from utenforsk.model import resolve_config

        self.file = str(experiment_path)
        exp, base = load_experiment(experiment_path)
        self.exp = exp
        model_path = (base / exp.model).resolve()
        if not model_path.exists():
            raise ConfigError("model file not found", file=self.file, key="model", value=exp.model)
        self.cfg = resolve_config(model_path, exp.scale, None, start_year=exp.start_year,
                                  horizon_years=exp.horizon_years, burn_in_years=exp.burn_in_years)
        known = [m for m in TASK_METRICS  # a gap only when the model reports by its attribute
                 if not m.startswith("gap_") or m.removeprefix("gap_neet_rate_15_29_") in self.cfg.report_by]
        if metric not in known:
            raise ConfigError("unknown metric (a horizon metric of the experiment)", key="--metric", value=metric,
                              allowed=", ".join(known))
        self.metric = metric
        self.scenarios: dict[str, list] = {}
        for name, sc in exp.scenarios.items():
            if sc.overrides:
                raise ConfigError("sensitivity runs scenarios without overrides (name the parameter instead)",
                                  file=self.file, key=f"scenarios.{name}.overrides",
                                  allowed="a scenario of interventions only")
            refs = []
            for ref in sc.interventions:
                if isinstance(ref, str) and ref.endswith((".yaml", ".yml")):
                    ref = str((base / ref).resolve())
                refs.append(engine.load_intervention(ref, where=self.file).model_dump(by_alias=True, exclude_none=True)
                            if not engine.is_plugin_ref(ref) else ref)
            self.scenarios[name] = refs
        wanted = scenarios or [s for s in exp.scenarios if s != "baseline"]
        for s in wanted:
            if s not in exp.scenarios or s == "baseline":
                raise ConfigError("unknown scenario", key="--scenario", value=s,
                                  allowed=", ".join(x for x in exp.scenarios if x != "baseline") or "none")
        self.outputs = ["baseline"] + list(wanted)
        self.names: list[str] = []
        self.bounds: list[tuple[float, float]] = []
        data = self.cfg.model_dump(by_alias=True)
        params = exp.uncertainty.parameters
        if not params:
            raise ConfigError("no parameters to vary", file=self.file, key="uncertainty.parameters",
                              allowed="a list of dotted parameter paths with ranges")
        for i, dotted in enumerate(params):
            key = f"uncertainty.parameters[{i}]"
            if dotted.startswith(IV_PREFIX):
                lo, hi = self._iv_range(dotted, key)
            else:
                _, (lo, hi) = check_param(data, dotted, self.file, key)
            if not lo < hi:
                raise ConfigError("the parameter's range is a single value: nothing to vary", file=self.file,
                                  key=key, value=dotted, allowed="a parameter with low < high")
            self.names.append(dotted)
            self.bounds.append((lo, hi))

    def _iv_range(self, dotted: str, key: str) -> tuple[float, float]:
        rest = dotted[len(IV_PREFIX):]
        name, _, path = rest.partition(".")
        found = [iv for refs in self.scenarios.values() for iv in refs if isinstance(iv, dict) and iv.get("name") == name]
        if not found:
            names = sorted({iv.get("name") for refs in self.scenarios.values() for iv in refs if isinstance(iv, dict)})
            raise ConfigError("no such intervention in the experiment's scenarios", file=self.file, key=key,
                              value=dotted, allowed=", ".join(f"interventions.{n}.PATH" for n in names) or "none")
        node = param_node(found[0], path)
        if node is None:
            raise ConfigError("not the dotted path of a parameter of that intervention", file=self.file, key=key,
                              value=dotted, allowed=f"e.g. interventions.{name}.coverage")
        return float(node["range"][0]), float(node["range"][1])

    def problem(self) -> dict:
        return {"num_vars": len(self.names), "names": self.names, "bounds": [list(b) for b in self.bounds]}

    def point_spec(self, x: np.ndarray) -> tuple[dict, dict]:
        """(model values, {intervention name: values}) of one sample point."""
        model_vals, iv_vals = {}, {}
        for name, v in zip(self.names, x):
            if name.startswith(IV_PREFIX):
                iv, _, path = name[len(IV_PREFIX):].partition(".")
                iv_vals.setdefault(iv, {})[path] = float(v)
            else:
                model_vals[name] = float(v)
        return model_vals, iv_vals


def run_point(cfg, scenarios: dict[str, list], outputs: list[str], metric: str, model_vals: dict,
              iv_vals: dict, seeds: list[int], threads=1) -> list[float]:
    """Mean over seeds of [baseline level, effect of each other output scenario]."""
    from utenforsk.calibration.params import apply_model_values
    from utenforsk.experiment.metrics import task_metrics
    from utenforsk.model import UtenforskModel

    cfg = apply_model_values(cfg, model_vals)
    refs = {s: [set_values(iv, iv_vals.get(iv.get("name"), {})) if isinstance(iv, dict) and "plugin" not in iv else iv
                for iv in scenarios[s]] for s in outputs}
    rows = []
    for seed in seeds:
        donor = UtenforskModel(cfg, seed=seed, threads=threads)
        vals = {}
        for s in outputs[1:]:
            try:
                m = UtenforskModel(cfg, seed=seed, threads=threads, interventions=refs[s], burn_in_from=donor)
            except ValueError:  # acts during the burn-in, or a plugin: simulate it
                m = UtenforskModel(cfg, seed=seed, threads=threads, interventions=refs[s])
            m.run_model()
            vals[s] = task_metrics(m)[metric]
        donor.run_model()  # the baseline itself, after the others forked its burn-in
        base = task_metrics(donor)[metric]
        rows.append([base] + [vals[s] - base for s in outputs[1:]])
    return list(np.mean(np.array(rows, dtype=float), axis=0))


def _job(args):
    return run_point(*args)


def sample(setup: Setup, method: str, n: int, seed: int) -> np.ndarray:
    problem = setup.problem()
    if method == "morris":
        from SALib.sample import morris

        return morris.sample(problem, n, num_levels=4, seed=seed)
    from SALib.sample import sobol

    return sobol.sample(problem, n, calc_second_order=False, scramble=True, seed=seed)


def evaluate(setup: Setup, X: np.ndarray, seeds: list[int], workers: int = 1, progress=None) -> np.ndarray:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from utenforsk.calibration.simulate import _worker_init

    jobs = []
    for x in X:
        mv, iv = setup.point_spec(x)
        jobs.append((setup.cfg, setup.scenarios, setup.outputs, setup.metric, mv, iv, seeds,
                     1 if workers > 1 else None))
    out = []
    if workers <= 1:
        for j in jobs:
            out.append(_job(j))
            if progress:
                progress(len(out), len(jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                 initializer=_worker_init) as pool:
            for row in pool.map(_job, jobs, chunksize=1):
                out.append(row)
                if progress:
                    progress(len(out), len(jobs))
    return np.array(out, dtype=float)


def analyse(setup: Setup, method: str, X: np.ndarray, Y: np.ndarray, seed: int) -> pd.DataFrame:
    """One row per (output, parameter), ranked within each output."""
    problem = setup.problem()
    frames = []
    for k, output in enumerate(setup.outputs):
        y = Y[:, k]
        if method == "morris":
            from SALib.analyze import morris

            r = morris.analyze(problem, X, y, conf_level=0.95, num_resamples=1000, num_levels=4, seed=seed)
            df = pd.DataFrame({"parameter": setup.names, "mu_star": r["mu_star"], "mu_star_conf": r["mu_star_conf"],
                               "mu": r["mu"], "sigma": r["sigma"]})
            df["index"], df["ci_low"], df["ci_high"] = df.mu_star, df.mu_star - df.mu_star_conf, df.mu_star + df.mu_star_conf
        else:
            from SALib.analyze import sobol

            r = sobol.analyze(problem, y, calc_second_order=False, conf_level=0.95, num_resamples=1000, seed=seed)
            df = pd.DataFrame({"parameter": setup.names, "ST": r["ST"], "ST_conf": r["ST_conf"],
                               "S1": r["S1"], "S1_conf": r["S1_conf"]})
            df["index"], df["ci_low"], df["ci_high"] = df.ST, df.ST - df.ST_conf, df.ST + df.ST_conf
        df = df.sort_values("index", ascending=False, kind="stable").reset_index(drop=True)
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        df.insert(0, "output", output if output == "baseline" else f"{output} - baseline")
        df.insert(1, "metric", setup.metric)
        df["output_mean"] = float(np.mean(y))
        df["output_sd"] = float(np.std(y, ddof=1)) if len(y) > 1 else float("nan")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def figure(table: pd.DataFrame, path: Path, method: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outputs = list(dict.fromkeys(table.output))
    n_par = table.parameter.nunique()
    fig, axes = plt.subplots(1, len(outputs), figsize=(4.2 * len(outputs) + 2.5, 0.38 * n_par + 1.6),
                             sharey=False, squeeze=False)
    for ax, output in zip(axes[0], outputs):
        t = table[table.output == output].iloc[::-1]
        y = np.arange(len(t))
        err = np.vstack([t["index"] - t.ci_low, t.ci_high - t["index"]]).clip(min=0)
        ax.barh(y, t["index"], xerr=err, color="#4c72b0", ecolor="black", capsize=2)
        ax.set_yticks(y, [p.replace("interventions.", "iv.") for p in t.parameter], fontsize=7)
        ax.set_title(output, fontsize=9)
        ax.set_xlabel("mu* (morris)" if method == "morris" else "total index ST (sobol)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(table: pd.DataFrame, method: str, command: str, n_points: int, seeds: int) -> str:
    idx = "mu*" if method == "morris" else "ST"
    lines = [f"# Sensitivity ({method}): {table.metric.iloc[0]}", "", f"`{command}`", "",
             f"{n_points} sample points x {seeds} seed(s) (common random numbers across points and scenarios). "
             f"Ranked by {idx} with its bootstrap 95% interval"
             + (" (mu: signed mean effect; sigma: spread, i.e. interactions or non-linearity)." if method == "morris"
                else " (S1: first-order index)."), ""]
    for output in dict.fromkeys(table.output):
        t = table[table.output == output]
        lines += [f"## {output}", "", f"mean {t.output_mean.iloc[0]:.5g}, sd across points {t.output_sd.iloc[0]:.3g}", ""]
        if method == "morris":
            lines += ["| rank | parameter | mu* (95% CI) | mu | sigma |", "|---:|---|---:|---:|---:|"]
            for r in t.itertuples():
                lines.append(f"| {r.rank} | `{r.parameter}` | {r.mu_star:.4g} ({r.ci_low:.3g} to {r.ci_high:.3g}) | "
                             f"{r.mu:.3g} | {r.sigma:.3g} |")
        else:
            lines += ["| rank | parameter | ST (95% CI) | S1 (95% CI) |", "|---:|---|---:|---:|"]
            for r in t.itertuples():
                lines.append(f"| {r.rank} | `{r.parameter}` | {r.ST:.3f} ({r.ci_low:.3f} to {r.ci_high:.3f}) | "
                             f"{r.S1:.3f} (±{r.S1_conf:.3f}) |")
        lines.append("")
    return "\n".join(lines)


def is_power_of_two(n: int) -> bool:
    return n > 0 and 2 ** int(math.log2(n)) == n
