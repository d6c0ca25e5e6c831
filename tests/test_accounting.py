"""Where a search's worker time went: slots, useful work, efficiency."""
import pytest

from search.driver.accounting import summary, trial_slots, worker_time


def test_trial_slots_are_capped_by_what_the_cluster_fits():
    assert trial_slots(2, 1, 0, {"CPU": 2.0}) == 2
    assert trial_slots(8, 1, 0, {"CPU": 2.0}) == 2
    assert trial_slots(8, 2, 1, {"CPU": 16.0, "GPU": 3.0}) == 3
    assert trial_slots(4, 1, 0.5, {"CPU": 16.0, "GPU": 1.0}) == 2
    assert trial_slots(4, 4, 0, {"CPU": 2.0}) == 1  # never 0: a trial that does not fit is preflight's business


def test_efficiency_counts_trials_and_final_evaluation_against_slots_times_wall():
    m = worker_time(trial_compute_s=120, test_compute_s=40, tune_wall_s=70, test_wall_s=22, search_wall_s=100,
                    slots=2)
    assert m["efficiency"] == pytest.approx(0.8) and m["trial_efficiency"] == pytest.approx(0.6)
    assert m["search_wall_s"] == 100 and m["trial_slots"] == 2
    line = summary(m)
    assert "80%" in line and "trials 60%" in line and "final test evaluation 20%" in line
