"""`model: timm:NAME`: a timm architecture, built with `pretrained=False` (never a hub
download); `model.weights` loads the user's file. Unless `data.mean`/`data.std` are set,
the network is normalized with its own pretrained config's mean and std."""
from __future__ import annotations

from torch import nn

from .sources import model_source
from .torchvision_models import unknown_name_error


@model_source("timm")
class Timm:
    @staticmethod
    def check(target: str) -> None:
        import timm

        if not timm.is_model(target):
            raise unknown_name_error("timm", target, timm.list_models())

    @staticmethod
    def build(target: str, args: dict, in_channels: int, num_classes: int, mean, std) -> nn.Module:
        import timm

        return timm.create_model(target, pretrained=False, num_classes=num_classes, in_chans=in_channels, **args)

    @staticmethod
    def own_normalization(net: nn.Module) -> tuple[list, list] | None:
        cfg = getattr(net, "pretrained_cfg", None) or {}
        if "mean" in cfg and "std" in cfg:
            return list(cfg["mean"]), list(cfg["std"])
        return None
