"""A study's plots, from its statistics (`study_stats.study_statistics`): robust accuracy
against FLOPs reduction per criterion with confidence bands, one panel per setup; the
critical-difference diagram of each granularity; the variance shares."""
from __future__ import annotations

from pathlib import Path

from .study_stats import METRIC


def _figure(size: tuple[float, float], **subplots):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(**subplots)


def plot_accuracy_vs_flops(stats: dict, metric: str, path: Path) -> None:
    """`metric` (mean and 95 % CI band over seeds) against FLOPs reduction, one line per
    criterion x granularity x iterations x fine-tuning method (ratios along it), one panel per
    setup; the setup's unpruned baseline as a line with its band."""
    setups = list(dict.fromkeys(c["setup"] for c in stats["cells"]))
    fig, axes = _figure((5.0 * max(1, len(setups)), 4.0), ncols=max(1, len(setups)), squeeze=False)
    for ax, setup in zip(axes[0], setups):
        lines: dict[tuple, list[dict]] = {}
        for c in stats["cells"]:
            if c["setup"] == setup and c.get(metric, {}).get("mean") is not None:
                lines.setdefault((c["criterion"], c["granularity"], c["iterations"], c["finetune_method"]), []).append(c)
        for (criterion, granularity, iterations, method), cells in lines.items():
            cells.sort(key=lambda c: c["flops_reduction"]["mean"])
            xs = [c["flops_reduction"]["mean"] for c in cells]
            label = f"{criterion} ({granularity}" + (f", it {iterations}" if iterations != 1 else "") + (
                f", {method})" if method != "natural" else ")")
            (line,) = ax.plot(xs, [c[metric]["mean"] for c in cells], marker="o", label=label)
            low = [c[metric]["ci_low"] for c in cells]
            if None not in low:
                ax.fill_between(xs, low, [c[metric]["ci_high"] for c in cells], color=line.get_color(), alpha=0.15)
        base = stats["baselines"].get(setup, {}).get(metric, {})
        if base.get("mean") is not None:
            ax.axhline(base["mean"], color="black", linestyle="--", label="unpruned baseline")
            if base.get("ci_low") is not None:
                ax.axhspan(base["ci_low"], base["ci_high"], color="grey", alpha=0.15)
        ax.set_title(setup)
        ax.set_xlabel("FLOPs reduction")
        ax.set_ylabel(f"{metric} (test, mean and 95% CI)")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)


def plot_critical_difference(ranking: dict, granularity: str, path: Path) -> bool:
    """The criteria's critical-difference diagram (scikit-posthocs): average ranks, joined where
    Nemenyi finds no significant difference. False when there was no such test to draw."""
    if ranking.get("nemenyi_p") is None:
        return False
    import pandas as pd
    import scikit_posthocs

    fig, ax = _figure((7.0, 2.5))
    names = ranking["criteria"]
    scikit_posthocs.critical_difference_diagram(
        pd.Series(ranking["average_ranks"]), pd.DataFrame(ranking["nemenyi_p"]).loc[names, names], ax=ax)
    ax.set_title(f"{granularity} pruning: average rank by {METRIC} (1 best); Friedman p = "
                 f"{ranking['friedman_p']:.3g}, CD = {ranking['critical_difference']:.2f}", fontsize=9)
    fig.savefig(path, dpi=100)
    return True


def plot_variance_shares(shares: dict[str, float], path: Path) -> None:
    fig, ax = _figure((6.0, 3.0))
    names = list(shares)
    ax.barh(names, [shares[n] for n in names])
    ax.set_xlabel(f"share of the variance of {METRIC} (ANOVA sums of squares)")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    fig.savefig(path, dpi=100)
