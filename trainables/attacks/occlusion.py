"""Worst-case square occlusion: a `size` x `size` patch of any fill, at any position on a
`stride` grid; an image is broken when any (position, fill) misclassifies it."""
from __future__ import annotations

import torch
from pydantic import Field, field_validator

from .grid import GridAttack
from .params import AttackParams


class OcclusionParams(AttackParams):
    size: int = Field(7, ge=0, description="patch side in pixels (clipped to the image)")
    stride: int = Field(1, ge=1)
    fills: list[float] = Field(default_factory=lambda: [0.0, 0.5, 1.0], min_length=1)

    @field_validator("fills")
    @classmethod
    def _pixel_values(cls, v):
        bad = [f for f in v if not 0 <= f <= 1]
        if bad:
            raise ValueError(f"got fill {bad[0]}; allowed: pixel values in [0, 1]")
        return sorted(set(v))


def _starts(extent: int, size: int, stride: int) -> list[int]:
    """Patch positions along one axis; the last position (flush with the border) is always tried."""
    return sorted(set(range(0, extent - size + 1, stride)) | {extent - size})


class Occlusion(GridAttack):
    def __init__(self, model, size: int = 7, stride: int = 1, fills=(0.0, 0.5, 1.0)):
        super().__init__("Occlusion", model)
        self.size, self.stride, self.fills = size, stride, list(fills)
        self.supported_mode = ["default"]
        self._grids: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _grid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(masks (P, 1, H, W), fill (P,)) over every position x fill, built once per image size."""
        key = (*images.shape[2:], images.device)
        if key not in self._grids:
            self._grids[key] = self._build_grid(images)
        return self._grids[key]

    def _build_grid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, h, w = images.shape
        size = min(self.size, h, w)
        masks = []
        for top in _starts(h, size, self.stride):
            for left in _starts(w, size, self.stride):
                m = torch.zeros(1, h, w, dtype=torch.bool)
                m[:, top:top + size, left:left + size] = True
                masks.append(m)
        masks = torch.stack(masks).repeat(len(self.fills), 1, 1, 1)
        fills = torch.tensor(self.fills).repeat_interleave(len(masks) // len(self.fills))
        return masks.to(images.device), fills.to(images.device, images.dtype)

    def num_candidates(self, images):
        return 0 if self.size == 0 else len(self._grid(images)[1])

    def apply(self, images, first, last):
        masks, fills = self._grid(images)
        masks, fills = masks[first:last], fills[first:last]  # (k, 1, H, W), (k,)
        x = images[:, None]  # (n, 1, C, H, W)
        return torch.where(masks[None], fills[None, :, None, None, None], x)
