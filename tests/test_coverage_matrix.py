"""The coverage table's topology, in make test: every network of the table pruned by one
filter and one layer criterion (each a different coupling of channels and blocks), and every
criterion on torchvision's ResNet-18; the modern networks (ConvNeXt, RegNet, GhostNet, ...) in
make test only. The full model x granularity x criterion table, with the ablation criteria on
the large networks (a minute each on CPU), is `make bench-coverage`."""
import pytest

from coverage_cells import MODELS, MODERN_MODELS, try_cell
from trainables.prune import CRITERIA

SHUFFLE = "granularity: filter pruning cannot trace which channels this network couples"
NO_BLOCKS = "granularity: layer pruning needs residual blocks"
EXPECTED_ERRORS = {("torchvision:vgg16_bn", "layer"): NO_BLOCKS,
                   ("torchvision:shufflenet_v2_x0_5", "filter"): SHUFFLE,
                   ("torchvision:shufflenet_v2_x0_5", "layer"): NO_BLOCKS,
                   ("torchvision:densenet121", "layer"): NO_BLOCKS}  # concatenations, no additions


@pytest.mark.parametrize("granularity", ["filter", "layer"])
@pytest.mark.parametrize("name", [*MODELS, *(pytest.param(n, marks=pytest.mark.slow) for n in MODERN_MODELS)])
def test_every_network_of_the_table_prunes_or_says_why_in_one_line(name, granularity):
    outcome, _ = try_cell(name, granularity, "l1")
    expected = EXPECTED_ERRORS.get((name, granularity))
    assert outcome == "works" if expected is None else outcome.startswith(expected), outcome
    assert "\n" not in outcome


@pytest.mark.parametrize("granularity,criterion", [(g, c) for g in ("filter", "layer") for c in sorted(CRITERIA[g])
                                                   if c != "l1"])
def test_every_criterion_prunes_a_torchvision_resnet(granularity, criterion):
    assert try_cell("torchvision:resnet18", granularity, criterion)[0] == "works"
