import itertools

import numpy as np
import pytest

from search.front.dominance import hypervolume_2d, non_dominated
from search.front.objectives import reference_point, to_minimization


def brute_force_front(points):
    """Definition: a point is on the front when no other point is <= everywhere and < somewhere."""
    out = []
    for i, p in enumerate(points):
        dominated = any(all(q[k] <= p[k] for k in range(len(p))) and any(q[k] < p[k] for k in range(len(p)))
                        for j, q in enumerate(points) if j != i)
        out.append(not dominated)
    return np.array(out)


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("dims", [2, 3])
def test_non_dominated_matches_brute_force(seed, dims):
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, size=(rng.integers(1, 40), dims)).astype(float)  # many ties and duplicates
    assert np.array_equal(non_dominated(points), brute_force_front(points))


def test_hypervolume_of_known_staircase():
    # minimization, ref (1, 1): points (0.2, 0.6) and (0.5, 0.3)
    pts = np.array([[0.2, 0.6], [0.5, 0.3], [0.7, 0.7]])  # the last is dominated
    expected = (1 - 0.2) * (1 - 0.6) + (1 - 0.5) * (0.6 - 0.3)
    assert hypervolume_2d(pts, np.array([1.0, 1.0])) == pytest.approx(expected)
    assert hypervolume_2d(np.array([[1.5, 0.1]]), np.array([1.0, 1.0])) == 0.0  # outside the box


def test_hypervolume_never_decreases_as_points_arrive():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1.2, size=(60, 2))
    ref = np.array([1.0, 1.0])
    hv = [hypervolume_2d(pts[:n], ref) for n in range(1, 61)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(hv))
    assert hv[-1] > 0


def test_normalization_uses_baseline_cost_and_raw_accuracy():
    objectives = {"flops": "min", "robust_acc": "max"}
    values = np.array([[50.0, 0.4], [100.0, 0.0]])
    pts = to_minimization(values, objectives, {"flops": 100.0})
    assert np.allclose(pts, [[0.5, -0.4], [1.0, -0.0]])
    assert np.allclose(reference_point(objectives), [1.0, 0.0])
    # the baseline itself (cost 1, accuracy at best equal) adds nothing at zero accuracy
    assert hypervolume_2d(pts, reference_point(objectives)) == pytest.approx(0.5 * 0.4)


def test_each_fine_tuning_method_gets_the_front_its_trials_alone_make():
    from search.front.plots import front_figure, method_fronts

    def row(i, method, flops, robust, feasible=1):
        return {"run_id": f"r{i}", "criterion": "l1", "granularity": "filter", "ratio": 0.5, "iterations": 1,
                "clean_acc": 0.9, "robust_acc": robust, "flops": flops, "finetune_method": method,
                "feasible": feasible}

    rows = [row(0, "natural", 50, 0.4), row(1, "natural", 30, 0.3), row(2, "natural", 60, 0.35),
            row(3, "trades", 50, 0.7), row(4, "trades", 20, 0.2), row(5, "trades", 10, 0.9, feasible=0)]
    xs, ys = [r["flops"] / 100 for r in rows], [r["robust_acc"] for r in rows]
    assert method_fronts(rows, xs, ys) == {"natural": [1, 0], "trades": [4, 3]}  # r2 dominated, r5 infeasible
    figure = front_figure(rows, {"r3", "r4"}, {"flops": "min", "robust_acc": "max"}, {"flops": 100})
    names = [t.name for t in figure.data]
    assert "front of natural fine-tuning alone" in names and "front of trades fine-tuning alone" in names
    alone = {t.name: list(t.x) for t in figure.data}
    assert alone["front of natural fine-tuning alone"] == [0.3, 0.5]
    one_method = front_figure(rows[:3], {"r0", "r1"}, {"flops": "min", "robust_acc": "max"}, {"flops": 100})
    assert not any("alone" in t.name for t in one_method.data)


def test_hypervolume_in_three_objectives_is_the_dominated_volume():
    from search.front.dominance import hypervolume

    ref = np.array([1.0, 1.0, 1.0])
    assert hypervolume(np.array([[0.5, 0.5, 0.5]]), ref) == pytest.approx(0.125)
    # two points side by side in (x, y) at the same z: their union's area times the slab's height
    assert hypervolume(np.array([[0.2, 0.6, 0.5], [0.6, 0.2, 0.5]]), ref) == pytest.approx(0.48 * 0.5)
    assert hypervolume(np.array([[1.2, 0.1, 0.1]]), ref) == 0.0  # outside the box
    rng = np.random.default_rng(1)  # against counting a fine grid of the box
    pts = rng.uniform(0, 1, size=(12, 3))
    axis = (np.arange(60) + 0.5) / 60
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    dominated = (pts[None, :, :] <= grid[:, None, :]).all(axis=2).any(axis=1)
    assert hypervolume(pts, ref) == pytest.approx(dominated.mean(), abs=0.01)
    assert hypervolume(pts[:, :2], ref[:2]) == hypervolume_2d(pts[:, :2], ref[:2])  # two objectives: the area


def test_three_objective_plots_colour_the_front_by_the_second_cost(tmp_path):
    from search.front.plots import front_figure, plot_html, plot_png

    objectives = {"flops": "min", "latency_ms_onnxruntime_b1": "min", "robust_acc": "max"}
    rows = [{"run_id": f"r{i}", "criterion": "l1", "granularity": "filter", "ratio": 0.5, "iterations": 1,
             "clean_acc": 0.9, "robust_acc": 0.1 * i, "flops": 100.0 * i, "latency_ms_onnxruntime_b1": 4.0 - i}
            for i in range(1, 4)]
    baseline = {"flops": 400.0, "latency_ms_onnxruntime_b1": 4.0, "robust_acc": 0.5}
    figure = front_figure(rows, {"r1", "r2", "r3"}, objectives, baseline)
    front = next(t for t in figure.data if t.name == "Pareto front")
    assert front.mode == "markers"  # a front in three objectives is no line in two
    assert list(front.x) == [0.25, 0.5, 0.75] and list(front.marker.color) == [0.75, 0.5, 0.25]
    assert figure.layout.xaxis.title.text == "flops relative to the baseline (1 = unpruned)"
    assert "latency_ms_onnxruntime_b1 relative 0.750" in front.text[0]
    plot_png(rows, {"r1", "r2", "r3"}, objectives, baseline, tmp_path / "pareto.png")
    plot_html(rows, {"r1", "r2", "r3"}, objectives, baseline, tmp_path / "pareto.html")
    assert (tmp_path / "pareto.png").stat().st_size > 10_000 and "latency_ms_onnxruntime_b1 relative" in (
        tmp_path / "pareto.html").read_text()
