"""The Results tab's data: a stored experiment directory, read from its files, never recomputed.

:func:`check_experiment_dir` decides whether a directory is one ``utenforsk experiment`` wrote
(bad input -> one :class:`UserError`); :func:`load` reads what the directory has. A file a given
experiment lacks is ``None`` and the page says "not in this experiment".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from utenforsk.errors import UserError

#: section -> file names that hold it (the first that exists is read)
FILES = {
    "effects": ("effects.csv",),
    "economics": ("economics.csv",),
    "ledger": ("ledger.csv",),
    "hypotheses": ("hypotheses.csv",),
    "trial": ("trial.csv", "trials.csv"),
    "for_whom": ("for_whom.csv", "effects_by_group.csv"),
    "municipality": ("municipality.csv", "municipalities.csv", "effects_by_municipality.csv"),
    "uncertainty": ("uncertainty.csv",),
}
MARKERS = ("experiment.json", "effects.csv", "runs.parquet")


def check_experiment_dir(path) -> Path:
    """``path`` as a Path if it is an experiment directory; otherwise one UserError saying why."""
    p = Path(path)
    allowed = "a directory written by `utenforsk experiment` (with experiment.json or effects.csv)"
    if not p.exists():
        raise UserError("no such directory", key="--experiment", value=str(p), allowed=allowed)
    if not p.is_dir():
        raise UserError("not a directory", key="--experiment", value=str(p), allowed=allowed)
    if not any((p / m).exists() for m in MARKERS):
        raise UserError("not an experiment directory (no experiment.json, effects.csv or runs.parquet)",
                        key="--experiment", value=str(p), allowed=allowed)
    for name in ("experiment.json", "results.json"):
        f = p / name
        if f.exists():
            try:
                json.loads(f.read_text())
            except (OSError, ValueError) as exc:
                raise UserError(f"unreadable {name}: {exc}", key="--experiment", value=str(p),
                                allowed=allowed) from None
    return p


@dataclass
class Experiment:
    path: Path
    meta: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)   # section -> why its file could not be read
    figures: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)          # stored CSV files no section shows

    def get(self, section: str) -> pd.DataFrame | None:
        return self.tables.get(section)

    @property
    def name(self) -> str:
        return str(self.meta.get("experiment") or self.meta.get("name") or self.path.name)

    def effect_metrics(self) -> list[str]:
        """Metrics with one effect over the horizon (not ``METRIC@YEAR`` nor a group gap)."""
        e = self.get("effects")
        if e is None:
            return []
        ms = [m for m in dict.fromkeys(e["metric"]) if "@" not in m and not m.startswith("gap_")]
        return sorted(ms, key=lambda m: (m != "neet_rate_15_29", m))

    def timing(self) -> pd.DataFrame | None:
        """Effects stored at the report years: effects.csv rows named ``METRIC@YEAR``."""
        e = self.get("effects")
        if e is None:
            return None
        d = e[e["metric"].str.contains("@", regex=False)].copy()
        if d.empty:
            return None
        parts = d["metric"].str.split("@", n=1, expand=True)
        d["base_metric"], d["year"] = parts[0], pd.to_numeric(parts[1], errors="coerce")
        return d.dropna(subset=["year"]).astype({"year": int})

    def gaps(self) -> pd.DataFrame | None:
        """Effects on the gaps between groups (effects.csv rows ``gap_...``): for whom."""
        e = self.get("effects")
        if e is None:
            return None
        d = e[e["metric"].str.startswith("gap_")]
        return None if d.empty else d


def load(path) -> Experiment:
    """Read an experiment directory's files (after :func:`check_experiment_dir`)."""
    p = check_experiment_dir(path)
    meta: dict = {}
    for name in ("experiment.json", "results.json"):
        if (p / name).exists():
            meta.update(json.loads((p / name).read_text()))
    exp = Experiment(p, meta)
    for section, names in FILES.items():
        exp.tables[section] = None
        for n in names:
            f = p / n
            if f.exists():
                try:
                    exp.tables[section] = pd.read_csv(f)
                except (OSError, ValueError) as exc:
                    exp.problems[section] = f"{n} could not be read: {exc}"
                break
    if exp.tables["effects"] is not None and not {"scenario", "metric", "difference"} <= set(exp.tables["effects"]):
        exp.problems["effects"] = "effects.csv lacks the columns scenario, metric, difference"
        exp.tables["effects"] = None
    shown = {n for names in FILES.values() for n in names}
    exp.others = sorted(f for f in p.glob("*.csv") if f.name not in shown)
    fig = p / "figures"
    exp.figures = sorted(fig.glob("*.png")) if fig.is_dir() else []
    return exp
