"""`search.warm_start: EXPERIMENT`: the measured points of an earlier search seed this one.

The newest search of that experiment, in the same tracking store, must have searched the
same model, data and objectives (else one line, before anything starts). Each of its
finished trials is added to this search's Optuna study as a completed trial with its
objective values (NSGA-II takes them as its first generation) and to the no-repeat
cache, so the sampler starts from what is known and no point is measured again. Points
outside this search's space are left out. This search's front holds its own trials; the
earlier front stays on the earlier parent run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from ray.tune.search.optuna import OptunaSearch

from .config import ConfigError, SearchConfig
from .no_repeats import NoRepeats, point_key
from .pareto import objective_values
from .space import SearchSpace
from .tracking import Tracker, find_parent_run, flatten

FIELD = "search.warm_start"


@dataclass(frozen=True)
class MeasuredPoint:
    point: dict  # granularity, criterion, ratio, iterations, finetune_epochs
    objectives: dict[str, float]  # objective_<metric> -> value, as the searcher was told


def measured_points(tracking_uri: str, cfg: SearchConfig) -> list[MeasuredPoint]:
    """The finished trials of the newest search of `search.warm_start` (ConfigError when
    there is none, or it searched another problem)."""
    name = cfg.search.warm_start
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        raise ConfigError(f"{FIELD}: no MLflow experiment named '{name}' at {tracking_uri} (no store there yet)")
    try:
        parent = find_parent_run(tracking_uri, name)
    except LookupError as e:
        raise ConfigError(f"{FIELD}: {str(e).split(': ', 1)[1]}") from None
    same = flatten({"model": {"name": cfg.model.name}, "data": {"name": cfg.data.name},
                    "search": {"objectives": cfg.search.objectives}})
    for key, value in same.items():
        if parent.data.params.get(key) != value:
            raise ConfigError(f"{FIELD}: '{name}' searched {key}={parent.data.params.get(key)} but this search has "
                              f"{key}={value}; allowed: a search of the same model, data and objectives")
    points = []
    for run in Tracker(tracking_uri, parent.info.experiment_id, parent.info.run_id).child_runs("FINISHED"):
        p = run.data.params
        point = {"granularity": p["granularity"], "criterion": p["criterion"], "ratio": float(p["ratio"]),
                 "iterations": int(p["iterations"]), "finetune_epochs": int(p["finetune_epochs"])}
        feasible = run.data.tags.get("feasible", "true") == "true"
        points.append(MeasuredPoint(point, objective_values(run.data.metrics, cfg.search.objectives, feasible)))
    return points


def seed_searcher(searcher: NoRepeats, space: SearchSpace, points: list[MeasuredPoint]) -> int:
    """Tell the searcher the points as finished trials; returns how many fit this space."""
    inner: OptunaSearch = searcher.searcher
    study = inner._ot_study  # Ray's OptunaSearch takes no finished trials with a define-by-run space
    generation_key = getattr(study.sampler, "_get_generation_key", None)  # genetic samplers: generation 0
    added = 0
    for measured in points:
        try:
            trial = optuna.trial.create_trial(
                params=space.params_of(measured.point), distributions=space.distributions(),
                values=[measured.objectives[k] for k in searcher.objective_keys],
                system_attrs={generation_key(): 0} if generation_key else None)
        except ValueError:  # outside this search's space
            continue
        study.add_trial(trial)
        searcher.measured[point_key(measured.point)] = dict(measured.objectives)
        added += 1
    return added
