"""One trial of robustness-aware pruning: a pure function of (config, baseline).

Knows nothing of Ray, Optuna or MLflow, so a trial can be run and debugged alone
(`robustprune trial ...`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn

from .attacks.evaluation import evaluate_robustness
from .config import TrialConfig, settings_key
from .cost import model_cost
from .data import Dataset, load_dataset
from .latency import latency_metrics
from .methods import GUARD_IMAGES, METHODS, MethodSpec, OverfitGuard
from .models import build_model, load_weights, recorded_normalization
from .prune import PruneSettings, prune
from .remote_files import file_stamp, is_remote
from .store import architecture_spec, model_from_payload, model_payload
from .train import accuracy, resolve_device, train


@dataclass
class Baseline:
    """A trained, unpruned model (as a safe payload) and its evaluation."""
    payload: dict
    metrics: dict

    def model(self) -> nn.Module:
        return model_from_payload(self.payload)


@dataclass
class TrialResult:
    metrics: dict
    model: nn.Module
    spec: dict


@dataclass
class Progress:
    """Intermediate results for early stopping: after every fine-tune epoch (or pruning round,
    without fine-tuning), `report` gets the step (epochs done so far), the cost the trial
    will end with, and clean and robust accuracy on `eval_size` validation images."""
    report: Callable[[dict], None]
    eval_size: int = 100


def rng_kept(device: torch.device):
    """A context in which the global RNG may be drawn from (attacks, random scores) without
    changing what the trial draws after it."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def planned_cost(baseline: Baseline, s: PruneSettings, data: Dataset, device: torch.device,
                 cfg: TrialConfig) -> dict:
    """The cost a trial will end with, known before it trains: the same rounds on a copy,
    pruned by the `random` criterion without fine-tuning. Every criterion removes as many
    filters per layer (or blocks) at a ratio, so the shape does not depend on the criterion
    (except under `global_pruning`, where this is an estimate)."""
    model = baseline.model().to(device)
    with rng_kept(device):  # random scores
        prune(model, replace(s, criterion="random", params={}), data.train.subset(2, 0), device, lambda m, r: None)
    return {**model_cost(model, data.shape, device),
            **latency_metrics(model, None, data.shape, cfg.latency.settings(), latency_device(cfg, device))}


def baseline_key(cfg: TrialConfig, device_type: str) -> str:
    """Everything that changes the baseline's weights or its (validation) metrics, hashed.
    `device_type` is where it is trained (cpu / cuda): kernels, AMP and timings differ."""
    fields = cfg.model_dump(include={"dataset", "data_dir", "model", "model_args", "seed", "baseline", "val_size",
                                     "eval_size", "latency", "image_size", "data_mean", "data_std"})
    fields.update(weights=file_identity(cfg.model_weights), model_code=cfg.model_code and settings_key(cfg.model_code),
                  transforms=cfg.resolved_transforms.record())
    fields.update(attacks=[s.record() for s in cfg.attack_specs()], amp=cfg.amp and device_type == "cuda",
                  device_type=device_type)
    return settings_key(fields)


def file_identity(path: str | None) -> list | None:
    """A file (local or at a URL) as far as a cache key needs it: where, its size and modification time."""
    if path is None:
        return None
    return [path if is_remote(path) else os.path.abspath(path), *(file_stamp(path) or (None, None))]


def load_data(cfg: TrialConfig) -> Dataset:
    return load_dataset(cfg.dataset, seed=cfg.seeds()["splits"], data_dir=cfg.data_dir, download=cfg.download,
                        val_size=cfg.val_size, **cfg.data_options())


def initial_model(cfg: TrialConfig, data: Dataset) -> tuple[nn.Module, dict]:
    """The network before any training: built from its source, with the user's weights if
    given; and its architecture record. ValueError (one line, naming the field) when it does
    not fit the data: its classes, or an image size too small for it."""
    arch = {"name": cfg.model, "args": dict(cfg.model_args), "in_channels": data.shape[0],
            "num_classes": data.num_classes, "mean": cfg.data_mean, "std": cfg.data_std}
    try:
        model = build_model(**arch, fallback_normalization=(list(data.mean), list(data.std)))
    except ValueError as e:
        raise ValueError(f"model: {e}") from None
    arch["mean"], arch["std"] = recorded_normalization(model)
    if cfg.model_weights:
        load_weights(model, cfg.model_weights)
    try:
        with torch.no_grad():
            outputs = model.eval()(torch.zeros(2, *data.shape)).shape
    except RuntimeError as e:
        raise ValueError(f"image_size: {cfg.model} does not run on {data.shape[1]}x{data.shape[2]} images "
                         f"({str(e).splitlines()[0][:120]})") from None
    if tuple(outputs) != (2, data.num_classes):
        raise ValueError(f"model: {cfg.model} outputs {tuple(outputs)[1:]} per image; the data has "
                         f"{data.num_classes} classes")
    return model, arch


def evaluate(model: nn.Module, data: Dataset, cfg: TrialConfig, device: torch.device,
             baseline: nn.Module | None = None) -> dict:
    """What the search selects on, all on the validation split: clean accuracy (whole split),
    robust accuracy (per-sample worst case and per attack, on a seeded subset), and cost; with
    the `baseline` model, its latency too, timed in turns with the model's."""
    seeds = cfg.seeds()
    subset = data.val.subset(cfg.eval_size, seeds["eval_subset"])
    robustness = evaluate_robustness(model, cfg.attack_specs(), subset, data.num_classes, device, seeds["attacks"])
    metrics = {"clean_acc": accuracy(model, data.val, device), **robustness.metrics()}
    metrics.update(model_cost(model, data.shape, device))
    metrics.update(latency_metrics(model, baseline, data.shape, cfg.latency.settings(), latency_device(cfg, device)))
    return metrics


def latency_device(cfg: TrialConfig, trial_device: torch.device) -> torch.device:
    """Where the model is timed: `latency.device`, by default the trial's own device."""
    return trial_device if cfg.latency.device == "auto" else resolve_device(cfg.latency.device)


def overfit_guard(method: MethodSpec, data: Dataset, seed: int, device: torch.device) -> OverfitGuard | None:
    """The catastrophic-overfitting guard of a method that needs one, on a fixed, seeded
    subset of the training data (no augmentation); None for the others."""
    if not METHODS[method.name].guards_overfitting:
        return None
    images, labels = map(torch.cat, zip(*data.train.subset(GUARD_IMAGES, seed).batches(GUARD_IMAGES)))
    return OverfitGuard(images, labels, method, device)


def train_baseline(cfg: TrialConfig, quiet: bool = True) -> Baseline:
    device = resolve_device(cfg.device)
    data = load_data(cfg)
    torch.manual_seed(cfg.seeds()["training"])
    model, arch = initial_model(cfg, data)
    settings, seed = cfg.training_settings("baseline"), cfg.seeds()["training"]
    guard = overfit_guard(settings.method, data, seed, device)
    train(model, data, settings, seed, device, quiet, desc="baseline", guard=guard)
    metrics = evaluate(model, data, cfg, device)
    metrics.update(guard.summary() if guard else {})
    spec = architecture_spec(model, arch, [], data.shape, cfg.resolved_transforms.expected_input())
    return Baseline(model_payload(model, spec), metrics)


def _progress_reporter(progress: Progress, cfg: TrialConfig, baseline: Baseline, data: Dataset,
                       device: torch.device, start: float) -> Callable[[nn.Module, int], None]:
    """`(model, step)` -> one intermediate report. The global RNG is restored afterwards, so a
    trial's result is the same with and without intermediate reports."""
    cost = planned_cost(baseline, cfg.prune_settings(), data, device, cfg)
    subset = data.val.subset(progress.eval_size, cfg.seeds()["eval_subset"])

    def report(model: nn.Module, step: int) -> None:
        with rng_kept(device):
            robustness = evaluate_robustness(model, cfg.attack_specs(), subset, data.num_classes, device,
                                             cfg.seeds()["attacks"], per_attack=False)
        progress.report({"step": step, **cost, "clean_acc": robustness.clean_acc(), **robustness.metrics(),
                         "trial_seconds": time.perf_counter() - start})
    return report


def run_trial(cfg: TrialConfig, baseline: Baseline, quiet: bool = True,
              progress: Progress | None = None) -> TrialResult:
    """Prune the baseline in `iterations` rounds (fine-tuning after each), then evaluate."""
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    data = load_data(cfg)
    seeds = cfg.seeds()
    torch.manual_seed(seeds["training"])
    report = _progress_reporter(progress, cfg, baseline, data, device, start) if progress else None
    model = baseline.model().to(device)
    calib = data.train.subset(cfg.calib_size, seeds["calibration"])  # training data, never validation
    ft = cfg.training_settings("finetune")
    guard = overfit_guard(ft.method, data, seeds["finetune"], device)  # its subset read once, for every round

    def finetune(m: nn.Module, round_index: int) -> None:
        done = round_index * ft.epochs
        on_epoch = (lambda epoch: report(m, done + epoch + 1)) if report else None
        train(m, data, ft, seeds["finetune"] + round_index, device, quiet, desc=f"fine-tune {round_index + 1}",
              on_epoch=on_epoch, guard=guard)
        if report and ft.epochs == 0:
            report(m, round_index + 1)

    removed = prune(model, cfg.prune_settings(), calib, device, finetune, seeds["training"])
    spec = architecture_spec(model, baseline.payload["spec"]["arch"], removed, data.shape,
                             cfg.resolved_transforms.expected_input())
    base = baseline.metrics
    metrics = {f"{k}_baseline": v for k, v in base.items()}  # latency: the baseline timed beside the model
    metrics.update(evaluate(model, data, cfg, device, baseline=baseline.model().to(device)))
    metrics["flops_reduction"] = 1 - metrics["flops"] / base["flops"]
    metrics["params_reduction"] = 1 - metrics["params"] / base["params"]
    metrics["blocks_removed"] = len(removed)
    metrics.update(guard.summary() if guard else {})  # the last round's: the model's
    metrics.update({f"finetune_{k}": v for k, v in ft.method.record().items() if k != "method"})
    metrics["trial_seconds"] = time.perf_counter() - start
    return TrialResult(metrics, model.eval(), spec)
