"""The webdataset source: shards named by brace patterns, indexed once (the index kept in the
cache folder), training epochs streamed shard by shard (each DataLoader worker its own
shards, each training sample once per epoch, no validation sample), bounded subsets read by
offset, a trial on shards, and the shards' problems as one-line errors."""
import io
import tarfile

import pytest
import torch
from pydantic import ValidationError

from image_data import check_a_small_trial_runs, write_shards
from trainables.config import TrialConfig, format_validation_error
from trainables.data import DatasetUnavailable, load_dataset
from trainables.data import webdataset as wds

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    return write_shards(root, "train", per_class=20, shards=3), write_shards(root, "test", per_class=6, shards=2,
                                                                                 seed=1)


def test_brace_patterns_expand_like_webdataset():
    assert wds.expand_braces("a-{08..11}.tar") == ["a-08.tar", "a-09.tar", "a-10.tar", "a-11.tar"]
    assert wds.expand_braces("s3://b/{0..1}/x-{000..001}.tar") == [
        "s3://b/0/x-000.tar", "s3://b/0/x-001.tar", "s3://b/1/x-000.tar", "s3://b/1/x-001.tar"]
    assert wds.expand_braces("a.tar, b-{1..2}.tar") == ["a.tar", "b-1.tar", "b-2.tar"]
    with pytest.raises(ValueError, match="runs backwards"):
        wds.expand_braces("a-{3..1}.tar")


def test_shards_are_split_seeded_and_read_by_offset(shards, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTPRUNE_CACHE_DIR", str(tmp_path))
    wds.shard_index.cache_clear()
    train, test = shards
    test = f"file://{test}"  # by URL: the same pyarrow filesystem path as s3:// and gs://
    ds = load_dataset("webdataset", seed=3, data_dir=train, val_size=12, image_size=24, test_shards=test)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (48, 12, 18) and ds.num_classes == 3
    assert not set(ds.train.indices.tolist()) & set(ds.val.indices.tolist())
    assert len(list((tmp_path / "webdataset-index").glob("*.json"))) == 5  # one index per shard, kept
    subset = ds.test.subset(6, 0)
    assert subset.x.shape == (6, 3, 24, 24) and 0 <= subset.x.min() and subset.x.max() <= 1
    # sample n of a shard written round-robin is class n % 3: labels and images line up
    assert ds.test.y.tolist() == [n % 3 for s in range(2) for n in range(s, 18, 2)]
    reds = ds.test.x[ds.test.y == 0]  # class 0 is red
    assert (reds[:, 0].mean() > reds[:, 2].mean() + 0.3)
    wds.shard_index.cache_clear()  # a fresh process: the indexes come from the cache folder
    again = load_dataset("webdataset", seed=3, data_dir=train, val_size=12, image_size=24, test_shards=test,
                         workers=1)
    assert torch.equal(again.test.subset(6, 0).x, subset.x)


@pytest.mark.parametrize("workers", [0, 2])
def test_an_epoch_streams_every_training_sample_once_and_no_validation_sample(shards, workers, monkeypatch):
    train, test = shards
    ds = load_dataset("webdataset", seed=0, data_dir=train, val_size=12, image_size=24, test_shards=test,
                      workers=workers)
    source = ds.train.source
    x, y = next(ds.train.batches(8, torch.Generator().manual_seed(0), shuffle=True, augment=True))
    assert x.shape == (8, 3, 24, 24) and 0 <= x.min() and x.max() <= 1

    def sample_number(data, where, train):  # "url #i" -> the sample's index in the split's source
        url, i = where.rsplit(" #", 1)
        return torch.tensor(int(source.starts[source.urls.index(url)]) + int(i))
    monkeypatch.setattr(source, "decode", sample_number)  # forked workers inherit it

    def epoch(seed):
        batches = list(ds.train.batches(8, torch.Generator().manual_seed(seed), shuffle=True))
        ids, labels = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
        assert torch.equal(labels, source.labels[ids])  # each label streams with its image
        return ids
    seen = epoch(0)
    assert sorted(seen.tolist()) == sorted(ds.train.indices.tolist())  # each training sample once, no val one
    assert torch.equal(epoch(0), seen) and not torch.equal(epoch(1), seen)  # seeded, and mixed per epoch
    assert not torch.equal(seen, seen.sort().values)


def test_a_trial_runs_on_shards(shards):
    train, test = shards
    check_a_small_trial_runs({"train": 48, "test": 18}, dataset="webdataset", data_dir=train, test_shards=test,
                             image_size=24)


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


@pytest.mark.parametrize("case,message", [
    ("no-test", "data_dir: webdataset needs test_shards (data.test_shards)"),
    ("missing", "data_dir: {root}/nope-000.tar: no such shard"),
    ("not-tar", "data_dir: {root}/junk.tar: not a tar file"),
    ("no-label", "data_dir: {root}/nolabel.tar: sample 'a' has no label (.cls)"),
    ("bad-label", "data_dir: {root}/badlabel.tar: a.cls holds 'cat', not a class number"),
    ("backwards", "data_dir: shard range {3..1} runs backwards"),
])
def test_shard_problems_are_one_line_errors(shards, tmp_path, case, message):
    train, test = shards
    data_dir = {"no-test": train, "missing": str(tmp_path / "nope-{000..001}.tar"),
                "backwards": str(tmp_path / "x-{3..1}.tar")}.get(case)
    if case == "not-tar":
        (tmp_path / "junk.tar").write_bytes(b"not a tar" * 200)
        data_dir = str(tmp_path / "junk.tar")
    if case == "no-label":
        data_dir = _tar(tmp_path / "nolabel.tar", [("a.jpg", b"x")])
    if case == "bad-label":
        data_dir = _tar(tmp_path / "badlabel.tar", [("a.jpg", b"x"), ("a.cls", b"cat")])
    with pytest.raises(ValidationError) as e:
        TrialConfig(dataset="webdataset", data_dir=data_dir, test_shards=None if case == "no-test" else test)
    line = format_validation_error(e.value)
    assert line.startswith(message.replace("{root}", str(tmp_path))) and "\n" not in line, line


def test_an_unreadable_image_is_named(tmp_path):
    bad = _tar(tmp_path / "bad.tar", [("a.jpg", b"not a jpeg"), ("a.cls", b"0")])
    ds = load_dataset("webdataset", data_dir=bad, test_shards=bad, image_size=16, val_size=1)
    with pytest.raises(DatasetUnavailable, match=f"cannot read image {bad} #0"):
        ds.test.x
