"""Training methods: how one batch's loss is made, naturally or on adversarial examples.
The same registry serves the baseline (`baseline.method`) and fine-tuning after pruning
(`finetune.method`); a new method is one `MethodInfo` entry in METHODS.

Adversarial examples are made in pixel space ([0, 1], the space the attacks and `eps` live
in), through the model's own normalisation, with AMP on CUDA when the training uses it.
Published defaults, from the dataset's usual eps:
- `pgd_at` (Madry et al. 2018): 10 steps of 2.5 * eps / steps from a random start, crafted
  in training mode as their code does.
- `trades` (Zhang et al. 2019): beta 6, 10 steps of eps / 4 maximising the KL divergence
  from the clean prediction, from a start 0.001 * N(0, 1) away, crafted in eval mode
  (BatchNorm statistics untouched), as their code does.
- `fgsm_rs` (Wong et al. 2020): one step of 1.25 * eps from a uniform start in the eps
  ball. It can overfit catastrophically (robustness collapses within an epoch), so its
  training keeps the epoch whose PGD accuracy on a fixed training subset was best
  (`OverfitGuard`).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

BUDGET_FIELDS = ("eps", "alpha", "steps", "beta")


@dataclass(frozen=True)
class MethodSpec:
    """A method with its budget resolved (no None where the method uses the value)."""
    name: str = "natural"
    eps: float | None = None
    alpha: float | None = None
    steps: int | None = None
    beta: float | None = None

    def record(self) -> dict:
        """Its name and the budget values it uses, for logs and metrics.json."""
        return {"method": self.name, **{k: getattr(self, k) for k in METHODS[self.name].budget}}

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> torch.Tensor:
        return METHODS[self.name].loss(model, x, y, self, amp)


def _autocast(x: torch.Tensor, amp: bool):
    return torch.autocast(x.device.type, enabled=amp)


def _projected_ascent(model: nn.Module, x: torch.Tensor, start: torch.Tensor,
                      objective: Callable[[torch.Tensor], torch.Tensor], eps: float, alpha: float, steps: int,
                      amp: bool) -> torch.Tensor:
    """Signed-gradient ascent on `objective(logits)` within the L-inf ball of `eps` around x
    and the image range: the adversarial images, detached."""
    adv = torch.clamp(torch.min(torch.max(start, x - eps), x + eps), 0, 1).detach()
    for _ in range(steps):
        adv.requires_grad_(True)
        with _autocast(x, amp):
            value = objective(model(adv))
        grad, = torch.autograd.grad(value, adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.clamp(torch.min(torch.max(adv, x - eps), x + eps), 0, 1).detach()
    return adv


@contextmanager
def _in_eval_mode(model: nn.Module):
    """The block runs with the model in eval mode (BatchNorm statistics frozen); its mode after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _cross_entropy_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
                            steps: int, amp: bool) -> torch.Tensor:
    """Examples raising the cross-entropy, from a uniform random start in the eps ball:
    PGD (Madry et al.), or with one step FGSM-RS (Wong et al.)."""
    start = x + torch.empty_like(x).uniform_(-eps, eps)
    return _projected_ascent(model, x, start, lambda logits: F.cross_entropy(logits.float(), y, reduction="sum"),
                             eps, alpha, steps, amp)


def natural_loss(model, x, y, spec: MethodSpec, amp: bool) -> torch.Tensor:
    with _autocast(x, amp):
        return F.cross_entropy(model(x), y)


def pgd_at_loss(model, x, y, spec: MethodSpec, amp: bool) -> torch.Tensor:
    adv = _cross_entropy_examples(model, x, y, spec.eps, spec.alpha, spec.steps, amp)
    with _autocast(x, amp):
        return F.cross_entropy(model(adv), y)


def trades_loss(model, x, y, spec: MethodSpec, amp: bool) -> torch.Tensor:
    with _in_eval_mode(model):
        with torch.no_grad(), _autocast(x, amp):
            clean_probs = F.softmax(model(x).float(), dim=1)
        kl_from_clean = lambda logits: F.kl_div(F.log_softmax(logits.float(), dim=1), clean_probs,  # noqa: E731
                                                reduction="sum")
        start = x + 0.001 * torch.randn_like(x)
        adv = _projected_ascent(model, x, start, kl_from_clean, spec.eps, spec.alpha, spec.steps, amp)
    with _autocast(x, amp):
        logits = model(x)
        logits_adv = model(adv)
    robust = F.kl_div(F.log_softmax(logits_adv.float(), dim=1), F.softmax(logits.float(), dim=1),
                      reduction="batchmean")
    return F.cross_entropy(logits.float(), y) + spec.beta * robust


def fgsm_rs_loss(model, x, y, spec: MethodSpec, amp: bool) -> torch.Tensor:
    return pgd_at_loss(model, x, y, replace(spec, steps=1), amp)  # PGD-AT with one step


def _pgd_at_budget(given: dict) -> dict:
    steps = given.get("steps", 10)
    return {"steps": steps, "alpha": 2.5 * given["eps"] / steps, **given}  # Madry et al.'s step rule


@dataclass(frozen=True)
class MethodInfo:
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor, MethodSpec, bool], torch.Tensor]
    budget: tuple[str, ...]  # the budget fields it uses, of BUDGET_FIELDS
    complete: Callable[[dict], dict] = dict  # the given budget (eps resolved) -> every field, defaults filled
    guards_overfitting: bool = False


METHODS: dict[str, MethodInfo] = {
    "natural": MethodInfo(natural_loss, ()),
    "pgd_at": MethodInfo(pgd_at_loss, ("eps", "alpha", "steps"), _pgd_at_budget),
    "trades": MethodInfo(trades_loss, ("eps", "alpha", "steps", "beta"),
                         lambda given: {"steps": 10, "alpha": given["eps"] / 4, "beta": 6.0, **given}),
    "fgsm_rs": MethodInfo(fgsm_rs_loss, ("eps", "alpha"), lambda given: {"alpha": 1.25 * given["eps"], **given},
                          guards_overfitting=True),
}


def resolve_method(name: str, given: dict, default_eps: float) -> MethodSpec:
    """The method's budget: what was given, else its published default (from the given eps,
    else the dataset's). `given` holds only fields the method uses (checked by the config)."""
    info = METHODS[name]
    if not info.budget:
        return MethodSpec(name)
    values = info.complete({"eps": default_eps, **given})
    return MethodSpec(name, **{k: values[k] for k in info.budget})


GUARD_IMAGES = 256
GUARD_PGD_STEPS = 10


class OverfitGuard:
    """After each epoch, PGD accuracy (the method's eps, 10 steps of eps / 4) on a fixed
    subset of the training data; the weights of the best epoch are put back at the end of
    the training. A collapse (catastrophic overfitting) shows as `drop`: the best accuracy
    minus the last. One guard serves each training it is given to (`begin` starts afresh)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, spec: MethodSpec, device: torch.device):
        self.images, self.labels, self.spec, self.device = images, labels, spec, device
        self.begin()

    def begin(self) -> None:
        self.accuracies: list[float] = []
        self.best_state: dict | None = None

    def pgd_accuracy(self, model: nn.Module) -> float:
        with _in_eval_mode(model):
            x, y = self.images.to(self.device), self.labels.to(self.device)
            adv = _cross_entropy_examples(model, x, y, self.spec.eps, self.spec.eps / 4, GUARD_PGD_STEPS, amp=False)
            with torch.no_grad():
                return (model(adv).argmax(1) == y).float().mean().item()

    def after_epoch(self, model: nn.Module) -> None:
        self.accuracies.append(self.pgd_accuracy(model))
        if self.accuracies[-1] >= max(self.accuracies):
            self.best_state = copy.deepcopy(model.state_dict())

    def keep_best(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def summary(self) -> dict[str, float]:
        """Metrics of the last training: the best epoch (1-based), its PGD accuracy, and the
        drop from it to the last."""
        if not self.accuracies:
            return {}
        best = max(range(len(self.accuracies)), key=lambda i: (self.accuracies[i], -i))
        return {"guard_best_epoch": best + 1, "guard_pgd_acc": self.accuracies[best],
                "guard_pgd_acc_drop": self.accuracies[best] - self.accuracies[-1]}
