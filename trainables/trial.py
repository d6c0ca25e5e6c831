"""One trial of robustness-aware pruning: a pure function of (config, baseline).

Knows nothing of Ray, Optuna or MLflow, so a trial can be run and debugged alone
(`robustprune trial ...`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import torch
from torch import nn

from .attack import robust_accuracy
from .config import TrialConfig
from .cost import model_cost
from .data import Dataset, load_dataset
from .models import build_model
from .prune import prune
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


def baseline_key(cfg: TrialConfig) -> str:
    """Everything that changes the baseline model or its evaluation, hashed."""
    fields = cfg.model_dump(include={"dataset", "data_dir", "model", "seed", "baseline", "attacks",
                                     "eval_size"})
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def load_data(cfg: TrialConfig) -> Dataset:
    return load_dataset(cfg.dataset, seed=cfg.seed, data_dir=cfg.data_dir, download=cfg.download)


def evaluate(model: nn.Module, data: Dataset, cfg: TrialConfig, device: torch.device) -> dict:
    """Clean accuracy (whole test split), robust accuracy per attack (seeded eval subset), cost."""
    subset = data.test.subset(cfg.eval_size, cfg.seed)
    metrics = {"clean_acc": accuracy(model, data.test, device)}
    per_attack = {f"robust_acc_{spec.name}": robust_accuracy(model, spec, subset, data.num_classes, device,
                                                             cfg.seed)
                  for spec in cfg.attack_specs()}
    metrics["robust_acc"] = min(per_attack.values())
    metrics.update(per_attack)
    metrics.update(model_cost(model, data.shape, device, cfg.latency_repeats))
    return metrics


def train_baseline(cfg: TrialConfig, quiet: bool = True) -> Baseline:
    device = resolve_device(cfg.device)
    data = load_data(cfg)
    torch.manual_seed(cfg.seed)
    arch = {"name": cfg.model, "in_channels": data.shape[0], "num_classes": data.num_classes,
            "mean": list(data.mean), "std": list(data.std)}
    model = build_model(**arch)
    train(model, data, cfg.baseline.settings(cfg.amp), cfg.seed, device, quiet, desc="baseline")
    metrics = evaluate(model, data, cfg, device)
    return Baseline(model_payload(model, architecture_spec(model, arch, [], data.shape)), metrics)


def run_trial(cfg: TrialConfig, baseline: Baseline, quiet: bool = True) -> TrialResult:
    """Prune the baseline in `iterations` rounds (fine-tuning after each), then evaluate."""
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    data = load_data(cfg)
    torch.manual_seed(cfg.seed)
    model = baseline.model().to(device)
    calib = data.train.subset(cfg.calib_size, cfg.seed + 1)
    ft = cfg.finetune.settings(cfg.amp)

    def finetune(m: nn.Module, round_index: int) -> None:
        train(m, data, ft, cfg.seed + 100 + round_index, device, quiet, desc=f"fine-tune {round_index + 1}")

    removed = prune(model, cfg.prune_settings(), calib, device, finetune, cfg.seed)
    spec = architecture_spec(model, baseline.payload["spec"]["arch"], removed, data.shape)
    metrics = evaluate(model, data, cfg, device)
    base = baseline.metrics
    metrics.update({f"{k}_baseline": v for k, v in base.items()})
    metrics["flops_reduction"] = 1 - metrics["flops"] / base["flops"]
    metrics["params_reduction"] = 1 - metrics["params"] / base["params"]
    metrics["blocks_removed"] = len(removed)
    metrics["trial_seconds"] = time.perf_counter() - start
    return TrialResult(metrics, model.eval(), spec)
