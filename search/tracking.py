"""MLflow tracking: one parent run per search, one child run per trial, the live front.

Everything goes through an explicit `MlflowClient` bound to the search's tracking URI,
so nothing depends on (or changes) process-wide MLflow state. Logging a trial is
idempotent: a trial already logged (tag `ray_trial_id`) is never logged twice, which is
what makes `robustprune resume` safe.
"""
from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
import time
from pathlib import Path

import numpy as np
import yaml
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from trainables.latency import is_latency

from . import pareto
from .background_plots import BackgroundPlots

PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "ray_trial_id"
SEARCH_TAG = "robustprune.search"
TRIAL_PARAMS = ("criterion", "granularity", "ratio", "iterations", "finetune_epochs", "finetune_method", "seed")
CURVE_METRIC = "test_robust_acc_curve"
CURVE_STEP_SCALE = 10_000  # MLflow steps are integers: eps 0.0314 is logged at step 314
PLOT_EVERY_S = 30.0  # the parent's live views: at least this often, and the description whenever the front changes
# Without a kind, MLflow's UI opens an experiment on its GenAI overview (traces), not on the runs.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
NOTE_TAG = "mlflow.note.content"  # the run's description in the UI (markdown)


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return flat


def numeric_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Tracker:
    """Picklable handle on one search's MLflow records (URI + run ids; the client is lazy)."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self._client: MlflowClient | None = None
        self._children: dict[str, ChildRecord] | None = None  # by trial id; see _known_children
        self._baseline: dict[str, float] | None = None
        self._summary: str | None = None
        self._last_plot = 0.0
        self._shown_front: set[str] | None = None  # the front that the description and pareto.csv show
        self._front: list[ChildRecord] | None = None  # the front so far; None: recompute from every child
        self._considered = 0  # children (in `_children` order) that `_front` has taken into account
        self._finished_count = 0  # finished children with every objective, among those considered
        self._pending_parent_metrics: list[Metric] = []  # sent with the parent's next log_batch
        self._plots: BackgroundPlots | None = None  # made on the first plot
        self._parent_store = None  # the parent's artifact repository, once known

    def __getstate__(self):
        return {**self.__dict__, "_client": None, "_children": None, "_baseline": None, "_summary": None,
                "_pending_parent_metrics": [], "_front": None, "_plots": None, "_parent_store": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    # ------------------------------------------------------------------ parent run
    @classmethod
    def start(cls, tracking_uri: str, experiment_name: str, config: dict, experiment_path: str,
              baseline_metrics: dict, records: dict) -> "Tracker":
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
        tracker = cls(tracking_uri, exp_id, run.info.run_id)
        with tracker.ending_on_error():
            flat = {**flatten(config), **flatten(records, "resolved.")}
            flat.pop("model.code", None)  # a python: file model's code: in config.yaml, too long for a param
            client.log_batch(run.info.run_id, params=[Param(k[:250], v[:6000]) for k, v in flat.items()])
            tracker._log_metrics(run.info.run_id, {f"{k}_baseline": v for k, v in
                                                   numeric_metrics(baseline_metrics).items()})
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
                client.log_artifact(run.info.run_id, str(Path(d) / "config.yaml"))
        return tracker

    @classmethod
    def reopen(cls, tracking_uri: str, parent_run_id: str) -> "Tracker":
        client = MlflowClient(tracking_uri)
        run = client.get_run(parent_run_id)
        client.update_run(parent_run_id, status="RUNNING")
        return cls(tracking_uri, run.info.experiment_id, parent_run_id)

    def finish(self, status: str = "FINISHED") -> None:
        if self._plots is not None:
            self._plots.wait()
        self.flush_parent_metrics()
        self.client.set_terminated(self.parent_run_id, status=status)

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

    def set_parent_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.parent_run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_parent_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self._log_metrics(self.parent_run_id, metrics, step)

    def queue_parent_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Parent metrics that ride along with the parent's next write (each MLflow call costs
        the driver milliseconds per trial); `log_parent_metrics` sends them at the latest."""
        now = int(time.time() * 1000)
        self._pending_parent_metrics += [Metric(k, v, now, step) for k, v in metrics.items()]

    def flush_parent_metrics(self) -> None:
        if self._pending_parent_metrics:
            self._log_metrics(self.parent_run_id, {})

    def _take_pending_parent_metrics(self) -> list[Metric]:
        pending, self._pending_parent_metrics = self._pending_parent_metrics, []
        return pending

    def _log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in metrics.items()]
        if run_id == self.parent_run_id:
            items = self._take_pending_parent_metrics() + items
        self.client.log_batch(run_id, metrics=items)  # MlflowClient splits it into batches MLflow takes

    # ------------------------------------------------------------------ child runs
    def child_runs(self, status: str | None = None) -> list:
        query = f"tags.`{PARENT_TAG}` = '{self.parent_run_id}'"
        if status:
            query += f" and attributes.status = '{status}'"
        return self.client.search_runs([self.experiment_id], query, max_results=50000)

    def _known_children(self) -> dict[str, "ChildRecord"]:
        """The search's child runs by trial id: read from MLflow once, then kept current in
        memory (one driver per search, search/lock.py), so logging a trial costs the same
        at the 1,000th trial as at the first. Runs left half-logged by a driver that died
        are deleted here; their trials are logged again."""
        if self._children is None:
            self._children = {}
            for run in self.child_runs():
                if run.info.status not in ("FINISHED", "FAILED") and not stopped_early(run):
                    self.client.delete_run(run.info.run_id)
                elif TRIAL_TAG in run.data.tags:
                    self._children[run.data.tags[TRIAL_TAG]] = ChildRecord.of(run)
        return self._children

    def _fresh_child(self, trial_id: str, params: dict, tags: dict[str, str],
                     metrics: dict[str, float] | None = None):
        """A new child run (mlflow Run) for the trial, named by what it tried and tagged with
        what a user filters on, with its params and metrics; None when the trial is already logged."""
        if trial_id in self._known_children():
            return None
        run = self.client.create_run(self.experiment_id, run_name=child_run_name(params),
                                     tags={PARENT_TAG: self.parent_run_id, TRIAL_TAG: trial_id,
                                           "criterion": str(params["criterion"]),
                                           "granularity": str(params["granularity"]),
                                           "finetune_method": pareto.finetune_method_of(params), **tags})
        now = int(time.time() * 1000)
        try:
            self.client.log_batch(run.info.run_id,
                                  params=[Param(k, str(params[k])) for k in TRIAL_PARAMS if k in params],
                                  metrics=[Metric(k, v, now, 0) for k, v in (metrics or {}).items()])
        except Exception:
            self.client.delete_run(run.info.run_id)  # no half-logged child: the trial is logged again later
            raise
        return run

    def log_trial(self, trial_id: str, params: dict, metrics: dict, trial_dir: Path, tags: dict) -> str | None:
        """Child run with params, metrics, model.pt (the safe model file) and metrics.json. It
        starts off the front (`pareto` false, as most trials end): `update_pareto` tags the few
        that join it."""
        run = self._fresh_child(trial_id, params, {**tags, "pareto": "false"}, numeric_metrics(metrics))
        if run is None:
            return None
        run_id = run.info.run_id
        try:
            # The store from the new run's own artifact URI: MlflowClient.log_artifact would
            # fetch the run again first to learn it.
            store = get_artifact_repository(run.info.artifact_uri, tracking_uri=self.tracking_uri)
            for name in ("model.pt", "metrics.json"):
                store.log_artifact(str(trial_dir / name))
        except Exception as e:
            self.client.set_tag(run_id, "error", f"logging failed: {e!r}"[:5000])
            self.client.set_terminated(run_id, "FAILED")
            self._children[trial_id] = ChildRecord(run_id, "FAILED", None, False)
            raise
        self.client.set_terminated(run_id, "FINISHED")
        row = trial_row(run_id, trial_id, {k: str(v) for k, v in params.items()}, numeric_metrics(metrics))
        self._children[trial_id] = ChildRecord(run_id, "FINISHED", row, tags.get("feasible", "true") == "true",
                                               "false")
        return run_id

    def model_payload(self, run_id: str) -> dict:
        """A child run's pruned model file, as a safe payload."""
        from trainables.store import load_payload

        with tempfile.TemporaryDirectory() as d:
            return load_payload(self.client.download_artifacts(run_id, "model.pt", d))

    def log_final_evaluation(self, run_id: str, metrics: dict, suffix: str = "") -> None:
        """Test metrics (`test_*`) and the robustness curve as a metric history,
        `test_robust_acc_curve` at step = eps x CURVE_STEP_SCALE."""
        self._log_metrics(run_id, {f"{k}{suffix}": v for k, v in numeric_metrics(metrics).items()})
        now = int(time.time() * 1000)
        points = [Metric(f"{CURVE_METRIC}{suffix}", p["test_robust_acc"], now, round(p["eps"] * CURVE_STEP_SCALE))
                  for p in metrics.get("robustness_curve", [])]
        if points:
            self.client.log_batch(run_id, metrics=points)

    def log_baseline_test(self, metrics: dict) -> None:
        """The baseline's final evaluation on the parent run (`test_*_baseline`), once."""
        if "test_robust_acc_baseline" not in self.client.get_run(self.parent_run_id).data.metrics:
            self.log_final_evaluation(self.parent_run_id, metrics, suffix="_baseline")

    def robustness_curve(self, run_id: str, suffix: str = "") -> list[tuple[float, float]]:
        """(eps, test robust accuracy) pairs logged by `log_final_evaluation`, by eps."""
        history = self.client.get_metric_history(run_id, f"{CURVE_METRIC}{suffix}")
        return sorted({h.step / CURVE_STEP_SCALE: h.value for h in history}.items())

    def log_robustness_curves(self, front: list[dict]) -> None:
        """`robustness_curves.png` on the parent: test robust accuracy vs eps, front and baseline."""
        curves = {f"{r['criterion']} {r['granularity']} r={r['ratio']:.2f} it={r['iterations']}":
                  self.robustness_curve(r["run_id"]) for r in front}
        curves["baseline"] = self.robustness_curve(self.parent_run_id, "_baseline")
        curves = {label: points for label, points in curves.items() if points}
        if curves:
            with tempfile.TemporaryDirectory() as d:
                pareto.plot_robustness_curves(curves, Path(d) / "robustness_curves.png")
                self.client.log_artifacts(self.parent_run_id, d)

    def log_failed_trial(self, trial_id: str, params: dict, error: str) -> None:
        run = self._fresh_child(trial_id, params, {"error": error[-5000:], "pareto": "false"})
        if run is None:
            return
        self.client.set_terminated(run.info.run_id, "FAILED")
        self._children[trial_id] = ChildRecord(run.info.run_id, "FAILED", None, False, "false")

    def log_stopped_trial(self, trial_id: str, params: dict, result: dict) -> str | None:
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

    # ------------------------------------------------------------------ Pareto front
    def baseline_metrics(self) -> dict[str, float]:
        if self._baseline is None:
            parent = self.client.get_run(self.parent_run_id)
            self._baseline = {k.removesuffix("_baseline"): v for k, v in parent.data.metrics.items()
                              if k.endswith("_baseline")}
        return self._baseline

    def trial_compute_seconds(self) -> float:
        """The trials' compute (`trial_seconds`), finished and stopped early, summed."""
        return sum(run.data.metrics.get("trial_seconds", 0.0) for run in self.child_runs())

    def parent_seconds(self) -> float:
        """The parent run's wall time so far."""
        return time.time() - self.client.get_run(self.parent_run_id).info.start_time / 1000

    def hypervolume_history(self) -> list[tuple[float, int, float]]:
        """(seconds since the parent run started, finished trials, hypervolume), by trial."""
        start = self.client.get_run(self.parent_run_id).info.start_time
        by_trials = {m.step: m for m in self.client.get_metric_history(self.parent_run_id, "hypervolume")}
        return [((m.timestamp - start) / 1000, m.step, m.value) for _, m in sorted(by_trials.items())]

    def search_summary(self) -> str:
        """One markdown paragraph on what the search is, from the parent's params."""
        if self._summary is None:
            p = self.client.get_run(self.parent_run_id).data.params
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

    def _description(self, front: list[dict], finished: int, hv: float, final: bool) -> str:
        """The parent run's description (markdown): the search, its hypervolume and its front."""
        state = "final" if final else f"live: refreshed when the front changes and every {PLOT_EVERY_S:.0f} s"
        test = "" if final else " Test columns fill in after the search (final evaluation)."
        return (f"{self.search_summary()}\n\n**Hypervolume {hv:.4f}** after {finished} finished trials ({state})."
                f" Front: {len(front)} models, best validation robust accuracy first.{test}\n\n"
                f"{pareto.front_markdown(front, self.experiment_id)}\n\n"
                f"Filter the runs table with `tags.pareto = 'true'` to list the front.")

    @staticmethod
    def _finished_among(children, objectives: dict[str, str]) -> list["ChildRecord"]:
        return [c for c in children if c.status == "FINISHED" and c.row is not None
                and all(m in c.row for m in objectives)]

    def _advance_front(self, objectives: dict[str, str]) -> tuple[list["ChildRecord"], float]:
        """The front after the children logged since the last call, and its hypervolume; the
        children whose `pareto` tag may have changed. A point once dominated stays dominated,
        so the front of every finished child is the front of the last front and the new
        children: the cost per trial does not grow with the search."""
        children = list(self._known_children().values())
        if self._front is None:
            self._front, self._considered, self._finished_count = [], 0, 0
        new = self._finished_among(children[self._considered:], objectives)
        self._considered, self._finished_count = len(children), self._finished_count + len(new)
        candidates = self._front + [c for c in new if c.feasible]
        hv = 0.0
        if candidates:
            baseline = self.baseline_metrics()
            values = np.array([[pareto.front_value(c.row, m, baseline) for m in objectives] for c in candidates])
            points = pareto.to_minimization(values, objectives, baseline)
            self._front = [c for c, on in zip(candidates, pareto.non_dominated(points)) if on]
            hv = pareto.hypervolume(points, pareto.reference_point(objectives))
        return candidates + [c for c in new if not c.feasible], hv

    def _parent_artifacts(self):
        """The parent run's artifact repository (MlflowClient.log_artifacts reads the run first)."""
        if self._parent_store is None:
            uri = self.client.get_run(self.parent_run_id).info.artifact_uri
            self._parent_store = get_artifact_repository(uri, tracking_uri=self.tracking_uri)
        return self._parent_store

    def _plot(self, objectives: dict[str, str], front_ids: set[str]) -> None:
        """pareto.png, pareto.html (every finished trial, the front marked) and hypervolume.png,
        drawn and logged on the plotting thread from what MLflow holds now."""
        rows = [c.row for c in self._finished_among(self._known_children().values(), objectives)]
        if not rows:
            return
        baseline, history, store = self.baseline_metrics(), self.hypervolume_history(), self._parent_artifacts()

        def draw():
            with tempfile.TemporaryDirectory() as d:
                folder = Path(d)
                pareto.plot_png(rows, front_ids, objectives, baseline, folder / "pareto.png")
                pareto.plot_html(rows, front_ids, objectives, baseline, folder / "pareto.html")
                pareto.plot_hypervolume(history, folder / "hypervolume.png")
                store.log_artifacts(d)

        if self._plots is None:
            self._plots = BackgroundPlots()
        self._plots.submit(draw)
        self._last_plot = time.monotonic()

    def update_pareto(self, objectives: dict[str, str], final: bool = False, plots: bool = True) -> "FrontState":
        """Bring the front up to date with the finished, feasible children; tag, measure and plot it.

        During the search the parent is written only when the front changes, and at least every
        PLOT_EVERY_S (each MLflow call costs the driver milliseconds per trial): the progress
        metrics (`hypervolume`, `finished_trials`, `pareto_size`, stamped when measured) wait
        until then, and the plots are redrawn on the interval only. `final` re-reads every child
        from MLflow (the final evaluation adds test metrics) and writes everything, the plots
        too unless `plots` is false (they show validation results only). The plots are drawn
        on a thread (search/background_plots.py); `finish` waits for them."""
        if final:
            self._children, self._front = None, None
        touched, hv = self._advance_front(objectives)
        front_ids = {c.run_id for c in self._front}
        for c in touched:
            flag = "true" if c.run_id in front_ids else "false"
            if c.pareto != flag:
                self.client.set_tag(c.run_id, "pareto", flag)
                c.pareto = flag
        front = sorted((c.row for c in self._front), key=lambda r: -r["robust_acc"])
        finished = self._finished_count
        self.queue_parent_metrics({"hypervolume": hv, "finished_trials": finished,
                                   "pareto_size": len(front_ids)}, step=finished)
        redraw = plots and (final or time.monotonic() - self._last_plot >= PLOT_EVERY_S)
        if final or redraw or front_ids != self._shown_front:
            self.client.log_batch(self.parent_run_id,  # one round trip: the queued metrics and the description
                                  metrics=self._take_pending_parent_metrics(),
                                  tags=[RunTag(NOTE_TAG, self._description(front, finished, hv, final))])
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "pareto.csv").write_text(pareto.front_csv(front))
                self._parent_artifacts().log_artifacts(d)
            if redraw:
                self._plot(objectives, front_ids)
            self._shown_front = front_ids
        return FrontState(front, finished, hv)


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


@dataclass
class FrontState:
    front: list[dict]  # rows of the front, best robust accuracy first
    finished: int  # finished child runs so far
    hypervolume: float


def stopped_early(run) -> bool:
    """A child run of a trial that mo_asha stopped (KILLED on purpose, not a lost trial)."""
    return run.info.status == "KILLED" and run.data.tags.get("stopped_early") == "true"


def child_run_name(params: dict) -> str:
    """What a trial tried, e.g. `pls_vip·filter·r0.63·it3`, and `·trades` when not fine-tuned naturally."""
    method = pareto.finetune_method_of(params)
    return (f"{params['criterion']}·{params['granularity']}·r{float(params['ratio']):.2f}·"
            f"it{params['iterations']}" + ("" if method == "natural" else f"·{method}"))


def trial_row(run_id: str, trial_id: str, params: dict[str, str], metrics: dict[str, float]) -> dict:
    """One child run as a flat dict: ids, params (typed from their logged strings), metrics."""
    return {"run_id": run_id, "trial_id": trial_id,
            "criterion": params.get("criterion", ""), "granularity": params.get("granularity", ""),
            "ratio": float(params.get("ratio", "nan")), "iterations": int(float(params.get("iterations", "0"))),
            "finetune_method": pareto.finetune_method_of(params), **metrics}


def run_row(run) -> dict:
    return trial_row(run.info.run_id, run.data.tags.get(TRIAL_TAG, ""), run.data.params, run.data.metrics)


def runs_page(tracking_uri: str, experiment_name: str | None = None) -> str | None:
    """The UI route of an experiment's runs table (by default, the experiment of the newest
    search in the store), or None when there is none. MLflow 3's UI opens an experiment on
    its GenAI overview, whatever the experiment's kind, unless the link asks for the
    machine-learning workflow."""
    client = MlflowClient(tracking_uri)
    if experiment_name:
        exp = client.get_experiment_by_name(experiment_name)
        experiment_id = exp.experiment_id if exp else None
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
        newest = client.search_runs(ids, f"tags.`{SEARCH_TAG}` = 'parent'", order_by=["attributes.start_time DESC"],
                                    max_results=1) if ids else []
        experiment_id = newest[0].info.experiment_id if newest else None
    return f"#/experiments/{experiment_id}/runs?workflowType=machine_learning" if experiment_id else None


def find_parent_run(tracking_uri: str, experiment_name: str, run_id: str | None = None):
    """The given parent run, or the newest one of the experiment."""
    client = MlflowClient(tracking_uri)
    if run_id:
        try:
            run = client.get_run(run_id)
        except MlflowException:
            raise LookupError(f"run-id: no run '{run_id}' at {tracking_uri}") from None
        if run.data.tags.get(SEARCH_TAG) != "parent":
            raise LookupError(f"run-id: run '{run_id}' is not a robustprune search (its parent run); "
                              f"omit --run-id for the newest search of the experiment")
        return run
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        raise LookupError(f"experiment: no MLflow experiment named '{experiment_name}' at {tracking_uri}")
    runs = client.search_runs([exp.experiment_id], f"tags.`{SEARCH_TAG}` = 'parent'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise LookupError(f"experiment: '{experiment_name}' has no robustprune search runs")
    return runs[0]
