"""A front over seeds: each front model's metrics over its k trial seeds (the trial and its
replicas) as mean, std and 95 % Student-t interval; the front decided on the validation
means; and the neighbours the intervals cannot tell apart. Pure functions on plain rows."""
from __future__ import annotations

import numpy as np

from .dominance import non_dominated
from .objectives import accuracy_of, front_value, to_minimization
from .statistics import interval

SEED_METRICS = ("clean_acc", "robust_acc", "test_clean_acc", "test_robust_acc")  # summarized over seeds
SEEDS_METRIC = "seeds"  # on a front model's run: how many seeds its summaries cover
SUMMARY_PARTS = ("mean", "std", "ci_low", "ci_high")


def seed_summary(samples: dict[str, list[float]]) -> dict[str, float]:
    """{<metric>_mean, _std, _ci_low, _ci_high} of each metric's values over the seeds, and `seeds`."""
    out = {}
    for metric, values in samples.items():
        spread = interval(values)
        out.update({f"{metric}_{part}": spread[part] for part in SUMMARY_PARTS if spread[part] is not None})
    out[SEEDS_METRIC] = float(len(next(iter(samples.values()))))
    return out


def has_seeds(row: dict) -> bool:
    """A row whose metrics were summarized over more than one seed."""
    return row.get(SEEDS_METRIC, 1) > 1


def on_means(row: dict) -> dict:
    """The row with each summarized metric replaced by its mean over the seeds."""
    return {**row, **{m: row[f"{m}_mean"] for m in SEED_METRICS if f"{m}_mean" in row}}


def front_on_means(rows: list[dict], objectives: dict[str, str], baseline: dict) -> list[bool]:
    """Which rows are non-dominated on their means (the same objectives as the search)."""
    if not rows:
        return []
    means = [on_means(r) for r in rows]
    values = np.array([[front_value(r, m, baseline) for m in objectives] for r in means])
    return list(non_dominated(to_minimization(values, objectives, baseline)))


def indistinguishable(front: list[dict], objectives: dict[str, str]) -> set[str]:
    """Run ids of the front models whose accuracy interval overlaps a neighbour's (the next
    model along the front, ordered by that accuracy): not distinguishable from the next point."""
    accuracy = accuracy_of(objectives)
    low, high = f"{accuracy}_ci_low", f"{accuracy}_ci_high"
    ordered = sorted((r for r in front if low in r and high in r), key=lambda r: r[f"{accuracy}_mean"])
    close = set()
    for a, b in zip(ordered, ordered[1:]):
        if a[high] >= b[low] and b[high] >= a[low]:
            close.update({a["run_id"], b["run_id"]})
    return close


def mean_and_interval(row: dict, metric: str, spec: str = ".3f") -> str | None:
    """'0.512 ± 0.031' (the mean and the half-width of its 95 % interval) for a summarized
    metric; None for a single-seed one."""
    if f"{metric}_mean" not in row or f"{metric}_ci_low" not in row:
        return None
    half = (row[f"{metric}_ci_high"] - row[f"{metric}_ci_low"]) / 2
    return f"{row[f'{metric}_mean']:{spec}} ± {half:{spec}}"
