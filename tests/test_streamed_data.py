"""The streamed sources (imagefolder, hf): splits that hold indices (only bounded subsets in
memory), their transforms, a trial on each, and their files' problems as one-line errors."""
import pytest
import torch
from pydantic import ValidationError

from image_data import check_a_small_trial_runs, write_hf_dataset, write_image_folder
from trainables.config import TrialConfig, format_validation_error
from trainables.data import DatasetUnavailable, StreamedSplit, load_dataset
from trainables.trial import load_data, run_trial, train_baseline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imagefolder"))


def test_splits_are_streamed_seeded_and_sized(folder):
    ds = load_dataset("imagefolder", seed=3, data_dir=str(folder), val_size=12, image_size=32)
    assert isinstance(ds.train, StreamedSplit) and (len(ds.train), len(ds.val), len(ds.test)) == (60, 12, 24)
    assert ds.shape == (3, 32, 32) and ds.num_classes == 3
    assert not set(ds.train.indices.tolist()) & set(ds.val.indices.tolist())  # validation held out of training
    subset = ds.val.subset(5, 0)
    assert subset.x.shape == (5, 3, 32, 32) and 0 <= subset.x.min() and subset.x.max() <= 1
    assert torch.equal(subset.x, ds.val.subset(5, 0).x)  # seeded, and the eval transform is deterministic
    again = load_dataset("imagefolder", seed=3, data_dir=str(folder), val_size=12, image_size=32, workers=1)
    assert torch.equal(again.val.indices, ds.val.indices)
    assert torch.equal(torch.cat([y for _, y in again.test.batches(7)]), ds.test.y)  # worker processes, same order


def test_training_batches_are_augmented_and_eval_reads_are_not(folder):
    ds = load_dataset("imagefolder", seed=0, data_dir=str(folder), image_size=32)
    first = ds.train.slice(0, 4)
    plain = torch.cat([x for x, _ in first.batches(4)])
    torch.manual_seed(0)
    augmented = torch.cat([x for x, _ in first.batches(4, augment=True)])
    assert plain.shape == augmented.shape == (4, 3, 32, 32)
    assert not torch.equal(plain, augmented)


def test_a_trial_runs_on_an_image_folder(folder):
    check_a_small_trial_runs({"train": 60, "test": 24}, dataset="imagefolder", data_dir=str(folder), image_size=32)


def test_an_unreadable_image_is_named(folder, tmp_path):
    broken = write_image_folder(tmp_path / "broken", train_per_class=4, val_per_class=2, size=16)
    bad = broken / "val" / "class_1" / "0001.jpg"
    bad.write_bytes(b"not a jpeg")
    ds = load_dataset("imagefolder", data_dir=str(broken), image_size=16)
    with pytest.raises(DatasetUnavailable, match=f"cannot read image {bad}"):
        ds.test.x


@pytest.mark.parametrize("layout,message", [
    ("missing", "data_dir: {root}/train not found"),
    ("no-classes", "data_dir: Couldn't find any class folder"),
    ("different-classes", "data_dir: train/ and val/ hold different classes (3 and 2; 'class_2' is in only one)"),
])
def test_folder_problems_are_one_line_config_errors(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout == "no-classes":
        (root / "train").mkdir(parents=True)
        (root / "val").mkdir()
    elif layout == "different-classes":
        write_image_folder(root, train_per_class=2, val_per_class=1, size=8)
        for f in (root / "val" / "class_2").iterdir():
            f.unlink()
        (root / "val" / "class_2").rmdir()
    with pytest.raises(ValidationError) as err:
        TrialConfig(dataset="imagefolder", data_dir=str(root))
    line = format_validation_error(err.value)
    assert line.startswith(message.format(root=root)) and "\n" not in line, line


def test_an_image_size_too_small_for_the_model_is_named(folder):
    cfg = TrialConfig(dataset="imagefolder", data_dir=str(folder), image_size=8, model="torchvision:alexnet",
                      baseline={"epochs": 0})
    with pytest.raises(ValueError, match="image_size: torchvision:alexnet does not run on 8x8 images"):
        train_baseline(cfg)


def test_timm_models_normalize_with_their_own_statistics_unless_set(folder):
    common = dict(dataset="imagefolder", data_dir=str(folder), image_size=80, model="timm:inception_v3",
                  baseline={"epochs": 0}, eval_size=2, latency={"repeats": 1}, attacks=[{"name": "fgsm"}])
    own = train_baseline(TrialConfig(**common)).payload["spec"]["arch"]
    assert own["mean"] == pytest.approx([0.5] * 3)  # timm's pretrained config, not the folder's ImageNet default
    set_here = train_baseline(TrialConfig(data_mean=[0.4, 0.4, 0.4], data_std=[0.2, 0.2, 0.2], **common))
    arch = set_here.payload["spec"]["arch"]
    assert arch["mean"] == pytest.approx([0.4] * 3) and arch["std"] == pytest.approx([0.2] * 3)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    return write_hf_dataset(tmp_path_factory.mktemp("hf") / "colours")


def test_a_trial_runs_on_a_hugging_face_dataset_saved_to_disk(hf_folder):
    cfg = TrialConfig(dataset="hf", data_dir=str(hf_folder), image_column="img", label_column="fine_label",
                      image_size=24, val_size=9, model="resnet20", baseline={"epochs": 5, "batch_size": 16},
                      finetune={"epochs": 1, "batch_size": 16}, eval_size=9, calib_size=8, latency={"repeats": 1},
                      attacks=[{"name": "fgsm"}])
    data = load_data(cfg)
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (51, 9, 18, 3)
    assert isinstance(data.test, StreamedSplit) and data.test.subset(4, 0).x.shape == (4, 3, 24, 24)
    baseline = train_baseline(cfg)
    assert baseline.metrics["clean_acc"] > 0.5
    assert 0 < run_trial(cfg, baseline).metrics["flops_reduction"] < 1


@pytest.mark.parametrize("fields,message", [
    ({}, "data_dir: image_column 'image' is not a column of {root}; its columns: img, fine_label"),
    ({"image_column": "img"}, "data_dir: label_column 'label' is not a column of {root}; its columns: img, fine_label"),
    ({"data_dir": "{root}/../nothing-here"}, "data_dir: {root}/../nothing-here"),
])
def test_hugging_face_problems_are_one_line_config_errors(hf_folder, fields, message):
    values = {"dataset": "hf", "data_dir": str(hf_folder), **fields}
    values["data_dir"] = values["data_dir"].format(root=hf_folder)
    with pytest.raises(ValidationError) as err:
        TrialConfig(**values)
    line = format_validation_error(err.value)
    assert line.startswith(message.format(root=hf_folder)) and "\n" not in line, line
