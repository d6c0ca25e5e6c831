"""A search's child runs, one per trial: logged once each (tag `ray_trial_id`), which is
what makes `robustprune resume` safe, and kept in memory once read."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Param
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from trainables.latency import is_latency

from ..front.objectives import finetune_method_of
from .parent_run import ParentRun, metric_batch
from .schema import (PARENT_TAG, REPLICA_TAG, TRIAL_PARAMS, TRIAL_TAG, child_run_name, numeric_metrics, run_row,
                     stopped_early, trial_row)


@dataclass
class ChildRecord:
    """What the driver keeps of one child run."""
    run_id: str
    status: str
    row: dict | None  # trial_row of a finished run
    feasible: bool
    pareto: str | None = None  # the run's `pareto` tag as last set

    @classmethod
    def of(cls, run) -> "ChildRecord":
        tags = run.data.tags
        return cls(run.info.run_id, run.info.status, run_row(run) if run.info.status == "FINISHED" else None,
                   tags.get("feasible", "true") == "true", tags.get("pareto"))


class TrialRuns:
    """The parent's child runs: written per trial (finished, failed, stopped early) and read back."""

    def __init__(self, parent: ParentRun):
        self.parent = parent
        self._children: dict[str, ChildRecord] | None = None  # by trial id; see known

    def __getstate__(self):
        return {**self.__dict__, "_children": None}

    @property
    def client(self):
        return self.parent.client

    def runs(self, status: str | None = None, replicas: bool = False) -> list:
        """The child runs as MLflow holds them now (of one status, when given); the front's
        replicas only when asked for (they are not trials)."""
        query = f"tags.`{PARENT_TAG}` = '{self.parent.run_id}'"
        if status:
            query += f" and attributes.status = '{status}'"
        runs = self.client.search_runs([self.parent.experiment_id], query, max_results=50000)
        return runs if replicas else [r for r in runs if REPLICA_TAG not in r.data.tags]

    def known(self) -> dict[str, ChildRecord]:
        """The search's child runs by trial id: read from MLflow once, then kept current in
        memory (one driver per search, search/driver/lock.py), so logging a trial costs the
        same at the 1,000th trial as at the first. Runs left half-logged by a driver that died
        are deleted here; their trials are logged again."""
        if self._children is None:
            self._children = {}
            for run in self.runs(replicas=True):  # a replica's half-logged run goes too
                if run.info.status not in ("FINISHED", "FAILED") and not stopped_early(run):
                    self.client.delete_run(run.info.run_id)
                elif TRIAL_TAG in run.data.tags:
                    self._children[run.data.tags[TRIAL_TAG]] = ChildRecord.of(run)
        return self._children

    def forget(self) -> None:
        """Read every child from MLflow again on next use (another writer added metrics)."""
        self._children = None

    def _fresh_child(self, trial_id: str, params: dict, tags: dict[str, str],
                     metrics: dict[str, float] | None = None, start_time: int | None = None):
        """A new child run (mlflow Run) for the trial, named by what it tried and tagged with
        what a user filters on, with its params and metrics; None when the trial is already logged."""
        if trial_id in self.known():
            return None
        run = self.client.create_run(self.parent.experiment_id, run_name=child_run_name(params), start_time=start_time,
                                     tags={PARENT_TAG: self.parent.run_id, TRIAL_TAG: trial_id,
                                           "criterion": str(params["criterion"]),
                                           "granularity": str(params["granularity"]),
                                           "finetune_method": finetune_method_of(params), **tags})
        try:
            self.client.log_batch(run.info.run_id,
                                  params=[Param(k, str(params[k])) for k in TRIAL_PARAMS if k in params],
                                  metrics=metric_batch(metrics or {}))
        except Exception:
            self.client.delete_run(run.info.run_id)  # no half-logged child: the trial is logged again later
            raise
        return run

    def log_finished(self, trial_id: str, params: dict, metrics: dict, trial_dir: Path, tags: dict) -> str | None:
        """Child run with params, metrics, model.pt (the safe model file) and metrics.json. It
        starts off the front (`pareto` false, as most trials end): the live front tags the
        few that join it."""
        timing = metrics.get("timing", {})  # when the trial ran: the run's start, end and duration are its own
        run = self._fresh_child(trial_id, params, {**tags, "pareto": "false"}, numeric_metrics(metrics),
                                timing.get("started_ms"))
        if run is None:
            return None
        run_id = run.info.run_id
        try:
            # The store from the new run's own artifact URI: MlflowClient.log_artifact would
            # fetch the run again first to learn it.
            store = get_artifact_repository(run.info.artifact_uri, tracking_uri=self.parent.tracking_uri)
            for name in ("model.pt", "metrics.json"):
                store.log_artifact(str(trial_dir / name))
        except Exception as e:
            self.client.set_tag(run_id, "error", f"logging failed: {e!r}"[:5000])
            self.client.set_terminated(run_id, "FAILED")
            self._children[trial_id] = ChildRecord(run_id, "FAILED", None, False)
            raise
        self.client.set_terminated(run_id, "FINISHED", end_time=timing.get("ended_ms"))
        row = trial_row(run_id, trial_id, {k: str(v) for k, v in params.items()}, numeric_metrics(metrics))
        self._children[trial_id] = ChildRecord(run_id, "FINISHED", row, tags.get("feasible", "true") == "true",
                                               "false")
        return run_id

    def log_failed(self, trial_id: str, params: dict, error: str) -> None:
        run = self._fresh_child(trial_id, params, {"error": error[-5000:], "pareto": "false"})
        if run is None:
            return
        self.client.set_terminated(run.info.run_id, "FAILED")
        self._children[trial_id] = ChildRecord(run.info.run_id, "FAILED", None, False, "false")

    def log_stopped(self, trial_id: str, params: dict, result: dict) -> str | None:
        """A trial that mo_asha stopped: KILLED, off the front, with the cost it would have
        had and its last intermediate accuracies (`rung_*`, measured on a small subset)."""
        cost = {k: v for k, v in result.items() if k in ("flops", "macs", "params") or is_latency(k)}
        run = self._fresh_child(trial_id, params, {
            "stopped_early": "true", "stopped_at_step": str(result["step"]), "pareto": "false",
            "feasible": "true" if result["feasible"] else "false"}, {
            **cost, "rung_step": result["step"], "rung_clean_acc": result["clean_acc"],
            "rung_robust_acc": result["robust_acc"], "trial_seconds": result.get("trial_seconds", 0.0)})
        if run is None:
            return None
        run_id = run.info.run_id
        self.client.set_terminated(run_id, "KILLED")
        self._children[trial_id] = ChildRecord(run_id, "KILLED", None, False, "false")
        return run_id

    def model_payload(self, run_id: str) -> dict:
        """A child run's pruned model file, as a safe payload."""
        from trainables.store import load_payload

        with tempfile.TemporaryDirectory() as d:
            return load_payload(self.client.download_artifacts(run_id, "model.pt", d))

    def compute_seconds(self) -> float:
        """The trials' compute (`trial_seconds`), finished and stopped early, and the front's
        replicas', summed."""
        return sum(run.data.metrics.get("trial_seconds", 0.0) for run in self.runs(replicas=True))
