"""How a search is written in MLflow: the tags that tie its runs together, the params a
trial logs, and a child run read back as a flat row."""
from __future__ import annotations

import json

from ..front.objectives import finetune_method_of

PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "ray_trial_id"
SEARCH_TAG = "robustprune.search"
TRIAL_PARAMS = ("setup", "criterion", "granularity", "ratio", "iterations", "finetune_epochs", "finetune_method",
                "seed")  # setup: a study's cells only
KIND_TAG = "robustprune.kind"  # on a study's parent run: "study" (a search's parent has none)
ROLE_TAG = "study_role"  # on a study's child runs: "cell" or "baseline"
LEFT_FRONT_TAG = "left_front_on_means"  # a single-seed front model not on the front of the seeds' means
REPLICA_TAG = "replica_of"  # on a front model's replica: the trial's run id (search/tracking/replica_runs.py)
# Without a kind, MLflow's UI opens an experiment on its GenAI overview (traces), not on the runs.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
NOTE_TAG = "mlflow.note.content"  # the run's description in the UI (markdown)


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return flat


def numeric_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def stopped_early(run) -> bool:
    """A child run of a trial that mo_asha stopped (KILLED on purpose, not a lost trial)."""
    return run.info.status == "KILLED" and run.data.tags.get("stopped_early") == "true"


def child_run_name(params: dict) -> str:
    """What a trial tried, e.g. `pls_vip·filter·r0.63·it3`, and `·trades` when not fine-tuned naturally;
    a study's cell starts with its setup and ends with its seed, and its baseline is `lenet·baseline·s0`."""
    if params["criterion"] == "baseline":
        return f"{params['setup']}·baseline·s{params['seed']}"
    method = finetune_method_of(params)
    name = (f"{params['criterion']}·{params['granularity']}·r{float(params['ratio']):.2f}·"
            f"it{params['iterations']}" + ("" if method == "natural" else f"·{method}"))
    return f"{params['setup']}·{name}·s{params['seed']}" if "setup" in params else name


def objectives_of(parent) -> dict[str, str]:
    """The objectives a search's parent run logged ({metric: "min" | "max"})."""
    return {k.removeprefix("search.objectives."): v for k, v in parent.data.params.items()
            if k.startswith("search.objectives.")}


def point_of(params: dict[str, str]) -> dict:
    """The search-space point a child run's params logged (what a trial config is made from)."""
    return {"granularity": params["granularity"], "criterion": params["criterion"], "ratio": float(params["ratio"]),
            "iterations": int(params["iterations"]), "finetune_epochs": int(params["finetune_epochs"]),
            "finetune_method": finetune_method_of(params)}


def trial_row(run_id: str, trial_id: str, params: dict[str, str], metrics: dict[str, float]) -> dict:
    """One child run as a flat dict: ids, params (typed from their logged strings), metrics."""
    return {"run_id": run_id, "trial_id": trial_id,
            "criterion": params.get("criterion", ""), "granularity": params.get("granularity", ""),
            "ratio": float(params.get("ratio", "nan")), "iterations": int(float(params.get("iterations", "0"))),
            "finetune_method": finetune_method_of(params), **metrics}


def run_row(run) -> dict:
    return trial_row(run.info.run_id, run.data.tags.get(TRIAL_TAG, ""), run.data.params, run.data.metrics)
