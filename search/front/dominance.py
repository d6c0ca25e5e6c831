"""Non-dominated sort, NSGA-II's selection order and the hypervolume, on points whose
every column is minimized (see `objectives.to_minimization`)."""
from __future__ import annotations

import numpy as np


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

