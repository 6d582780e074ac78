"""Task claims: runners sharing one output directory (array tasks on many nodes, a second
``utenforsk experiment`` on the same ``--out``) neither duplicate nor lose work.

Files, next to ``DIR/runs/SCENARIO/rNNNNNN.parquet``:

- ``DIR/claims/SCENARIO/rNNNNNN.claim``: created with ``O_CREAT | O_EXCL`` (atomic on local file
  systems and on NFS v3 and later) by the worker that is about to run the task; JSON with host, pid,
  time and a random token. Its mtime is refreshed every :func:`heartbeat_s` seconds while the task
  runs, and it is removed once the task file is published (or the task is abandoned on SIGTERM).
- ``DIR/claims/SCENARIO/rNNNNNN.failed``: JSON with host, pid, time and the error, written when a
  task raised; removed when the task is next claimed.

A claim is *live* while its mtime is younger than :func:`stale_s` seconds and, when it was made on
this host, its process is alive. A runner skips tasks with a live claim and takes over stale ones
(the owner was killed: ``kill -9``, out of memory, a node lost). Taking over renames the stale
claim away, checks that it is still the same claim, and creates a new one; should two runners
still both run a task, both write the same bytes under the same name by an atomic rename, so the
result is neither lost nor counted twice.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

CLAIMS = "claims"
EXIT_HELD = 75  # EX_TEMPFAIL: a shard's tasks are held by other runners (perhaps dead): resubmit later
HOST = socket.gethostname()


def stale_s() -> float:
    """Seconds without a heartbeat after which a claim is stale (``UTENFORSK_CLAIM_STALE_S``)."""
    return float(os.environ.get("UTENFORSK_CLAIM_STALE_S", "600"))


def heartbeat_s() -> float:
    return max(0.5, min(60.0, stale_s() / 5))


def claim_path(task_file: Path | str) -> Path:
    """``DIR/runs/S/rN.parquet`` -> ``DIR/claims/S/rN.claim``."""
    task_file = Path(task_file)
    out = task_file.parents[2]
    return out / CLAIMS / task_file.parent.name / (task_file.name.removesuffix(".parquet") + ".claim")


def failure_path(task_file: Path | str) -> Path:
    return claim_path(task_file).with_suffix(".failed")


def _pid_alive(pid: int) -> bool:
    """Is process ``pid`` running? A zombie (exited, not yet reaped by its parent) is not: signal 0
    still reaches it, and a killed worker stays one until its pool, or init, reaps it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state after the command name in /proc/PID/stat
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def read(path: Path) -> tuple[dict | None, float | None, bytes]:
    """(content or None when unreadable, mtime or None when absent, raw bytes)."""
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None, None, b""
    try:
        return json.loads(raw), mtime, raw
    except ValueError:  # being written, or truncated
        return None, mtime, raw


def is_live(info: dict | None, mtime: float | None, now: float | None = None) -> bool:
    if mtime is None:
        return False
    now = time.time() if now is None else now
    if now - mtime > stale_s():
        return False
    if info and info.get("host") == HOST and isinstance(info.get("pid"), int):
        return _pid_alive(info["pid"])
    return True  # another host, or a claim still being written: trust the heartbeat


def inspect(task_file: Path | str) -> tuple[str, dict | None]:
    """``("live" | "stale" | "none", claim content)`` of a task's claim."""
    info, mtime, _ = read(claim_path(task_file))
    if mtime is None:
        return "none", None
    return ("live" if is_live(info, mtime) else "stale"), info


def _create(path: Path) -> str | None:
    """Create the claim whole or not at all: written to a file of its own, then linked into place
    (``FileExistsError`` if another runner holds it). Created empty and then written, a SIGTERM
    between the two left an empty claim that read as live until it went stale (10 minutes)."""
    token = uuid.uuid4().hex
    tmp = path.with_name(f".{path.name}.{token}.new")
    try:
        with os.fdopen(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644), "w") as f:
            json.dump({"host": HOST, "pid": os.getpid(), "time": time.time(), "token": token}, f)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return None
        return token
    finally:
        tmp.unlink(missing_ok=True)


def _break_stale(path: Path, raw: bytes) -> bool:
    """Remove the stale claim whose bytes are ``raw``; False if it turned out to be a new one."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # already removed (released, or taken over by another runner)
    try:
        if aside.read_bytes() == raw:
            return True
        try:  # we moved a fresh claim of another runner: put it back, unless yet another exists
            os.link(aside, path)
        except FileExistsError:
            pass
        return False
    finally:
        aside.unlink(missing_ok=True)


def try_claim(task_file: Path | str) -> str | None:
    """Claim a task; returns the claim's token, or None when another live runner holds it."""
    path = claim_path(task_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        token = _create(path)
        if token is not None:
            return token
        info, mtime, raw = read(path)
        if mtime is None:
            continue  # released meanwhile: try again
        if is_live(info, mtime):
            return None
        if not _break_stale(path, raw):
            return None
    return None


def release(task_file: Path | str, token: str) -> None:
    """Remove our claim (not one that another runner made after taking ours over as stale)."""
    path = claim_path(task_file)
    info, _, _ = read(path)
    if info is not None and info.get("token") == token:
        path.unlink(missing_ok=True)


def record_failure(task_file: Path | str, error: BaseException) -> None:
    from utenforsk.outputs import write_json

    path = failure_path(task_file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json({"host": HOST, "pid": os.getpid(), "time": time.time(),
                    "error": f"{type(error).__name__}: {error}"[:2000]}, path)
    except OSError:
        pass


def clear_failure(task_file: Path | str) -> None:
    failure_path(task_file).unlink(missing_ok=True)


def read_failure(task_file: Path | str) -> dict | None:
    info, mtime, _ = read(failure_path(task_file))
    return info if mtime is not None else None


class Heartbeat:
    """Refresh the mtime of claim files from a daemon thread while tasks run."""

    def __init__(self, paths):
        self.paths = set(paths)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="utenforsk-claim-heartbeat", daemon=True)

    def _beat(self) -> None:
        interval = heartbeat_s()
        while not self._stop.wait(interval):
            for p in list(self.paths):
                try:
                    os.utime(p)
                except OSError:
                    self.paths.discard(p)

    def discard(self, path) -> None:
        self.paths.discard(path)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
