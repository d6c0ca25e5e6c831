"""Where a network comes from: `model.name` is `SOURCE:TARGET` (`torchvision:resnet50`,
`timm:resnet50`, `python:my_pkg.nets:make_net`) or a built-in name (`resnet56`).

A source is one file in this package that decorates a class with `@model_source(name)`;
the class has `check(target)` (a ValueError naming what is allowed, without building
anything heavy) and `build(target, args, in_channels, num_classes, mean, std)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from .normalize import Normalized


@dataclass(frozen=True)
class ModelSource:
    check: Callable[[str], None]
    build: Callable[..., nn.Module]
    normalizes_itself: bool  # built-in networks hold their Normalize; others are wrapped
    own_normalization: Callable[[nn.Module], tuple[list, list] | None] = lambda net: None


MODEL_SOURCES: dict[str, ModelSource] = {}
BUILTIN_SOURCE = "builtin"


def model_source(name: str, normalizes_itself: bool = False):
    def register(cls):
        MODEL_SOURCES[name] = ModelSource(cls.check, cls.build, normalizes_itself,
                                          getattr(cls, "own_normalization", lambda net: None))
        return cls
    return register


def split_model_name(name: str) -> tuple[str, str]:
    """'torchvision:resnet50' -> ('torchvision', 'resnet50'); 'resnet56' -> ('builtin', 'resnet56')."""
    source, sep, target = name.partition(":")
    return (source, target) if sep else (BUILTIN_SOURCE, name)


def is_builtin(name: str) -> bool:
    return split_model_name(name)[0] == BUILTIN_SOURCE


def check_model_name(name: str) -> str:
    """The name if its source knows its target; else a ValueError naming what is allowed."""
    source, target = split_model_name(name)
    if source not in MODEL_SOURCES:
        raise ValueError(f"unknown model source '{source}:'; allowed: a built-in name or "
                         f"{', '.join(f'{s}:NAME' for s in sorted(MODEL_SOURCES) if s != BUILTIN_SOURCE)}")
    if not target:
        raise ValueError(f"model '{name}' names no network after '{source}:'")
    MODEL_SOURCES[source].check(target)
    return name


def build_model(name: str, in_channels: int, num_classes: int, mean, std, args: dict[str, Any] | None = None,
                fallback_normalization: tuple | None = None, **_recorded) -> nn.Module:
    """The untrained network taking images in [0, 1], normalized by `mean`/`std`; where they
    are None, by the network's own (timm's pretrained config), else by `fallback_normalization`
    (the data's). Extra keys of a recorded architecture are accepted and ignored."""
    source, target = split_model_name(name)
    spec = MODEL_SOURCES[source]
    if spec.normalizes_itself:
        mean, std = (mean, std) if mean is not None else fallback_normalization
    net = spec.build(target, dict(args or {}), in_channels, num_classes, mean, std)
    if not isinstance(net, nn.Module):
        raise ValueError(f"{name} returned a {type(net).__name__}, not a torch nn.Module")
    if spec.normalizes_itself:
        return net
    if mean is None:
        mean, std = spec.own_normalization(net) or fallback_normalization
    return Normalized(net, list(mean), list(std))


def recorded_normalization(model: nn.Module) -> tuple[list[float], list[float]]:
    """The mean and std a built model normalizes with (what its file records)."""
    return model.normalize.mean.flatten().tolist(), model.normalize.std.flatten().tolist()
