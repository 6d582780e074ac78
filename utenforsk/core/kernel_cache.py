"""Building, caching and compiling the generated month kernel of one model structure.

The generator (utenforsk/core/codegen.py) writes the source; this module writes it once to
``kernel_<hash>.py`` in :func:`cache_dir`, imports it, and compiles it with numba's on-disk cache,
so the second process to meet the same structure loads machine code instead of compiling.
Files are created readable for a shared (group) cache; a cache that cannot be read or written
falls back to a private copy with a warning. :class:`GeneratedKernel` is what the model runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numba
import numpy as np
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.untyped_passes import InlineClosureLikes, ReconstructSSA

from utenforsk.core.bounds import HazardBounds
from utenforsk.core.codegen import kernel_source
from utenforsk.core.tables import CompiledModel, float_params


class LeanCompiler(CompilerBase):
    """numba's nopython pipeline without the passes straight generated code does not need:
    closure inlining (there are no closures, comprehensions or array calls) and SSA
    reconstruction (temporaries are single-assignment already; the few variables assigned in
    several branches have one type). They cost seconds on a kernel this long."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.passes = [(p, d) for p, d in pm.passes if p not in (InlineClosureLikes, ReconstructSSA)]
        pm.finalize()
        return [pm]


def cache_dir() -> Path:
    """Where generated kernels (and numba's cache of them) live: ``UTENFORSK_KERNEL_CACHE``, else
    ``NUMBA_CACHE_DIR/utenforsk-kernels``, else ``~/.cache/utenforsk/kernels`` (or a temporary
    directory when the home directory is not writable)."""
    env = os.environ.get("UTENFORSK_KERNEL_CACHE")
    if env:
        return Path(env)
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]) / "utenforsk-kernels"
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "utenforsk" / "kernels"


_MODULES: dict[str, object] = {}
_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask (read by setting and restoring it; called under ``_LOCK``)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_once(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` unless it exists; never rewrite it (numba's cache is keyed
    by the file's modification time, so a rewrite would throw the compiled code away).

    The file gets the mode an ordinary ``open`` would give (0666 less the umask), not
    ``mkstemp``'s 0600: a cache directory shared by a group on a cluster must stay readable."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.link(tmp, path)  # atomic, and fails if another process got there first
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def _import_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


def _private_copy(path: Path, source: str, why: OSError) -> Path:
    """A private copy of a kernel whose shared cache file cannot be written or read."""
    warnings.warn(f"kernel cache {path.parent} is not usable ({why.strerror or why}); compiling "
                  "from a private copy (set UTENFORSK_KERNEL_CACHE to a writable directory)",
                  stacklevel=3)
    private = Path(tempfile.mkdtemp(prefix="utenforsk-kernels-")) / path.name
    _write_once(private, source)
    return private


def load(source: str):
    """Import the generated module for ``source`` (one per process and structure)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    with _LOCK:
        if digest in _MODULES:
            return _MODULES[digest]
        path = cache_dir() / f"kernel_{digest}.py"
        name = f"utenforsk_kernel_{digest}"
        try:
            _write_once(path, source)
            mod = _import_module(name, path)
        except OSError as exc:  # a read-only or another user's cache: compile from a private copy
            path = _private_copy(path, source, exc)
            mod = _import_module(name, path)
        mod.SOURCE_PATH = path
        _MODULES[digest] = mod
        return mod


@contextmanager
def _compile_lock(path: Path):
    """An exclusive lock on ``path`` while compiling, so processes meeting one structure at once
    compile it once. A shared cache directory we may not write to gets no lock (each process
    then compiles for itself, which is only slower)."""
    try:
        lock = open(path, "a")
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


HELPER_SCRIPT = """
import pickle, sys
from pathlib import Path
from utenforsk.core import kernel_cache
mod = kernel_cache.load(Path(sys.argv[1]).read_text())
getattr(mod, sys.argv[2]).compile(pickle.loads(sys.stdin.buffer.read()))
"""


def _compile_elsewhere(module, name: str, args):
    """Compile ``module.name`` for ``args`` in a second process, into numba's cache, while this
    process compiles the other kernel (the compiler holds a lock: one process compiles one
    function at a time). Returns the process, or None when the code is cached already or a
    helper cannot start; the caller then compiles (or loads) it itself."""
    fn = getattr(module, name)
    try:
        sig = tuple(numba.typeof(a) for a in args)
        if fn._cache.load_overload(sig, fn.targetctx) is not None:
            return None
        proc = subprocess.Popen([sys.executable, "-c", HELPER_SCRIPT, str(module.SOURCE_PATH), name],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        proc.stdin.write(pickle.dumps(sig))
        proc.stdin.close()
        return proc
    except Exception:  # noqa: BLE001 - an optimisation only: never fail a run for it
        return None


class GeneratedKernel:
    """The specialised ``month_chunk`` / ``enter_chunk`` of one model, with its argument lists."""

    def __init__(self, cm: CompiledModel, muni_attr: int, us_flag: int, us_states, hb_states):
        self.compiled = cm
        self.source = kernel_source(cm, muni_attr, us_flag, us_states, hb_states)
        self.module = load(self.source)
        self.month_chunk = self.module.month_chunk
        self.enter_chunk = self.module.enter_chunk
        self._compiled = False
        self._bounds = HazardBounds(cm)

    def compile(self, pop, dyn, prog, tal, seed_key, cum_entries, births_sched) -> None:
        """Compile (or load from numba's cache) both kernels now, holding a lock on the generated
        file: experiment workers that meet the same structure at once compile it once, and the
        others then load it from the cache instead of compiling it again."""
        if self._compiled:
            return
        from utenforsk.hpc.stop import shielded  # a SIGTERM waits until the compiler is done

        F, none = self.params(), np.zeros(0, np.int64)
        B = self.bounds(pop, dyn, prog, F)
        with shielded(), _compile_lock(self.module.SOURCE_PATH.with_suffix(".lock")):
            enter = self.enter_args(none, none, 0, pop, F, dyn, prog, tal, False, 0, seed_key, 1,
                                    cum_entries, births_sched)
            helper = _compile_elsewhere(self.module, "enter_chunk", enter)
            self.month_chunk(*self.month_args(0, 0, 0, pop, F, B, dyn, prog, tal, 0, seed_key, 1))
            if helper is not None:
                helper.wait()
            self.enter_chunk(*enter)  # from the cache the helper wrote (or compiled here)
        self._compiled = True

    def params(self) -> np.ndarray:
        """The current parameter values (read from the tables, so edits to them take effect)."""
        return float_params(self.compiled.tables)

    def month_args(self, id0, id1, tid, pop, F, B, dyn, prog, tal, month, seed_key, cap) -> tuple:
        """Arguments of ``month_chunk``: worker ``tid`` gets its own row of every tally."""
        return (id0, id1, *pop, F, B, *dyn, prog, *(x[tid] for x in tal), month, seed_key, cap)

    def bounds(self, pop, dyn, prog, F) -> np.ndarray:
        """This month's upper bounds of the hazards, for the draw-first shortcuts."""
        return self._bounds(pop, dyn, prog, F)

    def enter_args(self, ids, births, tid, pop, F, dyn, prog, tal, arrival, month, seed_key, cap,
                   cum_entries, births_sched) -> tuple:
        """Arguments of ``enter_chunk``; ``cum_entries`` and ``births_sched`` (the entry schedule)
        let an arrival find a native donor of its birth month."""
        return (ids, births, *pop, F, *dyn, prog, *(x[tid] for x in tal), arrival, month, seed_key, cap,
                cum_entries, births_sched)
