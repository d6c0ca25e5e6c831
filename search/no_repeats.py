"""A searcher wrapper that never pays twice for a point of the space.

A proposal equal to a point this search already measured is answered from the cache (the
sampler is told that point's objectives, no trial runs) and the sampler is asked again;
a proposal equal to a point still running is told as failed and redrawn. The cache is
part of the searcher's state, so it travels in Tune's experiment checkpoint and survives
`resume`. Ratios are quantised by `space.ratio_step`, so "equal" means equal to the step.
"""
from __future__ import annotations

import copy

from ray.tune.search import Searcher

from .config import sampled_point

MAX_REDRAWS = 64  # after as many known points in a row, run the last one anyway


def point_key(config: dict) -> tuple:
    point = sampled_point(config)
    return (point["granularity"], point["criterion"], round(float(point["ratio"]), 6), int(point["iterations"]),
            int(point["finetune_epochs"]))


class NoRepeats(Searcher):
    def __init__(self, searcher: Searcher, objective_keys: list[str]):
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher
        self.objective_keys = objective_keys
        self.measured: dict[tuple, dict] = {}  # point -> its objective values
        self.running: dict[str, tuple[str, tuple]] = {}  # Tune trial id -> (inner trial id, point)
        self.answered_from_cache = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str):
        for attempt in range(MAX_REDRAWS):
            inner_id = trial_id if attempt == 0 else f"{trial_id}~{attempt}"  # the inner searcher's ids are single-use
            config = self.searcher.suggest(inner_id)
            if not isinstance(config, dict):
                return config
            key = point_key(config)
            busy = key in {k for _, k in self.running.values()}
            if attempt == MAX_REDRAWS - 1 or (key not in self.measured and not busy):
                self.running[trial_id] = (inner_id, key)
                return config
            if key in self.measured:
                self.searcher.on_trial_complete(inner_id, result=self.measured[key])
                self.answered_from_cache += 1
                print(f"[robustprune] proposal {'/'.join(map(str, key))} was measured before: the sampler is told "
                      f"its cached result, no trial runs", flush=True)
            else:
                self.searcher.on_trial_complete(inner_id, error=True)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.running:
            self.searcher.on_trial_result(self.running[trial_id][0], result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.running:
            return
        inner_id, key = self.running.pop(trial_id)
        if result and not error and all(k in result for k in self.objective_keys):
            self.measured[key] = {k: result[k] for k in self.objective_keys}
        self.searcher.on_trial_complete(inner_id, result=result, error=error)

    # Tune checkpoints a wrapper's get_state() beside its inner searcher's own save().
    def get_state(self) -> dict:
        state = self.__dict__.copy()
        del state["searcher"]
        return copy.deepcopy(state)

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)
