"""What the front compares: each objective's value, normalized and flipped to minimization.

Objectives are given as {metric: "min" | "max"}. Every objective is turned into a
minimization in a normalized space, where the hypervolume's reference point is
(1, 0, ...) → (1, -0) after flipping:

* a cost metric (flops, macs, params, latency_ms) is divided by the baseline's value,
  so the reference is the unpruned baseline's cost;
* an accuracy metric is used as is, with reference 0 (a useless model).

The hypervolume is the area of the normalized objective space that the front
dominates inside that reference box: it can only grow as trials finish.
"""
from __future__ import annotations

import numpy as np

from trainables.latency import is_latency, ratio_key

from ..config import ACCURACY_METRICS


def accuracy_of(objectives: dict[str, str]) -> str:
    """The search's one accuracy objective (robust_acc or clean_acc)."""
    return next(m for m in objectives if m in ACCURACY_METRICS)


def costs_of(objectives: dict[str, str]) -> list[str]:
    """The search's cost objectives (one or two), in the config's order."""
    return [m for m in objectives if m not in ACCURACY_METRICS]


def finetune_method_of(trial: dict) -> str:
    """A trial's fine-tuning method, from its params or row: trials logged before the method
    was a search dimension were fine-tuned naturally."""
    return trial.get("finetune_method", "natural")



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

