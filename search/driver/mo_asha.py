"""Multi-objective asynchronous successive halving (MO-ASHA, Schmucker et al. 2021), as a
Ray Tune scheduler: Tune's own schedulers rank trials by one metric.

Trials report intermediate results (`step` = fine-tune epochs done, their objectives at
that point: the final cost, known up front, and accuracy on a small validation subset).
Rungs sit at `grace`, `grace * reduction_factor`, ... steps. A trial reaching a rung is
ranked among every trial recorded at that rung by non-dominated sorting, then crowding
distance (NSGA-II's selection); it goes on when it is in the best 1/reduction_factor of
them, and is stopped otherwise. Like ASHA it never waits for a rung to fill, so early
trials are judged against few others and rarely stopped.
"""
from __future__ import annotations

import math

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ..front.dominance import selection_order


class MultiObjectiveASHA(FIFOScheduler):
    def __init__(self, objectives: dict[str, str], grace: int = 1, reduction_factor: float = 3,
                 step_attr: str = "step"):
        super().__init__()
        self.objectives = objectives  # result key -> "min" | "max"
        self.grace, self.reduction_factor, self.step_attr = grace, reduction_factor, step_attr
        self.rungs: dict[int, dict[str, np.ndarray]] = {}  # milestone -> trial id -> minimized objectives
        self.stopped: dict[str, int] = {}  # trial id -> milestone it was stopped at

    def milestone_reached(self, step: int) -> int | None:
        """The rung `step` lands on (grace * reduction_factor ** k), or None."""
        if step < self.grace:
            return None
        k = round(math.log(step / self.grace, self.reduction_factor))
        milestone = round(self.grace * self.reduction_factor ** k)
        return milestone if milestone == step else None

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        milestone = self.milestone_reached(int(result.get(self.step_attr, 0))) if not result.get("final") else None
        if milestone is None:
            return TrialScheduler.CONTINUE
        return self.judge(trial.trial_id, milestone, result)

    def judge(self, trial_id: str, milestone: int, result: dict) -> str:
        """Record the trial at the rung and decide whether it goes on."""
        rung = self.rungs.setdefault(milestone, {})
        rung[trial_id] = np.array([result[k] if mode == "min" else -result[k] for k, mode in self.objectives.items()],
                                  dtype=float)
        ids = list(rung)
        order = selection_order(np.stack([rung[i] for i in ids]))
        kept = {ids[i] for i in order[:math.ceil(len(ids) / self.reduction_factor)]}
        if trial_id in kept:
            return TrialScheduler.CONTINUE
        self.stopped[trial_id] = milestone
        return TrialScheduler.STOP

    def debug_string(self) -> str:
        rungs = ", ".join(f"step {m}: {len(r)}" for m, r in sorted(self.rungs.items()))
        return f"MO-ASHA: {len(self.stopped)} trials stopped early; recorded at rungs: {rungs or 'none yet'}"
