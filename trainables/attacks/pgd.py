"""PGD (Madry et al. 2018) with random restarts, L-inf.

Each restart attacks only the images no earlier restart broke, so an image counts as
robust only if it survives every restart (per-sample worst case). Random starts are
drawn per image from a generator keyed by (seed, restart, the image's pixels), so an
image gets the same starts whichever batch or cascade stage it is attacked in: the
per-attack and the cascade evaluations of one model agree image by image.
"""
from __future__ import annotations

import torch
import torchattacks
from torch import nn

_HASH_PRIME = 2_147_483_647


def image_keys(images: torch.Tensor) -> list[int]:
    """A deterministic integer per image from its 8-bit pixels (exact integer arithmetic)."""
    pixels = (images.detach().flatten(1).clamp(0, 1) * 255).round().long().cpu()
    weights = torch.randint(1, _HASH_PRIME, (pixels.shape[1],), generator=torch.Generator().manual_seed(0))
    return ((pixels * weights) % _HASH_PRIME).sum(1).remainder(_HASH_PRIME).tolist()


class PGDRestarts(torchattacks.attack.Attack):
    def __init__(self, model, eps: float, alpha: float, steps: int, restarts: int, seed: int = 0):
        super().__init__("PGDRestarts", model)
        self.eps, self.alpha, self.steps, self.restarts, self.seed = eps, alpha, steps, restarts, seed
        self.supported_mode = ["default"]

    def _random_start(self, images: torch.Tensor, restart: int) -> torch.Tensor:
        noise = torch.stack([
            torch.rand(images.shape[1:], generator=torch.Generator().manual_seed(
                hash((self.seed, restart, key)) % _HASH_PRIME))
            for key in image_keys(images)]).to(images.device, images.dtype)
        return (images + (2 * noise - 1) * self.eps).clamp(0, 1)

    def _attack(self, images: torch.Tensor, labels: torch.Tensor, restart: int) -> torch.Tensor:
        """One restart. An image whose iterate is misclassified keeps that iterate and leaves
        the loop (it is broken; later steps could only undo that and cost compute)."""
        loss_fn = nn.CrossEntropyLoss()
        adv = self._random_start(images, restart)
        active = torch.arange(len(images), device=images.device)
        for _ in range(self.steps):
            x = adv[active].requires_grad_(True)
            logits = self.get_logits(x)
            going = logits.argmax(1) == labels[active]
            if not going.any():
                break
            grad, = torch.autograd.grad(loss_fn(logits[going], labels[active][going]), x)
            active, x, grad = active[going], x[going].detach(), grad[going]
            step = x + self.alpha * grad.sign()
            adv[active] = (images[active] + (step - images[active]).clamp(-self.eps, self.eps)).clamp(0, 1)
        return adv.detach()

    def forward(self, images, labels):
        images = images.clone().detach().to(self.device)
        labels = labels.to(self.device)
        adv = images.clone()
        robust = torch.ones(len(images), dtype=torch.bool, device=self.device)
        for restart in range(self.restarts):
            idx = robust.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            candidate = self._attack(images[idx], labels[idx], restart)
            with torch.no_grad():
                fooled = self.get_logits(candidate).argmax(1) != labels[idx]
            adv[idx] = candidate  # survivors keep their latest attempt
            robust[idx[fooled]] = False
        return adv
