"""`data.name: webdataset`: tar shards in the WebDataset layout, on local disk or at
`s3://` / `gs://` URLs, named by brace patterns (`train-{000000..001281}.tar`).

`data_dir` is the training shards (validation is carved out of them by `val_size`),
`test_shards` the test shards. A sample is the tar members sharing a key: its image
(`.jpg`, `.jpeg`, `.png` or `.webp`) and its class (`.cls`, an integer as text).

Each shard is indexed once (where every image lies in it, and every label), and the index
kept under the cache folder. Training epochs then read the shards front to back, each
DataLoader worker its own share of the shards (in a seeded order per epoch, samples mixed in
a shuffle buffer), which is how an object store is read fast. The bounded subsets a trial
measures on (validation, calibration, a test part) are read image by image at their offsets.
Every trial is one process, so every trial reads all training shards: they are split across
its DataLoader workers, not across nodes.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import tarfile
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..remote_files import file_stamp, filesystem
from .cache import cache_dir
from .registry import Dataset, DatasetUnavailable, register_streamed, streamed_dataset
from .splits import Batches, StreamedSplit
from .transforms import ResolvedTransforms, build_transforms, streamed_transforms

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
LABEL_EXTENSION = "cls"
SHUFFLE_BUFFER = 512  # samples (encoded bytes, ~100 KB each at ImageNet size) mixed per worker
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_braces(pattern: str) -> list[str]:
    """`a-{00..02}.tar` -> [a-00.tar, a-01.tar, a-02.tar] (zero-padded like the first bound);
    several ranges multiply; a comma separates patterns."""
    if "," in pattern:
        return [url for part in pattern.split(",") for url in expand_braces(part.strip())]
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    lo, hi = match.group(1), match.group(2)
    if int(hi) < int(lo):
        raise ValueError(f"shard range {{{lo}..{hi}}} runs backwards")
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [url for i in range(int(lo), int(hi) + 1) for url in expand_braces(f"{head}{i:0{len(lo)}d}{tail}")]


def _key_and_extension(member: str) -> tuple[str, str]:
    """WebDataset's rule: a sample's key is the member's path up to the first dot of its name."""
    folder, name = os.path.split(member)
    stem, _, extension = name.partition(".")
    return os.path.join(folder, stem), extension.lower()


@dataclass(frozen=True)
class ShardIndex:
    """Where each sample of one shard lies: image (offset, size) in the tar, its label."""
    url: str
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    labels: tuple[int, ...]


def _read_index(url: str) -> ShardIndex:
    """One pass over the shard's tar headers (a seekable file: the image bytes are skipped)."""
    fs, path = filesystem(url)
    images: dict[str, tuple[int, int]] = {}
    labels: dict[str, int] = {}
    order: list[str] = []
    with fs.open_input_file(path) as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, ext = _key_and_extension(member.name)
            if key not in images and key not in labels:
                order.append(key)
            if ext in IMAGE_EXTENSIONS:
                images[key] = (member.offset_data, member.size)
            elif ext == LABEL_EXTENSION:
                text = tar.extractfile(member).read().decode().strip()
                try:
                    labels[key] = int(text)
                except ValueError:
                    raise DatasetUnavailable(f"{url}: {member.name} holds {text[:20]!r}, not a class number") from None
    keys = [k for k in order if k in images or k in labels]
    for key in keys:
        if key not in images or key not in labels:
            missing = "image (.jpg/.jpeg/.png/.webp)" if key not in images else "label (.cls)"
            raise DatasetUnavailable(f"{url}: sample '{key}' has no {missing}")
    return ShardIndex(url, tuple(images[k][0] for k in keys), tuple(images[k][1] for k in keys),
                      tuple(labels[k] for k in keys))


@lru_cache(maxsize=4096)
def shard_index(url: str) -> ShardIndex:
    """The shard's index, read from the cache folder when the shard is unchanged (same size and
    modification time), else built from the shard and kept there."""
    stamp = file_stamp(url)
    if stamp is None:
        raise DatasetUnavailable(f"{url}: no such shard")
    stamp = f"{url}|{stamp[0]}|{stamp[1]}"
    cached = cache_dir() / "webdataset-index" / f"{hashlib.sha1(stamp.encode()).hexdigest()}.json"
    try:
        return ShardIndex(url, *(tuple(v) for v in json.loads(cached.read_text())))
    except (OSError, ValueError, TypeError):
        pass
    try:
        index = _read_index(url)
    except tarfile.TarError as e:
        raise DatasetUnavailable(f"{url}: not a tar file ({e})") from None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps([index.offsets, index.sizes, index.labels]))
        tmp.replace(cached)
    except OSError:
        pass  # a read-only cache: index again next time
    return index


class ShardImages:
    """Every sample of a list of shards, by global index (the ImageSource of a StreamedSplit)."""

    def __init__(self, pattern: str, transforms: ResolvedTransforms):
        self.urls = expand_braces(pattern)
        self.indexes = [shard_index(url) for url in self.urls]
        self.starts = torch.tensor([0] + [len(i.labels) for i in self.indexes]).cumsum(0)
        self.labels = torch.tensor([y for i in self.indexes for y in i.labels], dtype=torch.int64)
        self.train_transform, self.eval_transform = build_transforms(transforms)
        self._open: dict[tuple[int, str], object] = {}  # (pid, url) -> an open file; a forked worker opens its own

    def __len__(self) -> int:
        return len(self.labels)

    def __getstate__(self):  # DataLoader workers started by spawn get no open files
        return {**self.__dict__, "_open": {}}

    def locate(self, index: int) -> tuple[int, int]:
        """(shard number, sample number in that shard) of a global index."""
        shard = int(torch.searchsorted(self.starts, index, right=True)) - 1
        return shard, index - int(self.starts[shard])

    def decode(self, data: bytes, where: str, train: bool) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as img:
                rgb = img.convert("RGB")
        except OSError as e:
            raise DatasetUnavailable(f"data_dir: cannot read image {where}: {str(e).splitlines()[0]}") from None
        return (self.train_transform if train else self.eval_transform)(rgb)

    def image(self, index: int, train: bool) -> torch.Tensor:
        shard, i = self.locate(index)
        url = self.urls[shard]
        key = (os.getpid(), url)
        if key not in self._open:
            fs, path = filesystem(url)
            self._open[key] = fs.open_input_file(path)
        data = self._open[key].read_at(self.indexes[shard].sizes[i], self.indexes[shard].offsets[i])
        return self.decode(data, f"{url} #{i}", train)

    def read_shard(self, shard: int):
        """(sample number in the shard, image bytes) front to back, one sequential read."""
        url, index = self.urls[shard], self.indexes[shard]
        fs, path = filesystem(url)
        with fs.open_input_stream(path) as stream:
            position = 0
            for i, (offset, size) in enumerate(zip(index.offsets, index.sizes)):
                stream.read(offset - position)  # headers and labels between images
                yield i, stream.read(size)
                position = offset + size


class _ShardStream(torch.utils.data.IterableDataset):
    """One epoch of a split's training samples, shard by shard: worker w of W reads shards
    w, w+W, ... of a seeded shard order and yields through a seeded shuffle buffer."""

    def __init__(self, source: ShardImages, indices: torch.Tensor, seed: int):
        self.source, self.seed = source, seed
        self.wanted = set(indices.tolist())
        self.shards = sorted({source.locate(i)[0] for i in self.wanted})

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        rng = random.Random(self.seed * 1_000_003 + worker)
        order = list(self.shards)
        random.Random(self.seed).shuffle(order)
        buffer: list[tuple[bytes, str, int]] = []
        for shard in order[worker::workers]:
            start = int(self.source.starts[shard])
            for i, data in self.source.read_shard(shard):
                if start + i not in self.wanted:
                    continue
                buffer.append((data, f"{self.source.urls[shard]} #{i}", int(self.source.labels[start + i])))
                if len(buffer) >= SHUFFLE_BUFFER:
                    yield self._take(buffer, rng)
        while buffer:
            yield self._take(buffer, rng)

    def _take(self, buffer: list, rng: random.Random):
        j = rng.randrange(len(buffer))
        buffer[j], buffer[-1] = buffer[-1], buffer[j]
        data, where, label = buffer.pop()
        return self.source.decode(data, where, train=True), label


@dataclass(frozen=True)
class ShardedSplit(StreamedSplit):
    """Training batches stream the shards (`_ShardStream`); everything else reads by index."""

    def batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = False,
                augment: bool = False) -> Batches:
        if not shuffle:
            yield from super().batches(batch_size, generator, shuffle, augment)
            return
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        stream = _ShardStream(self.source, self.indices, seed)
        # no more workers than shards: a worker without a shard would only cost a process
        workers = min(self.workers, len(stream.shards))
        loader = torch.utils.data.DataLoader(stream, batch_size=batch_size, num_workers=workers,
                                             generator=generator)
        yield from loader


def files_problem(data_dir: str | None, options: dict | None = None) -> str | None:
    test = (options or {}).get("test_shards")
    if data_dir is None:
        return "webdataset needs data_dir: the training shards (a path or s3:// gs:// URL, {000..099} ranges)"
    if test is None:
        return "webdataset needs test_shards (data.test_shards): the test shards, a path or s3:// gs:// URL"
    try:
        for pattern in (data_dir, test):
            for url in expand_braces(pattern):
                if not shard_index(url).labels:
                    return f"{url}: no samples in this shard"
    except (DatasetUnavailable, ValueError, OSError) as e:
        return str(e).splitlines()[0]
    return None


def counts(data_dir: str, options: dict) -> tuple[int, int]:
    return tuple(sum(len(shard_index(url).labels) for url in expand_braces(pattern))
                 for pattern in (data_dir, options["test_shards"]))


def open_webdataset(name: str, seed: int, data_dir: str | None, val_size: int | None, image_size: int = 224,
                    workers: int = 0, mean=None, std=None, test_shards: str | None = None,
                    transforms: ResolvedTransforms | None = None, **_) -> Dataset:
    problem = files_problem(data_dir, {"test_shards": test_shards})
    if problem:
        raise DatasetUnavailable(f"data_dir: {problem}")
    transforms = streamed_transforms(transforms, image_size)
    pool, test = ShardImages(data_dir, transforms), ShardImages(test_shards, transforms)
    classes = int(max(pool.labels.max(), test.labels.max())) + 1
    return streamed_dataset(name, pool, test, classes, seed, val_size, workers, mean, std, transforms,
                            split_type=ShardedSplit)


register_streamed("webdataset", default_eps=4 / 255, opener=open_webdataset, counts=counts,
                  files_problem=files_problem)
