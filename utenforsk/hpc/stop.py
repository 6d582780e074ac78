"""SIGTERM (preemption, the walltime warning of ``#SBATCH --signal``, ``scancel``) stops a runner
cleanly.

The first SIGTERM raises :class:`Stopped` in the running task (at the end of the simulated month
in progress): its temp file is removed, its claim released, and no task file is written for it.
A runner then reports ``stopped by SIGTERM: N tasks done, M left`` and exits with
:data:`EXIT_STOPPED` (143 = 128 + SIGTERM, what a shell reports for a process killed by SIGTERM),
so SLURM sees the task as failed and a requeue or resubmission runs what is left. Further
SIGTERMs (SLURM signals every process of the job, and the batch script forwards its own) are
ignored while stopping.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

EXIT_STOPPED = 143

_STATE = {"requested": False, "anywhere": False, "in_task": 0, "shielded": 0, "deferred": False}


class Stopped(BaseException):
    """SIGTERM arrived; a BaseException so that ``except Exception`` in a task cannot swallow it."""

    def __init__(self, done: int = 0, left: int = 0):
        super().__init__(done, left)
        self.done, self.left = done, left

    def __str__(self) -> str:
        return (f"stopped by SIGTERM: {self.done} tasks done, {self.left} left; "
                "rerun or resubmit to continue")


def mark_requested() -> None:
    _STATE["requested"] = True


def _handler(signum, frame) -> None:
    first = not _STATE["requested"]
    _STATE["requested"] = True
    if first and (_STATE["anywhere"] or _STATE["in_task"]):
        if _STATE["shielded"]:
            _STATE["deferred"] = True
            return
        raise Stopped()


@contextmanager
def shielded():
    """Code that must not be interrupted, such as numba compiling a kernel: an exception raised
    inside llvmlite leaves half-built objects whose finalisers print tracebacks. A SIGTERM that
    arrives inside raises :class:`Stopped` when the block ends instead."""
    _STATE["shielded"] += 1
    try:
        yield
    finally:
        _STATE["shielded"] -= 1
        deferred = _STATE["deferred"] and not _STATE["shielded"]
        if deferred:
            _STATE["deferred"] = False
    if deferred:
        raise Stopped()


def install_in_worker() -> None:
    """In a pool worker: SIGTERM abandons the task in flight; an idle worker just stops taking tasks."""
    _STATE.update(requested=False, anywhere=False, in_task=0, shielded=0, deferred=False)
    signal.signal(signal.SIGTERM, _handler)


@contextmanager
def in_task():
    """Mark the code that runs a task (where SIGTERM raises :class:`Stopped`)."""
    if _STATE["requested"]:
        raise Stopped()
    _STATE["in_task"] += 1
    try:
        yield
    finally:
        _STATE["in_task"] -= 1


@contextmanager
def on_sigterm():
    """In the runner's main thread: SIGTERM raises :class:`Stopped` wherever it arrives."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _handler)
    saved = dict(_STATE)
    _STATE.update(requested=False, anywhere=True)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _STATE.update(saved)
