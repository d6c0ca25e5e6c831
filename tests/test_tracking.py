"""The driver's MLflow bookkeeping per trial, on a real sqlite MLflow store: what each trial
writes, how few MLflow calls that takes, and when the parent's front views are rewritten."""
import collections
import json

import pytest
from mlflow.tracking import MlflowClient

from mlflow_store import store_at
from search.tracking.records import SearchRecords
from search.tracking.schema import NOTE_TAG

OBJECTIVES = {"flops": "min", "robust_acc": "max"}
BASELINE = {"flops": 1000.0, "robust_acc": 0.2, "clean_acc": 0.9}
WRITES = ("create_run", "log_batch", "set_terminated", "set_tag", "log_artifact", "log_artifacts", "get_run")


@pytest.fixture
def records(tmp_path):
    return SearchRecords.start(store_at(tmp_path / "mlflow.db"), "tracking", {"search": {"num_samples": 3}},
                         str(tmp_path / "exp"), BASELINE, {})


@pytest.fixture
def calls(records, monkeypatch):
    """How often each MLflow client method is called (the real methods still run)."""
    counted = collections.Counter()
    client = records.parent.client
    for name in WRITES:
        method = getattr(client, name)
        monkeypatch.setattr(client, name, lambda *a, _m=method, _n=name, **k: counted.update([_n]) or _m(*a, **k))
    return counted


def log(records, tmp_path, trial: str, flops: float, robust: float) -> str:
    folder = tmp_path / trial
    folder.mkdir()
    metrics = {"flops": flops, "robust_acc": robust, "clean_acc": 0.85, "trial_seconds": 1.0}
    (folder / "model.pt").write_bytes(b"weights")
    (folder / "metrics.json").write_text(json.dumps(metrics))
    params = {"criterion": "l1", "granularity": "filter", "ratio": 0.5, "iterations": 1, "seed": 0}
    return records.trials.log_finished(trial, params, metrics, folder, {"feasible": "true"})


def test_a_trial_is_one_child_run_with_its_files_and_few_mlflow_calls(records, calls, tmp_path):
    first = log(records, tmp_path, "t1", 500.0, 0.3)
    records.front.update(OBJECTIVES)  # also the first plots
    calls.clear()
    run_id = log(records, tmp_path, "t2", 450.0, 0.32)  # dominates t1
    records.front.update(OBJECTIVES)
    client = MlflowClient(records.parent.tracking_uri)
    child = client.get_run(run_id)
    assert child.info.status == "FINISHED" and child.data.tags["pareto"] == "true"
    assert client.get_run(first).data.tags["pareto"] == "false"
    assert child.data.params["ratio"] == "0.5" and child.data.metrics["robust_acc"] == 0.32
    assert {a.path for a in client.list_artifacts(run_id)} == {"model.pt", "metrics.json"}
    # the child: create, params and metrics, end; the front's two changed tags; the parent:
    # progress and description (pareto.csv goes straight to its artifact store). No run is read back.
    assert calls == {"create_run": 1, "log_batch": 2, "set_terminated": 1, "set_tag": 2}


def test_the_front_views_are_rewritten_when_the_front_changes(records, calls, tmp_path):
    client = MlflowClient(records.parent.tracking_uri)
    log(records, tmp_path, "t1", 500.0, 0.3)
    records.front.update(OBJECTIVES)
    calls.clear()
    log(records, tmp_path, "t2", 600.0, 0.25)  # dominated by t1: the front is the same
    state = records.front.update(OBJECTIVES)
    assert state.finished == 2
    assert calls == {"create_run": 1, "log_batch": 1, "set_terminated": 1}  # the child only
    parent = client.get_run(records.parent.run_id)
    assert "after 1 finished trials" in parent.data.tags[NOTE_TAG]  # the front it shows is still current

    t3 = log(records, tmp_path, "t3", 400.0, 0.35)  # dominates t1: a new front
    records.front.update(OBJECTIVES)
    parent = client.get_run(records.parent.run_id)
    assert "after 3 finished trials" in parent.data.tags[NOTE_TAG]
    # trial 2's progress went with trial 3's, stamped when it was measured
    history = sorted(client.get_metric_history(records.parent.run_id, "finished_trials"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == [(1, 1), (2, 2), (3, 3)]
    assert history[1].timestamp <= history[2].timestamp
    csv = client.download_artifacts(records.parent.run_id, "pareto.csv", str(tmp_path))
    assert t3 in open(csv).read()
    assert client.get_run(t3).data.tags["pareto"] == "true"


def test_queued_parent_metrics_ride_with_the_next_front_update_and_none_is_lost(records, calls, tmp_path):
    client = MlflowClient(records.parent.tracking_uri)
    for step in (1, 2):
        log(records, tmp_path, f"t{step}", 500.0 - step, 0.3 + step / 100)
        records.front.update(OBJECTIVES)
        records.parent.queue_metrics({"driver_bookkeeping_ms": 10.0 * step}, step=step)
    history = client.get_metric_history(records.parent.run_id, "driver_bookkeeping_ms")
    assert [(m.step, m.value) for m in history] == [(1, 10.0)]  # sent with trial 2's front update
    log_batches = calls["log_batch"]
    records.parent.finish()
    history = client.get_metric_history(records.parent.run_id, "driver_bookkeeping_ms")
    assert sorted((m.step, m.value) for m in history) == [(1, 10.0), (2, 20.0)]
    assert calls["log_batch"] == log_batches + 1
    assert client.get_run(records.parent.run_id).info.status == "FINISHED"


def test_more_queued_parent_metrics_than_one_mlflow_batch_takes_are_all_written(records, tmp_path):
    """Many short trials between two parent writes queue more metrics than MLflow takes in one
    batch (1,000): MlflowClient.log_batch splits them, so the parent run sends each queue in one call."""
    for step in range(1, 301):  # 300 trials' driver cost and progress, 5 metrics each
        records.parent.queue_metrics({"driver_bookkeeping_ms": step, "driver_rss_mb": 1.0, "hypervolume": 0.1,
                                      "finished_trials": step, "pareto_size": 1}, step=step)
    log(records, tmp_path, "t1", 500.0, 0.3)
    records.front.update(OBJECTIVES, plots=False)  # the front changes: the queue goes out with the description
    client = MlflowClient(records.parent.tracking_uri)
    history = client.get_metric_history(records.parent.run_id, "driver_bookkeeping_ms")
    assert sorted(m.step for m in history) == list(range(1, 301))
    assert "Hypervolume" in client.get_run(records.parent.run_id).data.tags[NOTE_TAG]
    for step in range(301, 601):  # and the same through the flush at the search's end
        records.parent.queue_metrics({f"m{i}": 0.0 for i in range(5)}, step=step)
    records.parent.finish()
    assert len(client.get_metric_history(records.parent.run_id, "m4")) == 300


def test_the_front_kept_trial_by_trial_is_the_front_of_every_trial(records, tmp_path):
    """The front is advanced with each trial's point (a dominated point never comes back);
    it must match the front and hypervolume recomputed from every child, and the tags."""
    import numpy as np

    from search.front.dominance import hypervolume_2d, non_dominated
    from search.front.objectives import reference_point, to_minimization

    rng = np.random.default_rng(3)
    for i in range(30):
        log(records, tmp_path, f"t{i}", float(rng.integers(100, 1000)), float(rng.integers(0, 20)) / 40)
        state = records.front.update(OBJECTIVES)
    children = records.trials.runs()
    points = to_minimization(np.array([[c.data.metrics[m] for m in OBJECTIVES] for c in children]), OBJECTIVES,
                             BASELINE)
    expected = {c.info.run_id for c, on in zip(children, non_dominated(points)) if on}
    assert {row["run_id"] for row in state.front} == expected and state.finished == 30
    assert state.hypervolume == pytest.approx(hypervolume_2d(points, reference_point(OBJECTIVES)))
    tagged = {c.info.run_id for c in records.trials.runs() if c.data.tags["pareto"] == "true"}
    assert tagged == expected
    final = records.front.update(OBJECTIVES, final=True)  # re-read from MLflow: the same front
    assert {row["run_id"] for row in final.front} == expected and final.hypervolume == state.hypervolume


def test_plots_are_drawn_off_the_callers_thread_and_the_parent_ends_after_them(records, tmp_path, monkeypatch):
    """A redraw returns at once (Tune's event loop does not wait on matplotlib); `finish`
    waits for it, so an ended parent run carries its plots."""
    import threading
    import time

    from search.front import plots

    drawn_on = []
    real_plot_png = plots.plot_png

    def slow_plot_png(*args):
        time.sleep(1.0)
        drawn_on.append(threading.current_thread())
        real_plot_png(*args)

    monkeypatch.setattr(plots, "plot_png", slow_plot_png)
    log(records, tmp_path, "t1", 500.0, 0.3)
    started = time.perf_counter()
    records.front.update(OBJECTIVES)  # the first front: a redraw
    assert time.perf_counter() - started < 0.8
    records.parent.finish()
    assert drawn_on and drawn_on[0] is not threading.main_thread()
    client = MlflowClient(records.parent.tracking_uri)
    assert {"pareto.png", "pareto.html", "hypervolume.png", "pareto.csv"} <= {
        a.path for a in client.list_artifacts(records.parent.run_id)}
    assert client.get_run(records.parent.run_id).info.status == "FINISHED"


def test_a_failed_drawing_is_a_warning_and_a_newer_redraw_still_lands(records, tmp_path, monkeypatch, capsys):
    from search.front import plots

    real_plot_png, failures = plots.plot_png, []

    def failing_once(*args):
        if not failures:
            failures.append(1)
            raise RuntimeError("no fonts")
        real_plot_png(*args)

    monkeypatch.setattr(plots, "plot_png", failing_once)
    log(records, tmp_path, "t1", 500.0, 0.3)
    records.front.update(OBJECTIVES)
    records.parent.finish()  # waits for the failed drawing: a warning, the run still ends
    assert "WARNING: the parent run's plots were not updated (RuntimeError('no fonts'))" in capsys.readouterr().out
    client = MlflowClient(records.parent.tracking_uri)
    assert "pareto.png" not in {a.path for a in client.list_artifacts(records.parent.run_id)}
    log(records, tmp_path, "t2", 400.0, 0.35)
    records.front.update(OBJECTIVES, final=True)
    records.parent.finish()
    assert "pareto.png" in {a.path for a in client.list_artifacts(records.parent.run_id)}


def test_a_redraw_still_waiting_is_superseded_by_a_newer_one():
    import threading

    from search.tracking.background_plots import BackgroundPlots

    plots, ran, release = BackgroundPlots(), [], threading.Event()
    plots.submit(lambda: (release.wait(5), ran.append("first")))
    plots.submit(lambda: ran.append("stale"))  # waits behind the first, then a newer one replaces it
    plots.submit(lambda: ran.append("newest"))
    release.set()
    plots.wait()
    assert ran == ["first", "newest"]


def test_the_update_after_the_final_evaluation_rewrites_the_front_views_without_redrawing(records, calls, tmp_path):
    """The front is the same before and after the final evaluation, but its test columns are
    new: the description and pareto.csv are rewritten; the plots (validation only) are not."""
    run_id = log(records, tmp_path, "t1", 500.0, 0.3)
    records.front.update(OBJECTIVES, final=True)
    records.tests.log(run_id, {"test_robust_acc": 0.271, "test_clean_acc": 0.812})
    redraws = []
    records.front.plot = lambda *args: redraws.append(args)
    records.front.update(OBJECTIVES, final=True, plots=False)
    records.parent.finish()
    client = MlflowClient(records.parent.tracking_uri)
    assert "0.271" in client.get_run(records.parent.run_id).data.tags[NOTE_TAG]
    assert "0.271" in open(client.download_artifacts(records.parent.run_id, "pareto.csv", str(tmp_path))).read()
    assert redraws == []


def test_a_three_objective_front_is_kept_tagged_and_measured_like_a_two_objective_one(tmp_path):
    """FLOPs, a latency and robust accuracy: a trial cheaper in one cost and dearer in the
    other is on the front beside the one it would lose to in two objectives."""
    import numpy as np

    from search.front.dominance import hypervolume, non_dominated
    from search.front.objectives import reference_point, to_minimization

    objectives = {"flops": "min", "latency_ms": "min", "robust_acc": "max"}
    baseline = {**BASELINE, "latency_ms": 10.0}
    records = SearchRecords.start(store_at(tmp_path / "mlflow.db"), "three", {"search": {"num_samples": 20}},
                            str(tmp_path / "exp"), baseline, {})
    rng = np.random.default_rng(5)
    for i in range(20):
        folder = tmp_path / f"t{i}"
        folder.mkdir()
        metrics = {"flops": float(rng.integers(100, 1000)), "latency_ms": float(rng.uniform(1, 10)),
                   "robust_acc": float(rng.integers(0, 20)) / 40, "clean_acc": 0.85, "trial_seconds": 1.0}
        (folder / "model.pt").write_bytes(b"weights")
        (folder / "metrics.json").write_text(json.dumps(metrics))
        records.trials.log_finished(f"t{i}", {"criterion": "l1", "granularity": "filter", "ratio": 0.5, "iterations": 1,
                                    "seed": 0}, metrics, folder, {"feasible": "true"})
        state = records.front.update(objectives)
    children = records.trials.runs()
    points = to_minimization(np.array([[c.data.metrics[m] for m in objectives] for c in children]), objectives,
                             baseline)
    expected = {c.info.run_id for c, on in zip(children, non_dominated(points)) if on}
    two_objective = {c.info.run_id for c, on in zip(children, non_dominated(points[:, [0, 2]])) if on}
    assert {row["run_id"] for row in state.front} == expected and two_objective < expected
    assert state.hypervolume == pytest.approx(hypervolume(points, reference_point(objectives)))
    assert state.hypervolume > 0
    assert {c.info.run_id for c in records.trials.runs() if c.data.tags["pareto"] == "true"} == expected
    records.parent.finish()
    assert {"pareto.png", "pareto.html"} <= {a.path for a in MlflowClient(records.parent.tracking_uri).list_artifacts(
        records.parent.run_id)}


def test_a_latency_front_compares_each_trials_ratio_not_its_milliseconds(tmp_path):
    """Measured in a real search (quickstart, two trials side by side, ONNX Runtime at batch 1):
    the baseline timed alone took 0.048 ms, beside one trial 0.069 ms. That trial's 0.049 ms
    is 1.02 times the first but 0.71 times its own baseline: the front compares the ratio."""
    objectives = {"latency_ms": "min", "robust_acc": "max"}
    records = SearchRecords.start(store_at(tmp_path / "mlflow.db"), "ratio", {"search": {"num_samples": 2}},
                            str(tmp_path / "exp"), {**BASELINE, "latency_ms": 0.048}, {})
    logged = {}
    for trial, latency, own_baseline, robust in (("slowed", 0.049, 0.069, 0.55), ("alone", 0.045, 0.047, 0.5)):
        folder = tmp_path / trial
        folder.mkdir()
        metrics = {"latency_ms": latency, "latency_ms_baseline": own_baseline, "flops": 500.0,
                   "latency_ratio": latency / own_baseline, "robust_acc": robust, "clean_acc": 0.85}
        (folder / "model.pt").write_bytes(b"weights")
        (folder / "metrics.json").write_text(json.dumps(metrics))
        logged[trial] = records.trials.log_finished(trial, {"criterion": "l1", "granularity": "filter", "ratio": 0.5,
                                                  "iterations": 1, "seed": 0}, metrics, folder, {"feasible": "true"})
    state = records.front.update(objectives)
    # by the ratio, "slowed" (0.71, robust 0.55) dominates "alone" (0.96, 0.5); over the logged
    # baseline's milliseconds it would be 1.02, outside the box, and "alone" alone would count
    assert {row["run_id"] for row in state.front} == {logged["slowed"]}
    assert state.hypervolume == pytest.approx((1 - 0.049 / 0.069) * 0.55)
    records.parent.finish()
