"""Export a model from the Pareto front: pick under a constraint, write deployable files,
a model card, and register it in the MLflow Model Registry with alias `best` (a pyfunc
that loads without unpickling: see search/tracking/pyfunc_model.py).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import mlflow
import torch
import yaml
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from torch import nn

from trainables.config import LatencyConfig
from trainables.latency import is_latency, machine_description, measure_latency, write_onnx
from trainables.store import load_payload, model_from_payload, save_model, write_text_atomic

from ..tracking.lookup import find_parent_run
from ..front.seeds import SEED_METRICS, SEEDS_METRIC, SUMMARY_PARTS, has_seeds, on_means
from ..tracking.records import SearchRecords
from ..tracking.schema import objectives_of, run_row


class NoModelFits(LookupError):
    """No model of the front satisfies the constraints."""


class ExportTargetTaken(ValueError):
    """--out names a file, or a non-empty folder without --force."""


def check_export_target(out: Path, force: bool) -> None:
    """Before any download or compute: the export folder must be new, empty, or replaced (--force)."""
    if out.exists() and not out.is_dir():
        raise ExportTargetTaken(f"--out: '{out}' is a file; give a folder for the export")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportTargetTaken(f"--out: '{out}' is not empty; pass --force to replace it whole")


def _write_card(out: Path, card: dict) -> None:
    write_text_atomic(out / "model_card.json", json.dumps(card, indent=2))


def expected_input(spec: dict) -> dict:
    """What the model wants to be given: images of its input shape in [0, 1], preprocessed as in
    its search (resize, crop, interpolation), and normalized by the model itself."""
    return {"shape": spec["input_shape"], "pixel_range": [0, 1], **spec.get("expected_input", {}),
            "normalization": {"mean": spec["arch"]["mean"], "std": spec["arch"]["std"],
                              "applied": "inside the model: do not normalize its input"}}


@dataclass(frozen=True)
class Constraints:
    max_flops: float | None = None
    min_robust_acc: float | None = None
    min_clean_acc: float | None = None
    max_latency_ms: float | None = None
    latency_metric: str = "latency_ms"  # which runtime and batch size `max_latency_ms` bounds

    def admits(self, row: dict) -> bool:
        return ((self.max_flops is None or row["flops"] <= self.max_flops)
                and (self.min_robust_acc is None or row["robust_acc"] >= self.min_robust_acc)
                and (self.min_clean_acc is None or row["clean_acc"] >= self.min_clean_acc)
                and (self.max_latency_ms is None or row[self.latency_metric] <= self.max_latency_ms))

    def describe(self) -> str:
        parts = [f"{k} {v}" for k, v in (("flops <=", self.max_flops), ("robust_acc >=", self.min_robust_acc),
                                        ("clean_acc >=", self.min_clean_acc),
                                        (f"{self.latency_metric} <=", self.max_latency_ms)) if v is not None]
        return ", ".join(parts) or "no constraint"


def latency_metric_of(parent) -> str:
    """The latency a search optimized (its latency objective), else the one every trial logs."""
    return next((m for m in objectives_of(parent) if is_latency(m)), "latency_ms")


def seeds_card(records: SearchRecords, run, search_config: dict) -> dict:
    """What the model's seeds measured: each seed's values, and their mean and 95 % interval
    (`evaluation.seeds` > 1); the weights are the trial's own."""
    seed = search_config.get("experiment", {}).get("seed", 0)
    metrics = run.data.metrics
    per_seed = {seed: metrics, **records.replicas.of(run.info.run_id)}
    card = {"count": int(metrics.get(SEEDS_METRIC, 1)),
            "weights": f"the trial's own (trial seed {seed}); the other seeds' runs measured the interval",
            "per_seed": {str(s): {m: v[m] for m in SEED_METRICS if m in v} for s, v in sorted(per_seed.items())}}
    if has_seeds(metrics):
        card["summary"] = {m: {part: metrics[f"{m}_{part}"] for part in SUMMARY_PARTS if f"{m}_{part}" in metrics}
                           for m in SEED_METRICS if f"{m}_mean" in metrics}
    return card


def check_latency_logged(front: list[dict], metric: str) -> None:
    """--max-latency-ms needs the bounded latency on every front model (searches logged before
    latency was measured per runtime have only some of them)."""
    if front and not all(metric in r for r in front):
        logged = sorted({k for r in front for k in r if is_latency(k) and not k.endswith("_baseline")})
        raise NoModelFits(f"--max-latency-ms: the search's trials logged no '{metric}'; logged: "
                          f"{', '.join(logged) or 'no latency'}")


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
    return write_onnx(model, example, out / "model.onnx")


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


def export_latency(model: nn.Module, input_shape: list[int], search_config: dict) -> dict:
    """The exported model's latency on this machine (where it is often deployed from), on the
    runtimes and batch sizes the search measured; the search's own figures, and their ratios
    to the baseline, are in the card's metrics."""
    settings = LatencyConfig(**search_config.get("latency", {})).settings()
    measured = measure_latency({"model": model}, tuple(input_shape), settings, torch.device("cpu"))["model"]
    return {"machine": machine_description(settings.threads), "repeats": settings.repeats,
            "ms": {k: round(v, 4) for k, v in measured.items() if k != "latency_ms"}}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(tracking_uri: str, parent) -> SearchRecords:
    return SearchRecords.open(tracking_uri, parent.info.experiment_id, parent.info.run_id)


def front_rows(tracking_uri: str, parent) -> list[dict]:
    """The finished child runs of a search tagged as on its front."""
    finished = _records(tracking_uri, parent).trials.runs("FINISHED")
    return [run_row(r) for r in finished if r.data.tags.get("pareto") == "true"]


def export_model(tracking_uri: str, experiment: str, out: Path, formats: list[str], constraints: Constraints,
                 parent_run_id: str | None = None, registered_name: str | None = None,
                 force: bool = False, constraints_metric: str | None = None) -> dict:
    """Write the chosen model's files and model_card.json into `out`, register it as @best;
    returns the card.

    All or nothing: the files are built in a temporary folder beside `out` and renamed into
    place (a folder replaced with --force goes whole, never mixed with the new files); the
    model is registered only then, and the card, which names the registered version, last.
    Any failure removes the new folder, restores a replaced one, deletes the version this
    export registered and gives @best back to the version that had it.
    """
    out = Path(out)
    check_export_target(out, force)
    client = MlflowClient(tracking_uri)
    parent = find_parent_run(tracking_uri, experiment, parent_run_id)
    front = [on_means(r) for r in front_rows(tracking_uri, parent)]  # over seeds: picked on the means
    if constraints.max_latency_ms is not None:
        constraints = replace(constraints, latency_metric=constraints_metric or latency_metric_of(parent))
        check_latency_logged(front, constraints.latency_metric)
    chosen = pick(front, constraints)
    run = client.get_run(chosen["run_id"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with _staging_folder(out) as tmp:
        src = Path(client.download_artifacts(run.info.run_id, "model.pt", str(tmp / "download")))
        search_config = yaml.safe_load(Path(client.download_artifacts(
            parent.info.run_id, "config.yaml", str(tmp / "download"))).read_text())
        payload = load_payload(src)
        model = model_from_payload(payload)
        example = torch.rand(1, *payload["spec"]["input_shape"])
        staged = tmp / "export"
        staged.mkdir()
        files = {fmt: FORMATS[fmt](model, example, payload, staged).name for fmt in formats}
        card = {
            "experiment": experiment, "search_run_id": parent.info.run_id, "source_run_id": run.info.run_id,
            "constraints": constraints.describe(), "input_shape": list(example.shape[1:]),
            "expected_input": expected_input(payload["spec"]),
            "params": dict(run.data.params), "metrics": dict(run.data.metrics),
            "test_robustness_curve": _records(tracking_uri, parent).tests.robustness_curve(run.info.run_id),
            "search_config": search_config,
            "seeds": seeds_card(_records(tracking_uri, parent), run, search_config),
            "files": {fmt: {"file": name, "sha256": _sha256(staged / name)} for fmt, name in files.items()},
            "latency": export_latency(model, payload["spec"]["input_shape"], search_config),
        }
        replaced = tmp / "replaced"
        try:
            if out.exists():
                out.rename(replaced)
            staged.rename(out)
            with _registration(tracking_uri, run, registered_name or f"{experiment}-pruned", src, model,
                               example) as version:
                card["registered_model"] = {"name": version.name, "version": version.version, "alias": "best"}
                _write_card(out, card)
        except BaseException:
            if not staged.exists():  # `out` holds the new files: remove them
                shutil.rmtree(out, ignore_errors=True)
            if replaced.exists():
                replaced.rename(out)
            raise
    return card


@contextmanager
def _staging_folder(out: Path):
    """A new folder beside `out`, removed on the way out whatever ends the block. Named before
    it is made, so a stop (KeyboardInterrupt) can land nowhere between making it and owning it
    (TemporaryDirectory has that window between its mkdtemp and its finalizer)."""
    folder = out.parent / f".{out.name}.{secrets.token_hex(4)}"
    try:
        folder.mkdir()
        yield folder
    finally:
        _remove_tree(folder)


def _remove_tree(folder: Path, within_s: float = 10.0) -> None:
    """Remove `folder` whole, retrying while something still writes into it: MLflow downloads
    artifacts on a thread pool that a stop (KeyboardInterrupt) does not end, so a file can
    appear after rmtree listed the folder (seen once as a staging folder left by SIGINT)."""
    deadline = time.monotonic() + within_s
    shutil.rmtree(folder, ignore_errors=True)
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
        shutil.rmtree(folder, ignore_errors=True)


PYFUNC_FILE = Path(__file__).parents[1] / "tracking" / "pyfunc_model.py"


def _log_safe_model(run_id: str, model_file: Path, model: nn.Module, example: torch.Tensor):
    """The pruned model as an MLflow pyfunc built from code plus the safe model.pt (loading
    it unpickles nothing), logged to the trial's run; returns its ModelInfo."""
    import trainables

    signature = infer_signature(example.numpy(), model(example).detach().numpy())
    with mlflow.start_run(run_id=run_id):
        return mlflow.pyfunc.log_model(
            name="registered_model", python_model=str(PYFUNC_FILE), artifacts={"model_file": str(model_file)},
            code_paths=[str(Path(trainables.__file__).parent)], signature=signature,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"])


@contextmanager
def _registration(tracking_uri: str, run, name: str, model_file: Path, model: nn.Module, example: torch.Tensor):
    """The model as a new version of `name`, aliased `best`; undone (the logged model and
    the version deleted, the previous @best restored) if the block raises."""
    mlflow.set_tracking_uri(tracking_uri)  # log_model and register_model read the fluent URIs
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    try:
        previous = client.get_model_version_by_alias(name, "best").version
    except MlflowException:
        previous = None
    info = _log_safe_model(run.info.run_id, model_file, model, example)
    version = None
    try:
        version = mlflow.register_model(info.model_uri, name, tags={"source_run": run.info.run_id})
        client.set_registered_model_alias(name, "best", version.version)
        yield version
    except BaseException:
        if version is not None:
            client.delete_model_version(name, version.version)
        if previous is not None:
            client.set_registered_model_alias(name, "best", previous)
        client.delete_logged_model(info.model_id)
        raise
