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
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numba
import numpy as np
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import register_pass
from numba.core.typed_passes import NopythonTypeInference
from numba.core.untyped_passes import InlineClosureLikes, ReconstructSSA

from utenforsk.core.bounds import HazardBounds
from utenforsk.core.codegen import kernel_source
from utenforsk.core.liveness import fast_live_map
from utenforsk.core.tables import CompiledModel, float_params


@register_pass(mutates_CFG=True, analysis_only=False)
class MemoTypeInference(NopythonTypeInference):
    """numba's type inference, with each call's resolution (an operator, a function or a
    compiled helper, given its argument types) remembered for the rest of the function: numba
    resolves the same ``float64 * float64`` anew at each of the thousands of places a generated
    kernel has one, and again on each round of its fixed-point propagation, trying every
    template in turn (most of type inference, ~50% of a kernel's compile). A resolution is a
    function of the callee's type and the argument types alone, so the types, and the machine
    code, are the same."""

    _name = "memo_type_inference"

    def run_pass(self, state):
        ctx = state.typingctx
        if "resolve_function_type" in vars(ctx):  # a helper compiled while typing: memo in place
            return super().run_pass(state)
        resolve, memo = ctx.resolve_function_type, {}

        def remembered(func, args, kws):
            try:
                key = (func, tuple(args), tuple(sorted(kws.items())) if kws else ())
                sig = memo.get(key)
            except TypeError:  # an unhashable argument type: resolve it every time
                return resolve(func, args, kws)
            if sig is None:
                sig = resolve(func, args, kws)
                if sig is not None:
                    memo[key] = sig
            return sig

        ctx.resolve_function_type = remembered
        try:
            return super().run_pass(state)
        finally:
            del ctx.resolve_function_type


class LeanCompiler(CompilerBase):
    """numba's nopython pipeline without the passes straight generated code does not need:
    closure inlining (there are no closures, comprehensions or array calls) and SSA
    reconstruction (temporaries are single-assignment already; the few variables assigned in
    several branches have one type). They cost seconds on a kernel this long. Type inference
    remembers resolved calls (:class:`MemoTypeInference`), and live-variable maps are computed by
    strongly connected components (:mod:`utenforsk.core.liveness`: the same maps)."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.passes = [(MemoTypeInference if p is NopythonTypeInference else p, d)
                     for p, d in pm.passes if p not in (InlineClosureLikes, ReconstructSSA)]
        pm.finalize()
        return [pm]

    def _compile_core(self):
        with fast_live_map():  # also for the helpers compiled while typing this function
            return super()._compile_core()


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
from utenforsk.core import bounds, kernel_cache
mod = kernel_cache.load(Path(sys.argv[1]).read_text())
sig, bounds_sig = pickle.loads(sys.stdin.buffer.read())
getattr(mod, sys.argv[2]).compile(sig)
if bounds_sig is not None:
    bounds._bounds.compile(bounds_sig)
"""


def _compile_elsewhere(module, name: str, args, bounds_args=None):
    """Compile ``module.name`` for ``args`` in a second process, into numba's cache, while this
    process compiles the other kernel (the compiler holds a lock: one process compiles one
    function at a time), and then the bounds' pass for ``bounds_args`` if it is not cached
    either. Returns the process, or None when the code is cached already or a helper cannot
    start; the caller then compiles (or loads) it itself."""
    fn = getattr(module, name)
    try:
        sig = tuple(numba.typeof(a) for a in args)
        if fn._cache.load_overload(sig, fn.targetctx) is not None:
            return None
        bsig = None
        if bounds_args is not None:
            from utenforsk.core.bounds import _bounds

            bsig = tuple(numba.typeof(a) for a in bounds_args)
            if _bounds._cache.load_overload(bsig, _bounds.targetctx) is not None:
                bsig = None
        proc = subprocess.Popen([sys.executable, "-c", HELPER_SCRIPT, str(module.SOURCE_PATH), name],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        proc.stdin.write(pickle.dumps((sig, bsig)))
        proc.stdin.close()
        return proc
    except Exception:  # noqa: BLE001 - an optimisation only: never fail a run for it
        return None


def _cached(fn, sig) -> bool:
    """Is ``fn`` compiled for ``sig`` in this process or in numba's on-disk cache? (Reads the
    cache's index only, without loading the machine code.)"""
    try:
        if sig in fn.overloads:
            return True
        fn.targetctx.refresh()
        cache = fn._cache
        return cache._index_key(sig, fn.targetctx.codegen()) in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - a disabled or unreadable cache: not cached
        return False


#: forked children compiling a generated module's month kernel: {module name: pid}
_CHILDREN: dict[str, int] = {}


def _fork_compile(fn, sig, lock_path: Path) -> int | None:
    """Compile ``fn`` for ``sig`` into numba's cache in a forked child, so this process can go
    on (building the model, compiling the entry kernel and the small passes) while the largest
    kernel compiles on the other core; a child starts with everything imported, where a fresh
    helper process pays ~1.5 s of imports. The child holds the compile lock, so processes
    meeting one structure at once compile it once. Returns the child's pid, or None where a
    fork is not safe (other threads running: a lock one of them holds would stay held in the
    child) or not possible; the caller then compiles it itself."""
    if sys.platform != "linux" or threading.active_count() > 1:  # (macOS: fork is unsafe with its frameworks)
        return None
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid:
        return pid
    code = 1  # the child: compile, then leave without running the parent's exit handlers
    try:
        from utenforsk.hpc.stop import shielded  # a SIGTERM waits until the compiler is done

        with shielded(), _compile_lock(lock_path):
            if not _cached(fn, sig):
                fn.compile(sig)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - the parent compiles it itself if this failed
        try:
            sys.stderr.write(f"utenforsk: the forked compile failed ({type(exc).__name__}: {exc}); compiling in the parent\n")
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code)


#: a forked compile taking longer than this is taken for hung and killed (it takes ~10 s, ~60 s
#: on a machine loaded 4x); a SIGTERM meanwhile waits, as it does for an in-process compile
CHILD_TIMEOUT_S = 180.0


def _reap(name: str) -> None:
    """Wait for the child compiling module ``name``'s month kernel, if there is one; one that
    has not finished after :data:`CHILD_TIMEOUT_S` is killed (the caller then compiles)."""
    pid = _CHILDREN.pop(name, None)
    if pid is None:
        return
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    try:
        while os.waitpid(pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.02)
    except ChildProcessError:  # already waited for
        pass


class GeneratedKernel:
    """The specialised ``month_chunk`` / ``enter_chunk`` of one model, with its argument lists."""

    def __init__(self, cm: CompiledModel, muni_attr: int, us_flag: int, us_states, hb_states):
        self.compiled = cm
        self.source = kernel_source(cm, muni_attr, us_flag, us_states, hb_states)
        self.module = load(self.source)
        self.month_chunk = self.module.month_chunk
        self.enter_chunk = self.module.enter_chunk
        self._compiled = False
        #: (compiled function, arguments) of the small passes a model's first months call, which
        #: :meth:`compile` compiles while the month kernel compiles in a forked child
        self.warm: list = []
        self._bounds = HazardBounds(cm)
        #: a trait range for callers that keep none (tests, benchmarks; never read back)
        self._scratch_range = np.zeros((max(len(cm.ctraits), 1), 2))

    def start_compile(self, pop, dyn, prog, tal, seed_key, cum_entries, births_sched) -> None:
        """Start compiling the month kernel now, in a forked child, if it is neither compiled
        nor in numba's cache (the model calls this as soon as its arrays exist, so the compile
        overlaps the rest of the build; :meth:`compile` finishes the job)."""
        name = self.module.__name__
        if self._compiled or name in _CHILDREN:
            return
        F = self.params()
        B = self._bounds.args(pop, dyn, prog, F)[-1]
        args = self.month_args(0, 0, 0, pop, F, B, dyn, prog, tal, 0, seed_key, 1)
        sig = tuple(numba.typeof(a) for a in args)
        if _cached(self.month_chunk, sig):
            return
        pid = _fork_compile(self.month_chunk, sig, self.module.SOURCE_PATH.with_suffix(".lock"))
        if pid is not None:
            _CHILDREN[name] = pid

    def compile(self, pop, dyn, prog, tal, seed_key, cum_entries, births_sched) -> None:
        """Compile (or load from numba's cache) both kernels now, holding a lock on the generated
        file: experiment workers that meet the same structure at once compile it once, and the
        others then load it from the cache instead of compiling it again."""
        if self._compiled:
            return
        from utenforsk.hpc.stop import shielded  # a SIGTERM waits until the compiler is done

        F, none = self.params(), np.zeros(0, np.int64)
        bounds_args = self._bounds.args(pop, dyn, prog, F)
        B = bounds_args[-1]  # typed as the bounds, for compiling; the helper compiles the pass
        name, path = self.module.__name__, self.module.SOURCE_PATH
        if name in _CHILDREN:  # the month kernel is compiling in a forked child (start_compile)
            with shielded():
                # the rest meanwhile, here, under a lock of its own (the child holds the other)
                with _compile_lock(path.with_suffix(".lock2")):
                    self.enter_chunk(*self.enter_args(none, none, 0, pop, F, dyn, prog, tal, False, 0,
                                                      seed_key, 1, cum_entries, births_sched))
                    self._bounds(pop, dyn, prog, F)
                    for fn, args in self.warm:
                        fn.compile(tuple(numba.typeof(a) for a in args))
                _reap(name)
                with _compile_lock(path.with_suffix(".lock")):  # from the child's cache entry
                    self.month_chunk(*self.month_args(0, 0, 0, pop, F, B, dyn, prog, tal, 0, seed_key, 1))
            self._compiled = True
            return
        with shielded(), _compile_lock(path.with_suffix(".lock")):
            enter = self.enter_args(none, none, 0, pop, F, dyn, prog, tal, False, 0, seed_key, 1,
                                    cum_entries, births_sched)
            helper = _compile_elsewhere(self.module, "enter_chunk", enter, bounds_args)
            self.month_chunk(*self.month_args(0, 0, 0, pop, F, B, dyn, prog, tal, 0, seed_key, 1))
            if helper is not None:
                helper.wait()
            self.enter_chunk(*enter)  # from the cache the helper wrote (or compiled here)
        self._compiled = True

    def params(self) -> np.ndarray:
        """The current parameter values (read from the tables, so edits to them take effect)."""
        return float_params(self.compiled.tables)

    def month_args(self, id0, id1, tid, pop, F, B, dyn, prog, tal, month, seed_key, cap,
                   trange=None) -> tuple:
        """Arguments of ``month_chunk``: worker ``tid`` gets its own row of every tally and of
        ``trange`` (``[worker, trait, (lo, hi)]``: the range of the traits at the end of the
        month, which the kernel widens; see :meth:`bounds`)."""
        tr = self._scratch_range if trange is None else trange[tid]
        return (id0, id1, *pop, F, B, *dyn, prog, *(x[tid] for x in tal), tr, month, seed_key, cap)

    def bounds(self, pop, dyn, prog, F, trange=None) -> np.ndarray:
        """This month's upper bounds of the hazards, for the draw-first shortcuts. ``trange``:
        the traits' ``(lo, hi)`` over everyone alive, if the caller knows them (the kernels
        track them, see :meth:`month_args`); else they are taken from ``pop.ctraits``."""
        return self._bounds(pop, dyn, prog, F, trange)

    def enter_args(self, ids, births, tid, pop, F, dyn, prog, tal, arrival, month, seed_key, cap,
                   cum_entries, births_sched, trange=None) -> tuple:
        """Arguments of ``enter_chunk``; ``cum_entries`` and ``births_sched`` (the entry schedule)
        let an arrival find a native donor of its birth month; the entrants' traits widen
        ``trange`` (as in :meth:`month_args`)."""
        tr = self._scratch_range if trange is None else trange[tid]
        return (ids, births, *pop, F, *dyn, prog, *(x[tid] for x in tal), tr, arrival, month, seed_key, cap,
                cum_entries, births_sched)
