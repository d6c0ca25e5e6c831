"""Pareto front of the search: non-dominated sort, hypervolume, and the plots.

Objectives are given as {metric: "min" | "max"}. Internally every objective is turned
into a minimization in a normalized space (see `normalize`), where the hypervolume's
reference point is (1, 0, ...) → (1, 1) after flipping:

* a cost metric (flops, macs, params, latency_ms) is divided by the baseline's value,
  so the reference is the unpruned baseline's cost;
* an accuracy metric is used as is, with reference 0 (a useless model).

The hypervolume is the area of the normalized objective space that the front
dominates inside that reference box: it can only grow as trials finish.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from trainables.latency import is_latency, ratio_key

ACCURACY_METRICS = ("robust_acc", "clean_acc")


def finetune_method_of(trial: dict) -> str:
    """A trial's fine-tuning method, from its params or row: trials logged before the method
    was a search dimension were fine-tuned naturally."""
    return trial.get("finetune_method", "natural")


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `points` (all columns minimized). Exact
    duplicates of a front point are all kept (none dominates the other)."""
    points = np.asarray(points, dtype=float)
    if points.ndim == 2 and points.shape[1] == 2:
        return _non_dominated_2d(points)
    mask = np.ones(len(points), dtype=bool)
    for lo in range(0, len(points), 1024):  # all against all, 1024 rows at a time
        rows = points[lo:lo + 1024, None, :]
        dominated_by = np.all(points[None] <= rows, axis=2) & np.any(points[None] < rows, axis=2)
        mask[lo:lo + 1024] = ~dominated_by.any(axis=1)
    return mask


def _non_dominated_2d(points: np.ndarray) -> np.ndarray:
    """One sweep in (x, y) order, O(n log n) and vectorized: a point is on the front when its
    y beats every y before it, or when it repeats exactly the point that set the best y so far."""
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((points[:, 1], points[:, 0]))
    x, y = points[order, 0], points[order, 1]
    best_before = np.concatenate(([np.inf], np.minimum.accumulate(y)[:-1]))
    improves = y < best_before
    last_improver = np.maximum.accumulate(np.where(improves, np.arange(len(y)), -1))  # up to and including i
    setter = np.concatenate(([-1], last_improver[:-1]))  # the point that set best_before
    repeats_setter = (setter >= 0) & (y == best_before) & (x == x[np.maximum(setter, 0)])
    mask = np.zeros(len(points), dtype=bool)
    mask[order] = improves | repeats_setter
    return mask


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each row among the rows given (all minimized): the
    normalized side lengths of the box its neighbours span, summed over objectives; the
    extremes of each objective get infinity."""
    points = np.asarray(points, dtype=float)
    distance = np.zeros(len(points))
    if len(points) < 3:
        return np.full(len(points), np.inf)
    for col in points.T:
        order = np.argsort(col, kind="stable")
        span = col[order[-1]] - col[order[0]]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (col[order[2:]] - col[order[:-2]]) / span
    return distance


def selection_order(points: np.ndarray) -> np.ndarray:
    """Row indices best first, as NSGA-II selects: by non-dominated rank (the front is 0,
    the front of the rest 1, ...), then by crowding distance, larger first."""
    points = np.asarray(points, dtype=float)
    rank = np.zeros(len(points), dtype=int)
    crowding = np.zeros(len(points))
    remaining, level = np.arange(len(points)), 0
    while remaining.size:
        on_front = remaining[non_dominated(points[remaining])]
        rank[on_front] = level
        crowding[on_front] = crowding_distance(points[on_front])
        remaining = np.setdiff1d(remaining, on_front)
        level += 1
    return np.lexsort((-crowding, rank))


def to_minimization(values: np.ndarray, objectives: dict[str, str], baseline: dict[str, float]) -> np.ndarray:
    """Columns in `objectives` order, normalized (see module doc) and flipped to minimization."""
    cols = []
    for k, (metric, mode) in enumerate(objectives.items()):
        col = np.asarray(values[:, k], dtype=float)
        if metric not in ACCURACY_METRICS:
            col = col / float(baseline[metric])
        cols.append(col if mode == "min" else -col)
    return np.stack(cols, axis=1) if cols else np.zeros((len(values), 0))


def latency_ratio(metrics: dict, metric: str) -> float:
    """A latency over its baseline's: the ratio the trial timed in turns with the baseline on
    its own node (`latency_ratio_*`), else (intermediate results, dry runs) over the baseline's
    logged latency. Trials that run side by side, or on unlike nodes, time under unlike load:
    only the ratio compares them."""
    ratio = metrics.get(ratio_key(metric))
    return ratio if ratio is not None else metrics[metric] / metrics[f"{metric}_baseline"]


def front_value(row: dict, metric: str, baseline: dict) -> float:
    """The value the front compares: as logged, except a latency, which is its ratio (see
    `latency_ratio`) in units of the baseline's logged latency, so that normalizing by that
    latency gives the ratio back."""
    if is_latency(metric) and ratio_key(metric) in row:
        return row[ratio_key(metric)] * float(baseline[metric])
    return row[metric]


def objective_values(metrics: dict, objectives: dict[str, str], feasible: bool) -> dict[str, float]:
    """What the searcher optimizes: the real metric (a latency: its ratio to the baseline's),
    or its worst value when infeasible."""
    out = {}
    for metric, mode in objectives.items():
        if is_latency(metric):
            value = latency_ratio(metrics, metric) if feasible else 1.0
        elif feasible:
            value = metrics[metric]
        elif metric in ACCURACY_METRICS:
            value = 0.0 if mode == "max" else 1.0
        else:
            value = metrics[f"{metric}_baseline"]
        out[f"objective_{metric}"] = value
    return out


def reference_point(objectives: dict[str, str]) -> np.ndarray:
    """In minimization form: baseline cost (1) for costs, zero accuracy (-0) for accuracies."""
    return np.array([0.0 if m in ACCURACY_METRICS else 1.0 for m in objectives]) * np.array(
        [-1.0 if mode == "max" else 1.0 for mode in objectives.values()])


def hypervolume_2d(points: np.ndarray, ref: np.ndarray) -> float:
    """Area dominated by `points` (minimization) and bounded by `ref`."""
    pts = np.asarray(points, dtype=float)
    pts = pts[(pts[:, 0] < ref[0]) & (pts[:, 1] < ref[1])] if len(pts) else pts
    if len(pts) == 0:
        return 0.0
    pts = pts[non_dominated(pts)]
    pts = pts[np.argsort(pts[:, 0])]
    area, prev_y = 0.0, ref[1]
    for x, y in pts:
        if y < prev_y:
            area += (ref[0] - x) * (prev_y - y)
            prev_y = y
    return float(area)


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by `points` (minimization) and bounded by `ref`, for 2 or 3
    objectives: in 3, the areas of the slabs between successive third coordinates."""
    pts = np.asarray(points, dtype=float)
    if pts.shape[1] == 2:
        return hypervolume_2d(pts, ref)
    pts = pts[np.all(pts < ref, axis=1)]
    levels = np.unique(pts[:, 2])
    tops = np.append(levels[1:], ref[2])
    return float(sum(hypervolume_2d(pts[pts[:, 2] <= z, :2], ref[:2]) * (top - z) for z, top in zip(levels, tops)))


# --------------------------------------------------------------------------- reports

FRONT_COLUMNS = ["run_id", "trial_id", "criterion", "granularity", "ratio", "iterations", "finetune_method",
                 "flops", "flops_reduction", "params", "clean_acc", "robust_acc", "test_clean_acc", "test_robust_acc",
                 "latency_ms", "latency_ratio"]


def front_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FRONT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def front_table(rows: list[dict]) -> str:
    """Fixed-width text table of the front, best robust accuracy first. clean_acc / robust_acc
    are validation (what the front was selected on); test_* come from the final evaluation."""
    cols = ["criterion", "granularity", "ratio", "iterations", "finetune_method", "flops_reduction", "latency_ratio",
            "clean_acc", "robust_acc", "test_clean_acc", "test_robust_acc", "run_id"]

    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    body = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


FRONT_HEADERS = ["criterion", "granularity", "ratio", "it", "fine-tune", "FLOPs red.", "latency ratio", "val clean",
                 "val robust", "test clean", "test robust", "run"]


def front_cells(r: dict) -> list[str]:
    """One front row as formatted text, every FRONT_HEADERS column but the run ("–" where a
    metric is missing, e.g. test metrics before the final evaluation)."""
    def fmt(key, spec):
        v = r.get(key)
        return format(v, spec) if isinstance(v, float) else "–"

    return [str(r["criterion"]), str(r["granularity"]), f"{r['ratio']:.2f}", str(r["iterations"]),
            finetune_method_of(r), fmt("flops_reduction", ".1%"), fmt("latency_ratio", ".2f"), fmt("clean_acc", ".3f"),
            fmt("robust_acc", ".3f"), fmt("test_clean_acc", ".3f"), fmt("test_robust_acc", ".3f")]


def front_markdown(front: list[dict], experiment_id: str) -> str:
    """The front as a markdown table (MLflow renders a run's description as markdown), each
    row linking to its run in the UI."""
    lines = ["| " + " | ".join(FRONT_HEADERS) + " |", "|" + "---|" * len(FRONT_HEADERS)]
    for r in front:
        link = f"[{r['run_id'][:8]}](#/experiments/{experiment_id}/runs/{r['run_id']})"
        lines.append("| " + " | ".join([*front_cells(r), link]) + " |")
    return "\n".join(lines)


def _axes(objectives: dict[str, str]) -> tuple[str, str, str | None]:
    """(x, y, colour) for the plots: the first cost on x, the accuracy on y, and a second
    cost (3 objectives) as the points' colour."""
    costs = [m for m in objectives if m not in ACCURACY_METRICS]
    accuracy = next(m for m in objectives if m in ACCURACY_METRICS)
    return costs[0], accuracy, costs[1] if len(costs) > 1 else None


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


def _relative(rows: list[dict], objectives: dict[str, str], baseline: dict) -> PlotAxes:
    x_key, y_key, c_key = _axes(objectives)

    def relative(key):
        scale = float(baseline.get(key) or 1.0)
        return [front_value(r, key, baseline) / scale for r in rows]

    return PlotAxes(relative(x_key), [r[y_key] for r in rows], relative(c_key) if c_key else None,
                    f"{x_key} relative to the baseline (1 = unpruned)", f"validation {y_key.replace('_', ' ')}",
                    f"{c_key} relative" if c_key else None, (1.0, baseline.get(y_key)))


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
        return go.Scatter(
            x=[xs[i] for i in idx], y=[ys[i] for i in idx], name=name, **style,
            text=[f"{rows[i]['criterion']} {rows[i]['granularity']} ratio={rows[i]['ratio']:.2f} "
                  f"it={rows[i]['iterations']} {finetune_method_of(rows[i])}<br>"
                  f"clean={rows[i]['clean_acc']:.3f} "
                  f"robust={rows[i]['robust_acc']:.3f}{third(i)}<br>run {rows[i]['run_id']}" for i in idx],
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
