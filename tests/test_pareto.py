import itertools

import numpy as np
import pytest

from search.pareto import hypervolume_2d, non_dominated, reference_point, to_minimization


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
