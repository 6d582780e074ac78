"""Tasks on a Dask distributed cluster: ``utenforsk experiment ... --executor dask --scheduler ADDRESS``.

A unit of work is one replicate's tasks (:func:`utenforsk.experiment.runner.run_replicate`, with
claims), exactly as in the local pool; Dask workers write the task files themselves, so the
workers and this process must share the output directory (one machine, or a shared file system
on a cluster). ``ADDRESS`` is a scheduler address (``tcp://host:8786``) or ``local`` for a
``LocalCluster`` of ``--workers`` single-threaded processes on this machine.

If a Dask worker dies, the scheduler reruns its unit elsewhere; a new worker takes over the dead
worker's claims at once if it runs on the same host (the dead process is seen to be gone), and
from another host only once they are stale (``UTENFORSK_CLAIM_STALE_S``, 600 s). On SIGTERM
this process cancels what has not started; units already running on workers finish and are kept.
"""

from __future__ import annotations

import os
import time

from utenforsk.errors import UserError


def _timeout() -> float:
    return float(os.environ.get("UTENFORSK_DASK_TIMEOUT", "20"))


def connect(scheduler: str, workers: int = 1):
    """A ``distributed.Client``; an unreachable scheduler is a :class:`UserError` (exit 2)."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - a dependency of the package
        raise UserError("the Dask executor needs the `distributed` package", key="--executor",
                        value="dask", allowed="pip install 'dask[distributed]'") from None
    if scheduler == "local":  # the client starts its own LocalCluster; client.close() closes it
        return Client(n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        return Client(scheduler, timeout=_timeout())
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise UserError(f"cannot reach the Dask scheduler ({type(exc).__name__}: {exc})".replace("\n", " "),
                        key="--scheduler", value=scheduler,
                        allowed="the address of a running scheduler, e.g. tcp://host:8786, or local") from None


def run_units(client, units: list, total: int, progress=None) -> int:
    """Run every unit (a replicate's ``(spec, path)`` items) on the cluster; returns tasks run."""
    from distributed import as_completed

    from utenforsk.experiment.runner import run_replicate
    from utenforsk.hpc import stop

    t0 = time.perf_counter()
    futures = [client.submit(run_replicate, items, 1, True, pure=False,
                             key=f"utenforsk-r{items[0][0]['replicate']:06d}-{os.urandom(4).hex()}")
               for items in units]
    ran = 0
    try:
        for fut in as_completed(futures):
            ran += fut.result()
            if progress:
                progress(ran, total, time.perf_counter() - t0)
    except stop.Stopped:
        stop.mark_requested()
        client.cancel(futures)
        raise
    return ran
