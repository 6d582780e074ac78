"""Simulated vs observed: the fit table, validation.md and a figure.

A target passes when the mean over replicates lies within its tolerance of the observed value.
The 95% interval of the mean (t, across replicates) shows the Monte Carlo error of that mean; the
replicate range shows the spread of single runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
from utenforsk import __version__
from utenforsk.analysis.effects import mean_ci
from utenforsk.calibration.targets import target_set

COLUMNS = ["target", "set", "metric", "year", "observed", "tolerance", "simulated", "ci_low", "ci_high",
           "replicate_min", "replicate_max", "difference", "z", "status", "unit", "source"]
#: the share of hold-out targets that must pass (issue 13); every calibration target must
HOLDOUT_PASS_SHARE = 0.8


def fit_table(targets, values: np.ndarray) -> pd.DataFrame:
    """One row per target from ``values[replicate, target]`` (targets in file order)."""
    rows = []
    n = values.shape[0]
    for j, (name, t) in enumerate(targets.targets.items()):
        v = values[:, j]
        v = v[np.isfinite(v)]
        mean, ci_low, ci_high, _ = mean_ci(v)
        diff = mean - t.value
        inside = bool(np.isfinite(diff) and abs(diff) <= t.tolerance)
        status = ("monitor: inside" if inside else "monitor: outside") if t.monitor_only \
            else ("pass" if inside else "FAIL")
        rows.append([name, target_set(t), t.label(), t.year, t.value, t.tolerance, mean, ci_low, ci_high,
                     float(v.min()) if len(v) else np.nan, float(v.max()) if len(v) else np.nan,
                     diff, diff / t.tolerance, status, t.unit, t.source])
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs["replicates"] = n
    return df


def passed(table: pd.DataFrame) -> bool:
    return summary(table)[0]


def summary(table: pd.DataFrame) -> tuple[bool, list[str]]:
    """(ok, lines): every calibration target passes and >= HOLDOUT_PASS_SHARE of hold-outs do;
    the lines name every failing target, by set."""
    lines, ok = [], True
    for name in ("calibration", "hold-out"):
        part = table[table.set == name]
        if part.empty:
            continue
        fail = list(part.target[part.status == "FAIL"])
        n = len(part)
        lines.append(f"{name}: {n - len(fail)} of {n} within tolerance"
                     + (f"; failing: {', '.join(fail)}" if fail else ""))
        if name == "calibration" and fail:
            ok = False
        if name == "hold-out" and (n - len(fail)) < HOLDOUT_PASS_SHARE * n:
            ok = False
    return ok, lines


def fmt(x: float, unit: str, digits: int = 1) -> str:
    if not np.isfinite(x):
        return "n/a"
    if unit == "share":
        return f"{100 * x:.{digits}f}%"
    if unit == "persons":
        return f"{x:,.0f}"
    return f"{x:.4g}"


def markdown_rows(table: pd.DataFrame) -> list[str]:
    out = ["| target | set | year | observed | tolerance | simulated (95% CI) | replicate range | status |",
           "|---|---|---|---:|---:|---:|---:|---|"]
    for r in table.itertuples():
        u = r.unit
        tol = f"±{fmt(r.tolerance, u)}".replace("%", " pp") if u == "share" else f"±{fmt(r.tolerance, u)}"
        out.append(f"| `{r.target}` | {r.set} | {r.year} | {fmt(r.observed, u)} | {tol} | "
                   f"{fmt(r.simulated, u, 2)} ({fmt(r.ci_low, u, 2)}-{fmt(r.ci_high, u, 2)}) | "
                   f"{fmt(r.replicate_min, u)}-{fmt(r.replicate_max, u)} | {'**FAIL**' if r.status == 'FAIL' else r.status} |")
    return out


def figure(table: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table.iloc[::-1]
    y = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(t) + 1.4))
    ax.axvspan(-1, 1, color="#dfe9d8", label="within tolerance")
    ax.axvline(0, color="grey", lw=0.8)
    z = t.z
    err = np.vstack([(t.simulated - t.ci_low) / t.tolerance, (t.ci_high - t.simulated) / t.tolerance])
    colours = ["#b2182b" if s == "FAIL" else ("#888888" if s.startswith("monitor") else "#2166ac") for s in t.status]
    ax.errorbar(z, y, xerr=np.nan_to_num(err), fmt="none", ecolor="black", lw=1, capsize=2)
    ax.scatter(z, y, c=colours, zorder=3)
    ax.set_yticks(y, t.target)
    ax.set_xlabel("(simulated - observed) / tolerance, with 95% CI\n(blue: checked, red: failed, grey: monitored only)", fontsize=9)
    ax.set_title(title, fontsize=10)
    lim = max(2.0, float(np.nanmax(np.abs(z))) + 0.5)
    ax.set_xlim(-lim, lim)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _group(t) -> str:
    """The breakdown a target belongs to: sex, background, sex x background, or all."""
    keys = set(t.subgroup)
    if {"sex", "immigrant_background"} <= keys:
        return "sex x background"
    return "sex" if "sex" in keys else ("background" if keys else "all")


def group_figure(table: pd.DataFrame, targets, path: Path) -> None:
    """Simulated vs observed share by age (midpoint of the target's age band), one panel per
    metric, colour by breakdown (all, sex, background) and marker by set (seaborn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = []
    for r in table.itertuples():
        t = targets.targets[r.target]
        if r.unit != "share" or not np.isfinite(r.simulated):
            continue
        a0, a1 = t.age_range
        sub = ", ".join(f"{'+'.join(v)}" for v in t.subgroup.values()) or "all"
        for kind, v in (("observed", r.observed), ("simulated", r.simulated)):
            rows.append({"metric": t.metric + (f" ({t.track})" if t.track else "") + (f" ({'+'.join(t.states)})" if t.states else ""),
                         "age": (a0 + a1 - 1) / 2, "value": v, "kind": kind, "group": sub, "set": r.set})
    if not rows:
        return
    df = pd.DataFrame(rows)
    g = sns.relplot(df, x="age", y="value", hue="group", style="kind", col="metric", col_wrap=3,
                    kind="scatter", facet_kws={"sharey": False, "sharex": False}, height=2.6, aspect=1.3, s=45)
    g.set_titles("{col_name}", size=8)
    g.figure.suptitle("simulated (x) vs observed (o) by age band, sex and background", y=1.02, size=10)
    g.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(g.figure)


def write_report(table: pd.DataFrame, targets, out: Path, *, model_path: str, targets_path: str,
                 sim, command: str) -> None:
    """Into ``out``, which exists (the CLI's ensure_output_dir)."""
    (out / "figures").mkdir(exist_ok=True)
    table.to_csv(out / "validation.csv", index=False)
    figure(table, out / "figures" / "validation.png", f"{Path(model_path).name} vs {Path(targets_path).name}")
    group_figure(table, targets, out / "figures" / "by_age_sex_group.png")
    n_fail = int((table.status == "FAIL").sum())
    checked = int((~table.status.str.startswith("monitor")).sum())
    lines = [
        f"# Validation: {Path(model_path).name} against {Path(targets_path).name}", "",
        f"`{command}`", "",
        f"- date {dt.date.today().isoformat()}, utenforsk {__version__}",
        f"- {table.attrs.get('replicates', '?')} replicates (common random numbers, seed {sim.seed}), "
        f"scale {sim.scale}, window = the first {sim.horizon_years} policy years after a "
        f"{sim.burn_in_years}-year burn-in",
        f"- **{checked - n_fail} of {checked} targets within tolerance**"
        + (f"; failing: {', '.join(table.target[table.status == 'FAIL'])}" if n_fail else ""),
        *[f"- {line}" for line in summary(table)[1]],
        f"- pass rule: every calibration target, and at least {HOLDOUT_PASS_SHARE:.0%} of the hold-out "
        "targets (chosen before fitting, never read by `calibrate`)", "",
        "A target passes when the replicate mean lies within its tolerance of the observed value. "
        "Tolerance rule: " + " ".join(targets.tolerance_rule.split()), "",
        *markdown_rows(table), "",
        "![fit](figures/validation.png)", "",
        "![by age, sex and group](figures/by_age_sex_group.png)", "",
        "## Targets", "",
        "| target | simulated metric | definition | source | tolerance basis |", "|---|---|---|---|---|",
    ]
    for name, t in targets.targets.items():
        lines.append(f"| `{name}` | `{t.label()}` | {t.definition} | {t.source} | {t.tolerance_basis} |")
    (out / "validation.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
