"""trial.png: for every trial, the simulated estimate (95% Monte Carlo interval) against the
published estimate (95% interval), on the published measure's scale; odds ratios on a log axis."""

from __future__ import annotations

import math
from pathlib import Path


def plot(rows: list[dict], trials: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    fig, axes = plt.subplots(n, 1, figsize=(7, 1.3 * n + 0.6), squeeze=False)
    for ax, row, trial in zip(axes[:, 0], rows, trials):
        pub = trial.spec.published
        sim = {"odds_ratio": row["odds_ratio"], "level": row["control"]}.get(pub.measure, row["difference"])
        ax.errorbar([pub.estimate], [1], xerr=[[pub.estimate - pub.ci[0]], [pub.ci[1] - pub.estimate]],
                    fmt="s", color="black", capsize=3, label="published")
        if not (math.isnan(sim) or math.isnan(row["ci_low"])):
            ax.errorbar([sim], [0], xerr=[[max(sim - row["ci_low"], 0)], [max(row["ci_high"] - sim, 0)]],
                        fmt="o", color="tab:blue" if row["consistent"] else "tab:red", capsize=3,
                        label="simulated")
        if pub.measure != "level":
            ax.axvline(1.0 if pub.measure == "odds_ratio" else 0.0, color="grey", lw=0.6, ls=":")
        if pub.measure == "odds_ratio":
            ax.set_xscale("log")
        ax.set_ylim(-0.8, 1.8)
        ax.set_yticks([0, 1], ["simulated", "published"])
        unit = {"odds_ratio": "odds ratio", "difference": "difference",
                "level": "control arm, as the service is today"}[pub.measure]
        if trial.spec.outcome.per_exposure_states:
            unit = "difference per participant"
        if trial.spec.outcome.kind == "trait_sd":
            unit = "difference, SD of control"
        ax.set_title(f"{row['trial']}: {row['outcome']} ({unit})", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
