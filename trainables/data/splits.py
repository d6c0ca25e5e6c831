"""A split of a dataset, held in memory (`Split`) or read image by image (`StreamedSplit`).

Both answer the same questions: how many images, a seeded subset, a slice, the tensors
`x` (N, C, H, W in [0, 1]) and `y`, and training batches. A streamed split holds only
indices: its tensors are read when asked for, so only the bounded subsets the trial
measures on (eval_size, calib_size, a test part) are ever in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Iterator, Protocol

import torch

from .transforms import BatchAugment

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def seeded_choice(n: int, size: int, seed: int) -> torch.Tensor | None:
    """`size` of range(n) in a seeded order, or None when size covers everything."""
    if size >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor
    augmenter: BatchAugment | None = None  # what `augment` does to a training batch

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, size: int, seed: int) -> "Split":
        """A fixed, seeded subset (the whole split when size >= len)."""
        idx = seeded_choice(len(self), size, seed)
        return self if idx is None else replace(self, x=self.x[idx], y=self.y[idx])

    def slice(self, lo: int, hi: int) -> "Split":
        return replace(self, x=self.x[lo:hi], y=self.y[lo:hi])

    def batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = False,
                augment: bool = False) -> Batches:
        """Training or evaluation batches; `augment`: through the training transform, if any."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            x = self.x[idx]
            if augment and self.augmenter is not None:
                x = self.augmenter(x, generator)
            yield x, self.y[idx]


class ImageSource(Protocol):
    """What a streamed split reads from: images by index, decoded and transformed."""
    labels: torch.Tensor

    def __len__(self) -> int: ...

    def image(self, index: int, train: bool) -> torch.Tensor: ...


class _Indexed(torch.utils.data.Dataset):
    """Plain ints per item: indexing tensors item by item would cost more than it needs."""

    def __init__(self, source: ImageSource, indices: torch.Tensor, train: bool):
        self.source, self.train = source, train
        self.indices, self.labels = indices.tolist(), source.labels[indices].tolist()

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.source.image(self.indices[i], self.train), self.labels[i]


@dataclass(frozen=True)
class StreamedSplit:
    source: ImageSource
    indices: torch.Tensor  # into the source
    workers: int = 0  # DataLoader worker processes for batches and for reading `x`

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, size: int, seed: int) -> "StreamedSplit":
        idx = seeded_choice(len(self), size, seed)
        return self if idx is None else replace(self, indices=self.indices[idx])

    def slice(self, lo: int, hi: int) -> "StreamedSplit":
        return replace(self, indices=self.indices[lo:hi])

    @property
    def y(self) -> torch.Tensor:
        return self.source.labels[self.indices]

    @cached_property
    def x(self) -> torch.Tensor:
        """Every image of this split, read now (evaluation transform): for bounded subsets only."""
        return torch.cat([x for x, _ in self.batches(256)]) if len(self) else torch.empty(0)

    def batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = False,
                augment: bool = False) -> Batches:
        """Decoded by `workers` processes; `augment` uses the source's training transform."""
        loader = torch.utils.data.DataLoader(
            _Indexed(self.source, self.indices, train=augment), batch_size=batch_size, shuffle=shuffle,
            generator=generator, num_workers=self.workers, persistent_workers=False)
        yield from loader
