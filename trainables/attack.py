"""Attack registry over torchattacks (+ the paper's occlusion attack) and robust accuracy.

All attacks work in pixel space ([0, 1] images; models normalize inside), so `eps`
is in pixel units. L-inf attacks (fgsm, pgd, bim, square, autoattack) are bounded by
construction. cw and deepfool are minimal-perturbation L2 attacks: unbounded when eps
is None; with an eps, an adversarial image farther than eps (L2) from its source
counts as not found, so robust accuracy is measured inside a budget like the others.
occlusion's budget is its patch (`size` pixels square), not eps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torchattacks
from torch import nn

from .data import Split
from .registry import one_of


class Occlusion(torchattacks.attack.Attack):
    """Worst-case square occlusion: tries a `size`x`size` patch of value `fill` at every
    position on a `stride` grid and keeps, per image, the position with the highest loss."""

    def __init__(self, model, size: int = 7, stride: int = 3, fill: float = 0.0):
        super().__init__("Occlusion", model)
        self.size, self.stride, self.fill = size, stride, fill
        self.supported_mode = ["default"]

    @torch.no_grad()
    def forward(self, images, labels):
        images = images.clone().detach().to(self.device)
        labels = labels.to(self.device)
        _, _, h, w = images.shape
        size = min(self.size, h, w)
        best = images.clone()
        best_loss = torch.full((len(images),), -float("inf"), device=self.device)
        loss_fn = nn.CrossEntropyLoss(reduction="none")
        for top in sorted(set(range(0, h - size + 1, self.stride)) | {h - size}):
            for left in sorted(set(range(0, w - size + 1, self.stride)) | {w - size}):
                cand = images.clone()
                cand[:, :, top:top + size, left:left + size] = self.fill
                loss = loss_fn(self.get_logits(cand), labels)
                better = loss > best_loss
                best[better] = cand[better]
                best_loss = torch.where(better, loss, best_loss)
        return best


@dataclass(frozen=True)
class AttackSpec:
    """One configured attack. `params` holds the attack-specific extras (c, overshoot, ...)."""
    name: str
    eps: float | None
    alpha: float | None = None  # step size; default eps / 4
    steps: int = 10
    params: dict = field(default_factory=dict)

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else self.eps / 4


@dataclass(frozen=True)
class AttackInfo:
    make: Callable[[nn.Module, AttackSpec, int, int], torchattacks.attack.Attack]
    norm: str  # linf | l2 | patch: what eps bounds
    allowed_params: frozenset = frozenset()


ATTACKS: dict[str, AttackInfo] = {
    "fgsm": AttackInfo(lambda m, s, k, seed: torchattacks.FGSM(m, eps=s.eps), "linf"),
    "pgd": AttackInfo(lambda m, s, k, seed: torchattacks.PGD(
        m, eps=s.eps, alpha=s.step_size, steps=s.steps, random_start=True), "linf"),
    "bim": AttackInfo(lambda m, s, k, seed: torchattacks.BIM(m, eps=s.eps, alpha=s.step_size, steps=s.steps),
                      "linf"),
    "cw": AttackInfo(lambda m, s, k, seed: torchattacks.CW(
        m, c=s.params.get("c", 1.0), kappa=s.params.get("kappa", 0.0), steps=s.steps,
        lr=s.params.get("lr", 0.01)), "l2", frozenset({"c", "kappa", "lr"})),
    "deepfool": AttackInfo(lambda m, s, k, seed: torchattacks.DeepFool(
        m, steps=s.steps, overshoot=s.params.get("overshoot", 0.02)), "l2", frozenset({"overshoot"})),
    "autoattack": AttackInfo(lambda m, s, k, seed: torchattacks.AutoAttack(
        m, norm="Linf", eps=s.eps, version=s.params.get("version", "standard"), n_classes=k, seed=seed),
        "linf", frozenset({"version"})),
    "square": AttackInfo(lambda m, s, k, seed: torchattacks.Square(
        m, eps=s.eps, n_queries=int(s.params.get("n_queries", 1000)), seed=seed), "linf",
        frozenset({"n_queries"})),
    "occlusion": AttackInfo(lambda m, s, k, seed: Occlusion(
        m, size=int(s.params.get("size", 7)), stride=int(s.params.get("stride", 3)),
        fill=float(s.params.get("fill", 0.0))), "patch", frozenset({"size", "stride", "fill"})),
}


def _within_l2_budget(adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Keep adversarial images within eps (L2); farther ones fall back to the clean image."""
    far = (adv - x).flatten(1).norm(dim=1) > eps
    adv = adv.clone()
    adv[far] = x[far]
    return adv


def make_attack(model: nn.Module, spec: AttackSpec, num_classes: int, seed: int) -> torchattacks.attack.Attack:
    return ATTACKS[one_of(spec.name, ATTACKS, "attack")].make(model, spec, num_classes, seed)


def adversarial_examples(model: nn.Module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor,
                         num_classes: int, seed: int) -> torch.Tensor:
    """Adversarial versions of x (same device)."""
    info = ATTACKS[spec.name]
    torch.manual_seed(seed)  # torchattacks draws random starts from the global generator
    attack = make_attack(model, spec, num_classes, seed)
    adv = attack(x, y).detach()
    if info.norm == "l2" and spec.eps is not None:
        adv = _within_l2_budget(adv, x, spec.eps)
    return adv


def robust_accuracy(model: nn.Module, spec: AttackSpec, split: Split, num_classes: int,
                    device: torch.device, seed: int = 0, batch_size: int = 256) -> float:
    model.to(device).eval()
    correct = 0
    for i in range(0, len(split), batch_size):
        x, y = split.x[i:i + batch_size].to(device), split.y[i:i + batch_size].to(device)
        adv = adversarial_examples(model, spec, x, y, num_classes, seed + i)
        with torch.no_grad():
            correct += (model(adv).argmax(1) == y).sum().item()
    return correct / max(len(split), 1)
