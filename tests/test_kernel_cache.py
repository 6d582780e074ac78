"""The on-disk kernel cache can be shared between users (a cluster's group cache directory):
generated files are readable by group and others (as the umask allows), and a cache the user
cannot read or write is met with a clear fallback, never a traceback."""

from __future__ import annotations

import os
import stat

import pytest

from utenforsk.core import kernel_cache


def test_generated_file_is_readable_by_group_and_others(tmp_path):
    old = os.umask(0o022)
    try:
        kernel_cache._write_once(tmp_path / "kernel_x.py", "X = 1\n")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "kernel_x.py").stat().st_mode)
    assert mode == 0o644, oct(mode)


def test_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        kernel_cache._write_once(tmp_path / "kernel_y.py", "X = 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "kernel_y.py").stat().st_mode) == 0o600


def test_unreadable_shared_file_falls_back_to_a_private_copy(tmp_path, monkeypatch):
    """Another user's kernel file we may not read (simulated: tests may run as root, who reads
    anything): the module is imported from a private copy instead."""
    monkeypatch.setenv("UTENFORSK_KERNEL_CACHE", str(tmp_path))
    src = "X = 41\n# test_unreadable_shared_file\n"
    real = kernel_cache._import_module

    def deny(name, path):
        if path.parent == tmp_path:
            raise PermissionError(13, "Permission denied", str(path))
        return real(name, path)

    monkeypatch.setattr(kernel_cache, "_import_module", deny)
    with pytest.warns(UserWarning, match="kernel cache"):
        mod = kernel_cache.load(src)
    assert mod.X == 41 and mod.SOURCE_PATH.parent != tmp_path
    assert mod.SOURCE_PATH.read_text() == src


def test_a_lock_we_may_not_create_is_no_error(tmp_path):
    """A shared cache directory we may read but not write: compiling goes on without the lock."""
    with kernel_cache._compile_lock(tmp_path / "no-such-dir" / "k.lock"):
        pass


def test_a_cold_month_kernel_compiles_in_a_forked_child(tmp_path, monkeypatch):
    """A model whose month kernel is not cached starts compiling it in a forked child while it
    builds (GeneratedKernel.start_compile); the process then loads the child's cache entry
    instead of compiling it again, and its results are those of an in-process compile (the
    golden digests hold both). With other threads running it does not fork."""
    import threading

    import numpy as np

    from utenforsk.model import UtenforskModel
    from tests.conftest import MARKOV

    monkeypatch.setenv("UTENFORSK_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(kernel_cache, "_MODULES", {})  # a fresh kernel file: cold in numba's cache
    forks = []
    real = kernel_cache._fork_compile
    monkeypatch.setattr(kernel_cache, "_fork_compile", lambda *a: forks.append(real(*a)) or forks[-1])
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # whatever pytest runs alongside
    m = UtenforskModel(MARKOV, seed=5, burn_in_years=0, horizon_years=1)
    assert len(forks) == 1 and forks[0] is not None
    m.step()
    month = m._gen.month_chunk
    assert not kernel_cache._CHILDREN and len(month.overloads) == 1
    assert sum(month._cache_hits.values()) == 1 and not month._cache_misses  # loaded, not compiled here
    # a second model of the structure forks nothing: the kernel is compiled
    UtenforskModel(MARKOV, seed=6, burn_in_years=0, horizon_years=1).step()
    assert len(forks) == 1
    # other threads: no fork
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    assert real(None, None, tmp_path / "x.lock") is None
    assert np.isfinite(m.last_month["age_state"]).all()


def test_a_hung_compile_child_is_killed(monkeypatch):
    """A forked compile that never ends (a lock inherited from another thread, say) is killed
    after CHILD_TIMEOUT_S; the caller then compiles the kernel itself."""
    import os
    import time

    pid = os.fork()
    if pid == 0:  # a child that hangs
        time.sleep(60)
        os._exit(0)
    monkeypatch.setattr(kernel_cache, "CHILD_TIMEOUT_S", 0.2)
    monkeypatch.setitem(kernel_cache._CHILDREN, "hung", pid)
    t0 = time.monotonic()
    kernel_cache._reap("hung")
    assert time.monotonic() - t0 < 10 and "hung" not in kernel_cache._CHILDREN
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
