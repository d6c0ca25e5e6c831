"""Tuner assembly: baseline once, OptunaSearch multi-objective, concurrency, resources,
failures, MLflow logging on the driver, and resume.

The same code runs on a laptop (`ray.init()` starts a local Ray), on a `ray start`
cluster (`--address auto`) and on the cluster from cluster.yaml.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from pydantic import ValidationError
from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from trainables.config import format_validation_error
from trainables.errors import first_line
from trainables.trial import Baseline

from .accounting import summary, trial_slots, worker_time
from .baseline import baseline_test_metrics, get_baseline
from .console import libraries_logged_to, log_file_of, progress_bar, tune_verbosity
from ..config import SearchConfig
from .final_eval import FrontEvaluation, measure_on_test
from .lock import search_lock
from ..tracking.logged_trials import LoggedTrials, MeasuredPoint
from .mo_asha import MultiObjectiveASHA
from .no_repeats import NoRepeats
from .preflight import preflight, wait_for_cluster_resources
from .prestarted_workers import use_prestarted_workers
from .signals import reclaim_stop_signals
from ..front.table import front_notes
from ..tracking.report import log_report
from .space import SearchSpace, make_sampler, optuna_storage
from ..tracking.storage import read_bytes, write_bytes
from ..tracking.records import SearchRecords
from ..tracking.saved_views import save_views, search_views
from .trial_logger import TrialLogger
from .trial_worker import pruning_trial
from .warm_start import measured_points

SEARCH_FILE = "robustprune_search.json"  # in the experiment folder: what `resume` needs


@dataclass
class SearchOutcome:
    experiment_name: str
    experiment_path: str
    parent_run_id: str
    tracking_uri: str
    finished: int
    errored: int
    front: list[dict]
    complete: bool
    notes: dict[str, str]  # front models by run id: what their seeds say of them (front/table.py)


def init_ray(address: str | None) -> None:
    use_prestarted_workers()
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
        reclaim_stop_signals()


def reuse_workers(cfg: SearchConfig) -> bool:
    """Reuse a trial's Ray worker for the next trial (its imports cost seconds per trial)
    only when failed trials are not retried: Tune can hand a retry to a reused worker that
    has just died, and the stale failure then ends the trial for good (seen in
    tests/test_e2e_kill.py), so with `failures.max_retries > 0` every attempt gets a fresh one."""
    return cfg.failures.max_retries == 0


SCHEDULERS = {  # search.scheduler -> Tune scheduler (None: Tune's FIFO, every trial runs to its end)
    "fifo": lambda cfg: None,
    "mo_asha": lambda cfg: MultiObjectiveASHA({f"objective_{m}": mode for m, mode in cfg.search.objectives.items()},
                                              cfg.search.grace, cfg.search.reduction_factor),
}


def _trainable(cfg: SearchConfig, baseline: Baseline):
    trainable = tune.with_parameters(pruning_trial, baseline=baseline, search_config=cfg.model_dump(mode="json"))
    return tune.with_resources(trainable, {"cpu": cfg.resources.cpus_per_trial,
                                           "gpu": cfg.resources.gpus_per_trial})


class SearchFileError(Exception):
    """The folder given to `resume` holds no readable search file (one line, for the CLI)."""


def read_search_file(experiment_path: str, config_model=SearchConfig) -> tuple[dict, Any]:
    """The search file's record and its config validated as `config_model` (a study's file
    names its kind), or SearchFileError saying what is wrong."""
    where = f"experiment_path: {experiment_path}"
    try:
        data = read_bytes(experiment_path, SEARCH_FILE)
    except (OSError, ValueError) as e:  # pyarrow: unknown scheme, missing bucket, no permission
        raise SearchFileError(f"{where}: cannot read it ({first_line(e)})") from None
    if data is None:
        raise SearchFileError(f"{where}: no {SEARCH_FILE}; pass the folder that `robustprune run` printed")
    try:
        doc = json.loads(data)
        missing = [k for k in ("parent_run_id", "tracking_uri", "config") if k not in doc]
    except (ValueError, TypeError):
        raise SearchFileError(f"{where}: {SEARCH_FILE} is not valid JSON (damaged?)") from None
    if missing:
        raise SearchFileError(f"{where}: {SEARCH_FILE} lacks '{missing[0]}' (damaged?)")
    try:
        return doc, config_model.model_validate(doc["config"])
    except ValidationError as e:
        raise SearchFileError(f"{where}: {SEARCH_FILE} holds an invalid config: "
                              f"{format_validation_error(e)}") from None


def search_kind(experiment_path: str) -> str:
    """"study" for a study's folder, else "search" (what `resume` continues)."""
    try:
        return json.loads(read_bytes(experiment_path, SEARCH_FILE) or b"{}").get("kind", "search")
    except (OSError, ValueError, AttributeError):
        return "search"  # read_search_file then says what is wrong


def fit_tuner(tuner: tune.Tuner) -> tuple[tune.ResultGrid, bool]:
    """(Tune's results, whether Ctrl+C / SIGINT ended the fit).

    Tune ends `fit` on SIGINT as if the search were done: it returns normally and its cleanup
    marks the running trials TERMINATED, so once every trial exists the results alone look
    complete. Tune puts back the SIGINT handler it found only when that signal reached it,
    so a marker handler installed here and found back in place afterwards says the fit was
    interrupted. The marker itself raises KeyboardInterrupt, which is what a second Ctrl+C does."""
    tune_catches_sigint = not int(os.getenv("TUNE_DISABLE_SIGINT_HANDLER", "0"))
    if threading.current_thread() is not threading.main_thread() or not tune_catches_sigint:
        return tuner.fit(), False

    def interrupt_again(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt_again)
    try:
        grid = tuner.fit()
        return grid, signal.getsignal(signal.SIGINT) is interrupt_again
    finally:
        signal.signal(signal.SIGINT, previous)


def _fit(tuner: tune.Tuner, records: SearchRecords, cfg: SearchConfig, experiment_path: str,
         baseline: Baseline, baseline_test: dict, verbose: bool, searcher: NoRepeats | None = None,
         final_eval: FrontEvaluation | None = None) -> SearchOutcome:
    """Run the tuner, then (when every trial ran) the front's final test evaluation; the
    parent run never stays RUNNING, whatever happens. `searcher` is given for a search run
    in one go: its count of proposals answered from the cache and where its workers' time
    went are logged (a resumed search's searcher is inside Tune, and its wall time has a gap).
    `final_eval` is the one the search's TrialLogger may have started early."""
    final_eval = final_eval or FrontEvaluation(records, cfg, baseline)
    with records.parent.ending_on_error():
        records.tests.log_baseline(baseline_test)
        started = time.monotonic()
        # Counted by a query, not through `known()`: a resumed search's TrialLogger is Tune's
        # restored copy, with records of its own, so a cache filled here would miss what it logs
        # during the fit, and log_missing below would log those trials a second time.
        with progress_bar(cfg.search.num_samples, len(records.trials.runs()), "trial", verbose):
            grid, interrupted = fit_tuner(tuner)
        tune_wall_s = time.monotonic() - started
        TrialLogger(records, cfg.search.objectives, cfg.experiment.seed, cfg.search.num_samples).log_missing(grid)
        errored = grid.num_errors
        finished = sum(r.checkpoint is not None for r in grid)
        out_of_time = cfg.search.time_budget_s is not None and tune_wall_s >= cfg.search.time_budget_s
        # Interrupted (Ctrl+C, a lost driver) may leave trials neither terminated nor errored.
        # A resumed search also counts the trials it adopted (logged after Tune's checkpoint).
        complete = not interrupted and grid.num_terminated + errored == len(grid) and (
            out_of_time or len(grid) >= cfg.search.num_samples
            or len(grid) + len(_logged_outside(grid, records, cfg)) >= cfg.search.num_samples)
        front = records.front.update(cfg.search.objectives, final=True).front  # its plots: drawn meanwhile
        started = time.monotonic()
        # An unfinished search gets no final evaluation: what was started early is cancelled.
        evaluated, test_compute_s = final_eval.finish(front if complete and not cfg.search.dry_run else [])
        test_wall_s = time.monotonic() - started
        if evaluated:  # pareto.csv and the description with test columns (over seeds: the front on the means)
            front = records.front.update(cfg.search.objectives, final=True, plots=cfg.evaluation.seeds > 1).front
            records.tests.log_robustness_curves(front)
        if searcher is not None:
            _log_worker_time(records, cfg, tune_wall_s, test_wall_s, test_compute_s)
            records.parent.log_metrics({"proposals_answered_from_cache": searcher.answered_from_cache})
        try:
            log_report(records)
        except Exception as e:  # the search's results are logged; the page is a view of them
            print(f"[robustprune] WARNING: report.html not logged ({e!r}); `robustprune report` makes it", flush=True)
    records.parent.finish("FINISHED" if complete else "KILLED")
    return SearchOutcome(cfg.experiment.name, experiment_path, records.parent.run_id, records.parent.tracking_uri,
                         finished, errored, front, complete, front_notes(front, cfg.search.objectives))


def _logged_outside(grid: tune.ResultGrid, records: SearchRecords, cfg: SearchConfig) -> set[str]:
    """Trial ids the records logged (finished or stopped early) that Tune's results lack."""
    return set(LoggedTrials.of(records, cfg.search.objectives).read()) - {r.metrics.get("trial_id") for r in grid}


def _slots(cfg: SearchConfig) -> int:
    """How many trials run at once: max_concurrent, capped by what the cluster fits."""
    return trial_slots(cfg.search.max_concurrent, cfg.resources.cpus_per_trial, cfg.resources.gpus_per_trial,
                       ray.cluster_resources())


def _log_worker_time(records: SearchRecords, cfg: SearchConfig, tune_wall_s: float, test_wall_s: float,
                     test_compute_s: float) -> None:
    metrics = worker_time(records.trials.compute_seconds(), test_compute_s, tune_wall_s, test_wall_s,
                          records.parent.seconds(), _slots(cfg))
    records.parent.log_metrics(metrics)
    print(f"[robustprune] {summary(metrics)}", flush=True)


def _baseline_for(cfg: SearchConfig) -> tuple[Baseline, dict, bool]:
    """(the baseline, its final test evaluation, reused): both cached under the storage path,
    measured (as Ray tasks) where missing, before the search starts."""
    storage, template, device_type = (cfg.experiment.resolved_storage_path(), cfg.fixed_trial_config(),
                                      cfg.trial_device_type())
    baseline, reused = get_baseline(storage, template, device_type, cfg.resources.cpus_per_trial,
                                    cfg.resources.gpus_per_trial)
    test, _ = baseline_test_metrics(storage, template, device_type, baseline,
                                    lambda payload: measure_on_test({"baseline": payload}, cfg)["baseline"])
    return baseline, test, reused


def _resolved_records(cfg: SearchConfig) -> dict:
    """Resolved attacks (keyed by name), split sizes, seeds, criterion parameters and training
    methods, for the parent's params."""
    records = {**cfg.fixed_trial_config().records(), "criterion_params": cfg.resolved_criterion_params(),
               "training_methods": cfg.resolved_training_methods()}
    for key in ("attacks", "final_attacks"):
        records[key] = {r["name"]: {k: v for k, v in r.items() if k != "name"} for r in records[key]}
    return records


def _searcher(cfg: SearchConfig, name: str, records: SearchRecords, warm: list[MeasuredPoint]) -> NoRepeats:
    """Optuna (multi-objective, its study in an RDB storage when there is one) behind the
    no-repeat cache, seeded with a warm start's points."""
    objectives = cfg.search.objectives
    objective_keys = [f"objective_{m}" for m in objectives]
    space = SearchSpace(cfg.space)
    study_storage = cfg.resolved_optuna_storage()
    searcher = NoRepeats(OptunaSearch(space=space, metric=objective_keys, mode=list(objectives.values()),
                                      sampler=make_sampler(cfg.search, cfg.experiment.seed), study_name=name,
                                      storage=optuna_storage(study_storage)), objective_keys,
                         space, cfg.experiment.seed, cfg.search.num_samples,
                         LoggedTrials.of(records, objectives))
    records.parent.set_tags({"optuna_storage": study_storage or "in memory", "optuna_study": name})
    if cfg.search.warm_start:
        seeded = searcher.add_measured(warm)
        records.parent.log_metrics({"warm_start_points": seeded})
        print(f"[robustprune] warm start: {seeded} measured points of '{cfg.search.warm_start}' seed the "
              f"sampler ({len(warm) - seeded} outside this space)", flush=True)
    return searcher


def run_search(cfg: SearchConfig, address: str | None = None, verbose: bool = False) -> SearchOutcome:
    """A new search; `verbose` prints Tune's tables and the libraries' logs (console.py)."""
    preflight(cfg, address)
    storage = cfg.experiment.resolved_storage_path()
    name = f"{cfg.experiment.name}_{time.strftime('%Y%m%d-%H%M%S')}"
    experiment_path = f"{storage.rstrip('/')}/{name}"
    with libraries_logged_to(log_file_of(experiment_path, name), verbose):
        return _start_search(cfg, address, verbose, storage, name, experiment_path)


def _start_search(cfg: SearchConfig, address: str | None, verbose: bool, storage: str, name: str,
                  experiment_path: str) -> SearchOutcome:
    warm = measured_points(cfg.experiment.resolved_tracking_uri(), cfg) if cfg.search.warm_start else []
    init_ray(address)
    wait_for_cluster_resources(cfg, ray.cluster_resources)
    baseline, baseline_test, reused = _baseline_for(cfg)
    print(f"[robustprune] baseline {cfg.model.name} on {cfg.data.name}: clean {baseline.metrics['clean_acc']:.3f} "
          f"robust {baseline.metrics['robust_acc']:.3f} (validation), "
          f"test robust {baseline_test['test_robust_acc']:.3f} ({'reused' if reused else 'trained'})", flush=True)
    with search_lock(experiment_path):
        uri = cfg.experiment.resolved_tracking_uri()
        config_doc = cfg.model_dump(mode="json")
        records = SearchRecords.start(uri, cfg.experiment.name, config_doc, experiment_path, baseline.metrics,
                                _resolved_records(cfg))
        with records.parent.ending_on_error():
            record = {"parent_run_id": records.parent.run_id, "tracking_uri": uri, "config": config_doc}
            write_bytes(experiment_path, SEARCH_FILE, json.dumps(record, indent=2).encode())
            objectives = cfg.search.objectives
            _save_views(records, cfg)
            searcher = _searcher(cfg, name, records, warm)
            scheduler = SCHEDULERS[cfg.search.scheduler](cfg)
            final_eval = None if cfg.search.dry_run else FrontEvaluation(records, cfg, baseline)
            tuner = tune.Tuner(
                _trainable(cfg, baseline),
                tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, cfg.search.max_concurrent),
                                            scheduler=scheduler, num_samples=cfg.search.num_samples,
                                            time_budget_s=cfg.search.time_budget_s,
                                            reuse_actors=reuse_workers(cfg)),
                run_config=tune.RunConfig(
                    name=name, storage_path=storage,
                    failure_config=tune.FailureConfig(max_failures=cfg.failures.max_retries),
                    callbacks=[TrialLogger(records, objectives, cfg.experiment.seed, cfg.search.num_samples,
                                           scheduler, final_eval, _slots(cfg))],
                    verbose=tune_verbosity(verbose)))  # our one-line summaries come from TrialLogger
        print(f"[robustprune] experiment {experiment_path} | MLflow run {records.parent.run_id} at {uri}",
              flush=True)
        return _fit(tuner, records, cfg, experiment_path, baseline, baseline_test, verbose, searcher, final_eval)


def _save_views(records: SearchRecords, cfg: SearchConfig) -> None:
    parent = records.parent
    save_views(parent.client, parent.experiment_id,
               search_views(parent.run_id, cfg.search.objectives, cfg.evaluation.seeds))


def absolute_experiment_path(path: str) -> str:
    return path if "://" in path else str(Path(path).resolve())


def resume_search(experiment_path: str, address: str | None = None, verbose: bool = False) -> SearchOutcome:
    """Continue an interrupted search: finished trials are kept, unfinished ones rerun."""
    experiment_path = absolute_experiment_path(experiment_path)
    doc, cfg = read_search_file(experiment_path)
    preflight(cfg, address, doc["tracking_uri"])
    with search_lock(experiment_path), libraries_logged_to(log_file_of(experiment_path, cfg.experiment.name),
                                                           verbose):
        init_ray(address)
        wait_for_cluster_resources(cfg, ray.cluster_resources)
        baseline, baseline_test, _ = _baseline_for(cfg)
        records = SearchRecords.reopen(doc["tracking_uri"], doc["parent_run_id"])
        _save_views(records, cfg)  # a search from before saved views gets them too
        tuner = tune.Tuner.restore(experiment_path, trainable=_trainable(cfg, baseline), resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
        print(f"[robustprune] resuming {experiment_path} | MLflow run {records.parent.run_id}", flush=True)
        return _fit(tuner, records, cfg, experiment_path, baseline, baseline_test, verbose)
