"""One cell of the coverage table: a network of a source, pruned by one criterion at one
granularity (random weights, 32 px inputs, 4 calibration images, 30% in one round), then run.
Shared by tests/test_coverage_matrix.py and bench/bench_coverage.py."""
from __future__ import annotations

import time

import torch

from trainables.data import Split
from trainables.models import build_model
from trainables.prune import PruneSettings, prune

MODELS = ["torchvision:resnet18", "torchvision:resnet50", "torchvision:vgg16_bn", "torchvision:mobilenet_v2",
          "torchvision:efficientnet_b0", "torchvision:regnet_y_400mf", "torchvision:shufflenet_v2_x0_5",
          "timm:resnet18", "timm:resnet50"]
# Networks whose blocks are shortcuts through identity modules or branches ending in a
# computation (layer scale, channel slice), and DenseNet's concatenations (no blocks).
MODERN_MODELS = ["torchvision:convnext_tiny", "torchvision:mobilenet_v3_small", "torchvision:densenet121",
                 "timm:convnext_atto", "timm:regnety_002", "timm:ghostnet_100", "timm:efficientnet_b0"]


def fresh(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name=name, in_channels=3, num_classes=10, mean=[0.5] * 3, std=[0.25] * 3).eval()


def try_cell(name: str, granularity: str, criterion: str) -> tuple[str, float]:
    """('works' or the one-line error, seconds pruning took)."""
    model = fresh(name)
    calib = Split(torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,)))
    params = sum(p.numel() for p in model.parameters())
    start = time.perf_counter()
    try:
        prune(model, PruneSettings(granularity, criterion, 0.3, 1), calib, torch.device("cpu"), lambda m, r: None)
    except ValueError as e:
        return str(e), time.perf_counter() - start
    seconds = time.perf_counter() - start
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) < params
    return "works", seconds
