"""The built-in networks (`model: lenet`, `resnet56`, ...).

Each adapts to the dataset's channels, size and number of classes (global pooling before
the classifier) and normalizes its input in its first layer. Their residual blocks mark
themselves `removable = True` and keep their residual branch in `.branch`, whose output
is what layer criteria score (other sources' blocks are found by `blocks.py`).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

from ..registry import one_of
from .normalize import Normalize
from .sources import model_source


def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


# --------------------------------------------------------------------------- LeNet
class LeNet(nn.Module):
    """LeNet-style CNN for MNIST / digits (two conv stages, two dense layers)."""

    def __init__(self, in_channels, num_classes, mean, std, width=32):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            *conv_bn(in_channels, width), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
            *conv_bn(width, 2 * width), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(8 * width, 128), nn.ReLU(inplace=True),
                                        nn.Linear(128, num_classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(self.normalize(x))))


# --------------------------------------------------------------------------- CIFAR ResNets
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.branch = nn.Sequential(*conv_bn(cin, cout, stride=stride), nn.ReLU(inplace=True),
                                    *conv_bn(cout, cout))
        self.removable = stride == 1 and cin == cout
        self.shortcut = nn.Identity() if self.removable else nn.Sequential(
            *conv_bn(cin, cout, k=1, stride=stride))

    def forward(self, x):
        return F.relu(self.branch(x) + self.shortcut(x))


class CifarResNet(nn.Module):
    """A ResNet for 32 px images (3x3 stem, no max-pool), basic blocks, projection shortcuts:
    He et al. 2016's depth 6n + 2 at widths 16/32/64 (`resnet20` ... `resnet110`), or the
    four-stage ResNet-18 at widths 64-512 that CIFAR robustness benchmarks use (`resnet18`)."""

    def __init__(self, blocks_per_stage, widths, in_channels, num_classes, mean, std):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(*conv_bn(in_channels, widths[0]), nn.ReLU(inplace=True))
        cin = widths[0]
        for i, (n, cout) in enumerate(zip(blocks_per_stage, widths)):
            blocks = [BasicBlock(cin if j == 0 else cout, cout, 2 if (i > 0 and j == 0) else 1) for j in range(n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.stages = len(widths)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.stem(self.normalize(x))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def _he_cifar_resnet(depth: int) -> Callable[..., nn.Module]:
    n = (depth - 2) // 6
    return lambda **kw: CifarResNet((n, n, n), (16, 32, 64), **kw)


# --------------------------------------------------------------------------- VGG-16-BN
VGG16_PLAN = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, in_channels, num_classes, mean, std, plan=VGG16_PLAN):
        super().__init__()
        self.normalize = Normalize(mean, std)
        layers, cin = [], in_channels
        for v in plan:
            if v == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                layers += [*conv_bn(cin, v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(self.normalize(x))), 1))


# --------------------------------------------------------------------------- MobileNetV2
class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [*conv_bn(cin, hidden, k=1), nn.ReLU6(inplace=True)]
        layers += [*conv_bn(hidden, hidden, stride=stride, groups=hidden), nn.ReLU6(inplace=True),
                   *conv_bn(hidden, cout, k=1)]
        self.branch = nn.Sequential(*layers)
        self.removable = stride == 1 and cin == cout

    def forward(self, x):
        out = self.branch(x)
        return x + out if self.removable else out


# (expansion, out channels, repeats, first stride) — CIFAR variant: stride 1 in the stem
# and in the second stage, so 32x32 inputs keep enough resolution.
MOBILENETV2_PLAN = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                    (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    def __init__(self, in_channels, num_classes, mean, std):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(*conv_bn(in_channels, 32), nn.ReLU6(inplace=True))
        blocks, cin = [], 32
        for t, c, n, s in MOBILENETV2_PLAN:
            for j in range(n):
                blocks.append(InvertedResidual(cin, c, s if j == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(*conv_bn(cin, 1280, k=1), nn.ReLU6(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(self.normalize(x))))
        return self.classifier(torch.flatten(self.pool(x), 1))


# --------------------------------------------------------------------------- registry
BUILTIN_MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet": LeNet,
    "resnet20": _he_cifar_resnet(20),
    "resnet32": _he_cifar_resnet(32),
    "resnet56": _he_cifar_resnet(56),
    "resnet110": _he_cifar_resnet(110),
    "resnet18": lambda **kw: CifarResNet((2, 2, 2, 2), (64, 128, 256, 512), **kw),
    "vgg16_bn": VGG,
    "mobilenetv2": MobileNetV2,
}


@model_source("builtin", normalizes_itself=True)
class Builtin:
    """`model: resnet56`: the networks of this package, trained from scratch by default."""

    @staticmethod
    def check(target: str) -> None:
        one_of(target, BUILTIN_MODELS, "model")

    @staticmethod
    def build(target: str, args: dict, in_channels: int, num_classes: int, mean, std) -> nn.Module:
        return BUILTIN_MODELS[target](in_channels=in_channels, num_classes=num_classes, mean=list(mean),
                                      std=list(std), **args)


# Checked by the config without building a model: layer pruning of e.g. VGG is refused up front.
BUILTIN_WITH_REMOVABLE_BLOCKS = {"resnet18", "resnet20", "resnet32", "resnet56", "resnet110", "mobilenetv2"}
