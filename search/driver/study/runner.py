"""`robustprune study`: every cell of the grid is one trial of the search's trial engine,
scheduled by Ray Tune across the cluster (a grid: no sampler), with the search's baselines
(trained once per setup and seed, cached), tracking and final evaluation.

MLflow is the study's record: one parent run, one child run per cell and per baseline. A
resumed study runs the cells MLflow lacks, so no cell is measured twice, whatever Tune's
own checkpoint held when the driver stopped.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ray
import torch
from ray import tune

from trainables.trial import Baseline

from ...tracking.records import SearchRecords
from ..console import libraries_logged_to, log_file_of, progress_bar, tune_verbosity
from ...tracking.saved_views import save_views, study_views
from ...tracking.schema import KIND_TAG, ROLE_TAG, numeric_metrics
from ...tracking.storage import write_bytes
from ...tracking.study_report import log_study_outputs
from ..accounting import summary, trial_slots, worker_time
from ..baseline import BaselineRequest, cached_test_metrics, get_baselines, save_test_metrics
from ..final_eval import COMPUTE_METRIC, joined_on_test, submit_on_test
from ..lock import search_lock
from ..preflight import preflight, wait_for_cluster_resources
from ..runner import SEARCH_FILE, fit_tuner, init_ray, read_search_file, reuse_workers
from ..trial_worker import study_cell
from .cells import SetupPlan, plan
from .config import StudyConfig
from .logger import StudyLogger


@dataclass
class StudyOutcome:
    experiment_name: str
    experiment_path: str
    parent_run_id: str
    tracking_uri: str
    cells: int  # runnable cells
    logged: int  # of them, with a finished run
    failed: int  # of them, with a failed run (a resume does not run them again, as a search's)
    summary: str
    complete: bool


def _configs(plans: list[SetupPlan]) -> dict:
    """The search config of every setup and seed, keyed "<setup>/s<seed>"."""
    return {f"{p.setup.name}/s{seed}": cfg for p in plans for seed, cfg in p.configs.items()}


class StudyBaselines:
    """Every setup x seed's baseline: trained (at once, on the cluster) or reused from the
    cache before the cells start; their final test evaluations submitted then, to run beside
    the first cells, and each baseline logged as a run of its own once that is measured."""

    def __init__(self, configs: dict):
        self.configs = configs
        self.requests = {key: BaselineRequest(cfg.experiment.resolved_storage_path(), cfg.fixed_trial_config(),
                                              cfg.trial_device_type(), cfg.resources.cpus_per_trial,
                                              cfg.resources.gpus_per_trial) for key, cfg in configs.items()}
        self.trained = get_baselines(self.requests)
        self.tests = {key: cached_test_metrics(r.storage_path, r.cfg, r.device_type)
                      for key, r in self.requests.items()}
        self.pending = submit_on_test({key: (self.trained[key][0].payload, configs[key])
                                       for key, test in self.tests.items() if test is None})

    @property
    def models(self) -> dict[str, Baseline]:
        return {key: baseline for key, (baseline, _, _) in self.trained.items()}

    def log(self, records: SearchRecords) -> float:
        """Wait for the test evaluations, cache them, log every baseline run (once); the worker
        seconds the baselines took."""
        measured = joined_on_test(self.pending)
        for key, metrics in measured.items():
            r = self.requests[key]
            save_test_metrics(r.storage_path, r.cfg, r.device_type, metrics)
            self.tests[key] = metrics
        for key, (baseline, _, _) in self.trained.items():
            _log_baseline_run(records, key, baseline, self.tests[key])
        return sum(s for _, _, s in self.trained.values()) + sum(m[COMPUTE_METRIC] for m in measured.values())


def _log_baseline_run(records: SearchRecords, key: str, baseline: Baseline, test: dict) -> None:
    setup, seed = key.rsplit("/s", 1)
    params = {"setup": setup, "criterion": "baseline", "granularity": "none", "ratio": 0.0, "iterations": 0,
              "finetune_method": "none", "seed": int(seed)}
    metrics = {**baseline.metrics, **numeric_metrics(test), "flops_reduction": 0.0, "params_reduction": 0.0}
    with tempfile.TemporaryDirectory() as d:
        torch.save(baseline.payload, Path(d) / "model.pt")
        (Path(d) / "metrics.json").write_text(json.dumps({**metrics, "robustness_curve": test.get(
            "robustness_curve", [])}, indent=2))
        run_id = records.trials.log_finished(f"baseline/{key}", params, metrics, Path(d), {ROLE_TAG: "baseline"})
    if run_id is not None:
        records.tests.log(run_id, {"robustness_curve": test.get("robustness_curve", [])})


def _slots(cfg: StudyConfig) -> int:
    most = cfg.study.max_concurrent or 10 ** 6
    return trial_slots(most, cfg.resources.cpus_per_trial, cfg.resources.gpus_per_trial, ray.cluster_resources())


def _run_cells(cfg: StudyConfig, plans: list[SetupPlan], records: SearchRecords, experiment_path: str,
               verbose: bool) -> StudyOutcome:
    """Baselines, then every cell MLflow lacks, then the statistics; the parent FINISHED when
    every runnable cell has its run, else KILLED (resumable)."""
    started = time.monotonic()
    configs = _configs(plans)
    any_cfg = next(iter(configs.values()))
    baselines = StudyBaselines(configs)
    runnable = [c for p in plans for c in p.runnable]
    slots = _slots(cfg)
    done = set(records.trials.known())  # finished, and failed (not run again, as a search's failed trials)
    todo = [c for c in runnable if c.key not in done]
    print(f"[robustprune] study: {len(runnable)} cells, {len(runnable) - len(todo)} already measured, "
          f"{len(todo)} to run on {slots} slots", flush=True)
    if todo:
        trainable = tune.with_parameters(study_cell, baselines=baselines.models,
                                         search_configs={k: c.model_dump(mode="json") for k, c in configs.items()})
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": cfg.resources.cpus_per_trial, "gpu": cfg.resources.gpus_per_trial}),
            param_space={"cell": tune.grid_search([c.as_dict() for c in todo])},
            tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=slots,
                                        reuse_actors=reuse_workers(any_cfg)),
            run_config=tune.RunConfig(
                name=f"{Path(experiment_path).name}_cells_{time.strftime('%H%M%S')}",
                storage_path=cfg.experiment.resolved_storage_path(),
                failure_config=tune.FailureConfig(max_failures=cfg.failures.max_retries),
                callbacks=[StudyLogger(records, cfg.finetune.epochs, len(runnable))],
                verbose=tune_verbosity(verbose)))
        with progress_bar(len(runnable), len(runnable) - len(todo), "cell", verbose):
            _, interrupted = fit_tuner(tuner)
        if interrupted:
            raise KeyboardInterrupt
    baseline_s = baselines.log(records)
    records.trials.forget()
    status = {key: child.status for key, child in records.trials.known().items()}
    logged = [c for c in runnable if status.get(c.key) == "FINISHED"]
    failed = [c for c in runnable if status.get(c.key) == "FAILED"]
    stats = log_study_outputs(records)
    cell_s = sum(r.data.metrics.get("cell_seconds", 0.0) for r in records.trials.runs("FINISHED"))
    metrics = worker_time(cell_s, baseline_s, time.monotonic() - started, 0.0, records.parent.seconds(), slots)
    records.parent.log_metrics(metrics)
    print(f"[robustprune] {summary(metrics)}", flush=True)
    complete = len(logged) + len(failed) == len(runnable)
    records.parent.finish("FINISHED" if complete else "KILLED")
    return StudyOutcome(cfg.experiment.name, experiment_path, records.parent.run_id, records.parent.tracking_uri,
                        len(runnable), len(logged), len(failed), stats["summary"], complete)


def run_study(cfg: StudyConfig, address: str | None = None, verbose: bool = False) -> StudyOutcome:
    plans = plan(cfg)  # ConfigError (one line) before Ray or MLflow is touched
    for p in plans:
        if p.configs:
            preflight(next(iter(p.configs.values())), address)
    any_cfg = next(cfg for p in plans for cfg in p.configs.values())
    name = f"{cfg.experiment.name}_{time.strftime('%Y%m%d-%H%M%S')}"
    experiment_path = f"{cfg.experiment.resolved_storage_path().rstrip('/')}/{name}"
    uri = cfg.experiment.resolved_tracking_uri()
    with libraries_logged_to(log_file_of(experiment_path, name), verbose), search_lock(experiment_path):
        init_ray(address)
        wait_for_cluster_resources(any_cfg, ray.cluster_resources)
        doc = cfg.model_dump(mode="json")
        records = SearchRecords.start(uri, cfg.experiment.name, doc, experiment_path, {}, {
            "cells": sum(len(p.runnable) for p in plans), "not_applicable": {
                p.setup.name: p.not_applicable for p in plans if p.not_applicable}})
        with records.parent.ending_on_error():
            records.parent.set_tags({KIND_TAG: "study"})
            save_views(records.parent.client, records.parent.experiment_id, study_views(records.parent.run_id))
            record = {"kind": "study", "parent_run_id": records.parent.run_id, "tracking_uri": uri, "config": doc}
            write_bytes(experiment_path, SEARCH_FILE, json.dumps(record, indent=2).encode())
            print(f"[robustprune] study {experiment_path} | MLflow run {records.parent.run_id} at {uri}", flush=True)
            return _run_cells(cfg, plans, records, experiment_path, verbose)


def resume_study(experiment_path: str, address: str | None = None, verbose: bool = False) -> StudyOutcome:
    """Continue an interrupted study: the cells MLflow holds are kept, the others run."""
    doc, cfg = read_search_file(experiment_path, StudyConfig)
    plans = plan(cfg)
    for p in plans:
        if p.configs:
            preflight(next(iter(p.configs.values())), address, doc["tracking_uri"])
    with libraries_logged_to(log_file_of(experiment_path, cfg.experiment.name), verbose), \
            search_lock(experiment_path):
        init_ray(address)
        records = SearchRecords.reopen(doc["tracking_uri"], doc["parent_run_id"])
        with records.parent.ending_on_error():
            print(f"[robustprune] resuming study {experiment_path} | MLflow run {records.parent.run_id}", flush=True)
            return _run_cells(cfg, plans, records, experiment_path, verbose)
