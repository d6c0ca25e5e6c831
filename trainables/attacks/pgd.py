"""PGD with random restarts: each restart attacks only the images no earlier restart broke,
so an image counts as robust only if it survives every restart (per-sample worst case)."""
from __future__ import annotations

import torch
import torchattacks


class PGDRestarts(torchattacks.attack.Attack):
    def __init__(self, model, eps: float, alpha: float, steps: int, restarts: int):
        super().__init__("PGDRestarts", model)
        self.pgd = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
        self.restarts = restarts
        self.supported_mode = ["default"]

    def forward(self, images, labels):
        images = images.clone().detach().to(self.device)
        labels = labels.to(self.device)
        adv = images.clone()
        robust = torch.ones(len(images), dtype=torch.bool, device=self.device)
        for _ in range(self.restarts):
            idx = robust.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            candidate = self.pgd(images[idx], labels[idx])
            with torch.no_grad():
                fooled = self.get_logits(candidate).argmax(1) != labels[idx]
            adv[idx] = candidate  # survivors keep their latest attempt
            robust[idx[fooled]] = False
        return adv
