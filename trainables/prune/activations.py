"""What activation criteria measure: per-channel statistics of feature maps on the
calibration batch, read with forward hooks.

A statistic sees one module's output as maps (n, C, H*W) plus the spatial size, and
turns all scored modules' per-sample values into one score per channel: a mean over
samples (expected_abs, hrank) or a joint fit across modules (PLS + VIP).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Literal

import numpy as np
import torch
from torch import nn

from ..data import Split
from ..models.blocks import ACTIVATION_FUNCTIONS

Maps = torch.Tensor  # (n, C, H*W)


def mean_abs(maps: Maps, hw: tuple[int, int]) -> torch.Tensor:
    return maps.abs().mean(2)


def relative_rank(maps: Maps, hw: tuple[int, int]) -> torch.Tensor:
    """Matrix rank of each (H, W) map divided by the largest possible rank, min(H, W), so
    ranks of maps of different sizes compare (a 1x1 map has rank 1 when non-zero)."""
    n, c, _ = maps.shape
    if hw[0] * hw[1] == 1:
        return (maps[..., 0] != 0).float()
    return torch.linalg.matrix_rank(maps.reshape(n, c, *hw).float()).float() / min(hw)


POOLINGS: dict[str, Callable[[Maps], torch.Tensor]] = {
    "max": lambda maps: maps.amax(2),
    "mean": lambda maps: maps.mean(2),
}


def vip_scores(features: np.ndarray, labels: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Variable importance in projection of each feature column for a PLS fit on one-hot labels
    (Wold et al.; VIP_j^2 = p * sum_a w_ja^2 SSY_a / sum_a SSY_a with unit-norm weights)."""
    from sklearn.cross_decomposition import PLSRegression

    n, p = features.shape
    if not np.ptp(features, axis=0).any():  # nothing varies (e.g. timm's zero-initialised last BN of a block)
        return np.zeros(p)
    targets = np.eye(int(labels.max()) + 1)[labels]
    a = max(1, min(n_components, p, n - 1))
    pls = PLSRegression(n_components=a, scale=True).fit(features, targets)
    t, w, q = pls.x_scores_, pls.x_weights_, pls.y_loadings_
    explained = (t ** 2).sum(0) * (q ** 2).sum(0)  # Y variance explained by each component
    w_norm = (w / np.linalg.norm(w, axis=0, keepdims=True)) ** 2
    return np.sqrt(p * (w_norm @ explained) / explained.sum())


@dataclass(frozen=True)
class MeanOverSamples:
    """A per-sample channel statistic averaged over the calibration batch."""
    per_sample: Callable[[Maps, tuple[int, int]], torch.Tensor]

    def reduce(self, features: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: f.mean(0) for k, f in features.items()}


@dataclass(frozen=True)
class JointVip:
    """Pooled channel outputs of every scored module in one PLS regression on the labels;
    a channel's score is its VIP (comparable across modules: no per-module normalisation)."""
    pooling: Literal["max", "mean"] = "max"
    components: int = 2

    def per_sample(self, maps: Maps, hw: tuple[int, int]) -> torch.Tensor:
        return POOLINGS[self.pooling](maps)

    def reduce(self, features: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        names = list(features)
        stacked = torch.cat([features[k] for k in names], dim=1).double().numpy()
        vip = torch.from_numpy(vip_scores(stacked, labels.numpy(), self.components)).float()
        return dict(zip(names, torch.split(vip, [features[k].shape[1] for k in names])))


ChannelStatistic = MeanOverSamples | JointVip


def leaf_modules(model: nn.Module) -> list[nn.Module]:
    """Modules without children: what a forward pass runs as units."""
    return [m for m in model.modules() if not list(m.children())]


def execution_order(model: nn.Module, sample: torch.Tensor) -> list[nn.Module]:
    """Leaf modules in the order one forward pass runs them."""
    order: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod)) for m in leaf_modules(model)]
    try:
        with torch.no_grad():
            model.eval()(sample)
    finally:
        for h in handles:
            h.remove()
    return order


def activation_after(order: list[nn.Module], i: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation the network applies right after `order[i]` (identity when none does, e.g.
    a residual branch's last BatchNorm, whose output is first added to the shortcut)."""
    following = order[i + 1] if i + 1 < len(order) else None
    return ACTIVATION_FUNCTIONS.get(type(following), lambda t: t)


def channels_first(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """`out` with its channels at dim 1: a Linear layer applied to a map (ConvNeXt's pointwise
    layers, channels last: N, H, W, C) has them last."""
    return out.movedim(-1, 1) if isinstance(module, nn.Linear) and out.dim() > 2 else out


@torch.no_grad()
def collect_scores(model: nn.Module, modules: dict[Hashable, tuple[nn.Module, Callable]], stat: ChannelStatistic,
                   calib: Split, device: torch.device, chunk: int = 128) -> dict[Hashable, torch.Tensor]:
    """Per-channel scores of each module's output (passed through its activation) on the
    calibration batch: {name: (C,)}."""
    feats: dict[str, list[torch.Tensor]] = {k: [] for k in modules}

    def hook_for(name, activation):
        def hook(module, _inputs, out):
            out = channels_first(module, activation(out))
            hw = tuple(out.shape[2:]) if out.dim() == 4 else (1, 1)
            feats[name].append(stat.per_sample(out.reshape(out.shape[0], out.shape[1], -1), hw).cpu())
        return hook

    handles = [m.register_forward_hook(hook_for(k, act)) for k, (m, act) in modules.items()]
    model.eval()
    try:
        for i in range(0, len(calib), chunk):
            model(calib.x[i:i + chunk].to(device))
    finally:
        for h in handles:
            h.remove()
    return stat.reduce({k: torch.cat(v) for k, v in feats.items()}, calib.y)
