"""Where the month kernel's time goes, line by line: ``python -m benchmarks.kernel_profile [SOURCE]
[--scale X] [--seconds S] [--iv NAME ...] [--warm N] [--top K] [--out DIR]``.

Samples the generated month kernel (``SOURCE``, default this checkout's for the Norway baseline)
with ``perf record -e cpu-clock`` while it runs months on copies of one population (as
``benchmarks.kernel_ab``), and attributes each sample to a line of the generated source, and so
to its section (``# ==== <component>``). numba's machine code has no symbols perf can read, so
the child process compiles the kernel itself with ``NUMBA_DEBUGINFO=1`` (a fresh module, a
private cache), without the bounds checks and the ``noinline`` on every function that numba adds
with it (:func:`_line_tables_only`: the first version of this tool, with them, put half the month
with interventions in a call that the normal kernel inlines). numba's debug information still
turns off its own promotion of locals to registers and adds full debug metadata, so the profiled
build differs from the normal one: the child compiles the source once more without debug
information and reports ``like_normal_build``, difflib's ratio of the two functions' sequences of
instruction names (1.0: the same; 0.84 on 2026-12-02). A line's share is a guide, not a
measurement of the normal kernel. The child writes the JIT's own object file (its line table)
and the function's address, and checks the object against the code in memory (the same
instruction at 99% of the offsets, else it stops); the parent maps ``ip - address`` of the
child's samples to the object's offsets (``objdump -d -l``). Code inlined from another file
(``programme_match``, ...) is counted as ``inlined from FILE``. Cold compiles are part of the
run (the figures count only samples inside the kernel).

Prints the share of the kernel's samples per section and the ``--top`` lines, and writes
``DIR/kernel_profile.json`` (with ``--keep``, also the object file, the source, the address and
the samples in ``DIR/kernel_profile/``, for reading the hot instructions). Needs ``perf`` (Debian ``linux-perf``) and ``objdump``
(``binutils``), and a kernel that lets this user sample (``perf_event_paranoid`` <= 2 for
``cpu-clock`` on one's own process, or root); not part of the suite.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import ROOT

_SECTION = re.compile(r"\s+# ==== (.*)")
_DEF = re.compile(r"^def (\w+)\(")
_INSN = re.compile(r"\s+([0-9a-f]+):\s+(\S+)")
_LINE = re.compile(r"^(/\S+\.py):(\d+)")


def line_table(objdump_text: str) -> tuple[dict[int, tuple[str, int]], dict[int, str]]:
    """From ``objdump -d -l`` of the kernel's object: each instruction offset of its first function
    (the month kernel) -> (source file, line), and -> mnemonic. Code inlined from another file
    (``programme_match`` from utenforsk/core/kernel.py, ...) carries that file's lines."""
    lines, names, where, inside = {}, {}, None, False
    for text in objdump_text.split("\n"):
        if re.match(r"^[0-9a-f]{16} <", text):
            if inside:
                break
            inside = text.startswith("0000000000000000 <")
            continue
        if not inside:
            continue
        m = _LINE.match(text)
        if m:
            where = (m.group(1), int(m.group(2)))
            continue
        m = _INSN.match(text)
        if m:
            off = int(m.group(1), 16)
            lines[off], names[off] = where, m.group(2)
    return lines, names


def sections(source: str) -> dict[int, str]:
    """Each line number of ``source`` -> the ``# ==== `` section of ``month_chunk`` it is in
    (``"head ..."`` before the first), or ``"helper NAME"`` inside another function (the helpers
    ``_uniform``, ``_rate_ub``, ... are inlined into every section that calls them)."""
    out, sec = {}, "module"
    for n, text in enumerate(source.split("\n"), 1):
        d = _DEF.match(text)
        if d:
            sec = "head (loop, key, ageing out)" if d.group(1) == "month_chunk" else f"helper {d.group(1)}"
        m = _SECTION.match(text)
        if m and not sec.startswith("helper"):
            sec = m.group(1)
        out[n] = sec
    return out


def attribute(ips, address: int, lines: dict, source: str, source_path: str, top: int) -> dict:
    """Shares of the samples ``ips`` (absolute addresses) that fall in the kernel, by section and
    by line of ``source`` (the generated file ``source_path``); code inlined from another file
    counts as ``"inlined from FILE"`` (its lines are not the generated source's)."""
    per_line, other = collections.Counter(), collections.Counter()
    for ip in ips:
        where = lines.get(ip - address, False)
        if where is False:
            continue  # outside the month kernel
        if where is not None and where[0] == source_path:
            per_line[where[1]] += 1
        else:
            other["inlined from " + (Path(where[0]).name if where else "no line")] += 1
    n = sum(per_line.values()) + sum(other.values())
    sec_of, text = sections(source), source.split("\n")
    per_sec = collections.Counter(other)
    for ln, k in per_line.items():
        per_sec[sec_of.get(ln, "?")] += k
    return {"samples_in_kernel": n,
            "sections": {s: k / n for s, k in per_sec.most_common()} if n else {},
            "lines": [{"line": ln, "share": k / n, "source": text[ln - 1].strip()[:160] if 0 < ln <= len(text) else ""}
                      for ln, k in per_line.most_common(top)]}


def _line_tables_only() -> None:
    """Keep ``NUMBA_DEBUGINFO``'s line tables but not what else it changes in the code: numba then
    also turns on bounds checks, keeps variables alive, and marks every function ``noinline`` (a
    call that is inlined in the real kernel cost half the month in a profile of that one)."""
    from numba.core import cpu, lowering

    finalize, pre_lower = cpu.CPUTargetOptions.finalize, lowering.Lower.pre_lower

    def finalize_lean(self, flags, options):
        finalize(self, flags, options)
        flags.boundscheck = False
        flags.dbg_extend_lifetimes = False

    def pre_lower_inlinable(self):
        pre_lower(self)
        self.builder.function.attributes.discard("noinline")

    cpu.CPUTargetOptions.finalize = finalize_lean
    lowering.Lower.pre_lower = pre_lower_inlinable


def _objdump(obj: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".o") as f:
        f.write(obj)
        f.flush()
        return subprocess.run(["objdump", "-d", "-l", "--no-show-raw-insn", f.name],
                              capture_output=True, text=True, check=True).stdout


def _compiled(src: str, mo):
    """``src``'s month kernel compiled here: (its object file, its address in memory, the
    generated file's path, the function)."""
    from utenforsk.core import kernel_cache

    mod = kernel_cache.load(src)
    fn = mod.month_chunk
    pop, tal = mo.fresh()
    mo.run(fn, pop, tal)
    cres = fn.overloads[fn.signatures[0]]
    return (cres.library._get_compiled_object(), cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name),
            str(mod.SOURCE_PATH), fn)


def _like_normal_build(src: str, mo, names: dict[int, str]) -> float:
    """How alike the profiled kernel is to the same source compiled without debug information:
    difflib's ratio of the two functions' sequences of instruction names (1.0: the same names in
    the same order; operands are not compared)."""
    import difflib

    from numba.core import config

    config.DEBUGINFO_DEFAULT = 0
    obj = _compiled("# normal build\n" + src, mo)[0]
    _, normal = line_table(_objdump(obj))
    profiled = [names[o] for o in sorted(names)]
    return difflib.SequenceMatcher(None, profiled, [normal[o] for o in sorted(normal)], autojunk=False).ratio()


def _child(a) -> int:
    """Compile ``a.source`` here (line tables on), dump its object and address, then run months."""
    import warnings

    from numba.core.errors import NumbaDebugInfoWarning

    if not (os.environ.get("UTENFORSK_KERNEL_CACHE") and os.environ.get("NUMBA_CACHE_DIR")):
        print("error: --child needs private UTENFORSK_KERNEL_CACHE and NUMBA_CACHE_DIR (its builds "
              "differ from the normal ones, and numba's cache would not tell them apart)", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore", NumbaDebugInfoWarning)  # generated helpers have no source file
    _line_tables_only()
    from benchmarks.kernel_ab import OneMonth

    mo = OneMonth(a.scale, a.iv, a.warm)
    src = f"# kernel_profile {time.time_ns()}\n" + Path(a.source).read_text()  # a new module: compiled here
    obj, address, source_path, fn = _compiled(src, mo)
    out = Path(a.out)
    (out / "kernel.o").write_bytes(obj)
    (out / "kernel.py").write_text(src)
    lines, names = line_table(_objdump(obj))
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(ctypes.string_at(address, max(lines) + 16))
        f.flush()
        mem = subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64", "--no-show-raw-insn", f.name],
                             capture_output=True, text=True, check=True).stdout
    at = {int(m.group(1), 16): m.group(2) for m in map(_INSN.match, mem.split("\n")) if m}
    same = sum(at.get(o) == nm for o, nm in names.items()) / max(len(names), 1)
    if same < 0.99:
        print(f"error: the object file does not match the code in memory ({same:.1%} of offsets)", file=sys.stderr)
        return 1
    (out / "address.json").write_text(json.dumps({
        "address": address, "pid": os.getpid(), "source_path": source_path, "same_instructions": same,
        "like_normal_build": _like_normal_build(src, mo, names)}))
    t0 = time.monotonic()
    while time.monotonic() - t0 < a.seconds:
        pop, tal = mo.fresh()
        for _ in range(3):
            mo.run(fn, pop, tal)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.kernel_profile", description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", help="a generated month kernel (default: this checkout's baseline)")
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--seconds", type=float, default=10.0, help="time the months run under perf")
    ap.add_argument("--iv", nargs="*", default=[], help="interventions of the scenario")
    ap.add_argument("--warm", type=int, default=2, help="policy months simulated first")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "results" / "benchmarks"))
    ap.add_argument("--keep", action="store_true",
                    help="also keep the object file, the source, its address and the samples in OUT/kernel_profile/")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return _child(a)
    missing = [t for t in ("perf", "objdump") if shutil.which(t) is None]
    if missing:
        print(f"error: kernel_profile needs {' and '.join(missing)} (Debian: linux-perf, binutils)", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.source is None:
            from utenforsk.model import UtenforskModel
            m = UtenforskModel(ROOT / "configs" / "norway" / "baseline.yaml", seed=1, scale=0.002,
                               burn_in_years=1, horizon_years=1, threads=1)
            a.source = str(tmp / "baseline_kernel.py")
            Path(a.source).write_text(m._gen.source)
        env = {**os.environ, "NUMBA_DEBUGINFO": "1", "UTENFORSK_KERNEL_CACHE": str(tmp / "kc"),
               "NUMBA_CACHE_DIR": str(tmp / "nb"),
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        child = [sys.executable, "-m", "benchmarks.kernel_profile", str(Path(a.source).resolve()), "--child",
                 "--out", str(tmp),
                 "--scale", str(a.scale), "--seconds", str(a.seconds), "--warm", str(a.warm), "--iv", *a.iv]
        rec = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-o", str(tmp / "perf.data"),
                              "--", *child], env=env, cwd=ROOT)
        if rec.returncode != 0 or not (tmp / "address.json").exists():
            print(f"error: the sampled run failed (exit {rec.returncode}); see its messages above", file=sys.stderr)
            return 1
        meta = json.loads((tmp / "address.json").read_text())
        script = subprocess.run(["perf", "script", "-i", str(tmp / "perf.data"), "-F", "pid,ip"],
                                capture_output=True, text=True, check=True).stdout
        pairs = [ln.split() for ln in script.splitlines() if ln.strip()]
        ips = [int(ip, 16) for pid, ip in pairs if int(pid) == meta["pid"]]  # not objdump's, not perf's
        lines, _ = line_table(_objdump((tmp / "kernel.o").read_bytes()))
        res = attribute(ips, meta["address"], lines, (tmp / "kernel.py").read_text(), meta["source_path"], a.top)
        if a.keep:
            keep = out / "kernel_profile"
            keep.mkdir(exist_ok=True)
            for name in ("kernel.o", "kernel.py", "address.json"):  # kernel.py: the source the lines are of
                shutil.copy(tmp / name, keep / name)
            (keep / "ips.txt").write_text("\n".join(f"{ip:x}" for ip in ips))
    res.update(samples=len(ips), same_instructions=meta["same_instructions"],
               like_normal_build=meta["like_normal_build"], scale=a.scale, interventions=a.iv)
    (out / "kernel_profile.json").write_text(json.dumps(res, indent=1))
    print(f"{res['samples_in_kernel']:,} of {len(ips):,} samples in the month kernel (its instructions "
          f"{res['like_normal_build']:.0%} like the build without debug information); by section:")
    for s, share in res["sections"].items():
        print(f"  {100 * share:5.1f}%  {s}")
    print("lines:")
    for r in res["lines"]:
        print(f"  {100 * r['share']:5.1f}%  {r['line']:5d}  {r['source'][:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
