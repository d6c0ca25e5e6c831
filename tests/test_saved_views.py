"""The saved views' content (search/tracking/saved_views.py): columns that follow the
objectives, filters that select the right runs in a real sqlite store, the links `ui` and the
end of a search print. What MLflow's UI makes of them is checked in a real browser
(tests/test_e2e_search.py, tests/test_e2e_study.py)."""
import json

import pytest
from mlflow.tracking import MlflowClient

from mlflow_store import store_at
from search.commands.ui_links import print_ui_links
from search.tracking.lookup import ui_pages
from search.tracking.saved_views import SHARED_VIEW_PREFIX, metric_column, param_column, save_views, \
    saved_routes, search_views, study_views

FLOPS_SEARCH = {"robust_acc": "max", "flops": "min"}
LATENCY_SEARCH = {"robust_acc": "max", "latency_ms_torch_b1": "min"}


def _metrics(view) -> list[str]:
    return [c.removeprefix("metrics.`").removesuffix("`") for c in view.columns if c.startswith("metrics.")]


def test_the_columns_follow_the_objectives():
    front, trials = search_views("p", FLOPS_SEARCH, seeds=1)
    assert _metrics(front) == ["flops_reduction", "clean_acc", "robust_acc", "test_clean_acc", "test_robust_acc"]
    assert front.columns == trials.columns and front.columns[0] == param_column("criterion")
    assert front.order_by == trials.order_by == metric_column("robust_acc") and not front.ascending
    assert front.scatter == ("flops", "robust_acc")
    latency = search_views("p", LATENCY_SEARCH, seeds=1)[0]
    assert "latency_ratio_torch_b1" in _metrics(latency) and latency.scatter == ("latency_ratio_torch_b1", "robust_acc")
    clean = search_views("p", {"clean_acc": "max", "params": "min"}, seeds=1)[0]
    assert _metrics(clean)[:2] == ["flops_reduction", "params_reduction"] and clean.scatter == ("params", "clean_acc")
    assert clean.order_by == metric_column("clean_acc")


def test_with_seeds_the_front_shows_and_is_sorted_by_the_means():
    front, trials = search_views("p", FLOPS_SEARCH, seeds=3)
    assert {"robust_acc_mean", "test_robust_acc_mean", "clean_acc_mean", "seeds"} <= set(_metrics(front))
    assert front.order_by == metric_column("robust_acc_mean")
    assert trials.order_by == metric_column("robust_acc")  # most trials have no replicas, so no mean


@pytest.fixture
def store(tmp_path):
    client = MlflowClient(store_at(tmp_path / "mlflow.db"))
    experiment = client.create_experiment("views")

    def run(name, start_time=None, **tags):
        return client.create_run(experiment, run_name=name, tags=tags, start_time=start_time).info.run_id

    other = run("other search", start_time=1, **{"robustprune.search": "parent"})  # the older search
    parent = run("search", **{"robustprune.search": "parent"})
    runs = {"on front": run("on front", **{"mlflow.parentRunId": parent, "ray_trial_id": "a", "pareto": "true"}),
            "off front": run("off front", **{"mlflow.parentRunId": parent, "ray_trial_id": "b", "pareto": "false"}),
            "failed": run("failed", **{"mlflow.parentRunId": parent, "ray_trial_id": "c", "pareto": "false"})}
    run("replica", **{"mlflow.parentRunId": parent, "replica_of": runs["on front"]})
    run("other's front", **{"mlflow.parentRunId": other, "ray_trial_id": "d", "pareto": "true"})
    return client, experiment, parent, runs


def _names(client, experiment, view) -> set[str]:
    return {r.info.run_name for r in client.search_runs([experiment], view.search_filter)}


def test_the_filters_select_the_front_and_the_trials_of_this_search_only(store):
    client, experiment, parent, runs = store
    front, trials = search_views(parent, FLOPS_SEARCH, seeds=3)
    assert _names(client, experiment, front) == {"on front"}
    assert _names(client, experiment, trials) == set(runs)  # no replica, nothing of the other search


def test_a_studys_view_lists_its_cells_and_baselines_by_factor(store):
    client, experiment, _, _ = store
    study = client.create_run(experiment, run_name="study").info.run_id
    for name, role in (("lenet·l1·filter·r0.50·it1·s0", "cell"), ("lenet·baseline·s0", "baseline")):
        client.create_run(experiment, run_name=name, tags={"mlflow.parentRunId": study, "study_role": role})
    (cells,) = study_views(study)
    assert _names(client, experiment, cells) == {"lenet·l1·filter·r0.50·it1·s0", "lenet·baseline·s0"}
    assert cells.columns[:7] == tuple(map(param_column, ("setup", "criterion", "granularity", "ratio", "iterations",
                                                         "finetune_method", "seed")))
    assert cells.order_by == param_column("setup") and cells.ascending


def test_saved_views_are_experiment_tags_that_ui_links_to(store, capsys):
    client, experiment, parent, _ = store
    assert saved_routes(client, experiment, parent) == []  # a search logged before views were saved
    views = search_views(parent, FLOPS_SEARCH, seeds=1)
    save_views(client, experiment, views)
    tags = client.get_experiment(experiment).tags
    state = json.loads(tags[SHARED_VIEW_PREFIX + views[0].key])
    assert state["searchFilter"] == views[0].search_filter and state["selectedColumns"] == list(views[0].columns)
    assert state["compareRunCharts"][0]["xaxis"] == {"key": "flops", "type": "METRIC"}
    routes = dict(saved_routes(client, experiment, parent))
    assert list(routes) == ["front", "front chart", "trials", "trials chart"]
    assert routes["front"] == (f"#/experiments/{experiment}/runs?viewStateShareKey={views[0].key}"
                               "&workflowType=machine_learning")
    assert routes["trials chart"].endswith("&compareRunsMode=CHART")
    uri = client.tracking_uri
    assert dict(ui_pages(uri, "views"))["front"] == routes["front"]  # the newest search of the experiment
    assert ui_pages(uri, "no such experiment") is None

    class Outcome:
        tracking_uri, experiment_name, parent_run_id = uri, "views", parent

    print_ui_links(Outcome)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"open the UI with: robustprune ui --tracking-uri {uri} --experiment views")
    assert f"  front: http://127.0.0.1:5000/{routes['front']}" in lines
