"""Simulate target metrics: replicates with common random numbers, in a process pool.

Replicate ``r`` runs with ``replicate_seed(seed, r)`` (as experiments do), whatever the parameter
values, so two parameter sets are compared on the same dice (common random numbers): the
calibration loss is then a smooth function of the parameters, not a fresh draw each time.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from utenforsk.calibration.metrics import MetricSpec, Probe, probed_model


def replicate_seeds(seed: int, n: int) -> list[int]:
    from utenforsk.experiment.runner import replicate_seed

    return [replicate_seed(seed, r) for r in range(n)]


def resolved(config, sim) -> object:
    """The model config (a path or a loaded ModelConfig) at the simulation's scale and calendar."""
    from utenforsk.model import resolve_config

    return resolve_config(config, sim.scale, None, horizon_years=sim.horizon_years,
                          burn_in_years=sim.burn_in_years)


def run_one(cfg, specs: list[MetricSpec], values: dict[str, float], seed: int,
            threads: int | None = 1) -> list[float]:
    """Metric values of one run of ``cfg`` with the named parameters set."""
    from utenforsk.calibration.params import apply_model_values

    cfg = apply_model_values(cfg, values)
    probe = Probe(specs, cfg)
    model = probed_model(cfg, probe, seed=seed, threads=threads)
    model.run_model()
    return probe.values()


def _job(args):
    return run_one(*args)


def _worker_init() -> None:
    os.environ["UTENFORSK_THREADS"] = "1"


class Pool:
    """A process pool (spawned, one kernel thread per worker), or in-process when workers == 1."""

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))
        self._pool = None
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"),
                                             initializer=_worker_init)

    def map(self, jobs: list[tuple], progress=None) -> list:
        """Results in the order of ``jobs``; ``progress(done, total)`` after each finished job."""
        if self._pool is None:
            out = []
            for j in jobs:
                out.append(_job(j))
                if progress is not None:
                    progress(len(out), len(jobs))
            return out
        if progress is None:
            return list(self._pool.map(_job, jobs))
        from concurrent.futures import as_completed

        futures = {self._pool.submit(_job, j): i for i, j in enumerate(jobs)}
        out: list = [None] * len(jobs)
        for done, fut in enumerate(as_completed(futures), 1):
            out[futures[fut]] = fut.result()
            progress(done, len(jobs))
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DaskPool:
    """The same ``map`` on a Dask distributed cluster (``--executor dask --scheduler ADDRESS``):
    each job is one replicate of one parameter set, run by a worker with one kernel thread."""

    def __init__(self, scheduler: str, workers: int = 1):
        from utenforsk.hpc.dask_executor import connect

        self.client = connect(scheduler, workers)
        self.workers = max(1, sum(self.client.nthreads().values()) or 1)

    def map(self, jobs: list[tuple], progress=None) -> list:
        from distributed import as_completed

        jobs = [(*j[:4], 1) for j in jobs]  # one kernel thread per Dask worker thread
        futures = self.client.map(_job, jobs, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        out: list = [None] * len(jobs)
        for done, fut in enumerate(as_completed(futures), 1):
            out[index[fut.key]] = fut.result()
            if progress is not None:
                progress(done, len(jobs))
        return out

    def close(self) -> None:
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def simulate(cfg, specs: list[MetricSpec], seeds: list[int], values: dict[str, float] | None = None,
             pool: Pool | None = None) -> np.ndarray:
    """``[replicate, spec]`` metric values for each seed."""
    jobs = [(cfg, specs, dict(values or {}), s, 1 if pool and pool.workers > 1 else None) for s in seeds]
    if pool is None:
        with Pool(1) as p:
            rows = p.map(jobs)
    else:
        rows = pool.map(jobs)
    return np.array(rows, dtype=float)
