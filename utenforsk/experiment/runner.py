"""Run an experiment: scenarios x replicates, paired by common random numbers, resumable.

- Tasks are (scenario, replicate); replicate ``r`` has one seed for every scenario.
- ``--shard K/N`` takes the replicates with ``r % N == K - 1`` (all their scenarios), so N
  machines share an experiment and a replicate's scenarios stay together.
- A replicate's tasks run in one worker and share one simulation up to the first month any of
  their interventions acts (the burn-in and the policy months before the programmes start,
  forked), unless a scenario has its own overrides or plugins.
- Each finished task is written by the worker itself, atomically, to
  ``DIR/runs/SCENARIO/rNNNNNN.parquet``; a rerun skips finished tasks (and recomputes unreadable
  ones), so a SIGKILL loses at most the tasks in flight.
- A worker claims a task before running it (``DIR/claims/``, see :mod:`utenforsk.hpc.claims`), so
  several runners can share one directory: each skips the tasks another live runner holds.
- SIGTERM stops a runner cleanly (:mod:`utenforsk.hpc.stop`): tasks in flight are abandoned, no
  partial file is left, and :class:`~utenforsk.hpc.stop.Stopped` says how many are done and left.
- Executors: the local process pool (``workers``) or a Dask distributed cluster
  (``executor="dask"``, :mod:`utenforsk.hpc.dask_executor`); the results are the same bytes.
- Everything is validated before the first task runs: the model, every scenario's interventions
  and overrides, hypotheses, and the uncertainty parameters.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from utenforsk import __version__
from utenforsk.config.experiment import Experiment
from utenforsk.config.loader import compose, config_hash, node_at, validate
from utenforsk.errors import ConfigError, UserError

RUNS = "runs"


@dataclass(frozen=True)
class Task:
    scenario: str
    replicate: int

    def path(self, out: Path) -> Path:
        return out / RUNS / self.scenario / f"r{self.replicate:06d}.parquet"


def load_experiment(path: str | Path) -> tuple[Experiment, Path]:
    path = Path(path)
    origin: dict = {}
    exp = validate(Experiment, compose(path, origin), str(path), origin)
    return exp, path.parent.resolve()


def replicate_seed(seed: int, replicate: int) -> int:
    from utenforsk.core import rng

    mixed = (seed ^ ((replicate + 1) * int(rng.GOLDEN))) & 0xFFFFFFFFFFFFFFFF
    return int(rng.mix(np.uint64(mixed))) & (2**63 - 1)


IV_PREFIX = "interventions."


def split_iv_path(dotted: str) -> tuple[str, str]:
    """``interventions.NAME.what.odds.x`` -> ``("NAME", "what.odds.x")``."""
    name, _, path = dotted[len(IV_PREFIX):].partition(".")
    return name, path


def _set_at(data: dict, path: str, value) -> bool:
    """Set a Param's value (or a plain key such as ``when.end_year``) in an intervention dump."""
    from utenforsk.calibration.params import param_node, split_path

    node = param_node(data, path)
    if node is not None:
        node["value"] = value
        return True
    parts = split_path(path)
    parent = data
    for part in parts[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if not isinstance(parent, dict) or isinstance(parent.get(parts[-1]), dict):
        return False
    parent[parts[-1]] = value  # an unknown key is left to the schema, which names it
    return True


class Plan:
    """A validated experiment, ready to run: model path, resolved scenarios, tasks.

    Each scenario's YAML interventions are resolved to validated mappings once
    (``self.scenarios``), with the scenario's ``interventions.NAME.<path>`` overrides applied and,
    with ``follow_cohorts_to_age``, their ``end_year`` capped at the stated horizon's last year
    (the horizon is then extended, see :meth:`_follow_up`).
    """

    def __init__(self, path: str | Path, replicates: int | None = None):
        self.file = str(path)
        self.exp, self.base = load_experiment(path)
        if replicates is not None:
            if replicates < 1:
                raise UserError("must be at least 1", key="--replicates", value=replicates)
            self.exp = self.exp.model_copy(update={"replicates": replicates})
        self.model_path = (self.base / self.exp.model).resolve()
        self.refs = {name: self._resolve_interventions(name, sc.interventions)
                     for name, sc in self.exp.scenarios.items()}
        self.horizon_years = self.exp.horizon_years
        self.policy_end: int | None = None   # last year interventions may act (follow-up only)
        self.followed: tuple[int, int] | None = None  # birth years of the followed cohorts
        self._validate()
        self.hash = self._content_hash()

    def _resolve_interventions(self, scenario: str, refs: list) -> list:
        out = []
        for i, ref in enumerate(refs):
            if isinstance(ref, str) and ref.endswith((".yaml", ".yml")):
                path = (self.base / ref).resolve()
                if not path.is_file():  # name the experiment file and key, not only the missing file
                    raise ConfigError(f"intervention file not found: {path}", file=self.file,
                                      key=f"scenarios.{scenario}.interventions[{i}]", value=ref,
                                      allowed="a library name, or a YAML path relative to the experiment file")
                out.append(str(path))
            else:
                out.append(ref)
        return out

    def model_kwargs(self) -> dict:
        e = self.exp
        return {"scale": e.scale, "start_year": e.start_year, "horizon_years": self.horizon_years,
                "burn_in_years": e.burn_in_years}

    def base_overrides(self) -> dict:
        """Model overrides every task of the experiment shares (its ``for_whom`` groups)."""
        return {"report_by": list(self.exp.for_whom)} if self.exp.for_whom is not None else {}

    def _scenario_ivs(self, name: str) -> list:
        """The scenario's interventions as validated mappings (plugins as given), with its
        ``interventions.NAME.<path>`` overrides and the follow-up's end-year cap applied."""
        from utenforsk.config.loader import validate as _validate
        from utenforsk.config.interventions import Intervention
        from utenforsk.interventions import engine

        sc = self.exp.scenarios[name]
        out = []
        for ref in self.refs[name]:
            if engine.is_plugin_ref(ref):
                out.append(ref)
                continue
            out.append(engine.load_intervention(ref, where=self.file).model_dump(by_alias=True, exclude_none=True))
        by_name = {iv["name"]: iv for iv in out if "plugin" not in iv}
        for dotted, value in sc.overrides.items():
            if not dotted.startswith(IV_PREFIX):
                continue
            key = f"scenarios.{name}.overrides.{dotted}"
            iv_name, path = split_iv_path(dotted)
            if iv_name not in by_name:
                raise ConfigError("no intervention of that name in this scenario", file=self.file, key=key,
                                  value=iv_name, allowed=", ".join(f"interventions.{n}.PATH" for n in by_name) or
                                  "none (the scenario has no YAML interventions)")
            if not path or not _set_at(by_name[iv_name], path, value):
                raise ConfigError("not a path of a parameter or setting of that intervention", file=self.file,
                                  key=key, value=path, allowed=f"e.g. interventions.{iv_name}.when.end_year, "
                                                              f"interventions.{iv_name}.coverage.value")
        for iv_name, data in by_name.items():
            try:  # an override must still give a valid intervention
                iv = _validate(Intervention, data, self.file)
            except ConfigError as exc:
                raise ConfigError(exc.detail, file=self.file, key=f"scenarios.{name}.interventions.{iv_name}"
                                  + (f".{exc.key}" if exc.key else ""), value=exc.value, allowed=exc.allowed) from None
            if self.policy_end is not None and iv.when.start_year > self.policy_end:
                # it would run only in the follow-up years, which are documented as programme-free
                raise ConfigError("the intervention starts after the stated horizon, in the years "
                                  "added only to follow the treated cohorts", file=self.file,
                                  key=f"scenarios.{name}.interventions.{iv_name}.when.start_year",
                                  value=iv.when.start_year,
                                  allowed=f"a start year up to {self.policy_end} (the stated horizon's last year), "
                                          "or a longer horizon_years")
            if self.policy_end is not None and (iv.when.end_year is None or iv.when.end_year > self.policy_end):
                data.setdefault("when", {})["end_year"] = self.policy_end
        return out

    def _follow_up(self, cal) -> None:
        """``follow_cohorts_to_age: A``: interventions stop at the stated horizon's last year and the
        horizon extends until the youngest cohort any of them treated has reached age A."""
        from utenforsk.interventions import engine

        age = self.exp.follow_cohorts_to_age
        last = cal.start_year + cal.horizon_years - 1
        births = []
        for name in self.refs:  # with the scenario's own overrides (e.g. an earlier end_year)
            for data in self._scenario_ivs(name):
                if engine.is_plugin_ref(data):
                    continue
                iv = engine.load_intervention(data, where=self.file)
                w = iv.when
                stop = last if w.end_year is None else min(w.end_year, last)
                if w.start_year > stop:
                    continue
                lo, hi = iv.who.ages
                births += [w.start_year - int(math.ceil(hi)) + 1, stop - int(math.floor(lo))]
        self.policy_end = last
        if not births:
            return
        self.followed = (min(births), max(births))
        need_last = self.followed[1] + age
        years = max(cal.horizon_years, need_last - cal.start_year + 1)
        if years > 80:
            raise ConfigError(f"following the treated cohorts to age {age} needs a horizon of {years} years "
                              f"(to {need_last}), more than 80", file=self.file, key="follow_cohorts_to_age",
                              value=age, allowed="a lower age, or interventions that end earlier (when.end_year)")
        self.horizon_years = years

    def _validate(self) -> None:
        """Build every scenario's compiled model once (cheap), so bad input fails before any run."""
        from utenforsk.analysis.hypotheses import validate_hypotheses
        from utenforsk.core.tables import CompiledModel
        from utenforsk.interventions import engine
        from utenforsk.interventions.slots import programme_slots
        from utenforsk.model import resolve_config

        if not self.model_path.exists():
            raise ConfigError("model file not found", file=self.file, key="model", value=self.exp.model)
        calendar = {k: v for k, v in self.model_kwargs().items() if k != "scale"}
        try:
            self.config = resolve_config(self.model_path, self.exp.scale, self.base_overrides(), **calendar)
        except ConfigError as exc:
            if self.exp.for_whom is None:
                raise
            raise ConfigError(exc.detail, file=self.file, key="for_whom", value=self.exp.for_whom,
                              allowed=", ".join(resolve_config(self.model_path).attributes)) from None
        if self.exp.follow_cohorts_to_age is not None:
            self._follow_up(self.config.calendar)
            calendar["horizon_years"] = self.horizon_years
            self.config = resolve_config(self.model_path, self.exp.scale, self.base_overrides(), **calendar)
        self.scenarios = {}
        for name, sc in self.exp.scenarios.items():
            where = f"scenarios.{name}"
            try:
                self.scenarios[name] = self._scenario_ivs(name)
                model_over = {k: v for k, v in sc.overrides.items() if not k.startswith(IV_PREFIX)}
                cfg = resolve_config(self.config, None, model_over)
                cfg, ivs, _ = engine.resolve_scenario(cfg, self.scenarios[name], where=self.file)
                programme_slots(CompiledModel(cfg), ivs)
            except ConfigError as exc:
                if exc.key and exc.key.startswith(where):
                    raise
                raise ConfigError(exc.detail, file=exc.file or self.file,
                                  key=f"{where}: {exc.key}" if exc.key else where,
                                  value=exc.value, allowed=exc.allowed) from None
        cal = self.config.calendar
        last = cal.start_year + cal.horizon_years - 1
        for i, year in enumerate(self.exp.report_years):
            if not cal.start_year <= year <= last:
                raise ConfigError("report year outside the policy horizon", file=self.file,
                                  key=f"report_years[{i}]", value=year,
                                  allowed=f"a year in {cal.start_year}..{last}")
        self._validate_parameters()
        from utenforsk.experiment.metrics import COHORT_METRICS, TASK_METRICS, YEARLY

        known = set(TASK_METRICS) | set(YEARLY)  # a yearly metric as NAME@YEAR
        if self.followed is not None:
            known |= set(COHORT_METRICS)
        for i, m in enumerate(self.exp.metrics):
            if m.split("@")[0] not in known:
                raise ConfigError("unknown metric", file=self.file, key=f"metrics[{i}]", value=m,
                                  allowed=", ".join(sorted(known)))
        self.hypotheses = validate_hypotheses(self.exp.hypotheses, known, set(self.exp.scenarios), self.file)
        from utenforsk.experiment.finalize import valuation

        self.valuation = valuation(self)  # a bad cost book fails before any task runs

    def _validate_parameters(self) -> None:
        """Every drawn parameter names a Param with a range, in the model or in an intervention of
        some scenario; the ensemble's columns name model parameters and hold values in range."""
        from utenforsk.calibration.params import param_node

        data = self.config.model_dump(by_alias=True)
        ivs = {iv["name"]: iv for refs in self.scenarios.values() for iv in refs if "plugin" not in iv}
        self.iv_ranges: dict[str, tuple[float, float]] = {}
        for i, dotted in enumerate(self.exp.uncertainty.parameters):
            key = f"uncertainty.parameters[{i}]"
            if dotted.startswith(IV_PREFIX):
                name, path = split_iv_path(dotted)
                if name not in ivs:
                    raise ConfigError("no intervention of that name in the experiment's scenarios",
                                      file=self.file, key=key, value=dotted,
                                      allowed=", ".join(f"interventions.{n}.PATH" for n in sorted(ivs)) or "none")
                node = param_node(ivs[name], path) if path else None
                if node is None:
                    raise ConfigError("not the dotted path of a parameter of that intervention", file=self.file,
                                      key=key, value=dotted,
                                      allowed=f"a parameter with a range, e.g. interventions.{name}.coverage"
                                              + "".join(f" or interventions.{name}.what.odds.{t}"
                                                        for t in list(ivs[name].get("what", {}).get("odds", {}))[:1]))
                self.iv_ranges[dotted] = (float(node["range"][0]), float(node["range"][1]))
                for sc_name, sc in self.exp.scenarios.items():
                    fixed = {k for k in sc.overrides if k in (dotted, f"{dotted}.value")}
                    if fixed:  # the draw would silently replace the scenario's own value
                        raise ConfigError("drawn in parameter mode and also fixed by a scenario's override",
                                          file=self.file, key=f"scenarios.{sc_name}.overrides.{fixed.pop()}",
                                          value=dotted, allowed="either draw the parameter (uncertainty.parameters) "
                                                                "or fix it in the scenario, not both")
                continue
            if dotted.startswith("attributes.") or ".age_shares" in dotted:
                raise ConfigError("shares must sum to 1, so one cannot be drawn on its own",
                                  file=self.file, key=key, value=dotted,
                                  allowed="a hazard, coefficient, service or handoff parameter")
            node = node_at(data, dotted)
            if not (isinstance(node, dict) and {"value", "range", "source"} <= set(node)):
                raise ConfigError("not the dotted path of a parameter in the model or of an intervention",
                                  file=self.file, key=key, value=dotted,
                                  allowed="a path such as transitions.job_finding.probability, or "
                                          "interventions.NAME.<path> such as interventions.ips_youth.what.odds.job_finding")
        self.ensemble = self._load_ensemble(data)

    def _load_ensemble(self, data: dict) -> pd.DataFrame | None:
        """The calibrated ensemble (rows of model parameter sets), checked against the model."""
        rel = self.exp.uncertainty.ensemble
        if rel is None:
            return None
        path = (self.base / rel).resolve()
        key = "uncertainty.ensemble"
        if not path.is_file():
            raise ConfigError("ensemble file not found", file=self.file, key=key, value=rel,
                              allowed="a CSV file relative to the experiment file")
        try:
            from utenforsk.calibration.calibrate import read_ensemble

            ens = read_ensemble(path)  # under calibrate's provenance line
        except Exception as exc:  # an unreadable or malformed CSV is bad input
            raise ConfigError(f"cannot read the ensemble as CSV ({exc.__class__.__name__})", file=str(path),
                              key=key, value=rel, allowed="a CSV with one column per dotted model parameter") from None
        if ens.empty:
            raise ConfigError("the ensemble has no rows", file=str(path), key=key, value=rel,
                              allowed="one row per calibrated parameter set")
        drawn = set(self.exp.uncertainty.parameters)
        for col in ens.columns:
            node = node_at(data, col)
            if col.startswith(IV_PREFIX) or not (isinstance(node, dict) and {"value", "range"} <= set(node)):
                raise ConfigError("an ensemble column must name a parameter of the model", file=str(path),
                                  key=f"{key} column", value=col, allowed="a dotted model path such as "
                                                                           "transitions.job_finding.probability")
            if col in drawn:
                raise ConfigError("a parameter is both drawn uniformly and taken from the ensemble",
                                  file=self.file, key=key, value=col,
                                  allowed="list it in uncertainty.parameters or in the ensemble, not both")
            vals = pd.to_numeric(ens[col], errors="coerce")
            lo, hi = node["range"]
            bad = ~(vals.between(lo, hi))
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise ConfigError(f"ensemble value outside the parameter's range [{lo}, {hi}] (row {row + 1})",
                                  file=str(path), key=f"{key} column {col}", value=float(vals.iloc[row]) if np.isfinite(vals.iloc[row]) else ens[col].iloc[row],
                                  allowed=f"a number in [{lo}, {hi}]")
        return ens.astype(float)

    def _content_hash(self) -> str:
        """The experiment plus the *contents* of the model and of every scenario's interventions,
        and the package version, so editing a file or upgrading cannot silently mix tasks."""
        from utenforsk.interventions import engine

        scenarios = {}
        for name, refs in self.scenarios.items():
            scenarios[name] = [r if engine.is_plugin_ref(r)
                               else engine.load_intervention(r, where=self.file).model_dump(mode="json")
                               for r in refs]
        # what tasks depend on: not the replicate count, nor what only the report reads
        exp = self.exp.model_dump(mode="json", exclude={"replicates", "description", "metrics",
                                                        "report_years", "hypotheses", "economics"})
        exp["uncertainty"].pop("supported_at", None)  # only the report reads it
        if exp.get("follow_cohorts_to_age") is None:
            exp.pop("follow_cohorts_to_age", None)
        if exp.get("for_whom") is None:
            exp.pop("for_whom", None)
        if not exp.get("municipality_metrics"):
            exp.pop("municipality_metrics", None)
        if exp["uncertainty"].get("ensemble") is None:
            exp["uncertainty"].pop("ensemble", None)
        extra = {}
        if self.ensemble is not None:
            extra["ensemble"] = self.ensemble.to_csv(index=False)
        return config_hash({"experiment": exp, "model": self.config.model_dump(mode="json"),
                            "interventions": scenarios, "version": __version__, **extra})

    def tasks(self, shard: tuple[int, int] = (1, 1)) -> list[Task]:
        k, n = shard
        return [Task(s, r) for r in range(self.exp.replicates) if r % n == k - 1 for s in self.exp.scenarios]

    def drawn_values(self, replicate: int) -> tuple[dict, dict]:
        """Parameter mode: ``(model values, intervention values)`` of the replicate's draw.

        Model values are ``{"dotted.path.value": x}`` overrides; intervention values
        ``{"interventions.NAME.path": x}``. Each listed parameter is uniform over its range, from a
        generator keyed by (seed, draw) alone, so every scenario and every replicate of a draw gets
        the same values; ensemble columns take row ``draw mod rows``.
        """
        if self.exp.uncertainty.mode != "parameter":
            return {}, {}
        draw = self.draw_of(replicate)
        rng = np.random.default_rng([self.exp.seed, draw, 0x5EED])
        data = self.config.model_dump(by_alias=True)
        model, ivs = {}, {}
        for dotted in self.exp.uncertainty.parameters:
            lo, hi = self.iv_ranges[dotted] if dotted in self.iv_ranges else node_at(data, dotted)["range"]
            x = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
            if dotted in self.iv_ranges:
                ivs[dotted] = x
            else:
                model[f"{dotted}.value"] = x
        if self.ensemble is not None:
            row = self.ensemble.iloc[draw % len(self.ensemble)]
            model.update({f"{col}.value": float(v) for col, v in row.items()})
        return model, ivs

    def parameter_overrides(self, replicate: int) -> dict:
        """Parameter mode: the model parameters drawn for this replicate (see :meth:`drawn_values`)."""
        return self.drawn_values(replicate)[0]

    def draw_of(self, replicate: int) -> int:
        """The parameter draw a replicate uses (parameter mode: ``seeds_per_draw`` share one)."""
        return replicate // self.exp.uncertainty.seeds_per_draw

    def task_spec(self, task: Task) -> dict:
        from utenforsk.calibration.params import set_values

        sc = self.exp.scenarios[task.scenario]
        drawn, drawn_iv = self.drawn_values(task.replicate)
        per_iv: dict[str, dict] = {}
        for dotted, x in drawn_iv.items():
            name, path = split_iv_path(dotted)
            per_iv.setdefault(name, {})[path] = x
        ivs = [set_values(iv, per_iv[iv["name"]]) if "plugin" not in iv and iv["name"] in per_iv else iv
               for iv in self.scenarios[task.scenario]]
        shared = {**self.base_overrides(), **drawn}
        model_over = {k: v for k, v in sc.overrides.items() if not k.startswith(IV_PREFIX)}
        return {"model": str(self.model_path), "seed": replicate_seed(self.exp.seed, task.replicate),
                "kwargs": self.model_kwargs(), "interventions": ivs,
                "overrides": {**shared, **model_over}, "drawn": shared,
                "parameters": {**{k.removesuffix(".value"): v for k, v in drawn.items()}, **drawn_iv},
                "followed": list(self.followed) if self.followed else None,
                "municipality_metrics": self.exp.municipality_metrics,
                "scenario": task.scenario, "replicate": task.replicate,
                "meta": {"experiment": self.exp.name, "experiment_hash": self.hash,
                         "seed": self.exp.seed, "version": __version__}}


def run_replicate(items: list[tuple[dict, str]], threads: int | None = None, claim: bool = False) -> int:
    """Run the tasks of one replicate (``(spec, path)`` pairs), writing each file as it finishes;
    returns how many tasks were run.

    Scenarios without their own overrides or plugins share one simulation of the burn-in and of
    the policy months before their first intervention starts (forked: bit-for-bit the same
    results as simulating it again, see tests/test_interventions.py and test_experiment.py).
    With ``claim``, tasks already done or held by another live runner are skipped, the others
    are claimed first (:mod:`utenforsk.hpc.claims`) and a task that raises is recorded as failed.
    """
    from utenforsk.hpc import stop

    with stop.in_task():
        if not claim:
            return _run_items(items, threads)
        return _run_claimed(items, threads)


def _run_claimed(items: list[tuple[dict, str]], threads: int | None) -> int:
    from utenforsk.hpc import claims

    held: dict[str, str] = {}  # task path -> claim token
    try:
        for spec, path in items:
            exp_hash = spec["meta"]["experiment_hash"]
            if is_done(Path(path), exp_hash):
                continue
            token = claims.try_claim(path)
            if token is None:
                continue  # another live runner has it
            held[path] = token  # at once: a SIGTERM from here on releases it
            if is_done(Path(path), exp_hash):  # finished just before we claimed it
                claims.release(path, token)
                del held[path]
                continue
            claims.clear_failure(path)
        if not held:
            return 0
        with claims.Heartbeat(claims.claim_path(p) for p in held) as beat:
            def done(path: str) -> None:
                beat.discard(claims.claim_path(path))
                claims.release(path, held[path])
                del held[path]  # only now: a SIGTERM during release() is released again (a no-op)

            return _run_items([(spec, path) for spec, path in items if path in held], threads, done)
    except BaseException as exc:
        if held and isinstance(exc, Exception):  # a bug or a bad task: say which one, for `status`
            claims.record_failure(next(iter(held)), exc)
        for path, token in held.items():  # abandoned (SIGTERM, error): free them for a rerun
            claims.release(path, token)
        raise


class _Configs:
    """The model configs of one replicate's tasks, each composed and validated once: the model
    file is read once, and tasks with the same overrides share one validated config (a task
    spends ~0.05 s reading and validating the YAML otherwise). It lives for one replicate only,
    so a long-lived worker (Dask) never serves a config from before a file was edited."""

    def __init__(self):
        self._base = {}
        self._resolved = {}

    def __call__(self, spec: dict, overrides: dict):
        from utenforsk.config.loader import load_model_config
        from utenforsk.model import resolve_config

        key = json.dumps([spec["model"], overrides, spec["kwargs"]], sort_keys=True, default=str)
        if key not in self._resolved:
            if spec["model"] not in self._base:
                self._base[spec["model"]] = load_model_config(spec["model"])
            # the same call UtenforskModel(path, overrides=..., **kwargs) makes, on the parsed file
            self._resolved[key] = resolve_config(self._base[spec["model"]], overrides=overrides, **spec["kwargs"])
        return self._resolved[key]


def _run_items(items: list[tuple[dict, str]], threads: int | None, on_done=None) -> int:
    from utenforsk.interventions.engine import is_plugin_ref
    from utenforsk.model import UtenforskModel

    config = _Configs()
    forkable = [spec["overrides"] == spec["drawn"] and not any(map(is_plugin_ref, spec["interventions"]))
                for spec, _ in items]
    donor, donor_share = None, np.zeros(2)  # the shared months' (wall, CPU) s, split over the tasks forking them
    for (spec, path), fork in zip(items, forkable):
        t0 = _clock()
        model = None
        counts = bool(spec.get("municipality_metrics"))  # Q4 counts only when the tasks record them
        if fork:
            if donor is None:
                donor = UtenforskModel(config(spec, spec["drawn"]), seed=spec["seed"], threads=threads,
                                       collect=False, municipal_counts=counts)
                shared = _shared_months(donor, [s for (s, _), f in zip(items, forkable) if f])
                while donor.month < shared:  # policy months before any programme starts
                    donor.step()
                donor_share = (_clock() - t0) / sum(forkable)
                t0 = _clock()
            try:
                model = UtenforskModel(config(spec, spec["overrides"]), seed=spec["seed"],
                                       interventions=spec["interventions"], threads=threads, burn_in_from=donor,
                                       collect=False, municipal_counts=counts)
            except ValueError:  # an intervention acts during the burn-in: simulate it
                model = None
        if model is None:
            model = UtenforskModel(config(spec, spec["overrides"]), seed=spec["seed"],
                                   interventions=spec["interventions"], threads=threads, collect=False,
                                   municipal_counts=counts)
        _finish_task(model, spec, path, t0 - (donor_share if fork else 0.0))
        if on_done is not None:
            on_done(path)
    return len(items)


def _clock() -> np.ndarray:
    """(wall, CPU of this process) seconds."""
    return np.array([time.perf_counter(), time.process_time()])


def _shared_months(donor, specs: list[dict]) -> int:
    """How far the forking scenarios of a replicate share one simulation: to the first month any
    of their interventions can act (at least the end of the burn-in)."""
    from utenforsk.model import quiet_months

    starts = [iv["when"]["start_year"] for spec in specs for iv in spec["interventions"]]
    return max(donor.burn_in_months, quiet_months(donor.first_year, donor.total_months, False, starts))


def _finish_task(model, spec: dict, path: str, t0: np.ndarray | None = None) -> None:
    """Run the policy horizon and write the task's metrics atomically to ``path``; the file's
    metadata records the task's wall and CPU seconds since ``t0`` (:func:`_clock`; ``seconds``
    is read by ``utenforsk status``, ``cpu_seconds`` by the benchmarks)."""
    from utenforsk.experiment.metrics import (cohort_metrics, group_metrics, municipality_metrics,
                                              participant_metrics, pathway_shares, task_metrics)
    from utenforsk.outputs import write_parquet

    model.run_model()
    metrics = task_metrics(model)
    if spec["scenario"] == "baseline":
        metrics.update(pathway_shares(model))
    metrics.update(group_metrics(model))
    metrics.update(participant_metrics(model))
    if spec.get("followed"):
        metrics.update(cohort_metrics(model, *spec["followed"]))
    if spec.get("municipality_metrics"):
        metrics.update(municipality_metrics(model))
    metrics.update({f"parameter:{k}": v for k, v in spec.get("parameters", {}).items()})
    df = pd.DataFrame({"scenario": spec["scenario"], "replicate": spec["replicate"],
                       "metric": list(metrics), "value": np.array(list(metrics.values()), dtype=float)})
    meta = {**spec["meta"], "replicate_seed": spec["seed"], "config_hash": model.config_hash}
    if t0 is not None:
        wall, cpu = _clock() - t0
        meta["seconds"], meta["cpu_seconds"] = round(float(wall), 4), round(float(cpu), 4)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_parquet(df, Path(path), meta)


def is_done(path: Path, exp_hash: str) -> bool:
    """A finished, readable task file of this experiment (an unreadable one, or one of another
    experiment, is removed: it is recomputed)."""
    info = task_info(path)
    if info is not None and info.get("experiment_hash") == exp_hash:
        return True
    path.unlink(missing_ok=True)
    return False


def task_info(path: Path) -> dict | None:
    """The provenance of a readable task file (None if absent or unreadable); never removes it."""
    try:
        meta = pq.read_metadata(path).metadata or {}
        info = json.loads(meta.get(b"utenforsk", b"{}"))
    except Exception:  # absent, truncated or corrupt
        return None
    return info if isinstance(info, dict) else None


def _worker_init() -> None:
    from utenforsk.hpc import stop

    os.environ["UTENFORSK_THREADS"] = "1"
    stop.install_in_worker()


def check_store(out: Path, plan: Plan) -> None:
    """Refuse to mix two experiments in one directory."""
    marker = out / "experiment.json"
    if not marker.exists() and (out / RUNS).exists():
        raise UserError("this directory holds task files but no experiment.json", key="--out",
                        value=str(out), allowed="a new directory (nothing here is overwritten)")
    if marker.exists():
        stored = json.loads(marker.read_text())
        if stored.get("experiment_hash") != plan.hash:
            raise UserError("this directory holds results of a different experiment (or an edited one)",
                            key="--out", value=str(out),
                            allowed=f"a new directory, or the experiment with hash {stored.get('experiment_hash')}")


def write_marker(out: Path, plan: Plan) -> None:
    """``DIR/experiment.json``: which experiment this directory holds (see :func:`check_store`)."""
    from utenforsk.outputs import ensure_output_dir, write_json

    ensure_output_dir(out)
    write_json({"experiment_hash": plan.hash, "name": plan.exp.name, "file": str(Path(plan.file).resolve()),
                "version": __version__, "seed": plan.exp.seed, "replicates": plan.exp.replicates},
               out / "experiment.json")


class WorkerLost(RuntimeError):
    """A worker process died (``kill -9``, out of memory): rerun to finish."""


def run(plan: Plan, out: Path, workers: int = 1, shard: tuple[int, int] = (1, 1), progress=None,
        executor: str = "local", scheduler: str | None = None) -> dict:
    """Run the missing tasks of this shard; returns counts. ``progress(done, total, seconds)``.

    ``executor`` is ``"local"`` (``workers`` processes; 1 = in this process) or ``"dask"`` (the
    Dask scheduler at ``scheduler``, or ``"local"`` for a LocalCluster of ``workers`` processes).
    Tasks held by another live runner are left to it (counted as ``elsewhere``). SIGTERM raises
    :class:`utenforsk.hpc.stop.Stopped` with the tasks done and left; a dead pool worker raises
    :class:`WorkerLost`.
    """
    from utenforsk.hpc import stop

    if executor not in ("local", "dask"):
        raise UserError("unknown executor", key="--executor", value=executor, allowed="local, dask")
    if executor == "dask" and not scheduler:
        raise UserError("the Dask executor needs a scheduler", key="--scheduler", value=scheduler,
                        allowed="an address such as tcp://host:8786, or local")
    if scheduler is not None and executor != "dask":
        raise UserError("a scheduler is only used with --executor dask", key="--scheduler",
                        value=scheduler, allowed="--executor dask --scheduler ADDRESS")
    check_store(out, plan)
    client = None
    if executor == "dask":  # connect before writing anything: an unreachable scheduler is bad input
        from utenforsk.hpc.dask_executor import connect

        client = connect(scheduler, workers)
    try:
        write_marker(out, plan)
        now = time.time()
        for stale in (out / RUNS).glob("*/.*.tmp"):  # left by a worker killed mid-write; a live
            if now - stale.stat().st_mtime > 600:   # writer (another shard) holds one for seconds
                stale.unlink(missing_ok=True)
        tasks = plan.tasks(shard)
        todo = [t for t in tasks if not is_done(t.path(out), plan.hash)]
        groups: dict[int, list] = {}
        for t in todo:  # one unit of work per replicate: its scenarios share the burn-in
            groups.setdefault(t.replicate, []).append((plan.task_spec(t), str(t.path(out))))
        units = list(groups.values())
        if progress:
            progress(0, len(todo), 0.0)
        with stop.on_sigterm():
            try:
                if client is not None:
                    from utenforsk.hpc.dask_executor import run_units

                    ran = run_units(client, units, len(todo), progress)
                elif workers <= 1:
                    ran = _run_serial(units, len(todo), progress)
                else:
                    ran = _run_pool(units, workers, len(todo), progress)
            except stop.Stopped:
                stop.mark_requested()
                left = sum(not is_done(t.path(out), plan.hash) for t in tasks)
                # tasks finished since the start (also those of a replicate stopped half-way)
                raise stop.Stopped(len(todo) - left, left) from None
    finally:
        if client is not None:
            client.close()
    return {"tasks": len(tasks), "ran": ran, "skipped": len(tasks) - len(todo), "elsewhere": len(todo) - ran}


def _run_serial(units: list, total: int, progress) -> int:
    ran, t0 = 0, time.perf_counter()
    for items in units:
        ran += run_replicate(items, claim=True)
        if progress:
            progress(ran, total, time.perf_counter() - t0)
    return ran


def _run_pool(units: list, workers: int, total: int, progress) -> int:
    from utenforsk.hpc import stop

    t0 = time.perf_counter()
    ran, pool, futures = 0, None, []
    try:  # SIGTERM may arrive while the pool starts: it is shut down all the same
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init)
        futures = [pool.submit(run_replicate, items, 1, True) for items in units]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                ran += f.result()  # a task's error (or a worker's Stopped) ends the run here
            if progress:
                progress(ran, total, time.perf_counter() - t0)
    except stop.Stopped:
        stop.mark_requested()  # a second SIGTERM while stopping is ignored
        for f in futures:
            f.cancel()
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            try:  # workers abandon their task at the end of the month in progress
                os.kill(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, AttributeError):
                pass
        raise
    except BrokenProcessPool:
        raise WorkerLost(f"a worker process died (killed, or out of memory) after {ran} tasks; "
                         "rerun the same command to finish the rest") from None
    finally:
        if pool is not None:
            try:
                pool.shutdown(wait=True, cancel_futures=True)
            except BrokenProcessPool:
                pass
    return ran


def collect(out: Path, plan: Plan | None = None) -> pd.DataFrame:
    """The plan's stored task files (all under ``out/runs`` without a plan) as one long table,
    sorted, so the result does not depend on which worker or shard wrote which file."""
    if plan is not None:
        files = sorted(t.path(out) for t in plan.tasks())
    else:
        files = sorted((out / RUNS).glob("*/r*.parquet"))
    if not files:
        raise UserError("no finished tasks found", key="DIR", value=str(out),
                        allowed="a directory written by `utenforsk experiment`")
    frames = [pd.read_parquet(f) for f in files]
    runs = pd.concat(frames, ignore_index=True)
    return runs.sort_values(["scenario", "replicate", "metric"], kind="stable").reset_index(drop=True)


def missing(out: Path, plan: Plan) -> list[Task]:
    """Tasks without a finished, readable file (an unreadable one is removed, as a rerun would)."""
    return [t for t in plan.tasks() if not is_done(t.path(out), plan.hash)]
