"""Worst case over a finite set of input transformations (occlusion patches, rotations ...).

An image counts as broken when *any* candidate transformation misclassifies it; the
returned image is then the first such candidate. Images that survive every candidate
get the candidate with the highest loss. Candidates are evaluated in large batches
(images x candidates per forward pass), so an exhaustive search stays affordable.
"""
from __future__ import annotations

import torch
import torchattacks
from torch import nn


class GridAttack(torchattacks.attack.Attack):
    """Base class: subclasses say how many candidates exist and how to apply a slice of them."""

    max_batch = 2048  # transformed images per forward pass

    def num_candidates(self, images: torch.Tensor) -> int:
        raise NotImplementedError

    def apply(self, images: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """Candidates first..last-1 applied to every image: (n, last - first, C, H, W)."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, images, labels):
        images = images.clone().detach().to(self.device)
        labels = labels.to(self.device)
        n = len(images)
        total = self.num_candidates(images)
        adv = images.clone()
        broken = torch.zeros(n, dtype=torch.bool, device=self.device)
        best_loss = torch.full((n,), -float("inf"), device=self.device)
        loss_fn = nn.CrossEntropyLoss(reduction="none")
        first = 0
        while first < total and not broken.all():
            active = (~broken).nonzero().squeeze(1)
            step = max(1, min(total - first, self.max_batch // len(active)))
            cands = self.apply(images[active], first, first + step)  # (a, k, C, H, W)
            a, k = cands.shape[:2]
            logits = self.get_logits(cands.flatten(0, 1)).view(a, k, -1)
            wrong = logits.argmax(-1) != labels[active, None]
            hit = wrong.any(1)
            loss = loss_fn(logits.flatten(0, 1), labels[active].repeat_interleave(k)).view(a, k)
            # broken images take their first misclassifying candidate, the others the highest loss
            pick = torch.where(hit, wrong.float().argmax(1), loss.argmax(1))
            picked_loss = loss.gather(1, pick[:, None]).squeeze(1)
            take = hit | (picked_loss > best_loss[active])
            rows = torch.arange(a, device=self.device)
            adv[active[take]] = cands[rows[take], pick[take]]
            best_loss[active[take]] = picked_loss[take]
            broken[active[hit]] = True
            first += step
        return adv
