"""Spatial attack: the worst case over a grid of rotations and translations (Engstrom et
al., "Exploring the Landscape of Spatial Robustness", ICML 2019). Pixels moved in from
outside the image are black (zero padding), as in that paper; its grid search used
+-30 degrees in 31 steps and +-3 pixels in 5 steps per axis, our defaults."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from .grid import GridAttack
from .params import AttackParams


class SpatialParams(AttackParams):
    max_rotation: float = Field(30.0, ge=0, le=180, description="degrees, both directions")
    max_translation: float = Field(3.0, ge=0, description="pixels, both directions, each axis")
    rotations: int = Field(31, ge=1, description="grid points over [-max_rotation, max_rotation]")
    translations: int = Field(5, ge=1, description="grid points per axis over [-max_translation, max_translation]")


def _grid(limit: float, points: int) -> torch.Tensor:
    return torch.linspace(-limit, limit, points) if points > 1 else torch.zeros(1)


class Spatial(GridAttack):
    def __init__(self, model, max_rotation: float = 30.0, max_translation: float = 3.0, rotations: int = 31,
                 translations: int = 5):
        super().__init__("Spatial", model)
        angle = _grid(math.radians(max_rotation), rotations)
        shift = _grid(max_translation, translations)
        a, dx, dy = torch.meshgrid(angle, shift, shift, indexing="ij")
        self.transforms = torch.stack([a.flatten(), dx.flatten(), dy.flatten()], 1)  # (P, 3)
        self.supported_mode = ["default"]

    def num_candidates(self, images):
        return len(self.transforms)

    def apply(self, images, first, last):
        n, c, h, w = images.shape
        angle, dx, dy = self.transforms[first:last].to(images.device, images.dtype).T
        cos, sin = torch.cos(angle), torch.sin(angle)
        # affine_grid maps output to input coordinates in [-1, 1]: a shift of p pixels is 2p/size
        theta = torch.stack([torch.stack([cos, -sin, 2 * dx / w], 1),
                             torch.stack([sin, cos, 2 * dy / h], 1)], 1)  # (k, 2, 3)
        k = len(theta)
        theta = theta.repeat(n, 1, 1)
        x = images.repeat_interleave(k, 0)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.view(n, k, c, h, w)
