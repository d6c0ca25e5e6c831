"""Finding a search in a tracking store: its parent run, and the UI page of its runs."""
from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .saved_views import saved_routes
from .schema import SEARCH_TAG


def _newest_search(client: MlflowClient, experiment_ids: list[str]):
    runs = client.search_runs(experiment_ids, f"tags.`{SEARCH_TAG}` = 'parent'",
                              order_by=["attributes.start_time DESC"], max_results=1) if experiment_ids else []
    return runs[0] if runs else None


def ui_pages(tracking_uri: str, experiment_name: str | None = None) -> list[tuple[str, str]] | None:
    """The UI routes that open a search (by default the newest search in the store): its
    experiment's runs table, then each saved view of its newest search (see saved_views.py);
    None when the experiment is not there, [] when the store holds no search. MLflow 3's UI
    opens an experiment on its GenAI overview, whatever the experiment's kind, unless the
    link asks for the machine-learning workflow."""
    client = MlflowClient(tracking_uri)
    if experiment_name:
        exp = client.get_experiment_by_name(experiment_name)
        if exp is None:
            return None
        experiment_id, search = exp.experiment_id, _newest_search(client, [exp.experiment_id])
    else:
        search = _newest_search(client, [e.experiment_id for e in client.search_experiments()])
        if search is None:
            return []
        experiment_id = search.info.experiment_id
    return _pages(client, experiment_id, search.info.run_id if search else None)


def search_pages(tracking_uri: str, parent_run_id: str) -> list[tuple[str, str]]:
    """The UI routes that open the given search: its experiment's runs, then its saved views."""
    client = MlflowClient(tracking_uri)
    return _pages(client, client.get_run(parent_run_id).info.experiment_id, parent_run_id)


def _pages(client: MlflowClient, experiment_id: str, parent_run_id: str | None) -> list[tuple[str, str]]:
    pages = [("the search's runs", f"#/experiments/{experiment_id}/runs?workflowType=machine_learning")]
    return pages + (saved_routes(client, experiment_id, parent_run_id) if parent_run_id else [])


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
