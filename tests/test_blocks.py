"""Residual blocks of modern CNNs found by tracing: shortcuts through identity modules (timm's
nn.Identity, GhostNet's empty nn.Sequential) count as the input, and a branch may end in any
computation (ConvNeXt's layer scale, GhostNet's channel slice). Random weights at 32 px."""
import copy

import pytest
import torch
import torch.nn.functional as F

from coverage_cells import fresh
from trainables.models import removable_blocks
from trainables.models.blocks import TracedBranch
from trainables.prune import PruneSettings, prune
from trainables.data import Split

CPU = torch.device("cpu")
# the true counts: residual blocks whose output is input + branch at the input's shape
BLOCKS = {"torchvision:convnext_tiny": 18, "timm:convnext_atto": 12, "timm:regnety_002": 9,
          "timm:ghostnet_100": 11, "torchvision:mobilenet_v3_small": 6, "torchvision:densenet121": 0,
          "timm:efficientnet_b0": 9, "torchvision:resnet50": 12, "timm:resnet18": 5}
AFTER_THE_ADD = {"none": lambda t: t, "relu": F.relu}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_blocks_are_found_and_their_branch_is_what_the_block_adds_to_its_input(name):
    """For every block found: its output is act(x + F(x)), F read where the criteria read it."""
    model = fresh(name)
    blocks = removable_blocks(model)
    assert len(blocks) == BLOCKS[name], sorted(blocks)
    seen = {}  # copies: blocks add in place (`out += identity`) after the branch's hook has run
    handles = [block.module.register_forward_hook(
        lambda m, i, o, n=n: seen.setdefault(n, {}).update(x=i[0].clone(), y=o.clone())) for n, block in blocks.items()]
    handles += [block.branch.register_forward_hook(lambda m, i, o, n=n: seen.setdefault(n, {}).update(f=o.clone()))
                for n, block in blocks.items()]
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 32))
    for h in handles:
        h.remove()
    for n, got in seen.items():
        assert got["f"].shape == got["x"].shape, n
        assert any(torch.allclose(act(got["x"] + got["f"]), got["y"], atol=1e-5) for act in AFTER_THE_ADD.values()), n


def test_a_branch_ending_in_a_computation_is_read_from_the_traced_graph():
    blocks = removable_blocks(fresh("torchvision:convnext_tiny"))
    assert all(isinstance(b.branch, TracedBranch) for b in blocks.values())  # layer_scale * block(x)
    ghost = removable_blocks(fresh("timm:ghostnet_100"))
    assert all(isinstance(b.branch, TracedBranch) for b in ghost.values())  # a slice of a concatenation
    timm_convnext = removable_blocks(fresh("timm:convnext_atto"))
    assert not any(isinstance(b.branch, TracedBranch) for b in timm_convnext.values())  # ends in its drop_path


@pytest.mark.parametrize("name", ["torchvision:convnext_tiny", "timm:convnext_atto", "timm:regnety_002",
                                  "timm:ghostnet_100"])
def test_a_removed_block_passes_its_input_on_unchanged(name):
    """Pruned by the layer criterion l1: at each removed block, the pruned network's output
    there is the block's input itself; the rest of the network runs as before at every shape."""
    model = fresh(name)
    before = copy.deepcopy(model)
    calib = Split(torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,)))
    removed = prune(model, PruneSettings("layer", "l1", 0.3, 1), calib, CPU, lambda m, r: None)
    assert len(removed) == round(0.3 * BLOCKS[name]) and len(removable_blocks(model)) == BLOCKS[name] - len(removed)
    at = {}
    handles = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: at.update({n: (i[0], o)}))
               for n in removed]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == before(x).shape == (2, 10)
    for h in handles:
        h.remove()
    assert sorted(at) == sorted(removed)
    for given, passed_on in at.values():
        assert torch.equal(given, passed_on)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["torchvision:convnext_tiny", "timm:convnext_atto", "timm:regnety_002",
                                  "timm:ghostnet_100"])
def test_layer_pruning_of_a_modern_network_runs_a_trial_end_to_end(name, tmp_path, capsys):
    """`robustprune trial --granularity layer` on a 32-px image folder: trained, pruned by
    blocks, fine-tuned, attacked; the saved model rebuilds without the removed blocks."""
    import json

    from image_data import write_image_folder
    from search.commands.cli import main
    from trainables.store import load_model

    folder = write_image_folder(tmp_path / "images", train_per_class=8, val_per_class=4, size=32)
    (tmp_path / "trial.yaml").write_text("latency: {repeats: 1}\ncalib_size: 8\neval_size: 6\n")
    code = main(["trial", "--config", str(tmp_path / "trial.yaml"), "--dataset", "imagefolder", "--data-dir",
                 str(folder), "--image-size", "32", "--val-size", "6", "--model", name, "--granularity", "layer",
                 "--criterion", "expected_abs", "--ratio", "0.3", "--epochs", "1", "--finetune-epochs", "1",
                 "--attacks", "fgsm", "--eps", "0.01", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err[-2000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["blocks_removed"] == round(0.3 * BLOCKS[name]) and metrics["flops_reduction"] > 0
    pruned = load_model(tmp_path / "out" / "model.pt")
    assert len(removable_blocks(pruned)) == BLOCKS[name] - metrics["blocks_removed"]
    assert pruned(torch.rand(2, 3, 32, 32)).shape == (2, 3)
