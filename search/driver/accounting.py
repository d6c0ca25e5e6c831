"""Where a search's worker time went, logged on its parent run at the end.

Capacity is the trial slots (trials the cluster runs at once) times the search's wall time
(its parent run, from start to the end of the final evaluation). Useful work is the
trials' compute (`trial_seconds`, finished and stopped early) plus the final evaluation's
(`test_eval_seconds`); the rest is start-up, idle slots in the tail and between trials,
and per-trial overhead (worker start, checkpoints, reporting).
"""
from __future__ import annotations


def trial_slots(max_concurrent: int, cpus_per_trial: float, gpus_per_trial: float, cluster: dict) -> int:
    """How many trials run at once: `search.max_concurrent`, at most what the cluster fits."""
    slots = max_concurrent
    for key, per_trial in (("CPU", cpus_per_trial), ("GPU", gpus_per_trial)):
        if per_trial > 0:
            slots = min(slots, int(cluster.get(key, 0) // per_trial))
    return max(slots, 1)


def worker_time(trial_compute_s: float, test_compute_s: float, tune_wall_s: float, test_wall_s: float,
                search_wall_s: float, slots: int) -> dict[str, float]:
    """Parent metrics: the seconds, and `efficiency` = useful work / capacity
    (`trial_efficiency` counts the trials' compute alone)."""
    capacity = slots * search_wall_s
    return {"trial_compute_s": trial_compute_s, "test_eval_compute_s": test_compute_s,
            "tune_wall_s": tune_wall_s, "test_eval_wall_s": test_wall_s, "search_wall_s": search_wall_s,
            "trial_slots": slots, "efficiency": (trial_compute_s + test_compute_s) / capacity,
            "trial_efficiency": trial_compute_s / capacity}


def summary(m: dict[str, float]) -> str:
    return (f"workers busy {m['efficiency']:.0%} of {m['trial_slots']:.0f} slots x {m['search_wall_s']:.0f} s "
            f"(trials {m['trial_efficiency']:.0%}, final test evaluation "
            f"{m['test_eval_compute_s'] / (m['trial_slots'] * m['search_wall_s']):.0%}; the rest is start-up, "
            f"idle slots and per-trial overhead)")
