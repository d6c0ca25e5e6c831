"""The shipped study configs: the MNIST study plans every cell of the table it replaced, and
the paper's grid plans with its inapplicable cells, whether or not its data is on disk."""
from pathlib import Path

from search.driver.study.cells import plan
from search.driver.study.config import load_study_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_mnist_study_plans_the_criteria_tables_cells():
    cfg = load_study_config(ROOT / "configs" / "study-mnist.yaml")
    plans = {p.setup.name: p for p in plan(cfg, build=False)}
    assert {name: len(p.runnable) for name, p in plans.items()} == {"lenet": 11 * 3 * 3, "resnet20": 7 * 3 * 3}
    assert {c.granularity for c in plans["lenet"].runnable} == {"filter"}
    assert {c.granularity for c in plans["resnet20"].runnable} == {"layer"}
    assert all(p.problem is None and set(p.configs) == {0, 1, 2} for p in plans.values())


def test_the_paper_study_plans_its_grid_and_vgg16s_layer_cells_are_not_applicable(tmp_path):
    plans = {p.setup.name: p for p in plan(load_study_config(ROOT / "configs" / "study-paper.yaml"), build=False)}
    assert sum(len(p.cells) for p in plans.values()) == 4 * 2 * 5 * 3 * 3
    assert set(plans["vgg16"].not_applicable) == {"layer"} and len(plans["vgg16"].runnable) == 45
    assert all("data_dir" in p.problem for p in plans.values())  # no CIFAR-10 / ImageNet here: named, not fatal
    cifar = tmp_path / "cifar-10-batches-py"
    cifar.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (cifar / name).write_bytes(b"")
    cfg = load_study_config(ROOT / "configs" / "study-paper.yaml", [f"data.data_dir={tmp_path}"])
    plans = {p.setup.name: p for p in plan(cfg, build=False)}
    assert all(plans[name].problem is None for name in ("vgg16", "mobilenetv2", "resnet56"))
    assert plans["resnet56"].configs[0].resources.gpus_per_trial > 0
