"""`data.transforms` (a trial's `transforms`): a preset for both phases, a mapping of
presets and knobs, `timm`, or the user's `python:` function; resolved against the data and
the model into every setting (`ResolvedTransforms`).

Unset, it is: a timm model's own pretrained preprocessing on streamed data; `imagenet` for
streamed images cropped to 64 px or more and `cifar` below; an in-memory dataset's own
(`cifar` for CIFAR-10/100, `none` for the others).
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from .data import DATASETS
from .data.transforms import (DEFAULT_CROP_FRACTION, DEFAULT_SCALE, INTERPOLATIONS, KNOB_PRESETS, PRESET_FLIPS,
                              PRESETS, ResolvedTransforms, default_padding, streamed_default, timm_settings,
                              user_transforms)
from .models.python_factory import carried_code
from .models.sources import split_model_name
from .registry import Strict, one_of

TIMM = "timm"
STREAMED_DEFAULT_SIDE = 224


class TransformsConfig(Strict):
    train: str | None = Field(None, description="imagenet, cifar or none; default: the data's "
                                                 "(docs/tutorials/own-network.md)")
    eval: str | None = Field(None, description="imagenet, cifar or none; default: the data's")
    crop_fraction: float | None = Field(None, description="imagenet evaluation: resize to size / it, crop the "
                                                          "centre; default 0.875")
    interpolation: str | None = Field(None, description="nearest, bilinear or bicubic; default bilinear")
    flip: bool | None = Field(None, description="random horizontal flip in training; default: on for imagenet "
                                                "and cifar, off for none")
    random_crop_padding: Annotated[int, Field(ge=0)] | None = Field(
        None, description="cifar training: pixels padded before the random crop; default: side / 8")
    scale: tuple[float, float] | None = Field(None, description="imagenet training: the random-resized crop's "
                                                                "area range; default [0.08, 1]")
    function: str | None = Field(None, description="python:MODULE:FN or python:FILE.py:FN returning (train, eval)")
    timm: bool = Field(False, description="the timm model's own pretrained preprocessing")
    code: str | None = Field(None, description="set by the driver: a python: file's code, for the workers")

    @model_validator(mode="before")
    @classmethod
    def _from_a_name(cls, data):
        """'cifar' is both phases' preset; 'timm' timm's own; 'python:...' the user's function."""
        if isinstance(data, str):
            if data.startswith("python:"):
                return {"function": data}
            if data == TIMM:
                return {"timm": True}
            one_of(data, (*PRESETS, TIMM, "python:MODULE:FN"), "transforms preset")
            return {"train": data, "eval": data}
        return data

    @field_validator("train", "eval")
    @classmethod
    def _preset(cls, v):
        return None if v is None else one_of(v, PRESETS, "preset")

    @field_validator("interpolation")
    @classmethod
    def _interpolation(cls, v):
        return None if v is None else one_of(v, INTERPOLATIONS, "interpolation")

    @field_validator("crop_fraction")
    @classmethod
    def _crop_fraction(cls, v):
        if v is not None and not 0 < v <= 1:
            raise ValueError(f"got {v}; allowed: 0 < crop_fraction <= 1")
        return v

    @field_validator("scale")
    @classmethod
    def _scale(cls, v):
        if v is not None and not 0 < v[0] <= v[1] <= 1:
            raise ValueError(f"got {list(v)}; allowed: [low, high] with 0 < low <= high <= 1")
        return v

    @model_validator(mode="after")
    def _one_route(self):
        knobs = self.model_dump(exclude={"function", "timm", "code"}, exclude_none=True)
        if self.function is not None:
            if knobs or self.timm:
                raise ValueError(f"{next(iter(knobs), 'timm')} is not a setting of a python: function (it returns "
                                 f"the transforms whole); allowed with function: nothing else")
            object.__setattr__(self, "code", carried_code(self.function, self.code))
        elif self.timm and knobs:
            raise ValueError(f"{next(iter(knobs))} is not a setting of timm's own preprocessing; allowed: "
                             f"timm alone, or presets and knobs instead")
        return self

    def resolve(self, dataset: str, model: str, image_size: int | None,
                in_memory_side: int | None = None) -> ResolvedTransforms:
        """Every setting: given, else the preset's, else the data's default (module docstring).
        `in_memory_side`: an in-memory dataset's own image side (image_size is for streamed data)."""
        info = DATASETS[dataset]
        streamed = info.opener is not None
        source, target = split_model_name(model)
        timm = timm_settings(target) if source == "timm" and streamed else None
        if self.timm and timm is None:
            raise ValueError(f"transforms: timm is the preprocessing of timm: models with a pretrained config on "
                             f"streamed data (imagefolder, hf, webdataset); here model is {model} on {dataset}")
        unset = self == TransformsConfig()
        if self.timm or (unset and timm is not None):
            return ResolvedTransforms(**{**timm, "image_size": image_size or timm["image_size"]}, route="timm")
        side = (image_size or STREAMED_DEFAULT_SIDE) if streamed else in_memory_side
        if self.function is not None:
            resolved = ResolvedTransforms(side, route="python", function=self.function, code=self.code)
            user_transforms(self.function, side)  # imports, calls and checks it now: errors before any work
            return resolved
        default = streamed_default(side) if streamed else info.default_transforms
        train, evaluation = self.train or default, self.eval or default
        self._knobs_fit(train, evaluation)
        return ResolvedTransforms(
            side, train, evaluation, self.interpolation or "bilinear", self.crop_fraction or DEFAULT_CROP_FRACTION,
            PRESET_FLIPS[train] if self.flip is None else self.flip,
            default_padding(side) if self.random_crop_padding is None else self.random_crop_padding,
            tuple(self.scale or DEFAULT_SCALE))

    def _knobs_fit(self, train: str, evaluation: str) -> None:
        """A knob the chosen presets do not use is refused, not ignored."""
        chosen = {"train": train, "eval": evaluation}
        for knob, (phase, preset) in KNOB_PRESETS.items():
            if getattr(self, knob) is not None and chosen[phase] != preset:
                raise ValueError(f"transforms.{knob}: used by the {preset} {phase} preset only; "
                                 f"{phase} is {chosen[phase]}")
