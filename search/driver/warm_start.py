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

from pathlib import Path

from ..config import ConfigError, SearchConfig
from ..tracking.logged_trials import MeasuredPoint, measured_point
from ..tracking.lookup import find_parent_run
from ..tracking.records import SearchRecords
from ..tracking.schema import flatten

FIELD = "search.warm_start"


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
    children = SearchRecords.open(tracking_uri, parent.info.experiment_id, parent.info.run_id).trials.runs("FINISHED")
    return [measured_point(run, cfg.search.objectives) for run in children]
