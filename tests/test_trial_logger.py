"""The driver's callback hands MLflow work to one background thread: Tune's event loop is
held for a copy of the trial, not for the logging; trials are logged in the order they
ended; the experiment's end waits for the queue; a logging failure is a warning."""
import json
import pickle
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

from search.trial_logger import TrialLogger
from search.tracking import FrontState

SLOW_S = 0.3


class Checkpoint:
    def __init__(self, folder):
        self.folder = folder

    @contextmanager
    def as_directory(self):
        yield str(self.folder)


class SlowTracker:
    """Records what it is asked to log; every child run takes SLOW_S (a slow MLflow store)."""

    def __init__(self, fail_on: str | None = None):
        self.children, self.parent_metrics, self.threads, self.fail_on = [], [], set(), fail_on

    def log_trial(self, trial_id, params, metrics, folder, tags):
        self.threads.add(threading.current_thread().name)
        time.sleep(SLOW_S)
        if trial_id == self.fail_on:
            raise ConnectionError("store down")
        self.children.append(("finished", trial_id))
        return f"run-{trial_id}"

    def update_pareto(self, objectives):
        return FrontState([], len(self.children), 0.0)

    def log_stopped_trial(self, trial_id, params, result):
        self.children.append(("stopped", trial_id))
        return f"run-{trial_id}"

    def log_parent_metrics(self, metrics, step=0):
        self.parent_metrics.append((step, metrics))


def trial(trial_id, tmp_path, finished=True):
    folder = tmp_path / trial_id
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"flops_reduction": 0.5, "clean_acc": 0.9, "robust_acc": 0.4}))
    config = {"granularity": "filter", "criterion": "l1", "ratio": 0.5, "iterations": 1, "finetune_epochs": 1}
    return SimpleNamespace(trial_id=trial_id, config=config, checkpoint=Checkpoint(folder) if finished else None,
                           last_result={"step": 1, "robust_acc": 0.3, "feasible": 1})


def logger_for(tracker, stopped=()):
    return TrialLogger(tracker, {"flops": "min", "robust_acc": "max"}, 0, 8,
                       scheduler=SimpleNamespace(stopped={t: 1 for t in stopped}))


def test_the_event_loop_is_not_held_by_logging_and_the_end_waits_for_it(tmp_path):
    tracker = SlowTracker()
    logger = logger_for(tracker, stopped={"t2"})
    trials = [trial("t0", tmp_path), trial("t1", tmp_path), trial("t2", tmp_path, finished=False)]
    start = time.perf_counter()
    for t in trials:
        logger.on_trial_complete(0, trials, t)
    held = time.perf_counter() - start
    assert held < SLOW_S, held  # two slow child runs queued, none waited for
    logger.on_experiment_end(trials)
    assert tracker.children == [("finished", "t0"), ("finished", "t1"), ("stopped", "t2")]  # in order
    assert tracker.threads == {"robustprune-mlflow_0"}
    steps = [step for step, _ in tracker.parent_metrics]
    assert steps == [1, 2, 3]
    first = tracker.parent_metrics[0][1]
    assert first["driver_bookkeeping_ms"] < SLOW_S * 1000 <= first["logging_ms"]
    assert [m["logging_backlog"] for _, m in tracker.parent_metrics] == [2, 1, 0]


def test_a_logging_failure_is_a_warning_and_the_next_trial_is_logged(tmp_path, capsys):
    tracker = SlowTracker(fail_on="t0")
    logger = logger_for(tracker)
    trials = [trial("t0", tmp_path), trial("t1", tmp_path)]
    for t in trials:
        logger.on_trial_complete(0, trials, t)
    logger.on_experiment_end(trials)
    assert tracker.children == [("finished", "t1")]
    assert "WARNING: MLflow logging of trial t0 failed: ConnectionError('store down')" in capsys.readouterr().out
    assert [step for step, _ in tracker.parent_metrics] == [1]  # the driver's cost of logged trials only


def test_the_logger_pickles_without_its_thread(tmp_path):
    tracker = SlowTracker()
    logger = logger_for(tracker)
    logger.on_trial_complete(0, [], trial("t0", tmp_path))
    tracker_free = pickle.loads(pickle.dumps(logger_for(None)))  # Tune pickles callbacks into tuner.pkl
    assert tracker_free._executor is None
    copy = pickle.loads(pickle.dumps(logger))
    assert copy._executor is None and copy._queued == 0
    logger.drain()
    assert tracker.children == [("finished", "t0")]
