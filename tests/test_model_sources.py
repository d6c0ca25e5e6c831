"""Model sources (torchvision:, timm:, python:), the user's weights, residual blocks found by
tracing, and pruned models of every source saved, reloaded and exported."""
import copy
import textwrap

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from trainables.config import TrialConfig, format_validation_error
from trainables.models import build_model, load_weights, removable_blocks
from trainables.prune import PruneSettings, prune
from trainables.data import Split
from trainables.store import architecture_spec, load_model, save_model
from trainables.trial import evaluate, load_data, run_trial, train_baseline

CPU = torch.device("cpu")


def _arch(name, k=10, **extra):
    return {"name": name, "in_channels": 3, "num_classes": k, "mean": [0.5] * 3, "std": [0.25] * 3, **extra}


@pytest.mark.parametrize("name,blocks", [
    ("torchvision:resnet18", 5), ("torchvision:resnet50", 12), ("torchvision:mobilenet_v2", 10),
    ("torchvision:vgg16_bn", 0), ("timm:resnet18", 5), ("timm:resnet50", 12),
])
def test_residual_blocks_are_found_by_their_shape(name, blocks):
    """A block is removable when its output is its input plus a branch: ResNet-50 has 16
    bottlenecks, 4 of them with a downsampling shortcut."""
    model = build_model(**_arch(name)).eval()
    found = removable_blocks(model)
    assert len(found) == blocks, sorted(found)
    x = torch.rand(1, 3, 64, 64)
    for block_name in list(found)[:3]:  # replacing one by the identity keeps every shape
        without = copy.deepcopy(model)
        parent, _, child = block_name.rpartition(".")
        setattr(without.get_submodule(parent), child, nn.Identity())
        assert without(x).shape == (1, 10)


def test_a_users_module_with_a_residual_block_and_one_without(tmp_path):
    (tmp_path / "nets.py").write_text(textwrap.dedent("""
        from torch import nn

        class Residual(nn.Module):
            def __init__(self, c):
                super().__init__()
                self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
            def forward(self, x):
                return (x + self.body(x)).relu()

        def make_net(classes=10, residual=True):
            blocks = [Residual(8), Residual(8)] if residual else [nn.Conv2d(8, 8, 3, padding=1)]
            return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(8, classes))
        """))
    name = f"python:{tmp_path / 'nets.py'}:make_net"
    assert sorted(removable_blocks(build_model(**_arch(name)))) == ["net.1", "net.2"]
    assert removable_blocks(build_model(**_arch(name, args={"residual": False}))) == {}
    cfg = TrialConfig(dataset="synthetic", model=name, granularity="layer", criterion="l1",
                      baseline={"epochs": 0}, finetune={"epochs": 0}, eval_size=8, latency={"repeats": 1},
                      attacks=[{"name": "fgsm"}])
    assert run_trial(cfg, train_baseline(cfg)).metrics["blocks_removed"] == 1


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory):
    """A torchvision ResNet-18's weights saved the way users save them (a plain state_dict of the
    network, without our normalization). Untrained: which weights they are does not matter here
    (tests/test_e2e_own_model.py searches from weights a test trained)."""
    cfg = TrialConfig(dataset="synthetic", model="torchvision:resnet18", baseline={"epochs": 0}, eval_size=32,
                      latency={"repeats": 1}, attacks=[{"name": "fgsm"}])
    baseline = train_baseline(cfg)
    state = {k.removeprefix("net."): v for k, v in baseline.payload["state_dict"].items()
             if k.startswith("net.")}
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(state, path)
    return cfg, baseline, state, path


def test_given_weights_are_the_baseline_measured_not_trained(resnet18_weights):
    cfg, trained, state, path = resnet18_weights
    given = TrialConfig.model_validate({**cfg.model_dump(exclude={"baseline"}), "model_weights": str(path)})
    assert given.baseline.epochs == 0  # no baseline training unless baseline.epochs is set
    baseline = train_baseline(given)
    plain = build_model(**_arch("torchvision:resnet18", mean=trained.payload["spec"]["arch"]["mean"],
                                std=trained.payload["spec"]["arch"]["std"]))
    plain.net.load_state_dict(state)
    data = load_data(given)
    assert baseline.metrics["clean_acc"] == evaluate(plain, data, given, CPU)["clean_acc"]
    assert baseline.metrics["clean_acc"] == trained.metrics["clean_acc"]
    for k, v in baseline.payload["state_dict"].items():
        assert torch.equal(v, trained.payload["state_dict"][k]), k


@pytest.mark.parametrize("wrap", ["state_dict", "checkpoint-state_dict", "checkpoint-model", "dataparallel",
                                  "safetensors", "safetensors-url", "url"])
def test_weights_files_of_every_usual_shape_load(resnet18_weights, tmp_path, wrap):
    """Also by URL (file:// here: the same pyarrow filesystem path as s3:// and gs://)."""
    _, _, state, _ = resnet18_weights
    path = tmp_path / ("w.safetensors" if wrap.startswith("safetensors") else "w.pt")
    if wrap.startswith("safetensors"):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        wrapped = {"state_dict": state, "checkpoint-state_dict": {"state_dict": state, "epoch": 3},
                   "checkpoint-model": {"model": state, "optimizer": {}},
                   "dataparallel": {f"module.{k}": v for k, v in state.items()}, "url": state}
        torch.save(wrapped[wrap], path)
    model = build_model(**_arch("torchvision:resnet18"))
    load_weights(model, f"file://{path}" if wrap.endswith("url") else path)
    for k, v in state.items():
        assert torch.equal(model.net.state_dict()[k], v), k


def test_bad_weights_are_named(resnet18_weights, tmp_path):
    _, _, state, _ = resnet18_weights
    cases = {
        "missing.pt": ({k: v for k, v in state.items() if k != "layer1.0.conv1.weight"},
                       "missing key 'layer1.0.conv1.weight'"),
        "extra.pt": ({**state, "extra.weight": torch.zeros(1)}, "unexpected key 'extra.weight'"),
        "shape.pt": ({**state, "conv1.weight": torch.zeros(8, 3, 7, 7)},
                     "'conv1.weight' has shape (8, 3, 7, 7), the model (64, 3, 7, 7)"),
        "classes.pt": ({**state, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)},
                       "'fc.weight' has shape (1000, 512), the model (10, 512)"),
    }
    for file, (obj, message) in cases.items():
        torch.save(obj, tmp_path / file)
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_weights(build_model(**_arch("torchvision:resnet18")), tmp_path / file)
    (tmp_path / "garbage.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="is not a readable state_dict"):
        load_weights(build_model(**_arch("torchvision:resnet18")), tmp_path / "garbage.pt")
    with pytest.raises(ValueError, match=f"model.weights: file://{tmp_path}/absent.pt not found"):
        load_weights(build_model(**_arch("torchvision:resnet18")), f"file://{tmp_path}/absent.pt")
    torch.save({"epoch": 3}, tmp_path / "nostate.pt")
    with pytest.raises(ValueError, match="holds no state_dict"):
        load_weights(build_model(**_arch("torchvision:resnet18")), tmp_path / "nostate.pt")


class Unpicklable:  # a pickle of this class would run code when loaded
    def __reduce__(self):
        return (print, ("pwned",))


def test_weights_are_read_without_unpickling_code(tmp_path, capsys):
    torch.save({"conv1.weight": torch.zeros(1), "hook": Unpicklable()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a readable state_dict"):
        load_weights(build_model(**_arch("torchvision:resnet18")), tmp_path / "evil.pt")
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize("code,message", [
    ("import not_a_module_anywhere\n", "importing {file} failed: ModuleNotFoundError"),
    ("make_net = 3\n", "make_net is a int, not callable"),
    ("def other():\n    pass\n", "has no attribute 'make_net'"),
    ("def make_net():\n    raise RuntimeError('no GPU here')\n", "calling make_net(**model.args) raised RuntimeError: "
                                                                     "no GPU here"),
    ("def make_net():\n    return 'a string'\n", "returned a str, not a torch nn.Module"),
])
def test_a_bad_python_factory_is_one_line(tmp_path, code, message):
    file = tmp_path / "nets.py"
    file.write_text(code)
    name = f"python:{file}:make_net"
    with pytest.raises((ValueError, ValidationError)) as err:
        cfg = TrialConfig(dataset="synthetic", model=name, baseline={"epochs": 0})
        train_baseline(cfg)
    text = format_validation_error(err.value) if isinstance(err.value, ValidationError) else str(err.value)
    assert message.format(file=file) in text and "\n" not in text, text


@pytest.mark.parametrize("name,message", [
    ("torchvision:resnet5O", "unknown torchvision model 'resnet5O'; did you mean resnet50"),
    ("timm:resnet_18", "unknown timm model 'resnet_18'; did you mean resnet18"),
    ("hub:resnet50", "unknown model source 'hub:'; allowed: a built-in name or python:NAME, timm:NAME, "
                     "torchvision:NAME"),
    ("python:no_such_pkg.nets:make", "importing no_such_pkg.nets failed"),
])
def test_unknown_names_are_one_line_with_close_matches(name, message):
    with pytest.raises(ValidationError) as err:
        TrialConfig(model=name)
    assert message in format_validation_error(err.value)


def test_a_model_that_does_not_fit_the_data_is_named(tmp_path):
    with pytest.raises(ValueError, match="torchvision:resnet18 takes 3-channel images; the data has 1"):
        train_baseline(TrialConfig(dataset="digits", model="torchvision:resnet18", baseline={"epochs": 0}))
    (tmp_path / "nets.py").write_text("from torch import nn\n"
                                      "def make_net():\n    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 7))\n")
    with pytest.raises(ValueError, match=r"outputs \(7,\) per image; the data has 10 classes"):
        train_baseline(TrialConfig(dataset="synthetic", model=f"python:{tmp_path / 'nets.py'}:make_net",
                                   baseline={"epochs": 0}))


ONNX_CELLS = {("torchvision:resnet18", "filter"), ("timm:resnet18", "layer")}


@pytest.mark.parametrize("name,granularity", [("torchvision:resnet18", "filter"), ("torchvision:resnet18", "layer"),
                                              ("timm:resnet18", "filter"), ("timm:resnet18", "layer")])
def test_pruned_models_of_other_sources_round_trip_and_export(tmp_path, name, granularity):
    from search.commands.export import FORMATS

    torch.manual_seed(0)
    arch = _arch(name)
    model = build_model(**arch).eval()
    calib = Split(torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    removed = prune(model, PruneSettings(granularity, "l1", 0.5, 1), calib, CPU, lambda m, r: None)
    spec = architecture_spec(model, arch, removed, (3, 32, 32))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(load_model(save_model(model, spec, tmp_path / "model.pt"))(x), expected, atol=1e-5)
        traced = FORMATS["torchscript"](model, x[:1], {"spec": spec}, tmp_path)
        assert torch.allclose(torch.jit.load(str(traced))(x), expected, atol=1e-5)
    if (name, granularity) in ONNX_CELLS:  # the slowest export (seconds): one cell per source
        onnx_file = FORMATS["onnx"](model, x[:1], {"spec": spec}, tmp_path)
        assert onnx_file.stat().st_size > 10_000


def test_a_python_file_model_travels_with_its_config_to_a_machine_without_the_file(tmp_path, monkeypatch):
    """What a worker on another node gets: the config, with the file's code, but no file."""
    nets = tmp_path / "nets.py"
    nets.write_text("from torch import nn\ndef make_net(width=4):\n"
                    "    return nn.Sequential(nn.Conv2d(3, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),"
                    " nn.Linear(width, 10))\n")
    driver = TrialConfig(dataset="synthetic", model=f"python:{nets}:make_net", model_args={"width": 6})
    sent = driver.model_dump(mode="json")
    assert sent["model_code"] == nets.read_text()
    nets.unlink()
    import sys

    for name in [m for m in sys.modules if m.startswith("robustprune_user_")]:
        monkeypatch.delitem(sys.modules, name)  # a fresh worker process has imported nothing
    monkeypatch.setenv("ROBUSTPRUNE_CACHE_DIR", str(tmp_path / "worker-cache"))
    worker = TrialConfig.model_validate(sent)
    model, arch = initial_model_for(worker)
    assert model.net[0].out_channels == 6 and arch["name"] == f"python:{nets}:make_net"
    assert "model_code" not in arch  # model files record the target, never the code
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "worker-cache" / "user_models").iterdir()] == ["nets.py"]


def initial_model_for(cfg):
    from trainables.trial import initial_model

    return initial_model(cfg, load_data(cfg))


def test_round_to_keeps_every_pruned_width_a_multiple():
    calib = Split(torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,)))
    widths = {}
    for round_to in (None, 8):
        model = build_model(**_arch("torchvision:resnet18")).eval()
        prune(model, PruneSettings("filter", "l1", 0.3, 1, round_to=round_to), calib, CPU, lambda m, r: None)
        widths[round_to] = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(w % 8 == 0 for w in widths[8]), widths[8]
    assert any(w % 8 for w in widths[None])  # without it, 30% of 64 leaves 45: not a multiple of 8
