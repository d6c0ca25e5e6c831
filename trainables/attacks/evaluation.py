"""A model against a suite of attacks: per-sample worst case (AutoAttack / RobustBench
convention) and each attack's own robust accuracy.

An image is robust to a suite when it is classified correctly clean *and* under every
attack. Attacks run as a cascade: each one only sees the images that are still robust,
which gives the same worst case for less compute. When each attack's own accuracy is
wanted too (`per_attack=True`), every attack runs on all clean-correct images instead,
and the worst case is the intersection of their robust sets.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data import Split
from ..train import correct_predictions
from . import ATTACKS, AttackSpec, adversarial_examples


@dataclass
class Robustness:
    """Boolean masks over the evaluated images."""
    clean: torch.Tensor  # correct without attack
    robust: torch.Tensor  # correct clean and under every attack
    per_attack: dict[str, torch.Tensor]  # correct clean and under that attack alone

    @staticmethod
    def fraction(mask: torch.Tensor) -> float:
        return mask.sum().item() / max(len(mask), 1)

    def metrics(self, prefix: str = "") -> dict[str, float]:
        out = {f"{prefix}robust_acc": self.fraction(self.robust)}
        out.update({f"{prefix}robust_acc_{name}": self.fraction(m) for name, m in self.per_attack.items()})
        return out

    def clean_acc(self) -> float:
        return self.fraction(self.clean)


def survives(model: nn.Module, spec: AttackSpec, split: Split, idx: torch.Tensor, num_classes: int,
             device: torch.device, seed: int, batch_size: int) -> torch.Tensor:
    """For the images split[idx]: still classified correctly under the attack."""
    model.to(device).eval()
    out = torch.zeros(len(idx), dtype=torch.bool)
    for start in range(0, len(idx), batch_size):
        part = idx[start:start + batch_size]
        x, y = split.x[part].to(device), split.y[part].to(device)
        adv = adversarial_examples(model, spec, x, y, num_classes, seed)
        with torch.no_grad():
            out[start:start + len(part)] = (model(adv).argmax(1) == y).cpu()
    return out


def evaluate_robustness(model: nn.Module, specs: list[AttackSpec], split: Split, num_classes: int,
                        device: torch.device, seed: int = 0, per_attack: bool = True,
                        batch_size: int = 256) -> Robustness:
    clean = correct_predictions(model, split, device)
    robust = clean.clone()
    masks = {}
    for spec in specs:
        pool = clean if per_attack else robust
        if ATTACKS[spec.name].uses_eps and spec.eps == 0:  # nothing to perturb: the pool survives as is
            masks[spec.name] = pool.clone()
            robust &= pool
            continue
        idx = pool.nonzero().squeeze(1)
        ok = torch.zeros_like(clean)
        ok[idx] = survives(model, spec, split, idx, num_classes, device, seed, batch_size)
        masks[spec.name] = ok
        robust &= ok
    return Robustness(clean, robust, masks if per_attack else {})
