"""The driver's Tune callback: logs each ended trial to MLflow, keeps the front live,
prints one line per trial.

It runs on Tune's event loop, on purpose: a trial's MLflow run is written before Tune
goes on, so the tracking store never runs ahead of the trials Tune has recorded (a
background thread was tried; a driver killed while MLflow held trials that Tune's
periodic experiment checkpoint did not have made `resume` run more trials than asked).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ray import tune

from ..config import sampled_point
from . import console
from .final_eval import FrontEvaluation
from .mo_asha import MultiObjectiveASHA
from ..tracking.records import SearchRecords


def resident_memory_mb() -> float:
    """This process's resident memory now (Linux /proc; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TrialLogger(tune.Callback):
    """Logs each finished trial to MLflow, keeps the front live, prints one line per trial."""

    def __init__(self, records: SearchRecords, objectives: dict[str, str], seed: int, total: int,
                 scheduler: MultiObjectiveASHA | None = None, final_eval: FrontEvaluation | None = None,
                 slots: int = 0):
        self.records, self.objectives, self.seed, self.total = records, objectives, seed, total
        self.scheduler = scheduler  # which trials it stopped (pickled with it into Tune's tuner.pkl for resume)
        self.final_eval, self.slots = final_eval, slots  # the front's final evaluation, started on idle slots
        self.front: list[dict] = []
        self.logged = 0

    def __getstate__(self):  # a resumed search evaluates its front after its trials, as usual
        return {**self.__dict__, "final_eval": None}

    def _params(self, config: dict) -> dict:
        return {**sampled_point(config), "seed": self.seed}

    def on_trial_complete(self, iteration, trials, trial, **info):
        # Tune counts a callback's exception as the trial's failure and reruns the trial:
        # a tracking problem is reported here instead, and the search goes on.
        start = time.perf_counter(), time.thread_time()
        try:
            if trial.checkpoint is not None:
                self._log_finished(trial.trial_id, trial.config, trial.last_result, trial.checkpoint)
            elif trial.trial_id in getattr(self.scheduler, "stopped", {}):
                self._log_stopped(trial.trial_id, trial.config, trial.last_result)
            else:  # cut short by search.time_budget_s: no full measurement to log
                print(f"[robustprune] trial {trial.trial_id} cut short by search.time_budget_s: not logged",
                      flush=True)
                return
            self._log_driver_cost(start)
        except Exception as e:
            print(f"[robustprune] WARNING: MLflow logging of trial {trial.trial_id} failed: {e!r}", flush=True)
        try:
            self._start_final_evaluation_on_idle_slots(trials, trial)
        except Exception as e:
            print(f"[robustprune] WARNING: the final evaluation could not start early ({e!r}); it runs after "
                  f"the search", flush=True)

    def _start_final_evaluation_on_idle_slots(self, trials, ended) -> None:
        """Every trial has started and fewer run than there are slots: no trial will take the
        slot this one freed, so the front so far starts its final evaluation there."""
        if self.final_eval is None or len(trials) < self.total:
            return
        busy = sum(t is not ended and t.status in (t.RUNNING, t.PENDING) for t in trials)
        if busy < self.slots:
            self.final_eval.start_early(self.front)

    def log_missing(self, grid) -> None:
        """Log every finished trial of Tune's results that MLflow lacks: a driver killed
        between Tune's record of a trial and its MLflow run leaves such a trial behind."""
        for result in grid:
            if result.error is None and result.checkpoint is not None:
                self._log_finished(result.metrics["trial_id"], result.config, result.metrics, result.checkpoint,
                                   quiet=True)

    def on_experiment_end(self, trials, **info):
        try:  # the last trial's driver cost; a tracking problem here must not fail the finished search
            self.records.parent.flush_metrics()
        except Exception as e:
            print(f"[robustprune] WARNING: MLflow logging of the driver's cost failed: {e!r}", flush=True)

    def _log_driver_cost(self, start: tuple[float, float]) -> None:
        """The driver's own cost per trial, as parent metrics by finished trial: the time this
        callback took (logging, front, plots), wall and the CPU time of its thread (which other
        load on the machine hardly changes), and the driver's resident memory. They go with the
        next trial's front update, so logging them costs no MLflow call of its own."""
        self.logged += 1
        wall, cpu = start
        self.records.parent.queue_metrics({"driver_bookkeeping_ms": (time.perf_counter() - wall) * 1000,
                                         "driver_bookkeeping_cpu_ms": (time.thread_time() - cpu) * 1000,
                                         "driver_rss_mb": resident_memory_mb()}, step=self.logged)

    def _log_finished(self, trial_id: str, config: dict, result: dict, checkpoint, quiet: bool = False) -> None:
        tags = {"ray_node_id": str(result.get("node_id", "")),
                "feasible": "true" if result.get("feasible", 1) else "false"}
        p = self._params(config)
        with checkpoint.as_directory() as d:
            metrics = json.loads((Path(d) / "metrics.json").read_text())
            run_id = self.records.trials.log_finished(trial_id, p, metrics, Path(d), tags)
        if run_id is None:
            if not quiet:
                print(f"[robustprune] already logged: trial {trial_id} (kept its MLflow run)", flush=True)
            return
        state = self.records.front.update(self.objectives)
        self.front = state.front
        console.trial_ended(len(state.front), state.hypervolume)
        on_front = any(r["run_id"] == run_id for r in state.front)
        print(f"[robustprune] trial {state.finished}/{self.total} {p['criterion']:>12} {p['granularity']:<6} "
              f"ratio={p['ratio']:.2f} it={p['iterations']} {p['finetune_method']} | "
              f"FLOPs -{metrics['flops_reduction']:.1%} | "
              f"val clean {metrics['clean_acc']:.3f} robust {metrics['robust_acc']:.3f} | "
              f"pareto {'yes' if on_front else 'no'} | hypervolume {state.hypervolume:.4f}", flush=True)

    def _log_stopped(self, trial_id: str, config: dict, result: dict) -> None:
        p = self._params(config)
        if self.records.trials.log_stopped(trial_id, p, result) is None:
            return
        console.trial_ended()
        print(f"[robustprune] trial {trial_id} {p['criterion']:>12} {p['granularity']:<6} ratio={p['ratio']:.2f} "
              f"it={p['iterations']} | stopped early by mo_asha after {result['step']} fine-tune epoch(s): "
              f"dominated at its rung (val robust {result['robust_acc']:.3f} on a subset)", flush=True)

    def on_trial_recover(self, iteration, trials, trial, **info):
        print(f"[robustprune] trial {trial.trial_id} failed (failure {trial.run_metadata.num_failures} of at most "
              f"{trial.max_failures}; Ray's log above says why), retrying in a fresh worker", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        error = trial.get_error()
        print(f"[robustprune] trial {trial.trial_id} FAILED: {error!r}"[:400], flush=True)
        console.trial_ended()
        try:
            self.records.trials.log_failed(trial.trial_id, self._params(trial.config), repr(error))
        except Exception as e:
            print(f"[robustprune] WARNING: MLflow logging of failed trial {trial.trial_id} failed: {e!r}", flush=True)
