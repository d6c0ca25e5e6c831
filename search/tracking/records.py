"""One search's MLflow records, by job: the parent run, the trials' child runs, the live
front, the test metrics and the front's replicas. Picklable (Tune keeps the driver's callback in its
checkpoint); the parts share one parent and its lazy client."""
from __future__ import annotations

from dataclasses import dataclass

from .live_front import LiveFront
from .parent_run import ParentRun
from .replica_runs import ReplicaRuns
from .test_metrics import TestMetrics
from .trial_runs import TrialRuns


@dataclass
class SearchRecords:
    parent: ParentRun
    trials: TrialRuns
    front: LiveFront
    tests: TestMetrics
    replicas: ReplicaRuns

    @classmethod
    def of(cls, parent: ParentRun) -> "SearchRecords":
        trials = TrialRuns(parent)
        return cls(parent, trials, LiveFront(trials), TestMetrics(parent), ReplicaRuns(parent))

    @classmethod
    def open(cls, tracking_uri: str, experiment_id: str, parent_run_id: str) -> "SearchRecords":
        """A search's records as they are (reading, or adding to a finished search)."""
        return cls.of(ParentRun(tracking_uri, experiment_id, parent_run_id))

    @classmethod
    def start(cls, tracking_uri: str, experiment_name: str, config: dict, experiment_path: str,
              baseline_metrics: dict, records: dict) -> "SearchRecords":
        """A new search's records (see `ParentRun.start`)."""
        return cls.of(ParentRun.start(tracking_uri, experiment_name, config, experiment_path, baseline_metrics,
                                      records))

    @classmethod
    def reopen(cls, tracking_uri: str, parent_run_id: str) -> "SearchRecords":
        """An interrupted search's records, its parent RUNNING again."""
        return cls.of(ParentRun.reopen(tracking_uri, parent_run_id))
