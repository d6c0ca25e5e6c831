import pytest
import torch

from trainables.cost import count_flops
from trainables.models import MODELS, MODELS_WITH_REMOVABLE_BLOCKS, build_model, removable_blocks
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
