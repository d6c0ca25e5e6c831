"""Searches of the user's own network and data through the CLI, Ray and MLflow: a torchvision
ResNet-18 whose weights the test trained and saved, on an ImageFolder of JPEGs; a timm
ResNet-18 on WebDataset shards; and a network from a python: file outside the package."""
import textwrap

import pytest
import torch
import yaml

from e2e_helpers import run_cli, search_runs, tiny_config
from image_data import write_image_folder, write_shards
from trainables.config import TrialConfig
from trainables.store import load_model
from trainables.trial import evaluate, initial_model, load_data, train_baseline

pytestmark = pytest.mark.e2e
CPU = torch.device("cpu")


def _small_space(**space):
    return {"granularities": ["filter", "layer"], "criteria": ["l1", "random"], "ratio": [0.2, 0.5],
            "iterations": [1, 1], "finetune_epochs": 1, **space}


def test_a_search_prunes_a_torchvision_model_from_its_weights_on_an_image_folder(tmp_path):
    folder = write_image_folder(tmp_path / "images")
    data = {"name": "imagefolder", "data_dir": str(folder), "image_size": 32, "val_size": 12, "eval_size": 12,
            "calib_size": 8}
    trial = TrialConfig(dataset="imagefolder", data_dir=str(folder), image_size=32, val_size=12, eval_size=12,
                        model="torchvision:resnet18", baseline={"epochs": 4, "batch_size": 16}, latency={"repeats": 1},
                        attacks=[{"name": "fgsm", "eps": 0.03}])
    trained = train_baseline(trial).model()
    weights = tmp_path / "resnet18.pt"
    torch.save(trained.net.state_dict(), weights)  # what a user has: the network's own state_dict
    cfg = tiny_config(tmp_path, "own-resnet", 2, data=data, model={"name": "torchvision:resnet18",
                                                                   "weights": str(weights)},
                      space=_small_space(), attacks=[{"name": "fgsm", "eps": 0.03}],
                      evaluation={"final_attacks": [{"name": "fgsm", "eps": 0.03}], "eps_grid": [0.0, 0.03]})
    doc = yaml.safe_load(cfg.read_text())
    doc["baseline"] = {"batch_size": 16}  # no epochs: the weights are the baseline
    cfg.write_text(yaml.safe_dump(doc))
    proc = run_cli("run", str(cfg), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(trained)" in proc.stdout or "(reused)" in proc.stdout
    parent, children = search_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "own-resnet")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    # the baseline is the given weights, measured, not trained: a plain evaluation of them agrees
    measured = trial.model_copy(update={"model_weights": str(weights), "baseline": trial.baseline.model_copy(
        update={"epochs": 0})})
    plain, _ = initial_model(measured, load_data(measured))
    expected = evaluate(plain, load_data(measured), measured, CPU)["clean_acc"]
    assert parent.data.metrics["clean_acc_baseline"] == pytest.approx(expected)
    assert parent.data.params["model.weights"] == str(weights)
    for child in children:
        assert child.data.metrics["flops_reduction"] > 0
    from mlflow.artifacts import download_artifacts

    model_file = download_artifacts(run_id=children[0].info.run_id, artifact_path="model.pt",
                                    tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", dst_path=str(tmp_path / "dl"))
    assert load_model(model_file)(torch.rand(2, 3, 32, 32)).shape == (2, 3)


def test_a_search_prunes_a_timm_model_on_webdataset_shards_read_by_worker_processes(tmp_path):
    train, test = write_shards(tmp_path / "shards", "train", shards=3), write_shards(tmp_path / "shards", "test",
                                                                                     per_class=6, shards=2, seed=1)
    data = {"name": "webdataset", "data_dir": train, "test_shards": test, "image_size": 32, "val_size": 12,
            "eval_size": 12, "calib_size": 8, "workers": 1}
    cfg = tiny_config(tmp_path, "own-timm", 2, data=data, model={"name": "timm:resnet18"},
                      baseline={"epochs": 4, "lr": 0.05, "batch_size": 16}, space=_small_space(),
                      attacks=[{"name": "fgsm", "eps": 0.03}],
                      evaluation={"final_attacks": [{"name": "fgsm", "eps": 0.03}], "eps_grid": [0.0, 0.03]})
    proc = run_cli("run", str(cfg), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, children = search_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "own-timm")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert parent.data.metrics["clean_acc_baseline"] > 0.5  # trained on the streamed shards
    assert parent.data.params["data.test_shards"] == test
    assert all(c.data.metrics["flops_reduction"] > 0 for c in children)


def test_a_search_builds_the_users_network_from_a_python_file_on_every_worker(tmp_path):
    nets = tmp_path / "elsewhere" / "my_nets.py"
    nets.parent.mkdir()
    nets.write_text(textwrap.dedent("""
        from torch import nn

        class Block(nn.Module):
            def __init__(self, c):
                super().__init__()
                self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                          nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
            def forward(self, x):
                return (x + self.body(x)).relu()

        def small_resnet(width=16, classes=10):
            return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), Block(width), Block(width),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))
        """))
    cfg = tiny_config(tmp_path, "own-python", 2, model={"name": f"python:{nets}:small_resnet",
                                                        "args": {"width": 12}},
                      space=_small_space(), baseline={"epochs": 4})
    proc = run_cli("run", str(cfg), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, children = search_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "own-python")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert parent.data.metrics["clean_acc_baseline"] > 0.5
    assert "model.code" not in parent.data.params and parent.data.params["model.args.width"] == "12"
