"""Normalization as the network's first layer: inputs stay in pixel space [0, 1], so the
attacks' eps is in pixels whatever the data's statistics."""
from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class Normalized(nn.Module):
    """A network from another source (torchvision, timm, the user's) behind a Normalize:
    its own weights are `net.*` in the state_dict."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x):
        return self.net(self.normalize(x))


def inner_network(model: nn.Module) -> nn.Module:
    """The network whose weights a user's file holds (the model itself for built-in ones)."""
    return model.net if isinstance(model, Normalized) else model
