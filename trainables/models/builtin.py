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
    """He et al. 2016 CIFAR ResNet: depth = 6n + 2, widths 16/32/64, projection shortcuts."""

    def __init__(self, depth, in_channels, num_classes, mean, std):
        super().__init__()
        assert (depth - 2) % 6 == 0
        n = (depth - 2) // 6
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(*conv_bn(in_channels, 16), nn.ReLU(inplace=True))
        stages, cin = [], 16
        for i, cout in enumerate((16, 32, 64)):
            blocks = [BasicBlock(cin if j == 0 else cout, cout, 2 if (i > 0 and j == 0) else 1) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.stem(self.normalize(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


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
    "resnet20": lambda **kw: CifarResNet(20, **kw),
    "resnet32": lambda **kw: CifarResNet(32, **kw),
    "resnet56": lambda **kw: CifarResNet(56, **kw),
    "resnet110": lambda **kw: CifarResNet(110, **kw),
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
BUILTIN_WITH_REMOVABLE_BLOCKS = {"resnet20", "resnet32", "resnet56", "resnet110", "mobilenetv2"}
