"""Fronts over seeds, as pure functions: summaries against an independent computation, the
front decided on the means, and neighbours whose intervals overlap."""
import math

import numpy as np
import pytest
from scipy import stats

from search.front.seeds import front_on_means, indistinguishable, mean_and_interval, on_means, seed_summary
from search.front.table import NOT_DISTINGUISHABLE, front_notes, front_table

OBJECTIVES = {"flops": "min", "robust_acc": "max"}
BASELINE = {"flops": 100.0}


def test_the_summary_is_the_student_t_interval_of_the_seeds():
    values = [0.41, 0.47, 0.38]
    s = seed_summary({"robust_acc": values})
    mean, sd = sum(values) / 3, math.sqrt(sum((v - sum(values) / 3) ** 2 for v in values) / 2)
    half = stats.t.ppf(0.975, df=2) * sd / math.sqrt(3)
    assert s["seeds"] == 3 and s["robust_acc_mean"] == pytest.approx(mean)
    assert s["robust_acc_std"] == pytest.approx(sd)
    assert (s["robust_acc_ci_low"], s["robust_acc_ci_high"]) == pytest.approx((mean - half, mean + half))
    assert mean_and_interval(s, "robust_acc") == f"{mean:.3f} ± {half:.3f}"


def _row(run_id, flops, single, mean, half=0.01):
    return {"run_id": run_id, "flops": flops, "robust_acc": single, "robust_acc_mean": mean,
            "robust_acc_ci_low": mean - half, "robust_acc_ci_high": mean + half, "seeds": 3}


def test_the_front_is_decided_on_the_means_not_on_the_single_runs():
    # b is on the single-seed front (0.52 at 50 FLOPs) only by luck: its mean (0.40) is below a's at fewer FLOPs
    rows = [_row("a", 40, 0.45, 0.45), _row("b", 50, 0.52, 0.40), _row("c", 60, 0.60, 0.58)]
    assert front_on_means(rows, OBJECTIVES, BASELINE) == [True, False, True]
    assert [r["robust_acc"] for r in map(on_means, rows)] == [0.45, 0.40, 0.58]
    points = np.array([[r["flops"], -r["robust_acc"]] for r in rows])  # single runs: all three non-dominated
    assert not any((points[j] <= points[i]).all() and (points[j] < points[i]).any()
                   for i in range(3) for j in range(3) if i != j)


def test_neighbours_whose_intervals_overlap_are_marked():
    front = [_row("a", 40, 0.45, 0.45, half=0.03), _row("b", 50, 0.47, 0.47, half=0.03),
             _row("c", 60, 0.60, 0.60, half=0.02)]
    assert indistinguishable(front, OBJECTIVES) == {"a", "b"}
    assert front_notes(front, OBJECTIVES) == {"a": NOT_DISTINGUISHABLE, "b": NOT_DISTINGUISHABLE}
    for r in front:
        r.update(criterion="l1", granularity="filter", ratio=0.5, iterations=1, clean_acc=0.9)
    table = front_table(front, front_notes(front, OBJECTIVES))
    assert "0.450 ± 0.030" in table and "seeds" in table.splitlines()[0]
    assert table.count(NOT_DISTINGUISHABLE) == 2
