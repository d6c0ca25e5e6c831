"""A searcher wrapper that never pays twice for a point of the space.

A proposal equal to a point this search already measured is answered from the cache (the
sampler is told that point's objectives, no trial runs) and the sampler is asked again;
a proposal equal to a point still running is told as failed and redrawn. The cache is
part of the searcher's state, so it travels in Tune's experiment checkpoint and survives
`resume`. Ratios are quantised by `space.ratio_step`, so "equal" means equal to the step.

A model-based sampler (GP) can keep proposing the optimum of its model after that point
is measured: past STUCK_AFTER known proposals in a row, a random point not yet measured
is put to the study (Optuna's enqueue_trial) and becomes the next proposal.

`resume` restores Tune's last periodic experiment checkpoint (every 10 s or more), which
can predate trials the tracker already logged: a driver killed just after logging a short
trial. Restored, the searcher reads the tracker back (`logged`) and adopts such trials:
their points join the cache and the study, and they count towards `total`, so the search
neither measures them again nor runs more trials than asked.
"""
from __future__ import annotations

import copy
import random

import optuna
from ray.tune.search import Searcher

from ..config import sampled_point
from ..tracking.logged_trials import LoggedTrials, MeasuredPoint
from .space import SearchSpace

MAX_REDRAWS = 64  # after as many known points in a row, run the last one anyway
STUCK_AFTER = 8  # known proposals in a row before a random unmeasured point is enqueued


def point_key(config: dict) -> tuple:
    point = sampled_point(config)
    return (point["granularity"], point["criterion"], round(float(point["ratio"]), 6), int(point["iterations"]),
            int(point["finetune_epochs"]), point["finetune_method"])


class NoRepeats(Searcher):
    def __init__(self, searcher: Searcher, objective_keys: list[str], space: SearchSpace | None = None,
                 seed: int = 0, total: int | None = None, logged: LoggedTrials | None = None):
        """`space`: where unmeasured points are drawn from when the sampler is stuck on known
        ones (`searcher` an OptunaSearch); without it, known proposals are redrawn only.
        `total`: the trials of the search (num_samples); `logged`: where its tracker logs them."""
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher
        self.objective_keys = objective_keys
        self.space, self.rng = space, random.Random(seed)
        self.measured: dict[tuple, dict] = {}  # point -> its objective values
        self.running: dict[str, tuple[str, tuple]] = {}  # Tune trial id -> (inner trial id, point)
        self.answered_from_cache = 0
        self.total, self.logged = total, logged
        self.completed: set[str] = set()  # Tune trial ids told complete, and those adopted
        self.adopted = 0  # trials logged after the checkpoint this searcher was restored from
        self._restored = False

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str):
        self._adopt_logged_trials()
        if self.total is not None and len(self.running) + len(self.completed) >= self.total:  # trials used
            return Searcher.FINISHED
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
            if attempt + 1 >= STUCK_AFTER:
                self._enqueue_unmeasured_point()

    def _enqueue_unmeasured_point(self) -> None:
        if self.space is None:
            return
        known = set(self.measured) | {key for _, key in self.running.values()}
        for _ in range(1000):  # rejection sampling: the space may be far too large to enumerate
            params = self.space.random_params(self.rng)
            if point_key(self.space.point_of(params)) not in known:
                self.searcher._ot_study.enqueue_trial(params)  # Ray's OptunaSearch: its Optuna study
                return

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.running:
            self.searcher.on_trial_result(self.running[trial_id][0], result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._adopt_logged_trials()
        if trial_id not in self.running:
            return
        self.completed.add(trial_id)
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
        # A search started by an earlier release has none of the adoption fields: it adopts nothing.
        self.__dict__.update({"total": None, "logged": None, "completed": set(), "adopted": 0, **state})
        self._restored = True  # adopted on the next call, after Tune has restored the inner searcher too

    def add_measured(self, points: list[MeasuredPoint]) -> int:
        """Tell the study and the cache these points as finished trials; returns how many
        fit this search's space (`searcher` an OptunaSearch)."""
        study = self.searcher._ot_study  # Ray's OptunaSearch takes no finished trials with a define-by-run space
        generation_key = getattr(study.sampler, "_get_generation_key", None)  # genetic samplers: generation 0
        added = 0
        for measured in points:
            try:
                trial = optuna.trial.create_trial(
                    params=self.space.params_of(measured.point), distributions=self.space.distributions(),
                    values=[measured.objectives[k] for k in self.objective_keys],
                    system_attrs={generation_key(): 0} if generation_key else None)
            except ValueError:  # outside this search's space
                continue
            study.add_trial(trial)
            self.measured[point_key(measured.point)] = dict(measured.objectives)
            added += 1
        return added

    def _adopt_logged_trials(self) -> None:
        """Once after a restore: the trials the tracker logged that the checkpoint does not
        know (neither running nor complete in it)."""
        if not self._restored:
            return
        self._restored = False
        if self.logged is None:
            return
        late = {trial_id: point for trial_id, point in self.logged.read().items()
                if trial_id not in self.running and trial_id not in self.completed}
        if not late:
            return
        self.completed |= set(late)
        self.adopted += len(late)
        self.add_measured([p for p in late.values() if p is not None])
        print(f"[robustprune] {len(late)} trial(s) logged after Tune's last checkpoint: counted, and their points "
              f"not measured again", flush=True)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)
