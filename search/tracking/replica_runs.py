"""A front model's replicas in MLflow: its point run again with other trial seeds, each a
child run tagged `replica_of` (the trial's run id) with the param `trial_seed`; and the
summaries over the seeds (`<metric>_mean`, `_std`, `_ci_low`, `_ci_high`, `seeds`) on the
trial's own run. Replicas are not trials: the front, the searcher and `resume` skip them."""
from __future__ import annotations

from mlflow.entities import Param

from ..front.seeds import SEED_METRICS, seed_summary
from .parent_run import ParentRun, metric_batch
from .schema import PARENT_TAG, REPLICA_TAG, TRIAL_PARAMS, child_run_name, numeric_metrics
from .test_metrics import TestMetrics

SEED_PARAM = "trial_seed"


class ReplicaRuns:
    def __init__(self, parent: ParentRun):
        self.parent = parent

    def of(self, run_id: str) -> dict[int, dict]:
        """The logged replicas of a trial's run: {trial seed: metrics}."""
        runs = self.parent.client.search_runs(
            [self.parent.experiment_id], f"tags.`{REPLICA_TAG}` = '{run_id}' and attributes.status = 'FINISHED'",
            max_results=1000)
        return {int(r.data.params[SEED_PARAM]): dict(r.data.metrics) for r in runs}

    def log(self, original, trial_seed: int, metrics: dict) -> str:
        """A replica of `original` (the trial's MLflow run): its params, the trial seed, and its
        validation and test metrics (the robustness curve as the trial's)."""
        client = self.parent.client
        params = {k: v for k, v in original.data.params.items() if k in TRIAL_PARAMS}
        timing = metrics.get("timing", {})  # when the replica ran: its run's start, end and duration
        tags = {PARENT_TAG: self.parent.run_id, REPLICA_TAG: original.info.run_id, "criterion": params["criterion"],
                "granularity": params["granularity"]}
        run = client.create_run(self.parent.experiment_id, run_name=f"{child_run_name(params)}·seed{trial_seed}",
                                start_time=timing.get("started_ms"), tags=tags)
        try:
            client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()] +
                             [Param(SEED_PARAM, str(trial_seed))])
            TestMetrics(self.parent).log(run.info.run_id, metrics)
        except Exception:
            client.delete_run(run.info.run_id)  # no half-logged replica: it is measured again
            raise
        client.set_terminated(run.info.run_id, "FINISHED", end_time=timing.get("ended_ms"))
        return run.info.run_id

    def summarize(self, run_id: str) -> dict:
        """Log on the trial's run its metrics' summaries over its seeds (itself and its replicas)."""
        client = self.parent.client
        own = client.get_run(run_id).data.metrics
        seeds = [own, *self.of(run_id).values()]
        summary = seed_summary({m: [s[m] for s in seeds] for m in SEED_METRICS if all(m in s for s in seeds)})
        client.log_batch(run_id, metrics=metric_batch(numeric_metrics(summary)))
        return summary
