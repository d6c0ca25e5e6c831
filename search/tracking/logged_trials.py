"""A search's logged trials read back from MLflow as measured points: for a warm start
(an earlier search's) and for `resume` (this search's, where Tune's checkpoint is older)."""
from __future__ import annotations

from dataclasses import dataclass

from ..front.objectives import objective_values
from .records import SearchRecords
from .schema import TRIAL_TAG, point_of, stopped_early


@dataclass(frozen=True)
class MeasuredPoint:
    point: dict  # granularity, criterion, ratio, iterations, finetune_epochs, finetune_method
    objectives: dict[str, float]  # objective_<metric> -> value, as the searcher was told


def measured_point(run, objectives: dict[str, str]) -> MeasuredPoint:
    """The point and objective values of a finished child run."""
    feasible = run.data.tags.get("feasible", "true") == "true"
    return MeasuredPoint(point_of(run.data.params), objective_values(run.data.metrics, objectives, feasible))


@dataclass(frozen=True)
class LoggedTrials:
    """Where a search logs its trials: small and picklable, so the searcher can carry it
    into Tune's checkpoint and read the records back on `resume`."""
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    objectives: dict[str, str]

    @classmethod
    def of(cls, records: SearchRecords, objectives: dict[str, str]) -> "LoggedTrials":
        parent = records.parent
        return cls(parent.tracking_uri, parent.experiment_id, parent.run_id, objectives)

    def read(self) -> dict[str, MeasuredPoint | None]:
        """Ray trial id -> measured point of every trial logged as finished, or None for one
        stopped early by mo_asha (it used a trial, but has no objective values)."""
        out = {}
        for run in SearchRecords.open(self.tracking_uri, self.experiment_id, self.parent_run_id).trials.runs():
            trial_id = run.data.tags.get(TRIAL_TAG)
            if trial_id is None:
                continue
            if run.info.status == "FINISHED":
                out[trial_id] = measured_point(run, self.objectives)
            elif stopped_early(run):
                out[trial_id] = None
        return out
