"""Search efficiency, end to end (local Ray, sqlite MLflow): MO-ASHA stops dominated real
trials early; a second search with the same settings reuses the first one's baseline, is
warm-started with its points, proposes none of them again, and is ended by its time
budget, finished with what it measured."""
import optuna
import pytest
from mlflow.tracking import MlflowClient

from e2e_helpers import run_cli, search_runs, tiny_config, undocumented_metrics

pytestmark = pytest.mark.e2e


def _point(run) -> tuple:
    p = run.data.params
    return p["granularity"], p["criterion"], round(float(p["ratio"]), 6), p["iterations"], p["finetune_epochs"]


def test_mo_asha_stops_dominated_trials_then_a_warm_start_continues_until_its_time_budget(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = tiny_config(tmp_path, "first", 8, space={"iterations": [2, 3]},
                        search={"scheduler": "mo_asha", "reduction_factor": 2, "rung_eval_size": 60})
    proc = run_cli("run", str(first), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first_out = proc.stdout
    parent, children = search_runs(uri, "first")
    assert parent.info.status == "FINISHED" and len(children) == 8
    stopped = [c for c in children if c.data.tags.get("stopped_early") == "true"]
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert stopped and finished and len(stopped) + len(finished) == 8, proc.stdout[-3000:]
    for run in stopped:
        assert run.info.status == "KILLED" and run.data.tags["pareto"] == "false"
        assert 1 <= run.data.metrics["rung_step"] <= int(run.data.params["iterations"])
        assert 0 <= run.data.metrics["rung_robust_acc"] <= run.data.metrics["rung_clean_acc"] <= 1
        assert run.data.metrics["flops"] < parent.data.metrics["flops_baseline"]  # the cost it would have ended with
        assert "robust_acc" not in run.data.metrics  # never measured in full: no number to mistake for one
    front = [c for c in finished if c.data.tags["pareto"] == "true"]
    assert front and all("test_robust_acc" in c.data.metrics for c in front)
    assert proc.stdout.count("stopped early by mo_asha") == len(stopped)
    assert not undocumented_metrics(uri, "first")  # the rung metrics are in the metrics reference
    study = optuna.load_study(study_name=parent.data.tags["optuna_study"], storage=parent.data.tags["optuna_storage"])
    assert parent.data.tags["optuna_storage"] == f"sqlite:///{tmp_path / 'optuna.db'}"  # beside the MLflow store
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) >= 8  # for optuna-dashboard

    # What the warm start and the time budget change is which points are proposed and when
    # the search ends: no-op trials (search.dry_run) show both. 400 trials cannot fit in 30 s
    # (the soak's 200 take over a minute); 15 s saw none finish once, its workers' start-up
    # slowed by the tests beside it.
    second = tiny_config(tmp_path, "second", 400, space={"iterations": [2, 3]},
                         search={"warm_start": "first", "dry_run": True, "time_budget_s": 30})
    proc = run_cli("run", str(second), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"warm start: {len(finished)} measured points of 'first' seed the sampler" in proc.stdout
    assert "(trained)" in first_out and "(reused)" in proc.stdout  # same settings: the first baseline
    parent2, children2 = search_runs(uri, "second")
    assert parent2.info.status == "FINISHED" and 1 <= len(children2) < 400
    assert all(c.info.status == "FINISHED" for c in children2)
    assert MlflowClient(uri).get_metric_history(parent2.info.run_id, "finished_trials")[-1].value == len(children2)
    assert parent2.data.metrics["warm_start_points"] == len(finished)
    assert not undocumented_metrics(uri, "second")
    assert not {_point(c) for c in children2} & {_point(c) for c in finished}  # nothing measured again
