"""`model: torchvision:NAME`: a torchvision classification architecture, built without
weights (never a hub download); `model.weights` loads the user's file into it."""
from __future__ import annotations

import difflib

from torch import nn

from .sources import model_source


def classification_models() -> list[str]:
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)


def unknown_name_error(source: str, target: str, known: list[str]) -> ValueError:
    close = difflib.get_close_matches(target, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"{len(known)} known, e.g. {', '.join(known[:5])}"
    return ValueError(f"unknown {source} model '{target}'; {hint}")


@model_source("torchvision")
class Torchvision:
    @staticmethod
    def check(target: str) -> None:
        known = classification_models()
        if target not in known:
            raise unknown_name_error("torchvision", target, known)

    @staticmethod
    def build(target: str, args: dict, in_channels: int, num_classes: int, mean, std) -> nn.Module:
        import torchvision.models

        if in_channels != 3:
            raise ValueError(f"torchvision:{target} takes 3-channel images; the data has {in_channels}")
        return torchvision.models.get_model(target, weights=None, num_classes=num_classes, **args)
