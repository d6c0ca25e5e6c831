"""Finding a search in a tracking store: its parent run, and the UI page of its runs."""
from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .schema import SEARCH_TAG

def runs_page(tracking_uri: str, experiment_name: str | None = None) -> str | None:
    """The UI route of an experiment's runs table (by default, the experiment of the newest
    search in the store), or None when there is none. MLflow 3's UI opens an experiment on
    its GenAI overview, whatever the experiment's kind, unless the link asks for the
    machine-learning workflow."""
    client = MlflowClient(tracking_uri)
    if experiment_name:
        exp = client.get_experiment_by_name(experiment_name)
        experiment_id = exp.experiment_id if exp else None
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
        newest = client.search_runs(ids, f"tags.`{SEARCH_TAG}` = 'parent'", order_by=["attributes.start_time DESC"],
                                    max_results=1) if ids else []
        experiment_id = newest[0].info.experiment_id if newest else None
    return f"#/experiments/{experiment_id}/runs?workflowType=machine_learning" if experiment_id else None


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
