import pytest
import torch

from trainables.cost import count_flops
from trainables.models import BUILTIN_MODELS as MODELS
from trainables.models import BUILTIN_WITH_REMOVABLE_BLOCKS as MODELS_WITH_REMOVABLE_BLOCKS
from trainables.models import build_model, removable_blocks
from trainables.prune import PruneSettings, prune
from trainables.data import Split
from trainables.store import architecture_spec, load_model, save_model


def _arch(name, c=3, k=10):
    return {"name": name, "in_channels": c, "num_classes": k, "mean": [0.5] * c, "std": [0.25] * c}


# every model at CIFAR shape; the cheaper ones also at MNIST shape and another class count
SHAPES = [(name, 3, 32, 10) for name in sorted(MODELS)] + [
    (name, 1, 28, 7) for name in ("lenet", "resnet20", "resnet32", "resnet56")] + [("lenet", 1, 8, 10)]


@pytest.mark.parametrize("name,c,hw,k", SHAPES)
def test_models_adapt_to_input_and_classes(name, c, hw, k):
    model = build_model(**_arch(name, c, k)).eval()
    assert model(torch.rand(2, c, hw, hw)).shape == (2, k)
    assert bool(removable_blocks(model)) == (name in MODELS_WITH_REMOVABLE_BLOCKS)


def test_resnet_depths_match_he_et_al():
    def convs(m):
        return sum(isinstance(x, torch.nn.Conv2d) and x.kernel_size == (3, 3) for x in m.modules())
    for depth in (20, 32, 56, 110):
        m = build_model(**_arch(f"resnet{depth}"))
        assert convs(m) + 1 == depth  # 3x3 convs + the classifier


@pytest.mark.parametrize("model_name,granularity", [("resnet20", "filter"), ("resnet20", "layer"),
                                                    ("mobilenetv2", "filter"), ("lenet", "filter")])
def test_pruned_model_round_trips_with_identical_logits(tmp_path, model_name, granularity):
    torch.manual_seed(0)
    arch = _arch(model_name)
    model = build_model(**arch).eval()
    calib = Split(torch.rand(16, 3, 32, 32), torch.arange(16) % 10)
    removed = prune(model, PruneSettings(granularity, "l1", 0.5, 1), calib, torch.device("cpu"),
                    finetune=lambda m, r: None)
    spec = architecture_spec(model, arch, removed, (3, 32, 32))
    path = save_model(model, spec, tmp_path / "m.pt")
    loaded = load_model(path)
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(model.eval()(x), loaded(x))
    assert count_flops(loaded, (3, 32, 32)) == count_flops(model, (3, 32, 32))
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


def test_load_refuses_non_model_files(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a robustprune model file"):
        load_model(tmp_path / "x.pt")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing", "wrong-weights"])
def test_corrupt_cached_baseline_is_a_cache_miss_with_a_warning(tmp_path, digits_baseline, capsys, damage):
    from search.driver.baseline import _folder, load_cached, save

    cfg, baseline = digits_baseline
    save(str(tmp_path), cfg, "cpu", baseline)
    assert load_cached(str(tmp_path), cfg, "cpu").metrics == baseline.metrics  # intact: reused
    model_file = tmp_path / _folder(str(tmp_path), cfg, "cpu").removeprefix(str(tmp_path) + "/") / "model.pt"
    if damage == "truncated":
        model_file.write_bytes(model_file.read_bytes()[:1000])
    elif damage == "garbage":
        model_file.write_bytes(b"\x00not a torch file" * 10)
    elif damage == "missing":
        model_file.unlink()
    else:  # a loadable file whose weights do not fit the architecture it names
        payload = torch.load(model_file, weights_only=True)
        payload["state_dict"] = {k: v[:1] if v.dim() else v for k, v in payload["state_dict"].items()}
        torch.save(payload, model_file)
    capsys.readouterr()
    assert load_cached(str(tmp_path), cfg, "cpu") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is unreadable" in err[0] and "training it again" in err[0]
