"""Prior against posterior spread of an ensemble: a table and a seaborn figure.

``utenforsk ensemble-summary ENSEMBLE.csv [--out DIR]`` reads the CSV that ``calibrate --ensemble``
wrote and the record beside it (``ENSEMBLE.json``: the priors), and writes ``ensemble_summary.md``
and ``ensemble_spread.png``. Each parameter's prior is uniform (log-uniform where ``log: true``)
over its search range; the figure shows the accepted sets at their position in that range (0 =
the low end, 1 = the high end), so parameters of any unit share one axis.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from utenforsk.calibration.calibrate import read_ensemble
from utenforsk.errors import UserError


def load(path: Path) -> tuple[pd.DataFrame, dict]:
    """The ensemble and its record; a missing or malformed file is a UserError (exit 2)."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or path.suffix != ".csv":
        raise UserError("ensemble file not found", key="ENSEMBLE", value=str(path),
                        allowed="a CSV written by `utenforsk calibrate --ensemble`")
    if not meta_path.is_file():
        raise UserError("the ensemble's record is missing", file=str(meta_path), key="ENSEMBLE", value=str(path),
                        allowed="the .json that `calibrate --ensemble` writes beside the CSV")
    try:
        ens = read_ensemble(path)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except Exception as exc:  # malformed input
        raise UserError(f"cannot read the ensemble ({exc.__class__.__name__})", file=str(path), key="ENSEMBLE",
                        value=str(path), allowed="a CSV and its .json from `calibrate --ensemble`") from None
    params = meta.get("parameters") or {}
    missing = [c for c in ens.columns if c not in params]
    if ens.empty or missing:
        raise UserError("the ensemble's columns do not match its record's parameters", file=str(path),
                        key="columns", value=missing or "no rows", allowed=", ".join(params) or "a record with `parameters`")
    return ens.astype(float), meta


def _quantile(lo: float, hi: float, log: bool, q: float) -> float:
    return float(np.exp(np.log(lo) + q * (np.log(hi) - np.log(lo)))) if log else lo + q * (hi - lo)


def summary(ens: pd.DataFrame, meta: dict) -> pd.DataFrame:
    rows = []
    for col in ens.columns:
        p = meta["parameters"][col]
        lo, hi = p["range"]
        log = bool(p.get("log"))
        q5, q50, q95 = np.quantile(ens[col], [0.05, 0.5, 0.95])
        p5, p95 = _quantile(lo, hi, log, 0.05), _quantile(lo, hi, log, 0.95)
        rows.append({"parameter": col, "prior_low": lo, "prior_high": hi, "prior_5": p5, "prior_95": p95,
                     "posterior_5": q5, "posterior_50": q50, "posterior_95": q95,
                     "width_ratio_90": (q95 - q5) / (p95 - p5)})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, meta: dict, command: str) -> str:
    lines = [f"{meta['accepted']} accepted parameter sets of {meta['draws']} simulated "
             f"({meta['method']}; {meta['replicates']} replicates at scale {meta['scale']}, seed {meta['seed']}; "
             f"model config {meta['model_config_hash']}; {meta['date']}; {meta.get('seconds', float('nan')):.0f} s). "
             f"Written by `{command}`.", "",
             "| parameter | prior (uniform) | prior 90% | posterior 5% / 50% / 95% | 90% width, posterior / prior |",
             "|---|---|---|---|---:|"]
    for r in table.itertuples():
        lines.append(f"| `{r.parameter}` | [{r.prior_low:.4g}, {r.prior_high:.4g}] | {r.prior_5:.4g} to {r.prior_95:.4g} "
                     f"| {r.posterior_5:.4g} / {r.posterior_50:.4g} / {r.posterior_95:.4g} | {r.width_ratio_90:.2f} |")
    return "\n".join(lines) + "\n"


def figure(ens: pd.DataFrame, meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    long = []
    for col in ens.columns:
        p = meta["parameters"][col]
        lo, hi = p["range"]
        x = ens[col].to_numpy()
        u = (np.log(x) - np.log(lo)) / (np.log(hi) - np.log(lo)) if p.get("log") else (x - lo) / (hi - lo)
        label = col.replace("transitions.", "").replace("coefficients.", "").replace(".probability", "")
        long += [{"parameter": f"{label}\n[{lo:.3g}, {hi:.3g}]", "position in the prior range": float(v)} for v in u]
    df = pd.DataFrame(long)
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(10, 0.62 * len(ens.columns) + 1.4))
    ax.axvspan(0, 1, color="0.9", zorder=0, label="prior (uniform over the range)")
    sns.violinplot(data=df, x="position in the prior range", y="parameter", inner="quartile", cut=0,
                   density_norm="width", color="C0", linewidth=0.8, ax=ax)
    sns.stripplot(data=df, x="position in the prior range", y="parameter", size=1.6, color="k", alpha=0.4, ax=ax)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylabel("")
    ax.set_title(f"{meta['accepted']} accepted sets ({meta['method']}) against uniform priors", fontsize=9)
    ax.legend(loc="lower right", fontsize=7, frameon=True)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
