"""What images go through before the model sees them, for training and for evaluation.

Three presets (`TRAIN_STEPS`, `EVAL_STEPS`: a name -> its steps), the knobs over them
(crop fraction, interpolation, flip, crop padding, resized-crop scale), timm's own
preprocessing for timm models, or the user's function. Whatever the route, a transform ends
in a float tensor in [0, 1]: normalization is a layer of the model, so attacks stay in pixels.
Streamed sources apply them to PIL images; in-memory datasets to their tensors.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the streamed sources' normalization unless data.mean/std are set
IMAGENET_STD = (0.229, 0.224, 0.225)
PRESETS = ("imagenet", "cifar", "none")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
DEFAULT_CROP_FRACTION = 0.875  # imagenet evaluation: resize to size / 0.875, then crop the centre
DEFAULT_SCALE = (0.08, 1.0)  # imagenet training: the random-resized crop's share of the area
LARGE_SIDE = 64  # streamed images cropped to at least this side default to imagenet, smaller ones to cifar


def default_padding(image_size: int) -> int:
    """cifar training pads by an eighth of the side: 4 pixels at 32."""
    return max(1, image_size // 8)


@dataclass(frozen=True)
class ResolvedTransforms:
    """Every setting explicit; hashable, as it keys the dataset cache. `route`: preset, timm
    (its create_transform with the model's pretrained config) or python (the user's function)."""
    image_size: int
    train: str = "none"  # a preset name (route preset)
    eval: str = "none"
    interpolation: str = "bilinear"
    crop_fraction: float = DEFAULT_CROP_FRACTION
    flip: bool = False
    padding: int = 0
    scale: tuple[float, float] = DEFAULT_SCALE
    route: str = "preset"
    crop_mode: str = "center"  # timm
    function: str | None = None  # python:MODULE:FN or python:FILE.py:FN
    code: str | None = None  # a python: file's code, carried to the workers

    def augments(self) -> bool:
        """Whether training images differ from evaluation ones (else training skips the transform)."""
        return self.route != "preset" or self.train != "none" or self.flip

    def evaluation_changes_images(self) -> bool:
        """Whether an in-memory image at its own size is changed by the evaluation transform."""
        return self.route != "preset" or self.eval == "imagenet"

    def resize_side(self) -> int:
        return int(round(self.image_size / self.crop_fraction))

    def record(self) -> dict:
        """Plain text and numbers, for params, metrics.json and the model card."""
        if self.route == "python":
            train, evaluation = build_transforms(self)
            return {"function": self.function, "train": _steps_text(train), "eval": _steps_text(evaluation)}
        record = {"image_size": self.image_size, "train": _describe_train(self), "eval": _describe_eval(self),
                  "interpolation": self.interpolation}
        if self.route == "timm":
            record["source"] = "timm's pretrained config"
        return record

    def expected_input(self) -> dict:
        """What a deployed model expects before its own normalization: resize, crop, interpolation."""
        if self.route == "python":
            return {"preprocessing": f"the user's function {self.function}", **self.record()}
        centre = self.route == "timm" or self.eval == "imagenet"
        return {"resize": self.resize_side() if centre else [self.image_size, self.image_size],
                "crop": self.image_size if centre else None, "interpolation": self.interpolation,
                "preprocessing": _describe_eval(self)}


def _resize_text(r: ResolvedTransforms) -> str:
    """What `_resize_exactly` does, in words."""
    return f"resize to {r.image_size}x{r.image_size} where it differs ({r.interpolation})"


def _describe_train(r: ResolvedTransforms) -> str:
    if r.route == "timm":
        return _steps_text(build_transforms(r)[0])
    steps = {"imagenet": f"random-resized crop to {r.image_size} (scale {r.scale[0]:g}-{r.scale[1]:g}, "
                         f"{r.interpolation})",
             "cifar": f"{_resize_text(r)}, pad {r.padding}, random crop {r.image_size}",
             "none": _resize_text(r)}[r.train]
    return steps + (", horizontal flip" if r.flip else ", no flip")


def _describe_eval(r: ResolvedTransforms) -> str:
    if r.route == "timm" or r.eval == "imagenet":
        return (f"resize the shorter side to {r.resize_side()} ({r.interpolation}), centre crop {r.image_size} "
                f"(crop fraction {r.crop_fraction:g})")
    return _resize_text(r)


def _steps_text(transform) -> str:
    steps = getattr(transform, "transforms", [transform])
    return "; ".join(" ".join(repr(t).split()) for t in steps)


def _interpolation(name: str):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(name)


def _imagenet_train(r: ResolvedTransforms) -> list:
    from torchvision.transforms import v2

    return [v2.RandomResizedCrop(r.image_size, scale=r.scale, interpolation=_interpolation(r.interpolation))]


def _cifar_train(r: ResolvedTransforms) -> list:
    from torchvision.transforms import v2

    return [*_resize_exactly(r), v2.RandomCrop(r.image_size, padding=r.padding)]


def _resize_exactly(r: ResolvedTransforms) -> list:
    """To image_size x image_size; an image already that size is returned as it is."""
    from torchvision.transforms import v2

    return [v2.Resize((r.image_size, r.image_size), interpolation=_interpolation(r.interpolation))]


def _imagenet_eval(r: ResolvedTransforms) -> list:
    from torchvision.transforms import v2

    return [v2.Resize(r.resize_side(), interpolation=_interpolation(r.interpolation)), v2.CenterCrop(r.image_size)]


TRAIN_STEPS: dict[str, Callable[[ResolvedTransforms], list]] = {
    "imagenet": _imagenet_train, "cifar": _cifar_train, "none": _resize_exactly}
EVAL_STEPS: dict[str, Callable[[ResolvedTransforms], list]] = {
    "imagenet": _imagenet_eval, "cifar": _resize_exactly, "none": _resize_exactly}
PRESET_FLIPS = {"imagenet": True, "cifar": True, "none": False}  # a training preset's flip unless set
KNOB_PRESETS = {  # a knob -> the phase and the preset that use it
    "crop_fraction": ("eval", "imagenet"), "scale": ("train", "imagenet"), "random_crop_padding": ("train", "cifar")}


def streamed_default(image_size: int) -> str:
    """The preset of streamed images cropped to `image_size` when none is given."""
    return "imagenet" if image_size >= LARGE_SIDE else "cifar"


def streamed_transforms(transforms: ResolvedTransforms | None, image_size: int) -> ResolvedTransforms:
    """A streamed source's transforms: as resolved from the config, else the default for its side."""
    return transforms or preset_transforms(image_size, streamed_default(image_size))


def preset_transforms(image_size: int, preset: str) -> ResolvedTransforms:
    """A preset for both phases with its default knobs."""
    return ResolvedTransforms(image_size, preset, preset, flip=PRESET_FLIPS[preset],
                              padding=default_padding(image_size))


class ToFloatTensor:
    """A PIL image -> a float tensor in [0, 1], bit for bit as torchvision's ToTensor (the step
    users write); an in-memory image, already one, passes through."""

    def __call__(self, image):
        from torchvision.transforms.functional import to_tensor

        return image if isinstance(image, torch.Tensor) else to_tensor(image)

    def __repr__(self) -> str:
        return "ToFloatTensor()"


def _to_tensor(steps: list):
    from torchvision.transforms import v2

    return v2.Compose([*steps, ToFloatTensor()])


def build_transforms(r: ResolvedTransforms) -> tuple[Callable, Callable]:
    """(training, evaluation) transforms: an image (PIL, or a float tensor C x H x W) -> a float tensor."""
    if r.route == "timm":
        from timm.data import create_transform

        common = dict(input_size=(3, r.image_size, r.image_size), interpolation=r.interpolation,
                      crop_pct=r.crop_fraction, crop_mode=r.crop_mode, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        return create_transform(is_training=True, **common), create_transform(is_training=False, **common)
    if r.route == "python":
        return user_transforms(r.function, r.image_size)
    from torchvision.transforms import v2

    flip = [v2.RandomHorizontalFlip()] if r.flip else []
    return _to_tensor(TRAIN_STEPS[r.train](r) + flip), _to_tensor(EVAL_STEPS[r.eval](r))


def user_transforms(function: str, image_size: int) -> tuple[Callable, Callable]:
    """The (train, eval) pair the user's `python:` function returns; it is given image_size
    when it takes an argument. ValueError (one line) when it does not import, is not callable,
    raises, or returns anything but two callables."""
    from ..models.python_factory import load_callable

    target = function.removeprefix("python:")
    fn = load_callable(target)
    takes_size = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                     for p in inspect.signature(fn).parameters.values())
    try:
        pair = fn(image_size) if takes_size else fn()
    except Exception as e:
        raise ValueError(f"{function}: calling it raised {type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0]}") from None
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(callable(t) for t in pair)):
        raise ValueError(f"{function}: returned {type(pair).__name__}; allowed: a (train, eval) pair of callables")
    return pair[0], pair[1]


def timm_settings(model_target: str) -> dict | None:
    """timm's resolved data config of a model (input side, interpolation, crop fraction and
    mode), or None for a model without a pretrained config."""
    import timm
    from timm.data import resolve_data_config

    cfg = timm.get_pretrained_cfg(model_target)
    if cfg is None:
        return None
    data = resolve_data_config({}, pretrained_cfg=cfg.to_dict())
    return {"image_size": int(data["input_size"][-1]), "interpolation": data["interpolation"],
            "crop_fraction": float(data["crop_pct"]), "crop_mode": data["crop_mode"]}


BatchAugment = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


def in_memory_augment(r: ResolvedTransforms, train_transform: Callable) -> BatchAugment | None:
    """How an in-memory training batch is augmented: the cifar and none presets at the images'
    own size as one tensor operation on the whole batch (`crop_and_flip`), anything else image
    by image through the training transform; None when training images are left as they are."""
    if not r.augments():
        return None
    if r.route == "preset" and r.train in ("cifar", "none"):
        padding = r.padding if r.train == "cifar" else 0
        return lambda x, generator: crop_and_flip(x, padding, r.flip, generator)
    return lambda x, generator: transform_batch(x, train_transform, generator)


def crop_and_flip(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Each image zero-padded by `padding`, cropped back to its size at its own random offset,
    and (with `flip`) mirrored with probability 1/2: RandomCrop(padding) + RandomHorizontalFlip
    for a whole batch, on the batch's device."""
    n, c, h, w = x.shape
    dy, dx = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    images = torch.arange(n)[:, None, None, None]
    channels = torch.arange(c)[None, :, None, None]
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    out = padded[tuple(i.to(x.device) for i in (images, channels, rows, cols))]
    if flip:
        mirrored = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        out[mirrored] = out[mirrored].flip(3)
    return out


def transform_batch(x: torch.Tensor, transform: Callable, generator: torch.Generator | None) -> torch.Tensor:
    """`transform` on every image of an in-memory batch; its random draws come from `generator`."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.stack([transform(image) for image in x])
