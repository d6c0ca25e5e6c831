"""Export a model from the Pareto front: pick under a constraint, write deployable files,
a model card, and register it in the MLflow Model Registry with alias `best`.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mlflow
import torch
import yaml
from mlflow.tracking import MlflowClient
from torch import nn

from trainables.store import load_payload, model_from_payload, save_model

from .tracking import Tracker, find_parent_run, run_row


class NoModelFits(LookupError):
    """No model of the front satisfies the constraints."""


@dataclass(frozen=True)
class Constraints:
    max_flops: float | None = None
    min_robust_acc: float | None = None
    min_clean_acc: float | None = None

    def admits(self, row: dict) -> bool:
        return ((self.max_flops is None or row["flops"] <= self.max_flops)
                and (self.min_robust_acc is None or row["robust_acc"] >= self.min_robust_acc)
                and (self.min_clean_acc is None or row["clean_acc"] >= self.min_clean_acc))

    def describe(self) -> str:
        parts = [f"{k} {v}" for k, v in (("flops <=", self.max_flops), ("robust_acc >=", self.min_robust_acc),
                                        ("clean_acc >=", self.min_clean_acc)) if v is not None]
        return ", ".join(parts) or "no constraint"


def pick(front: list[dict], constraints: Constraints) -> dict:
    """Best robust accuracy among the admitted front models; fewer FLOPs breaks ties."""
    admitted = [r for r in front if constraints.admits(r)]
    if not admitted:
        smallest = min((r["flops"] for r in front), default=None)
        best = max((r["robust_acc"] for r in front), default=None)
        raise NoModelFits(f"no model on the front fits {constraints.describe()} "
                          f"(front: {len(front)} models, min flops {smallest}, max robust_acc {best})")
    return max(admitted, key=lambda r: (r["robust_acc"], -r["flops"]))


# --------------------------------------------------------------------------- formats
# Each writer gets (model, example input, the model file's payload, target folder) and returns its file.


def _torchscript(model: nn.Module, example: torch.Tensor, payload: dict, out: Path) -> Path:
    path = out / "model.torchscript.pt"
    torch.jit.trace(model, example).save(str(path))
    return path


def _onnx(model: nn.Module, example: torch.Tensor, payload: dict, out: Path) -> Path:
    """One self-contained .onnx file (weights inline), dynamic batch size."""
    path = out / "model.onnx"
    torch.onnx.export(model, (example,), str(path), input_names=["images"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, external_data=False)
    return path


def _state_dict(model: nn.Module, example: torch.Tensor, payload: dict, out: Path) -> Path:
    """The safe robustprune format: state_dict + architecture spec (trainables.store.load_model)."""
    path = out / "model.pt"
    save_model(model, payload["spec"], path)
    return path


FORMATS: dict[str, Callable[[nn.Module, torch.Tensor, dict, Path], Path]] = {
    "torchscript": _torchscript,
    "onnx": _onnx,
    "state_dict": _state_dict,
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def front_rows(tracking_uri: str, parent) -> list[dict]:
    """The finished child runs of a search tagged as on its front."""
    tracker = Tracker(tracking_uri, parent.info.experiment_id, parent.info.run_id)
    return [run_row(r) for r in tracker.child_runs("FINISHED") if r.data.tags.get("pareto") == "true"]


def export_model(tracking_uri: str, experiment: str, out: Path, formats: list[str], constraints: Constraints,
                 parent_run_id: str | None = None, registered_name: str | None = None) -> dict:
    """Write the chosen model's files and model_card.json into `out`; returns the card.

    Files are built in a temporary folder next to `out` and moved in only when all
    formats succeeded, so a failure leaves no partial export behind.
    """
    client = MlflowClient(tracking_uri)
    parent = find_parent_run(tracking_uri, experiment, parent_run_id)
    chosen = pick(front_rows(tracking_uri, parent), constraints)
    run = client.get_run(chosen["run_id"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        tmp = Path(tmp)
        src = Path(client.download_artifacts(run.info.run_id, "model.pt", str(tmp / "download")))
        search_config = yaml.safe_load(Path(client.download_artifacts(
            parent.info.run_id, "config.yaml", str(tmp / "download"))).read_text())
        payload = load_payload(src)
        model = model_from_payload(payload)
        example = torch.rand(1, *payload["spec"]["input_shape"])
        files = {fmt: FORMATS[fmt](model, example, payload, tmp) for fmt in formats}
        name = registered_name or f"{experiment}-pruned"
        mlflow.set_tracking_uri(tracking_uri)  # register_model reads the fluent URIs
        mlflow.set_registry_uri(tracking_uri)
        version = mlflow.register_model(run.data.tags["model_uri"], name,
                                        tags={"source_run": run.info.run_id})
        client.set_registered_model_alias(name, "best", version.version)
        card = {
            "experiment": experiment, "search_run_id": parent.info.run_id, "source_run_id": run.info.run_id,
            "constraints": constraints.describe(), "input_shape": list(example.shape[1:]),
            "params": dict(run.data.params), "metrics": dict(run.data.metrics),
            "test_robustness_curve": Tracker(tracking_uri, parent.info.experiment_id, parent.info.run_id)
            .robustness_curve(run.info.run_id), "search_config": search_config,
            "files": {fmt: {"file": p.name, "sha256": _sha256(p)} for fmt, p in files.items()},
            "registered_model": {"name": name, "version": version.version, "alias": "best"},
        }
        (tmp / "model_card.json").write_text(json.dumps(card, indent=2))
        out.mkdir(exist_ok=True)
        for p in [*files.values(), tmp / "model_card.json"]:
            shutil.move(str(p), out / p.name)
    return card

