"""Train / fine-tune / evaluate loops (SGD + momentum, cosine or step LR, seeded)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import Dataset, Split, StreamedSplit
from .methods import MethodSpec, OverfitGuard


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when available, else CPU; 'cpu' / 'cuda' / 'cuda:N' force one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def use_cpus(cpus: float) -> None:
    """Torch's CPU threads for a worker given `cpus` by Ray (torch would take every core)."""
    torch.set_num_threads(max(1, int(cpus)))


def check_device_present(device: str) -> None:
    """ValueError (one line) when a forced CUDA device is not on this machine."""
    resolved = resolve_device(device)
    if resolved.type != "cuda":
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (resolved.index or 0) >= count:
        raise ValueError(f"device: '{device}' requested but this machine has {count} CUDA device(s); "
                         f"allowed here: auto, cpu" + (f", cuda:0..cuda:{count - 1}" if count else ""))


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    lr: float = 0.05
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | step
    amp: bool = False  # mixed precision, CUDA only
    method: MethodSpec = MethodSpec()  # how a batch's loss is made (natural, or adversarial examples)


def _lr_at(settings: TrainSettings, step: int, total: int) -> float:
    if settings.schedule == "step":  # /10 at 50% and 75% of training
        return settings.lr * (0.1 ** sum(step >= total * f for f in (0.5, 0.75)))
    return 0.5 * settings.lr * (1 + math.cos(math.pi * step / max(total, 1)))


def train(model: nn.Module, data: Dataset, settings: TrainSettings, seed: int, device: torch.device,
          quiet: bool = True, desc: str = "train", on_epoch: Callable[[int], None] | None = None,
          guard: OverfitGuard | None = None) -> nn.Module:
    """Train in place on data.train and return the model (eval mode). `on_epoch(epoch)` runs
    after each epoch; the model is put back in training mode after it. With a `guard`, the
    weights of its best epoch are the ones returned."""
    if settings.epochs == 0:
        return model.eval()
    model.to(device).train()
    if guard:
        guard.begin()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay, nesterov=True)
    use_amp = settings.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    steps_per_epoch = math.ceil(len(data.train) / settings.batch_size)
    total = settings.epochs * steps_per_epoch
    step = 0
    bar = tqdm(total=total, desc=desc, disable=quiet, leave=False)
    for epoch in range(settings.epochs):
        for x, y in data.train.batches(settings.batch_size, gen, shuffle=True, augment=data.augment):
            x, y = x.to(device, non_blocking=True), y.to(device)
            for group in opt.param_groups:
                group["lr"] = _lr_at(settings, step, total)
            loss = settings.method.loss(model, x, y, use_amp)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if guard:
            guard.after_epoch(model)
        if on_epoch:
            on_epoch(epoch)
            model.train()
    bar.close()
    if guard:
        guard.keep_best(model)
    return model.eval()


@torch.no_grad()
def correct_predictions(model: nn.Module, split: Split | StreamedSplit, device: torch.device,
                        batch_size: int = 512) -> torch.Tensor:
    """Per image of the split, in order (on the CPU): classified correctly."""
    model.to(device).eval()
    hits = [(model(x.to(device)).argmax(1) == y.to(device)).cpu() for x, y in split.batches(batch_size)]
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)


def accuracy(model: nn.Module, split: Split | StreamedSplit, device: torch.device, batch_size: int = 512) -> float:
    return correct_predictions(model, split, device, batch_size).sum().item() / max(len(split), 1)
