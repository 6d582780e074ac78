"""The parameter table: every :class:`~utenforsk.config.params.Param` of a model config, as rows.

``docs/model.md`` carries the generated table between two markers, and a test keeps it in step
with the config::

    python -m utenforsk.paramtable configs/norway/baseline.yaml                 # print
    python -m utenforsk.paramtable configs/norway/baseline.yaml --check docs/model.md
    python -m utenforsk.paramtable configs/norway/baseline.yaml --write docs/model.md

Rows come from walking the *validated* config object (so ``base:``/``include:`` overrides and
YAML anchors are resolved), with key paths spelt as in YAML (``from``, not ``from_``).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from utenforsk.config.params import Param

START = "<!-- PARAMETER TABLE START -->"
END = "<!-- PARAMETER TABLE END -->"
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "configs" / "norway" / "baseline.yaml"

#: Section order of the table (top-level config keys); any other section holding Params follows.
SECTIONS = ("population", "attributes", "municipalities", "municipality_effects", "traits", "scheduled",
            "transitions", "exits", "services", "handoffs")

#: Unit of a Param by the schema field that holds it. A key is a field name, or ``Class.field``
#: where one field name means different things in different objects (looked up along the class's
#: MRO first, so ``Hazard.probability`` also covers Transition and Exit). A Param's own ``unit``
#: wins over this table.
UNITS: dict[str, str] = {
    "Hazard.probability": "probability/month",
    "annual_rate": "probability/year",
    "age_profile": "log-odds shift",
    "coefficients": "log-odds",
    "LinearPredictor.coefficients": "SD",        # trait mean/target: SD units per unit covariate
    "intercept": "SD",
    "at_birth": "share",
    "at_arrival": "share",
    "share": "share",
    "BinaryStart.probability": "share",          # prevalence at the start age
    "ArrivalRule.flags": "share",                # holding a flag on arrival
    "ArrivalRule.prevalence": "share",           # holding a binary trait on arrival
    "Handoff.probability": "probability",        # per referral
    "weight": "relative weight",
    "capacity_factor": "factor",
    "detection_factor": "factor",
    "births_per_year": "births/year",
    "arrivals_per_year": "persons/year",
    "TraitStart.sd": "SD",
    "TraitDynamics.sd": "SD/month",
    "TraitDynamics.stationary_sd": "SD (stationary)",
    "rate": "share of gap/month",
    "detection": "probability/month",
    "discharge": "probability/month",
    "capacity": "per 1,000 residents",
    "quality": "index (1 = today's average)",
    "delay_months": "months",
    "MunicipalityEffect.sd": "SD (log-odds)",
}
DEFAULT_UNIT = "-"


def unit_for(owner: type, field: str) -> str:
    """The unit of a Param held (directly or inside a dict/list) by ``owner.field``."""
    for cls in owner.__mro__:
        key = f"{cls.__name__}.{field}"
        if key in UNITS:
            return UNITS[key]
    return UNITS.get(field, DEFAULT_UNIT)


def is_assumption(source: str) -> bool:
    return source.strip().lower().startswith("assumption")


def is_definition(source: str) -> bool:
    return source.strip().lower().startswith("definition")


def _key(k: Any) -> str:
    if isinstance(k, float) and k.is_integer():
        return str(int(k))
    return str(k)


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def iter_params(cfg: BaseModel) -> list[dict]:
    """One row per Param in ``cfg``, in config order.

    Row keys: ``path``, ``section``, ``value``, ``low``, ``high``, ``unit``, ``source``,
    ``assumption`` (source starts with "assumption"), ``definition`` (starts with "definition"),
    ``description`` (of the nearest enclosing object below the root that has a non-empty one),
    ``note``.
    """
    rows: list[dict] = []

    def visit(obj: Any, path: str, owner: type | None, field: str | None, desc: str) -> None:
        if isinstance(obj, Param):
            lo, hi = obj.range
            rows.append({
                "path": path,
                "section": path.split(".", 1)[0].split("[", 1)[0],
                "value": obj.value,
                "low": lo,
                "high": hi,
                "unit": obj.unit or (unit_for(owner, field) if owner else DEFAULT_UNIT),
                "source": obj.source,
                "assumption": is_assumption(obj.source),
                "definition": is_definition(obj.source),
                "description": desc,
                "note": obj.note or "",
            })
        elif isinstance(obj, BaseModel):
            d = getattr(obj, "description", None)
            if isinstance(d, str) and d.strip() and path:  # the root's description is the model's
                desc = " ".join(d.split())
            for name, info in type(obj).model_fields.items():
                visit(getattr(obj, name), _join(path, info.alias or name), type(obj), name, desc)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                visit(v, _join(path, _key(k)), owner, field, desc)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                visit(v, f"{path}[{i}]", owner, field, desc)

    visit(cfg, "", None, None, "")
    return rows


# ---- Markdown ------------------------------------------------------------------------------------
def fmt_number(x: float) -> str:
    """Shortest exact decimal, never in exponent notation (0.00008, 54000, -1.5)."""
    if float(x).is_integer():
        return str(int(x))
    return format(Decimal(repr(float(x))), "f")


def _cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _sections(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    names = [s for s in SECTIONS if any(r["section"] == s for r in rows)]
    names += list(dict.fromkeys(r["section"] for r in rows if r["section"] not in SECTIONS))
    return [(s, [r for r in rows if r["section"] == s]) for s in names]


def markdown_table(cfg: BaseModel) -> str:
    """The parameters as Markdown: one ``###`` heading and one table per top-level section."""
    out: list[str] = []
    for section, rows in _sections(iter_params(cfg)):
        out += [f"### {section}", "", "| parameter | value | range | unit | source |",
                "|---|---:|---|---|---|"]
        for r in rows:
            rng = f"[{fmt_number(r['low'])}, {fmt_number(r['high'])}]"
            out.append(f"| `{_cell(r['path'])}` | {fmt_number(r['value'])} | {rng} | "
                       f"{_cell(r['unit'])} | {_cell(r['source'])} |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def source_counts(rows: list[dict]) -> dict[str, int]:
    """How many rows say "assumption", "definition", or cite evidence (anything else)."""
    a = sum(r["assumption"] for r in rows)
    d = sum(r["definition"] for r in rows)
    return {"total": len(rows), "evidence": len(rows) - a - d, "assumption": a, "definition": d}


def evidence_summary(cfg: BaseModel) -> str:
    """The ``## Evidence and assumptions`` section: counts of sources, overall and by section."""
    rows = iter_params(cfg)
    c = source_counts(rows)
    out = [
        "## Evidence and assumptions",
        "",
        f"Of the {c['total']} parameters, {c['evidence']} cite evidence, {c['assumption']} are "
        f"assumptions and {c['definition']} hold by definition. A source counts as an assumption "
        'when it starts with "assumption" (some of these name the evidence that informed them), '
        'as a definition when it starts with "definition", and as evidence otherwise.',
        "",
        "| section | parameters | evidence | assumption | definition |",
        "|---|---:|---:|---:|---:|",
    ]
    for section, srows in _sections(rows):
        s = source_counts(srows)
        out.append(f"| {section} | {s['total']} | {s['evidence']} | {s['assumption']} | "
                   f"{s['definition']} |")
    out.append(f"| **all** | **{c['total']}** | **{c['evidence']}** | **{c['assumption']}** | "
               f"**{c['definition']}** |")
    return "\n".join(out) + "\n"


def generated_block(cfg: BaseModel) -> str:
    """What goes between the markers in docs/model.md: the tables, then the source counts."""
    return markdown_table(cfg) + "\n" + evidence_summary(cfg)


# ---- markers, check, write -----------------------------------------------------------------------
def _split(text: str, where: str) -> tuple[str, str, str]:
    """(before START incl. marker, between, END marker and after); ValueError if not found once."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{where}: needs exactly one {START} followed by one {END}")
    head, rest = text.split(START, 1)
    between, tail = rest.split(END, 1)
    return head + START, between, END + tail


def _load(model: str | Path):
    from utenforsk.config.loader import load_model_config

    return load_model_config(model)


def check(model: str | Path, markdown: str | Path, out=None, max_diff_lines: int = 40) -> int:
    """0 if the block between the markers in ``markdown`` is what ``model`` generates, else 1
    (2 if the markers are missing), printing a short unified diff to ``out`` (stdout)."""
    out = out or sys.stdout
    text = Path(markdown).read_text(encoding="utf-8")
    try:
        _, between, _ = _split(text, str(markdown))
    except ValueError as exc:
        print(exc, file=out)
        return 2
    want = generated_block(_load(model))
    if between.strip("\n") == want.strip("\n"):
        return 0
    diff = list(difflib.unified_diff(between.strip("\n").splitlines(), want.strip("\n").splitlines(),
                                     f"{markdown} (current)", f"{model} (generated)", lineterm="", n=1))
    print(f"{markdown}: parameter table is out of date; regenerate with\n"
          f"  python -m utenforsk.paramtable {model} --write {markdown}", file=out)
    for line in diff[:max_diff_lines]:
        print(line, file=out)
    if len(diff) > max_diff_lines:
        print(f"... ({len(diff) - max_diff_lines} more diff lines)", file=out)
    return 1


def write(model: str | Path, markdown: str | Path) -> bool:
    """Replace the block between the markers in ``markdown``; True if the file changed."""
    path = Path(markdown)
    text = path.read_text(encoding="utf-8")
    head, _, tail = _split(text, str(markdown))
    new = f"{head}\n{generated_block(_load(model))}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m utenforsk.paramtable",
                                 description="Print, check or write the parameter table of a model config.")
    ap.add_argument("model", nargs="?", default=str(DEFAULT_MODEL), help="model YAML (default: Norway baseline)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--check", metavar="MARKDOWN", help="exit 1 if the table in MARKDOWN is out of date")
    g.add_argument("--write", metavar="MARKDOWN", help="replace the table between the markers in MARKDOWN")
    args = ap.parse_args(argv)
    from utenforsk.errors import ConfigError

    try:
        if args.check:
            return check(args.model, args.check)
        if args.write:
            try:
                changed = write(args.model, args.write)
            except ValueError as exc:
                print(exc, file=sys.stderr)
                return 2
            print(f"{args.write}: {'updated' if changed else 'already up to date'}")
            return 0
        sys.stdout.write(generated_block(_load(args.model)))
        return 0
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
