"""The driver's Tune callback: logs each ended trial to MLflow, keeps the front live,
prints one line per trial.

Tune calls callbacks on its event loop, so whatever a callback does delays every other
trial's next step (start, result, stop). The callback therefore only copies what it needs
off the trial and hands the MLflow work to one background thread, which runs the jobs in
the order the trials ended; the experiment's end waits for it. A driver killed with jobs
still queued loses nothing for good: `resume` logs every trial Tune finished that MLflow
lacks.
"""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from ray import tune

from .config import sampled_point
from .mo_asha import MultiObjectiveASHA
from .tracking import Tracker


def resident_memory_mb() -> float:
    """This process's resident memory now (Linux /proc; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TrialLogger(tune.Callback):
    """Per ended trial: an MLflow child run (finished, stopped early by mo_asha, or failed),
    the live front, and the driver's own cost as parent metrics by logged trial:
    `driver_bookkeeping_ms` (time on Tune's event loop), `logging_ms` (the background
    thread's time on the trial: MLflow, front, plots), `logging_backlog` (trials still
    queued behind it) and `driver_rss_mb`."""

    def __init__(self, tracker: Tracker, objectives: dict[str, str], seed: int, total: int,
                 scheduler: MultiObjectiveASHA | None = None):
        self.tracker, self.objectives, self.seed, self.total = tracker, objectives, seed, total
        self.scheduler = scheduler  # which trials it stopped (pickled with it into Tune's tuner.pkl for resume)
        self.logged = 0
        self._executor: ThreadPoolExecutor | None = None
        self._queued = 0
        self._lock = threading.Lock()

    def __getstate__(self):  # Tune pickles its callbacks into the experiment's tuner.pkl
        return {**self.__dict__, "_executor": None, "_queued": 0, "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())

    # ------------------------------------------------------------------ Tune's event loop
    def on_trial_complete(self, iteration, trials, trial, **info):
        start = time.perf_counter()
        if trial.checkpoint is not None:
            job = self._job(self._log_finished, trial.trial_id, trial.config, dict(trial.last_result),
                            trial.checkpoint)
        elif trial.trial_id in getattr(self.scheduler, "stopped", {}):
            job = self._job(self._log_stopped, trial.trial_id, trial.config, dict(trial.last_result))
        else:  # cut short by search.time_budget_s: no full measurement to log
            print(f"[robustprune] trial {trial.trial_id} cut short by search.time_budget_s: not logged", flush=True)
            return
        self._submit(job, start)

    def on_trial_recover(self, iteration, trials, trial, **info):
        print(f"[robustprune] trial {trial.trial_id} failed (failure {trial.run_metadata.num_failures} of at most "
              f"{trial.max_failures}; Ray's log above says why), retrying in a fresh worker", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        error = trial.get_error()
        print(f"[robustprune] trial {trial.trial_id} FAILED: {error!r}"[:400], flush=True)
        self._submit(self._job(self.tracker.log_failed_trial, trial.trial_id, self._params(trial.config), repr(error)),
                     None)

    def on_experiment_end(self, trials, **info):
        """Tune's end (also on Ctrl+C or an error): every queued trial is logged first."""
        self.drain()

    def drain(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _submit(self, job: Callable[[], bool], loop_start: float | None) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robustprune-mlflow")
        with self._lock:
            self._queued += 1
        loop_ms = None if loop_start is None else (time.perf_counter() - loop_start) * 1000
        self._executor.submit(self._run, job, loop_ms)

    def _job(self, fn: Callable, trial_id: str, *args) -> Callable[[], bool]:
        def job() -> bool:
            try:
                return fn(trial_id, *args) is not False
            except Exception as e:  # a tracking problem is reported; the search goes on
                print(f"[robustprune] WARNING: MLflow logging of trial {trial_id} failed: {e!r}", flush=True)
                return False
        return job

    # ------------------------------------------------------------------ the logging thread
    def _run(self, job: Callable[[], bool], loop_ms: float | None) -> None:
        start = time.perf_counter()
        logged = job()
        with self._lock:
            self._queued -= 1
            backlog = self._queued
        if logged and loop_ms is not None:
            self.logged += 1
            try:
                self.tracker.log_parent_metrics({"driver_bookkeeping_ms": loop_ms,
                                                 "logging_ms": (time.perf_counter() - start) * 1000,
                                                 "logging_backlog": backlog,
                                                 "driver_rss_mb": resident_memory_mb()}, step=self.logged)
            except Exception as e:
                print(f"[robustprune] WARNING: driver cost not logged: {e!r}", flush=True)

    def _params(self, config: dict) -> dict:
        return {**sampled_point(config), "seed": self.seed}

    def log_missing(self, grid) -> None:
        """Log every finished trial of Tune's results that MLflow lacks: a driver killed
        between Tune's record of a trial and its MLflow run leaves such a trial behind."""
        for result in grid:
            if result.error is None and result.checkpoint is not None:
                self._log_finished(result.metrics["trial_id"], result.config, result.metrics, result.checkpoint,
                                   quiet=True)

    def _log_finished(self, trial_id: str, config: dict, result: dict, checkpoint, quiet: bool = False) -> bool:
        tags = {"ray_node_id": str(result.get("node_id", "")),
                "feasible": "true" if result.get("feasible", 1) else "false"}
        p = self._params(config)
        with checkpoint.as_directory() as d:
            metrics = json.loads((Path(d) / "metrics.json").read_text())
            run_id = self.tracker.log_trial(trial_id, p, metrics, Path(d), tags)
        if run_id is None:
            if not quiet:
                print(f"[robustprune] already logged: trial {trial_id} (kept its MLflow run)", flush=True)
            return False
        state = self.tracker.update_pareto(self.objectives)
        on_front = any(r["run_id"] == run_id for r in state.front)
        print(f"[robustprune] trial {state.finished}/{self.total} {p['criterion']:>12} {p['granularity']:<6} "
              f"ratio={p['ratio']:.2f} it={p['iterations']} | FLOPs -{metrics['flops_reduction']:.1%} | "
              f"val clean {metrics['clean_acc']:.3f} robust {metrics['robust_acc']:.3f} | "
              f"pareto {'yes' if on_front else 'no'} | hypervolume {state.hypervolume:.4f}", flush=True)
        return True

    def _log_stopped(self, trial_id: str, config: dict, result: dict) -> bool:
        p = self._params(config)
        if self.tracker.log_stopped_trial(trial_id, p, result) is None:
            return False
        print(f"[robustprune] trial {trial_id} {p['criterion']:>12} {p['granularity']:<6} ratio={p['ratio']:.2f} "
              f"it={p['iterations']} | stopped early by mo_asha after {result['step']} fine-tune epoch(s): "
              f"dominated at its rung (val robust {result['robust_acc']:.3f} on a subset)", flush=True)
        return True
