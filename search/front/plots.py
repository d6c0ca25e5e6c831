"""The front's plots: every trial with the front marked (PNG and interactive HTML), the
hypervolume over time, and robustness curves. matplotlib and plotly load on first use."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dominance import non_dominated
from .objectives import accuracy_of, costs_of, finetune_method_of, front_value
from .seeds import on_means


def _axes(objectives: dict[str, str]) -> tuple[str, str, str | None]:
    """(x, y, colour) for the plots: the first cost on x, the accuracy on y, and a second
    cost (3 objectives) as the points' colour."""
    costs = costs_of(objectives)
    return costs[0], accuracy_of(objectives), costs[1] if len(costs) > 1 else None


@dataclass
class PlotAxes:
    """Each row's x (its cost relative to the baseline's: 1 = unpruned), y (its accuracy) and,
    with a second cost, its colour (that cost, relative); the titles; the baseline's point."""
    xs: list[float]
    ys: list[float]
    colours: list[float] | None
    x_title: str
    y_title: str
    colour_title: str | None
    baseline: tuple[float, float | None]
    errors: list[tuple[float, float]]  # y's 95 % interval below and above it (0, 0: a single seed)


def _relative(rows: list[dict], objectives: dict[str, str], baseline: dict) -> PlotAxes:
    """Over several seeds, a model's y is its mean and its error bar the 95 % interval."""
    x_key, y_key, c_key = _axes(objectives)

    def relative(key):
        scale = float(baseline.get(key) or 1.0)
        return [front_value(r, key, baseline) / scale for r in rows]

    ys = [on_means(r)[y_key] for r in rows]
    errors = [(y - r[f"{y_key}_ci_low"], r[f"{y_key}_ci_high"] - y) if f"{y_key}_ci_low" in r else (0.0, 0.0)
              for y, r in zip(ys, rows)]
    seeded = any(e != (0.0, 0.0) for e in errors)
    return PlotAxes(relative(x_key), ys, relative(c_key) if c_key else None,
                    f"{x_key} relative to the baseline (1 = unpruned)",
                    f"validation {y_key.replace('_', ' ')}" + (" (front: mean and 95 % interval over seeds)"
                                                              if seeded else ""),
                    f"{c_key} relative" if c_key else None, (1.0, baseline.get(y_key)), errors)


def _dominated_and_front(rows: list[dict], front_ids: set[str], xs: list[float]) -> tuple[dict, list[int]]:
    """Row indices of the dominated trials by criterion, and of the front by x."""
    dominated: dict[str, list[int]] = {}
    for i, r in sorted(enumerate(rows), key=lambda item: item[1]["criterion"]):
        if r["run_id"] not in front_ids:
            dominated.setdefault(r["criterion"], []).append(i)
    front = sorted((i for i, r in enumerate(rows) if r["run_id"] in front_ids), key=lambda i: xs[i])
    return dominated, front


def method_fronts(rows: list[dict], xs: list[float], ys: list[float]) -> dict[str, list[int]]:
    """Per fine-tuning method, the row indices (by x) of the front its feasible trials alone
    make: x minimized, y maximized."""
    fronts = {}
    for method in sorted({finetune_method_of(r) for r in rows}):
        idx = [i for i, r in enumerate(rows)
               if finetune_method_of(r) == method and r.get("feasible", 1) == 1]
        keep = non_dominated(np.array([[xs[i], -ys[i]] for i in idx]).reshape(-1, 2))
        fronts[method] = sorted((i for i, on in zip(idx, keep) if on), key=lambda i: xs[i])
    return fronts


def _figure(size: tuple[float, float], **subplots):
    """A matplotlib figure and its axes, drawn with Agg and without pyplot: pyplot's global
    figure registry is not thread-safe, and the parent's live plots are drawn on a thread."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110)
    return fig, fig.subplots(**subplots)


def plot_png(rows: list[dict], front_ids: set[str], objectives: dict[str, str], baseline: dict, path) -> None:
    """The front as a line, the dominated trials coloured by criterion, the baseline labelled."""
    axes = _relative(rows, objectives, baseline)
    xs, ys, base = axes.xs, axes.ys, axes.baseline
    dominated, front = _dominated_and_front(rows, front_ids, xs)
    fig, ax = _figure((7.5, 4.8))
    for criterion, idx in dominated.items():
        ax.scatter([xs[i] for i in idx], [ys[i] for i in idx], alpha=0.6, label=f"{criterion} (dominated)")
    if axes.colours is None:
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "o-", c="crimson", lw=2, label="Pareto front")
    else:  # a front in three objectives is no line in two: its points, coloured by the third
        dots = ax.scatter([xs[i] for i in front], [ys[i] for i in front], c=[axes.colours[i] for i in front],
                          cmap="viridis", edgecolors="crimson", linewidths=1.5, s=50, label="Pareto front")
        fig.colorbar(dots, ax=ax, label=axes.colour_title)
    bars = [i for i in front if axes.errors[i] != (0.0, 0.0)]
    if bars:
        ax.errorbar([xs[i] for i in bars], [ys[i] for i in bars], yerr=np.array([axes.errors[i] for i in bars]).T,
                    fmt="none", ecolor="crimson", capsize=3, lw=1)
    for i in front:
        ax.annotate(rows[i]["criterion"], (xs[i], ys[i]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if base[1] is not None:
        ax.scatter([base[0]], [base[1]], marker="*", s=200, c="black", zorder=3)
        ax.annotate("baseline (unpruned)", base, textcoords="offset points", xytext=(-110, 6), fontsize=8)
    ax.set_xlabel(axes.x_title)
    ax.set_ylabel(axes.y_title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{len(front)} on the front of {len(rows)} finished trials")
    fig.tight_layout()
    fig.savefig(path)


def front_figure(rows: list[dict], front_ids: set[str], objectives: dict[str, str], baseline: dict):
    """The interactive front (a plotly figure): one point per trial, hover shows its
    parameters and run id."""
    import plotly.graph_objects as go

    axes = _relative(rows, objectives, baseline)
    xs, ys, base = axes.xs, axes.ys, axes.baseline

    def trace(idx, name, **style):
        third = (lambda i: f"<br>{axes.colour_title} {axes.colours[i]:.3f}") if axes.colours else (lambda i: "")
        if any(axes.errors[i] != (0.0, 0.0) for i in idx):
            style["error_y"] = {"type": "data", "symmetric": False, "array": [axes.errors[i][1] for i in idx],
                                "arrayminus": [axes.errors[i][0] for i in idx]}
        return go.Scatter(
            x=[xs[i] for i in idx], y=[ys[i] for i in idx], name=name, **style,
            text=[f"{rows[i]['criterion']} {rows[i]['granularity']} ratio={rows[i]['ratio']:.2f} "
                  f"it={rows[i]['iterations']} {finetune_method_of(rows[i])}<br>"
                  f"clean={on_means(rows[i])['clean_acc']:.3f} "
                  f"robust={on_means(rows[i])['robust_acc']:.3f}{third(i)}<br>run {rows[i]['run_id']}" for i in idx],
            hoverinfo="text")

    dominated, front = _dominated_and_front(rows, front_ids, xs)
    traces = [trace(idx, f"{c} (dominated)", mode="markers", opacity=0.6) for c, idx in dominated.items()]
    if axes.colours is None:
        traces.append(trace(front, "Pareto front", mode="lines+markers", marker={"color": "crimson"}))
    else:  # a front in three objectives is no line in two: its points, coloured by the third
        traces.append(trace(front, "Pareto front", mode="markers", marker={
            "color": [axes.colours[i] for i in front], "colorscale": "Viridis", "size": 11,
            "line": {"color": "crimson", "width": 2}, "colorbar": {"title": {"text": axes.colour_title}}}))
    fronts = method_fronts(rows, xs, ys)
    if len(fronts) > 1:  # a search of several fine-tuning methods: what each alone would have found
        traces += [trace(idx, f"front of {method} fine-tuning alone", mode="lines", line={"dash": "dot"})
                   for method, idx in fronts.items()]
    fig = go.Figure(traces)
    if base[1] is not None:
        fig.add_trace(go.Scatter(x=[base[0]], y=[base[1]], name="baseline (unpruned)", mode="markers+text",
                                 text=["baseline"], textposition="top left",
                                 marker={"symbol": "star", "size": 14, "color": "black"}))
    fig.update_layout(xaxis_title=axes.x_title, yaxis_title=axes.y_title, title="robustprune Pareto front")
    return fig


def plot_html(rows: list[dict], front_ids: set[str], objectives: dict[str, str], baseline: dict, path) -> None:
    """`front_figure` as a page that opens offline (plotly.js inline, no CDN)."""
    front_figure(rows, front_ids, objectives, baseline).write_html(path, include_plotlyjs=True, full_html=True,
                                                                   div_id="pareto-plot")


def plot_hypervolume(history: list[tuple[float, int, float]], path) -> None:
    """Hypervolume against wall time and against finished trials; `history` holds
    (seconds since the search started, finished trials, hypervolume)."""
    fig, (left, right) = _figure((9, 3.6), ncols=2, sharey=True)
    seconds, trials, hv = zip(*history) if history else ((), (), ())
    left.step(seconds, hv, where="post")
    right.step(trials, hv, where="post")
    left.set_xlabel("wall time since the search started (s)")
    right.set_xlabel("finished trials")
    left.set_ylabel("hypervolume")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle("Hypervolume of the front as the search ran")
    fig.tight_layout()
    fig.savefig(path)


def plot_robustness_curves(curves: dict[str, list[tuple[float, float]]], path) -> None:
    """Test robust accuracy against eps, one line per model (the baseline dashed)."""
    fig, ax = _figure((7, 4.5))
    for label, points in curves.items():
        eps, acc = zip(*points)
        ax.plot(eps, acc, "k--*" if label == "baseline" else "o-", label=label)
    ax.set_xlabel("eps (pixel units, L-inf)")
    ax.set_ylabel("test robust accuracy (worst case over attacks)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Robustness curves of the Pareto front (test split)")
    fig.tight_layout()
    fig.savefig(path)
