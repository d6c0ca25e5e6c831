"""Shared pieces of the end-to-end tests: a tiny real search config and MLflow queries."""
import subprocess
import sys
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

CLI = str(Path(sys.executable).parent / "robustprune")


def tiny_config(tmp_path: Path, name: str, num_samples: int, **sections) -> Path:
    """digits + LeNet: a real trained model, real attacks, a few seconds per trial."""
    cfg = {
        "experiment": {"name": name, "seed": 0, "storage_path": str(tmp_path / "runs"),
                       "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        "data": {"name": "digits", "eval_size": 120, "calib_size": 64},
        "model": {"name": "lenet"},
        "baseline": {"epochs": 12},
        "space": {"granularities": ["filter"], "criteria": ["l1", "expected_abs", "pls_vip", "random"],
                  "ratio": [0.2, 0.8], "iterations": [1, 2], "finetune_epochs": 1},
        "attacks": [{"name": "fgsm", "eps": 0.1}, {"name": "pgd", "eps": 0.1, "steps": 3, "params": {"restarts": 1}}],
        "evaluation": {"final_attacks": [{"name": "fgsm", "eps": 0.1},
                                         {"name": "pgd", "eps": 0.1, "steps": 10, "params": {"restarts": 2}}],
                       "eps_grid": [0.0, 0.05, 0.1]},
        "search": {"num_samples": num_samples, "max_concurrent": 2, "sampler": "random", "scheduler": "fifo"},
        "resources": {"cpus_per_trial": 1},
        "failures": {"max_retries": 0},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_cli(*args, cwd, timeout=900, env=None):
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def search_runs(uri: str, experiment: str):
    """(parent run, child runs) of the newest search of the experiment."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("robustprune.search") == "parent"]
    parent = max(parents, key=lambda r: r.info.start_time)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children
