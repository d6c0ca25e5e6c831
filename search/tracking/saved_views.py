"""Saved views of a search in MLflow's UI: its front and its trials (a study: its cells), each
with the columns that matter, sorted, and a scatter of cost against accuracy.

MLflow's runs page loads a *shared view* from the experiment tag `mlflow.sharedViewState.<key>`
when its link carries `viewStateShareKey=<key>`: one flat JSON object of the page's search
facets (filter, order) and UI state (columns, charts). That is MLflow's UI state, not a
public API; tests/test_e2e_views.py opens every link in Chromium and reads the rendered page,
so an MLflow upgrade that changes the format fails there first. The table and the chart are
two modes of the same view (`compareRunsMode`, a URL parameter)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from trainables.latency import is_latency, ratio_key

from ..front.objectives import accuracy_of, costs_of
from .schema import PARENT_TAG, ROLE_TAG, TRIAL_TAG

SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
SECTION_ID = "robustprune-section"
COST_COLUMNS = {"flops": "flops_reduction", "macs": "flops_reduction", "params": "params_reduction"}
TRIAL_PARAMS = ("criterion", "granularity", "ratio", "iterations", "finetune_method")
ACCURACIES = ("clean_acc", "robust_acc", "test_clean_acc", "test_robust_acc")
STUDY_PARAMS = ("setup", "criterion", "granularity", "ratio", "iterations", "finetune_method", "seed")


def param_column(name: str) -> str:
    return f"params.`{name}`"


def metric_column(name: str) -> str:
    return f"metrics.`{name}`"


DURATION_COLUMN = "attributes.`Duration`"


@dataclass(frozen=True)
class SavedView:
    name: str  # what `robustprune ui` calls it: front, trials, cells
    key: str  # the share key: one per view of one search
    search_filter: str
    columns: tuple[str, ...]  # column ids, in order
    order_by: str  # a column id
    ascending: bool
    scatter: tuple[str, str]  # (x metric, y metric)

    def state(self) -> dict:
        """The page state MLflow 3's runs page restores from the share key."""
        card = {"uuid": f"{self.key}-scatter", "type": "SCATTER", "deleted": False, "isGenerated": False,
                "metricSectionId": SECTION_ID, "runsCountToCompare": 100,
                "xaxis": {"key": self.scatter[0], "type": "METRIC"},
                "yaxis": {"key": self.scatter[1], "type": "METRIC"}}
        section = {"uuid": SECTION_ID, "name": "robustprune", "display": True, "isReordered": False, "deleted": False,
                   "isGenerated": False}
        return {"searchFilter": self.search_filter, "orderByKey": self.order_by, "orderByAsc": self.ascending,
                "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
                "selectedColumns": list(self.columns), "columnOrder": list(self.columns), "runListHidden": False,
                "runsHiddenMode": "SHOW_ALL",  # MLflow's default charts the first 10 runs only
                "compareRunCharts": [card], "compareRunSections": [section], "isAccordionReordered": False}


def view_key(name: str, parent_run_id: str) -> str:
    return f"robustprune-{name}-{parent_run_id}"


def view_route(experiment_id: str, key: str, chart: bool = False) -> str:
    """The UI route that opens a saved view: its table, or its chart."""
    return (f"#/experiments/{experiment_id}/runs?viewStateShareKey={key}&workflowType=machine_learning"
            + ("&compareRunsMode=CHART" if chart else ""))


def _cost_column(cost: str) -> str:
    """What a trial's cost objective shows: a reduction (FLOPs, params) or a latency's ratio."""
    return ratio_key(cost) if is_latency(cost) else COST_COLUMNS.get(cost, cost)


def search_views(parent_run_id: str, objectives: dict[str, str], seeds: int) -> list[SavedView]:
    """The front (runs tagged `pareto`) and every trial (replicas left out), with the
    search's own objectives among the columns; with seeds > 1, the accuracies' means too,
    and the front sorted by its accuracy's mean."""
    accuracy, costs = accuracy_of(objectives), costs_of(objectives)
    metrics = list(dict.fromkeys(["flops_reduction", *map(_cost_column, costs), *ACCURACIES]))
    if seeds > 1:
        metrics += [f"{m}_mean" for m in ACCURACIES] + ["seeds"]
    columns = (*map(param_column, TRIAL_PARAMS), *map(metric_column, metrics), DURATION_COLUMN)
    of_search = f"tags.`{PARENT_TAG}` = '{parent_run_id}'"
    trials = f"{of_search} and tags.`{TRIAL_TAG}` LIKE '%'"  # a replica has no trial id
    scatter = (ratio_key(costs[0]) if is_latency(costs[0]) else costs[0], accuracy)
    front_order = metric_column(f"{accuracy}_mean" if seeds > 1 else accuracy)
    return [SavedView("front", view_key("front", parent_run_id), f"{trials} and tags.pareto = 'true'", columns,
                      front_order, False, scatter),
            SavedView("trials", view_key("trials", parent_run_id), trials, columns, metric_column(accuracy), False,
                      scatter)]


def study_views(parent_run_id: str) -> list[SavedView]:
    """A study's cells and baselines, one row each, its factors as columns, by setup."""
    columns = (*map(param_column, STUDY_PARAMS), *map(metric_column, ["flops_reduction", *ACCURACIES]),
               DURATION_COLUMN)
    cells = f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{ROLE_TAG}` LIKE '%'"
    return [SavedView("cells", view_key("cells", parent_run_id), cells, columns, param_column("setup"), True,
                      ("flops", "test_robust_acc"))]


def save_views(client: MlflowClient, experiment_id: str, views: list[SavedView]) -> None:
    for view in views:
        client.set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + view.key, json.dumps(view.state()))


def saved_routes(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[tuple[str, str]]:
    """(name, route) of each view saved for a search, table then chart; none for a search
    logged before views were saved."""
    tags = client.get_experiment(experiment_id).tags
    routes = []
    for name in ("front", "trials", "cells"):
        key = view_key(name, parent_run_id)
        if SHARED_VIEW_PREFIX + key in tags:
            routes += [(name, view_route(experiment_id, key)), (f"{name} chart", view_route(experiment_id, key, True))]
    return routes
