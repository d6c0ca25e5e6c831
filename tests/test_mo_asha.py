"""MO-ASHA's own logic: NSGA-II selection order, rungs, and the stop decisions."""
import functools

import numpy as np
import pytest
from ray.tune.schedulers import TrialScheduler

from search.driver.mo_asha import MultiObjectiveASHA
from search.front.dominance import crowding_distance, selection_order

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


class _Trial:  # the one attribute the scheduler reads
    def __init__(self, trial_id):
        self.trial_id = trial_id


def _result(step, flops, acc, final=0):
    return {"step": step, "objective_flops": flops, "objective_robust_acc": acc, "final": final}


def test_selection_order_is_rank_then_crowding():
    # front {a, b, c, d} (d between b and c, close to c), then the dominated e and f
    points = np.array([[1, 9], [3, 5], [8, 1], [7, 1.5], [4, 8], [9, 9]], dtype=float)
    order = list(selection_order(points))
    assert set(order[:4]) == {0, 1, 2, 3} and order[4:] == [4, 5]
    assert order.index(3) == 3  # the most crowded front member comes last within the front
    assert crowding_distance(points[:4])[[0, 2]].tolist() == [np.inf, np.inf]  # the extremes


def test_selection_order_matches_brute_force_ranks():
    rng = np.random.default_rng(0)
    points = rng.integers(0, 5, size=(40, 2)).astype(float)  # many ties and duplicates
    order = selection_order(points)

    @functools.cache
    def rank(i):  # brute force: 1 + the longest chain of points dominating i
        dominators = [j for j in range(len(points)) if np.all(points[j] <= points[i]) and np.any(points[j] < points[i])]
        return 0 if not dominators else 1 + max(rank(j) for j in dominators)

    ranks = [rank(i) for i in order]
    assert ranks == sorted(ranks)


def test_milestones_are_grace_times_powers_of_the_reduction_factor():
    s = MultiObjectiveASHA({"objective_flops": "min"}, grace=2, reduction_factor=3)
    assert [step for step in range(1, 40) if s.milestone_reached(step)] == [2, 6, 18]


def test_a_trial_dominated_at_its_rung_is_stopped_and_the_best_go_on():
    s = MultiObjectiveASHA({"objective_flops": "min", "objective_robust_acc": "max"}, grace=1, reduction_factor=2)
    assert s.on_trial_result(None, _Trial("a"), _result(1, 10, 0.5)) == CONTINUE  # alone at the rung
    assert s.on_trial_result(None, _Trial("b"), _result(1, 20, 0.4)) == STOP  # dominated by a
    assert s.on_trial_result(None, _Trial("c"), _result(1, 5, 0.6)) == CONTINUE  # dominates both
    assert s.on_trial_result(None, _Trial("d"), _result(1, 30, 0.1)) == STOP
    assert s.stopped == {"b": 1, "d": 1}
    # between rungs, and final results, are never judged
    assert s.on_trial_result(None, _Trial("e"), _result(3, 99, 0.0)) == CONTINUE
    assert s.on_trial_result(None, _Trial("f"), _result(2, 99, 0.0, final=1)) == CONTINUE
    assert s.on_trial_result(None, _Trial("a"), _result(2, 10, 0.5)) == CONTINUE  # first at rung 2
    assert sorted(s.rungs) == [1, 2] and len(s.rungs[1]) == 4


@pytest.mark.parametrize("eta", [2, 3, 4])
def test_at_most_the_best_share_goes_on_from_a_rung(eta):
    """Async: a trial continues when it is in the best ceil(n / eta) of the n recorded so far."""
    s = MultiObjectiveASHA({"objective_flops": "min", "objective_robust_acc": "max"}, reduction_factor=eta)
    rng = np.random.default_rng(eta)
    decisions = [s.on_trial_result(None, _Trial(str(i)), _result(1, *rng.random(2))) for i in range(60)]
    continued = decisions.count(CONTINUE)
    assert 0 < continued < 60 and len(s.stopped) == 60 - continued
    assert decisions[0] == CONTINUE  # alone at its rung
