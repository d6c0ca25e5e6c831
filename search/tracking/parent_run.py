"""A search's parent run: its config as params, its metrics (some queued to ride along with
the next write), its artifact store and plotting thread, and its end status.

Everything goes through an explicit `MlflowClient` bound to the search's tracking URI,
so nothing depends on (or changes) process-wide MLflow state.
"""
from __future__ import annotations

import json
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml
from mlflow.entities import Metric, Param, RunTag
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from .background_plots import BackgroundPlots
from .schema import EXPERIMENT_KIND, SEARCH_TAG, flatten, numeric_metrics


def metric_batch(metrics: dict[str, float], step: int = 0) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(k, v, now, step) for k, v in metrics.items()]


class ParentRun:
    """Picklable handle on one search's parent run (URI + ids; the client and caches are lazy)."""

    def __init__(self, tracking_uri: str, experiment_id: str, run_id: str):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.run_id = run_id
        self._client: MlflowClient | None = None
        self._baseline: dict[str, float] | None = None
        self._summary: str | None = None
        self._pending_metrics: list[Metric] = []  # sent with the parent's next log_batch
        self._plots: BackgroundPlots | None = None  # made on the first plot
        self._store = None  # the run's artifact repository, once known

    def __getstate__(self):
        return {**self.__dict__, "_client": None, "_baseline": None, "_summary": None, "_pending_metrics": [],
                "_plots": None, "_store": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    @classmethod
    def start(cls, tracking_uri: str, experiment_name: str, config: dict, experiment_path: str,
              baseline_metrics: dict, records: dict) -> "ParentRun":
        """The parent run: the config and the resolved records (attacks, splits, seeds) as params."""
        client = MlflowClient(tracking_uri)
        exp = client.get_experiment_by_name(experiment_name)
        if exp is None:
            exp_id = client.create_experiment(experiment_name, tags=dict([EXPERIMENT_KIND]))
        else:
            exp_id = exp.experiment_id
            if exp.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
                client.set_experiment_tag(exp_id, *EXPERIMENT_KIND)
        run = client.create_run(exp_id, run_name=Path(experiment_path).name,
                                tags={SEARCH_TAG: "parent", "experiment_path": experiment_path})
        parent = cls(tracking_uri, exp_id, run.info.run_id)
        with parent.ending_on_error():
            flat = {**flatten(config), **flatten(records, "resolved.")}
            for carried in ("model.code", "data.transforms.code"):  # a python: file's code: in config.yaml
                flat.pop(carried, None)
            client.log_batch(parent.run_id, params=[Param(k[:250], v[:6000]) for k, v in flat.items()])
            parent.log_metrics({f"{k}_baseline": v for k, v in numeric_metrics(baseline_metrics).items()})
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
                client.log_artifact(parent.run_id, str(Path(d) / "config.yaml"))
        return parent

    @classmethod
    def reopen(cls, tracking_uri: str, run_id: str) -> "ParentRun":
        client = MlflowClient(tracking_uri)
        run = client.get_run(run_id)
        client.update_run(run_id, status="RUNNING")
        return cls(tracking_uri, run.info.experiment_id, run_id)

    def finish(self, status: str = "FINISHED") -> None:
        if self._plots is not None:
            self._plots.wait()
        self.flush_metrics()
        self.client.set_terminated(self.run_id, status=status)

    @contextmanager
    def ending_on_error(self):
        """The parent run never stays RUNNING: KILLED on Ctrl+C, FAILED on any other error."""
        try:
            yield
        except KeyboardInterrupt:
            self.finish("KILLED")
            raise
        except BaseException:
            self.finish("FAILED")
            raise

    # ------------------------------------------------------------------ writing
    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """These metrics, and the queued ones (MlflowClient splits them into batches MLflow takes)."""
        self.client.log_batch(self.run_id, metrics=self.take_pending_metrics() + metric_batch(metrics, step))

    def queue_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Metrics that ride along with the parent's next write (each MLflow call costs the
        driver milliseconds per trial); `log_metrics` sends them at the latest."""
        self._pending_metrics += metric_batch(metrics, step)

    def flush_metrics(self) -> None:
        if self._pending_metrics:
            self.log_metrics({})

    def take_pending_metrics(self) -> list[Metric]:
        pending, self._pending_metrics = self._pending_metrics, []
        return pending

    def artifacts(self):
        """The run's artifact repository (MlflowClient.log_artifacts reads the run first)."""
        if self._store is None:
            uri = self.client.get_run(self.run_id).info.artifact_uri
            self._store = get_artifact_repository(uri, tracking_uri=self.tracking_uri)
        return self._store

    def plot_in_background(self, draw) -> None:
        """Run `draw` on the plotting thread (search/tracking/background_plots.py); `finish` waits for it."""
        if self._plots is None:
            self._plots = BackgroundPlots()
        self._plots.submit(draw)

    # ------------------------------------------------------------------ reading
    def baseline_metrics(self) -> dict[str, float]:
        if self._baseline is None:
            parent = self.client.get_run(self.run_id)
            self._baseline = {k.removesuffix("_baseline"): v for k, v in parent.data.metrics.items()
                              if k.endswith("_baseline")}
        return self._baseline

    def seconds(self) -> float:
        """The parent run's wall time so far."""
        return time.time() - self.client.get_run(self.run_id).info.start_time / 1000

    def hypervolume_history(self) -> list[tuple[float, int, float]]:
        """(seconds since the parent run started, finished trials, hypervolume), by trial."""
        start = self.client.get_run(self.run_id).info.start_time
        by_trials = {m.step: m for m in self.client.get_metric_history(self.run_id, "hypervolume")}
        return [((m.timestamp - start) / 1000, m.step, m.value) for _, m in sorted(by_trials.items())]

    def summary(self) -> str:
        """One markdown paragraph on what the search is, from the parent's params."""
        if self._summary is None:
            p = self.client.get_run(self.run_id).data.params
            objectives = ", ".join(f"{k.rsplit('.', 1)[1]} ({v})" for k, v in p.items()
                                   if k.startswith("search.objectives."))
            names = dict.fromkeys(k.split(".")[2] for k in p if k.startswith("resolved.attacks."))
            attacks = ", ".join(f"{n} (eps {p.get(f'resolved.attacks.{n}.eps', '?')})" for n in names) or "?"
            self._summary = (f"**{p.get('model.name', '?')}** on **{p.get('data.name', '?')}**: "
                             f"{p.get('search.num_samples', '?')} trials, sampler {p.get('search.sampler', '?')}, "
                             f"scheduler {p.get('search.scheduler', 'fifo')}, objectives {objectives}; "
                             f"selection attacks on validation: {attacks}; criteria "
                             f"{', '.join(json.loads(p.get('space.criteria', '[]')))}.")
        return self._summary
