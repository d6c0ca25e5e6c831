"""The bad-input matrix: every way a careless user (or a damaged file) can feed the CLI
something wrong ends in exit 2, exactly one line on stderr naming the field or file, no
traceback, and nothing created: no file or folder, no MLflow run or model version, no Ray.

The CLI runs in-process (`search.commands.cli.main`, the console script's entry point) so that the
~90 cases cost seconds; `test_preflight.py` and the e2e tests run the installed script.
"""
import io
import socket
from pathlib import Path

import pytest
import ray
import torch
from mlflow.tracking import MlflowClient

from e2e_helpers import free_port
from mlflow_store import store_at
from search.commands.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
NO_CUDA = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"  # one past the last device


def _run(*overrides):
    return ["run", QUICKSTART, *[a for o in overrides for a in ("--set", o)]]


def _trial(*args):
    return ["trial", *args, "--out", "{tmp}/out"]


def _study(*lines: str, setups: str = "[{name: a}]") -> str:
    """A study config: one tiny setup, every factor at its default, plus `lines` in the study section."""
    body = "".join(f"\n  {line}" for line in lines)
    return (f"experiment: {{name: s, storage_path: '{{tmp}}/runs', tracking_uri: 'sqlite:///{{tmp}}/s.db'}}\n"
            f"data: {{name: digits}}\nstudy:\n  setups: {setups}{body}\n")


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _jpeg(colour) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (12, 12), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


WRONG_STATE_DICT = _saved({"stem.weight": torch.zeros(8, 3, 3, 3)})
RESNET18_1000_CLASSES = _saved({k: v for k, v in __import__("torchvision").models.resnet18().state_dict().items()})
IMAGE_FOLDER = {f"images/{split}/{c}/{i}.jpg": _jpeg(colour) for split in ("train", "val")
                for c, colour in (("a", (200, 0, 0)), ("b", (0, 0, 200))) for i in range(3)}

SEARCH_JSON = '{"parent_run_id": "x", "tracking_uri": "%s", "config": {}}'

# (id, argv, files to create first {relative path: bytes, or text with placeholders}, text the
# one line must contain)
# argv placeholders: {tmp} work folder, {store} the shared MLflow store, {baseline} a trained
# digits LeNet ({truncated}, {wrong_weights}: damaged copies), {busy} a port in use, {closed}
# a port nobody listens on.
CASES = [
    # ---- run: config values (--set) -----------------------------------------------------
    ("unknown-key", _run("search.bogus=1"), {}, "search.bogus: unknown key"),
    ("ratio-empty", _run("space.ratio=[0.9, 0.1]"), {}, "space.ratio: empty range"),
    ("ratio-high", _run("space.ratio=[0.2, 1.0]"), {}, "space.ratio: got 1.0; allowed: 0 < value < 1"),
    ("criteria-empty", _run("space.criteria=[]"), {}, "space.criteria: must not be empty"),
    ("criteria-unknown", _run("space.criteria=[magic]"), {}, "space.criteria: unknown criterion 'magic'; allowed:"),
    ("criteria-granularity", _run("model.name=resnet20", "space.granularities=[layer]", "space.criteria=[lamp]"), {},
     "space.criteria: none fits granularity 'layer'"),
    ("granularity-model", _run("space.granularities=[layer]", "space.criteria=[l1]"), {},
     "space.granularities: model 'lenet' has no removable blocks"),
    ("granularity-unknown", _run("space.granularities=[channel]"), {}, "space.granularities"),
    ("iterations-zero", _run("space.iterations=[0, 2]"), {}, "space.iterations"),
    ("finetune-method-unknown", _run("space.finetune_method=[natural, madry]"), {},
     "space.finetune_method: unknown method 'madry'; allowed: fgsm_rs, natural, pgd_at, trades"),
    ("finetune-method-fixed", _run("space.finetune={method: trades}"), {},
     "space.finetune: the method and its budget are searched; set space.finetune_method and space.finetune_budget"),
    ("finetune-budget-absent", _run("space.finetune_budget={trades: {beta: 3}}"), {},
     "space.finetune_budget: 'trades' is not in space.finetune_method; allowed: natural"),
    ("finetune-budget-beta", _run("space.finetune_method=[pgd_at]", "space.finetune_budget={pgd_at: {beta: 3}}"), {},
     "space.finetune_budget.pgd_at.beta: not a setting of method pgd_at; it uses eps, alpha, steps"),
    ("finetune-budget-eps", _run("space.finetune_method=[trades]", "space.finetune_budget={trades: {eps: 2}}"), {},
     "space.finetune_budget.trades.eps: got 2; allowed: <= 1.0"),
    ("finetune-budget-steps", _run("space.finetune_method=[trades]", "space.finetune_budget={trades: {steps: 0}}"),
     {}, "space.finetune_budget.trades.steps: got 0; allowed: >= 1"),
    ("finetune-natural-eps", _run("space.finetune_method=[natural]", "space.finetune_budget={natural: {eps: 0.1}}"),
     {}, "space.finetune_budget.natural.eps: not a setting of method natural; it makes no adversarial examples"),
    ("baseline-method-unknown", _run("baseline.method=free_at"), {}, "baseline.method: unknown method 'free_at'"),
    ("model-not-mapping", _run("model=resnet20"), {}, "model: got 'resnet20'; expected a mapping"),
    ("model-unknown", _run("model.name=alexnet"), {}, "model.name"),
    ("dataset-unknown", _run("data.name=imagenet"), {}, "data.name"),
    ("cifar-no-dir", _run("data.name=cifar10"), {}, "data.data_dir: cifar10 is read from disk"),
    ("val-size", _run("data.val_size=4500"), {}, "data.val_size: got 4500; allowed: 1..4499"),
    ("transforms-preset", _run("data.transforms=vgg"), {},
     "data.transforms: unknown transforms preset 'vgg'; allowed: cifar, imagenet, none, python:MODULE:FN, timm"),
    ("transforms-eval-preset", _run("data.transforms={eval: centre}"), {},
     "data.transforms.eval: unknown preset 'centre'; allowed: cifar, imagenet, none"),
    ("transforms-crop-fraction", _run("data.transforms={eval: imagenet, crop_fraction: 0}"), {},
     "data.transforms.crop_fraction: got 0.0; allowed: 0 < crop_fraction <= 1"),
    ("transforms-crop-fraction-high", _run("data.transforms={eval: imagenet, crop_fraction: 1.2}"), {},
     "data.transforms.crop_fraction: got 1.2; allowed: 0 < crop_fraction <= 1"),
    ("transforms-padding", _run("data.transforms={train: cifar, random_crop_padding: -2}"), {},
     "data.transforms.random_crop_padding: got -2; allowed: >= 0"),
    ("transforms-interpolation", _run("data.transforms={interpolation: lanczos}"), {},
     "data.transforms.interpolation: unknown interpolation 'lanczos'; allowed: bicubic, bilinear, nearest"),
    ("transforms-knob-unused", _run("data.transforms={train: none, scale: [0.5, 1]}"), {},
     "data.transforms.scale: used by the imagenet train preset only; train is none"),
    ("transforms-timm-lenet", _run("data.transforms=timm"), {},
     "data.transforms: timm is the preprocessing of timm: models"),
    ("transforms-python-module", _run("data.transforms=python:no_such_module:pair"), {},
     "data.transforms: python:no_such_module:pair: importing no_such_module failed: ModuleNotFoundError"),
    ("transforms-python-file", _run("data.transforms=python:{tmp}/gone.py:pair"), {},
     "data.transforms: python:{tmp}/gone.py:pair: cannot read {tmp}/gone.py"),
    ("transforms-python-not-callable", _run("data.transforms=python:{tmp}/t.py:pair"), {"t.py": b"pair = 3\n"},
     "data.transforms: python:{tmp}/t.py:pair: pair is a int, not callable"),
    ("transforms-python-no-pair", _run("data.transforms=python:{tmp}/t.py:pair"),
     {"t.py": b"def pair(size):\n    return None\n"},
     "data.transforms: python:{tmp}/t.py:pair: returned NoneType; allowed: a (train, eval) pair of callables"),
    ("transforms-python-raises", _run("data.transforms=python:{tmp}/t.py:pair"),
     {"t.py": b"def pair(size):\n    raise KeyError('mean')\n"},
     "data.transforms: python:{tmp}/t.py:pair: calling it raised KeyError: 'mean'"),
    ("transforms-python-knob", _run("data.transforms={function: 'python:os:getcwd', flip: true}"), {},
     "data.transforms: flip is not a setting of a python: function"),
    ("trial-transforms-preset", _trial("--transforms", "centre"), {},
     "transforms: unknown transforms preset 'centre'; allowed:"),
    ("seeds-zero", _run("evaluation.seeds=0"), {}, "evaluation.seeds: got 0; allowed: an integer from 1 to 20"),
    ("seeds-high", _run("evaluation.seeds=21"), {}, "evaluation.seeds: got 21; allowed: an integer from 1 to 20"),
    ("seeds-fraction", _run("evaluation.seeds=2.5"), {}, "evaluation.seeds: got 2.5; allowed: an integer from 1 to 20"),
    ("seeds-text", _run("evaluation.seeds=three"), {}, "evaluation.seeds: got 'three'; allowed: an integer from 1"),
    ("attacks-empty", _run("attacks=[]"), {}, "attacks: must not be empty"),
    ("attack-unknown", _run("attacks=[{name: laser}]"), {}, "attacks.0"),
    ("eps-negative", _run("attacks=[{name: fgsm, eps: -1}]"), {}, "attacks.0.eps: got -1"),
    ("eps-pixel-units", _run("attacks=[{name: fgsm, eps: 5}]"), {}, "attacks.0: eps: got 5.0; allowed: 0..1 for fgsm (pixel units"),
    ("occlusion-stride", _run("attacks=[{name: occlusion, params: {stride: -2}}]"), {},
     "attacks.0: params.stride: got -2; allowed: >= 1"),
    ("occlusion-fills", _run("evaluation.final_attacks=[{name: occlusion, params: {fills: []}}]"), {},
     "evaluation.final_attacks.0: params.fills: must not be empty"),
    ("spatial-rotation", _run("attacks=[{name: spatial, params: {max_rotation: 181}}]"), {},
     "attacks.0: params.max_rotation: got 181"),
    ("eps-grid", _run("evaluation.eps_grid=[0.1, 3]"), {}, "evaluation.eps_grid.1: got 3; allowed: <= 1"),
    ("sampler", _run("search.sampler=grid"), {}, "search.sampler: invalid value 'grid'; allowed: 'gp', 'random', 'tpe' or 'nsga2'"),
    ("scheduler", _run("search.scheduler=hyperband"), {}, "search.scheduler: invalid value 'hyperband'; allowed: "
                                                         "'fifo' or 'mo_asha'"),
    ("reduction-factor", _run("search.scheduler=mo_asha", "search.reduction_factor=1"), {},
     "search.reduction_factor: got 1; allowed: > 1"),
    ("grace-zero", _run("search.grace=0"), {}, "search.grace: got 0; allowed: >= 1"),
    ("time-budget", _run("search.time_budget_s=-5"), {}, "search.time_budget_s: got -5; allowed: > 0"),
    ("optuna-storage-scheme", _run("search.optuna_storage=redis://localhost/0"), {},
     "search.optuna_storage: unsupported scheme 'redis' in redis://localhost/0; allowed: 'memory', or an "
     "SQLAlchemy URL with"),
    ("optuna-storage-folder", _run("search.optuna_storage=sqlite:////proc/optuna.db"), {},
     "search.optuna_storage: cannot write to /proc"),
    ("warm-start-unknown", _run("experiment.tracking_uri={store}", "search.warm_start=nope"), {},
     "search.warm_start: no MLflow experiment named 'nope' at"),
    ("warm-start-no-store", _run("experiment.tracking_uri=sqlite:///{tmp}/none.db", "search.warm_start=quickstart"), {},
     "search.warm_start: no MLflow experiment named 'quickstart' at sqlite:///"),
    ("warm-start-no-searches", _run("experiment.tracking_uri={store}", "search.warm_start=empty"), {},
     "search.warm_start: 'empty' has no robustprune search runs"),
    ("warm-start-other-problem", _run("experiment.tracking_uri={store}", "search.warm_start=other-problem"), {},
     "search.warm_start: 'other-problem' searched model.name=resnet20 but this search has model.name=lenet; "
     "allowed: a search of the same model, data and objectives"),
    ("num-samples-text", _run("search.num_samples=many"), {}, "search.num_samples: got 'many'; expected an integer"),
    ("num-samples-zero", _run("search.num_samples=0"), {}, "search.num_samples: got 0; allowed: >= 1"),
    ("objectives", _run("search.objectives={flops: min}"), {}, "search.objectives: got 1 objectives"),
    ("objectives-two-accuracies", _run("search.objectives={clean_acc: max, robust_acc: max}"), {},
     "search.objectives: got 2 objectives (clean_acc, robust_acc); allowed: one accuracy (robust_acc or clean_acc) "
     "and one or two costs"),
    ("objectives-four", _run("search.objectives={flops: min, params: min, latency_ms: min, robust_acc: max}"), {},
     "search.objectives: got 4 objectives"),
    ("objective-not-measured", _run("search.objectives={latency_ms_onnxruntime_b1: min, robust_acc: max}"), {},
     "search.objectives: 'latency_ms_onnxruntime_b1' is not measured by the trials; allowed costs: flops, macs, "
     "params, latency_ms, latency_ms_torch_b1 (latency_ms_<runtime>_b<batch> for latency.runtimes x"),
    ("objective-unknown", _run("search.objectives={energy: min, robust_acc: max}"), {},
     "search.objectives: 'energy' is not measured by the trials; allowed costs: flops"),
    ("latency-runtime", _run("latency.runtimes=[torch, tensorrt]"), {},
     "latency.runtimes: unknown runtime 'tensorrt'; allowed: onnxruntime, torch, torchscript"),
    ("latency-batch-size", _run("latency.batch_sizes=[1, 0]"), {}, "latency.batch_sizes.1: got 0; allowed: >= 1"),
    ("latency-threads", _run("latency.threads=0"), {}, "latency.threads: got 0; allowed: >= 1"),
    ("latency-device", _run("latency.device=tpu"), {}, "latency.device: unknown device 'tpu'; allowed: auto, cpu"),
    ("latency-device-no-gpu", _run("latency.device=cuda"), {},
     "latency.device: 'cuda' needs a GPU in every trial; allowed with resources.gpus_per_trial 0: auto, cpu"),
    ("round-to-zero", _run("space.round_to=0"), {}, "space.round_to: got 0; allowed: >= 1"),
    ("gpus-negative", _run("resources.gpus_per_trial=-0.5"), {}, "resources.gpus_per_trial: got -0.5; allowed: >= 0"),
    ("device", _run("experiment.device=tpu"), {}, "experiment.device: unknown device 'tpu'; allowed: auto, cpu"),
    ("criterion-param-absent", _run("space.criteria=[l1, pls_vip]", "space.criterion_params={kl: {}}"), {},
     "space.criterion_params: 'kl' is not in space.criteria; allowed: l1, pls_vip"),
    ("criterion-param-unknown", _run("space.criteria=[l1, pls_vip]", "space.criterion_params={l1: {pooling: max}}"),
     {}, "space.criterion_params.l1: 'pooling' is not a parameter of filter criterion 'l1'; allowed: none"),
    ("criterion-param-value", _run("model.name=resnet20", "space.granularities=[filter, layer]",
                                   "space.criteria=[pls_vip]", "space.criterion_params={pls_vip: {pooling: median}}"),
     {}, "space.criterion_params.pls_vip.pooling: invalid value 'median'; allowed: 'max' or 'mean'"),
    ("set-no-equals", _run("space.ratio"), {}, "--set: expected KEY=VALUE, got 'space.ratio'"),
    ("set-bad-yaml", _run("space.ratio=[0.2"), {}, "--set space.ratio: YAML syntax error at line 1, column 5"),
    # ---- run: the config file -----------------------------------------------------------
    ("config-missing", ["run", "{tmp}/nope.yaml"], {}, "config: file not found: "),
    ("config-folder", ["run", "{tmp}/folder"], {"folder/keep": b""}, "is a folder; give the YAML file"),
    ("config-duplicate", ["run", "{tmp}/c.yaml"], {"c.yaml": b"search: {num_samples: 4}\nsearch: {num_samples: 8}\n"},
     "key 'search' appears twice (line 2)"),
    ("config-duplicate-nested", ["run", "{tmp}/c.yaml"], {"c.yaml": b"space:\n  ratio: 0.2\n  ratio: 0.3\n"},
     "key 'ratio' appears twice (line 3)"),
    ("config-syntax", ["run", "{tmp}/c.yaml"], {"c.yaml": b"space: {ratio: [0.2\n"},
     "YAML syntax error at line 2, column 1"),
    ("config-tab", ["run", "{tmp}/c.yaml"], {"c.yaml": b"experiment:\n\tname: x\n"}, "YAML syntax error at line 2"),
    ("config-binary", ["run", "{tmp}/c.yaml"], {"c.yaml": b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00"}, "is not UTF-8 text"),
    ("config-list", ["run", "{tmp}/c.yaml"], {"c.yaml": b"- just\n- a list\n"}, "must hold a mapping of keys to values"),
    ("config-empty", ["run", "{tmp}/c.yaml"], {"c.yaml": b""}, "config: {tmp}/c.yaml is empty (no keys)"),
    ("config-only-comments", ["run", "{tmp}/c.yaml"], {"c.yaml": b"# search: {num_samples: 4}\n\n"}, "is empty (no keys)"),
    ("config-empty-mapping", ["run", "{tmp}/c.yaml"], {"c.yaml": b"{}\n"}, "is empty (no keys)"),
    ("trial-config-empty", ["trial", "--config", "{tmp}/t.yaml", "--out", "{tmp}/out"], {"t.yaml": b""},
     "config: {tmp}/t.yaml is empty (no keys)"),
    ("config-bad-value", ["run", "{tmp}/c.yaml"], {"c.yaml": b"search: {num_samples: -3}\n"},
     "search.num_samples: got -3; allowed: >= 1"),
    # ---- run: preflight (tracking store, storage, resources) ------------------------------
    ("tracking-down", _run("experiment.tracking_uri=http://127.0.0.1:{closed}"), {},
     "experiment.tracking_uri: no MLflow server answers at http://127.0.0.1:"),
    ("tracking-scheme", _run("experiment.tracking_uri=foo://bar"), {},
     "experiment.tracking_uri: unsupported scheme 'foo'"),
    ("tracking-corrupt", _run("experiment.tracking_uri=sqlite:///{tmp}/bad.db"), {"bad.db": b"\x7fELF" + b"\0" * 200},
     "is not an SQLite database"),
    ("tracking-folder", _run("experiment.tracking_uri=sqlite:///{tmp}/folder"), {"folder/keep": b""},
     "is a folder; name the SQLite file"),
    ("tracking-under-file", _run("experiment.tracking_uri=sqlite:///{tmp}/a-file/mlflow.db"), {"a-file": b"x"},
     "experiment.tracking_uri: cannot write to"),
    ("storage-under-file", _run("experiment.storage_path={tmp}/a-file/runs"), {"a-file": b"x"},
     "experiment.storage_path: cannot write to"),
    ("gpus-absent", _run(f"resources.gpus_per_trial={torch.cuda.device_count() + 1}"), {},
     "resources.gpus_per_trial: "),
    ("cpus-absent", _run("resources.cpus_per_trial=4096"), {}, "resources.cpus_per_trial: 4096.0 requested"),
    # ---- resume ---------------------------------------------------------------------------
    ("resume-no-folder", ["resume", "{tmp}/gone"], {}, "no robustprune_search.json"),
    ("resume-no-file", ["resume", "{tmp}/s"], {"s/other": b""}, "no robustprune_search.json; pass the folder"),
    ("resume-not-json", ["resume", "{tmp}/s"], {"s/robustprune_search.json": b"{not json"},
     "robustprune_search.json is not valid JSON (damaged?)"),
    ("resume-incomplete", ["resume", "{tmp}/s"], {"s/robustprune_search.json": b'{"parent_run_id": "x"}'},
     "robustprune_search.json lacks 'tracking_uri' (damaged?)"),
    ("resume-bad-config", ["resume", "{tmp}/s"], {"s/robustprune_search.json":
                                                  b'{"parent_run_id": "x", "tracking_uri": "sqlite:///x.db", '
                                                  b'"config": {"search": {"num_samples": 0}}}'},
     "holds an invalid config: search.num_samples: got 0; allowed: >= 1"),
    ("resume-store-down", ["resume", "{tmp}/s"],
     {"s/robustprune_search.json": (SEARCH_JSON % "http://127.0.0.1:{closed}")},
     "experiment.tracking_uri: no MLflow server answers"),
    ("resume-scheme", ["resume", "nosuch://bucket/search"], {}, "experiment_path: nosuch://bucket/search: cannot read it"),
    ("resume-gcs-offline", ["resume", "gs://robustprune-no-such-bucket/search"], {},
     "experiment_path: gs://robustprune-no-such-bucket/search: cannot read it"),
    # ---- run: the user's own network and data ----------------------------------------------
    ("torchvision-unknown", _run("model.name=torchvision:resnet5O"), {},
     "model.name: unknown torchvision model 'resnet5O'; did you mean resnet50"),
    ("timm-unknown", _run("model.name=timm:resnet_18"), {}, "model.name: unknown timm model 'resnet_18'; did you mean"),
    ("model-source-unknown", _run("model.name=hub:resnet50"), {}, "model.name: unknown model source 'hub:'; allowed:"),
    ("python-not-callable", _run("model.name=python:{tmp}/nets.py:make"), {"nets.py": "make = 3\n"},
     "model.name: python:{tmp}/nets.py:make: make is a int, not callable"),
    ("python-no-import", _run("model.name=python:{tmp}/nets.py:make"), {"nets.py": "import no_such_module\n"},
     "importing {tmp}/nets.py failed: ModuleNotFoundError"),
    ("python-raises", _run("data.name=synthetic", "model.name=python:{tmp}/nets.py:make"),
     {"nets.py": "def make():\n    raise RuntimeError('no GPU')\n"},
     "model.name: python:{tmp}/nets.py:make: calling make(**model.args) raised RuntimeError: no GPU"),
    ("weights-missing", _run("data.name=synthetic", "model.name=torchvision:resnet18", "model.weights={tmp}/no.pt"), {},
     "model.weights: {tmp}/no.pt not found"),
    ("weights-corrupt", _run("data.name=synthetic", "model.name=torchvision:resnet18", "model.weights={tmp}/w.pt"),
     {"w.pt": b"\x00garbage"}, "model.weights: {tmp}/w.pt is not a readable state_dict"),
    ("weights-not-fitting", _run("data.name=synthetic", "model.name=torchvision:resnet18",
                                 "model.weights={tmp}/w.pt"), {"w.pt": WRONG_STATE_DICT},
     "model.weights: {tmp}/w.pt does not fit the architecture: missing key 'conv1.weight'"),
    ("classes-mismatch", _run("data.name=synthetic", "model.name=python:{tmp}/nets.py:make"),
     {"nets.py": "from torch import nn\ndef make():\n    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 4))\n"},
     "model.name: python:{tmp}/nets.py:make outputs (4,) per image; the data has 10 classes"),
    ("layer-no-blocks", _run("data.name=synthetic", "model.name=torchvision:vgg11", "space.granularities=[layer]",
                             "space.criteria=[l1]"), {},
     "space.granularities: torchvision:vgg11: layer pruning needs residual blocks (output = input + branch, same "
     "shape); this model has none; allowed: [filter]"),
    ("imagefolder-no-dir", _run("data.name=imagefolder"), {}, "data.data_dir: imagefolder is read from disk; set data_dir"),
    ("imagefolder-missing", _run("data.name=imagefolder", "data.data_dir={tmp}/images"), {},
     "data.data_dir: {tmp}/images/train not found"),
    ("webdataset-no-test-shards", _run("data.name=webdataset", "data.data_dir={tmp}/a.tar"), {"a.tar": b""},
     "data.data_dir: webdataset needs test_shards (data.test_shards)"),
    ("webdataset-missing-shard", _run("data.name=webdataset", "data.data_dir={tmp}/train-{0..1}.tar",
                                      "data.test_shards={tmp}/train-0.tar"), {},
     "data.data_dir: {tmp}/train-0.tar: no such shard"),
    ("trial-webdataset-not-tar", _trial("--dataset", "webdataset", "--data-dir", "{tmp}/a.tar", "--test-shards",
                                        "{tmp}/a.tar"), {"a.tar": b"junk" * 300},
     "data_dir: {tmp}/a.tar: not a tar file"),
    ("resume-s3-offline", ["resume", "s3://robustprune-no-such-bucket/search"], {},
     "experiment_path: s3://robustprune-no-such-bucket/search: cannot read it"),
    ("storage-gcs-offline", _run("experiment.storage_path=gs://robustprune-no-such-bucket/runs"), {},
     "experiment.storage_path: cannot reach gs://robustprune-no-such-bucket/runs"),
    # ---- trial ----------------------------------------------------------------------------
    ("trial-criterion", _trial("--criterion", "nope"), {}, "allowed: bn_scale"),
    ("trial-layer-criterion", _trial("--granularity", "layer", "--criterion", "lamp", "--model", "resnet20"), {},
     "allowed: cka, expected_abs"),
    ("trial-attack", _trial("--attacks", "fgsm,laser"), {}, "allowed: apgd, autoattack"),
    ("trial-model", _trial("--model", "alexnet"), {}, "model"),
    ("trial-dataset", _trial("--dataset", "imagenet"), {}, "allowed: cifar10"),
    ("trial-ratio-zero", _trial("--ratio", "0"), {}, "ratio: got 0.0; allowed: 0 < value < 1"),
    ("trial-ratio-high", _trial("--ratio", "1.2"), {}, "0 < value < 1"),
    ("trial-ratio-text", _trial("--ratio", "half"), {}, "argument --ratio: invalid float value: 'half'"),
    ("trial-iterations", _trial("--iterations", "0"), {}, "iterations: got 0; allowed: >= 1"),
    ("trial-eps", _trial("--eps", "-0.1"), {}, ">= 0"),
    ("trial-eps-pixel-units", _trial("--eps", "8"), {}, "allowed: 0..1"),
    ("trial-cifar-dir", _trial("--dataset", "cifar10", "--data-dir", "/nonexistent"), {}, "cifar-10-batches-py"),
    ("trial-layer-lenet", _trial("--granularity", "layer", "--model", "lenet"), {}, "layer pruning allowed for"),
    ("trial-device", _trial("--device", "tpu"), {}, "allowed: auto, cpu, cuda"),
    ("trial-weights-classes", _trial("--dataset", "synthetic", "--model", "torchvision:resnet18", "--model-weights",
                                     "{tmp}/w.pt"), {"w.pt": RESNET18_1000_CLASSES},
     "model.weights: {tmp}/w.pt does not fit the architecture: 'fc.weight' has shape (1000, 512), the model (10, 512)"),
    ("trial-image-too-small", _trial("--dataset", "imagefolder", "--data-dir", "{tmp}/images", "--image-size", "8",
                                     "--model", "torchvision:alexnet"), IMAGE_FOLDER,
     "image_size: torchvision:alexnet does not run on 8x8 images"),
    ("trial-layer-no-blocks", _trial("--dataset", "synthetic", "--model", "torchvision:vgg11", "--granularity",
                                     "layer", "--criterion", "l1"), {},
     "granularity: layer pruning needs residual blocks (output = input + branch, same shape); this model has none"),
    ("trial-cuda-absent", _trial("--dataset", "digits", "--device", NO_CUDA), {},
     f"device: '{NO_CUDA}' requested but this machine has"),
    ("trial-val-size", _trial("--val-size", "4500"), {}, "val_size: got 4500; allowed: 1..4499"),
    ("trial-eps-grid", _trial("--eps-grid", "0,2"), {}, "<= 1"),
    ("trial-eps-grid-text", _trial("--eps-grid", "0,a"), {}, "expected comma-separated numbers"),
    ("trial-param-unknown", _trial("--criterion", "l1", "--criterion-param", "pooling=max"), {}, "allowed: none"),
    ("trial-param-value", _trial("--criterion", "pls_vip", "--criterion-param", "pooling=sum"), {}, "'max' or 'mean'"),
    ("trial-param-syntax", _trial("--criterion", "pls_vip", "--criterion-param", "pooling"), {},
     "--criterion-param: expected KEY=VALUE"),
    ("trial-out-file", ["trial", "--dataset", "digits", "--out", "{tmp}/taken"], {"taken": b"x"},
     "out: '{tmp}/taken' is a file"),
    ("trial-no-out", ["trial", "--dataset", "digits"], {}, "the following arguments are required: --out"),
    ("trial-config-missing", _trial("--config", "{tmp}/none.yaml"), {}, "config: file not found"),
    ("trial-config-digits-val", _trial("--config", "{tmp}/t.yaml"), {"t.yaml": b"dataset: digits\nval_size: 1617\n"},
     "val_size: got 1617; allowed: 1..1616"),
    ("trial-config-occlusion-eps", _trial("--config", "{tmp}/t.yaml"),
     {"t.yaml": b"attacks: [{name: occlusion, eps: 0.1}]\n"}, "attacks.0: eps: occlusion has no eps budget"),
    ("trial-config-fgsm-steps", _trial("--config", "{tmp}/t.yaml"), {"t.yaml": b"attacks: [{name: fgsm, steps: 5}]\n"},
     "attacks.0: steps: unknown for fgsm; allowed: none"),
    ("trial-config-pgd-param", _trial("--config", "{tmp}/t.yaml"),
     {"t.yaml": b"attacks: [{name: pgd, params: {restart: 3}}]\n"},
     "attacks.0: params.restart: unknown for pgd; allowed: steps, alpha, restarts"),
    ("trial-config-rotation", _trial("--config", "{tmp}/t.yaml"),
     {"t.yaml": b"attacks: [{name: spatial, params: {max_rotation: 270}}]\n"},
     "attacks.0: params.max_rotation: got 270; allowed: <= 180"),
    ("trial-baseline-missing", _trial("--baseline", "{tmp}/missing.pt"), {}, "baseline: cannot read"),
    ("trial-baseline-garbage", _trial("--baseline", "{tmp}/b.pt"), {"b.pt": b"\0not a torch file" * 10},
     "truncated or damaged"),
    ("trial-baseline-truncated", _trial("--baseline", "{truncated}"), {}, "truncated or damaged"),
    ("trial-baseline-wrong-weights", _trial("--baseline", "{wrong_weights}"), {},
     "its weights do not fit the architecture it names"),
    ("trial-baseline-model", _trial("--baseline", "{baseline}", "--model", "resnet20"), {},
     "model: --baseline holds a 'lenet', not a 'resnet20'"),
    ("trial-baseline-dataset", _trial("--baseline", "{baseline}", "--dataset", "mnist5k"), {},
     "baseline: --baseline was trained on input (1, 8, 8)"),
    # ---- pareto / export / ui -------------------------------------------------------------
    ("pareto-experiment", ["pareto", "--tracking-uri", "{store}", "--experiment", "nope"], {},
     "experiment: no MLflow experiment named 'nope'"),
    ("pareto-run-id", ["pareto", "--tracking-uri", "{store}", "--run-id", "deadbeef"], {}, "run-id: no run 'deadbeef'"),
    ("pareto-not-a-search", ["pareto", "--tracking-uri", "{store}", "--run-id", "{child}"], {},
     "is not a robustprune search"),
    ("pareto-no-searches", ["pareto", "--tracking-uri", "{store}", "--experiment", "empty"], {},
     "experiment: 'empty' has no robustprune search runs"),
    ("pareto-store-down", ["pareto", "--tracking-uri", "http://127.0.0.1:{closed}"], {}, "no MLflow server answers"),
    ("pareto-store-corrupt", ["pareto", "--tracking-uri", "sqlite:///{tmp}/bad.db"], {"bad.db": b"garbage" * 40},
     "is not an SQLite database"),
    ("export-run-id", ["export", "--tracking-uri", "{store}", "--run-id", "deadbeef", "--out", "{tmp}/x"], {},
     "run-id: no run 'deadbeef'"),
    ("export-format", ["export", "--tracking-uri", "{store}", "--format", "zip", "--out", "{tmp}/x"], {},
     "format: "),
    ("export-out-file", ["export", "--tracking-uri", "{store}", "--out", "{tmp}/taken"], {"taken": b"x"},
     "--out: '{tmp}/taken' is a file"),
    ("export-out-not-empty", ["export", "--tracking-uri", "{store}", "--out", "{tmp}/full"], {"full/f": b"x"},
     "is not empty; pass --force to replace it whole"),
    ("export-threshold-text", ["export", "--tracking-uri", "{store}", "--max-flops", "lots", "--out", "{tmp}/x"], {},
     "argument --max-flops: invalid float value: 'lots'"),
    ("export-latency-not-logged", ["export", "--tracking-uri", "{store}", "--experiment", "no-latency",
                                   "--max-latency-ms", "5", "--latency-metric", "latency_ms_onnxruntime_b1",
                                   "--out", "{tmp}/x"], {},
     "--max-latency-ms: the search's trials logged no 'latency_ms_onnxruntime_b1'; logged: no latency"),
    ("export-latency-metric-alone", ["export", "--tracking-uri", "{store}", "--latency-metric", "latency_ms_torch_b1",
                                     "--out", "{tmp}/x"], {},
     "--latency-metric: names the latency --max-latency-ms bounds; give --max-latency-ms too"),
    ("ui-port-busy", ["ui", "--tracking-uri", "{store}", "--port", "{busy}"], {}, "port: cannot serve on 127.0.0.1:"),
    ("ui-experiment-unknown", ["ui", "--tracking-uri", "{store}", "--port", "{closed}", "--experiment", "nope"], {},
     "experiment: no MLflow experiment named 'nope' at"),
    ("ui-store-scheme", ["ui", "--tracking-uri", "foo://bar"], {}, "unsupported scheme 'foo'"),
    # ---- study ----------------------------------------------------------------------------
    ("study-replica-seeds", ["study", "{tmp}/s.yaml", "--set", "evaluation.seeds=3"], {"s.yaml": _study()},
     "evaluation.seeds: a study runs every cell with each of study.seeds; allowed here: 1"),
    ("study-empty-factor", ["study", "{tmp}/s.yaml"], {"s.yaml": _study("criteria: []")},
     "study.criteria: must not be empty"),
    ("study-unknown-criterion", ["study", "{tmp}/s.yaml"], {"s.yaml": _study("criteria: [l9]")},
     "study.criteria: unknown criterion 'l9'; allowed: "),
    ("study-unknown-setup-key", ["study", "{tmp}/s.yaml"],
     {"s.yaml": _study(setups="[{name: a, modle: {name: lenet}}]")}, "study.setups.0.modle: unknown key"),
    ("study-setup-twice", ["study", "{tmp}/s.yaml"], {"s.yaml": _study(setups="[{name: a}, {name: a}]")},
     "study.setups: setup name 'a' is given twice"),
    ("study-ratio-outside", ["study", "{tmp}/s.yaml"], {"s.yaml": _study("ratios: [0.5, 1.2]")},
     "study.ratios: got 1.2; allowed: a pruning ratio strictly between 0 and 1"),
    ("study-setup-data", ["study", "{tmp}/s.yaml"],
     {"s.yaml": _study(setups="[{name: a, data: {name: mnist5k, val_size: 0}}]")},
     "study.setups.a.data.val_size: got 0; allowed: >= 1"),
    ("run-given-a-study", ["run", "{tmp}/s.yaml"], {"s.yaml": _study()}, "is a study config (it has a 'study' "
                                                                           "section); run it with `robustprune study`"),
    ("study-given-a-search", ["study", QUICKSTART], {}, "is a search config (it has no 'study' section); run it "
                                                        "with `robustprune run`"),
    # ---- the command line itself ----------------------------------------------------------
    ("no-command", [], {}, "the following arguments are required: command"),
    ("unknown-command", ["prune"], {}, "invalid choice: 'prune'"),
    ("run-no-config", ["run"], {}, "the following arguments are required: config"),
    ("unknown-flag", ["run", QUICKSTART, "--fast"], {}, "unrecognized arguments: --fast"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, digits_baseline):
    """What the cases refer to: an MLflow store holding an experiment with one plain run and
    one without searches, and a trained digits LeNet (and a truncated copy of it)."""
    from trainables.store import save_model

    root = tmp_path_factory.mktemp("world")
    store = store_at(root / "mlflow.db")
    client = MlflowClient(store)
    exp = client.create_experiment("robustprune")
    client.create_experiment("empty")
    child = client.create_run(exp).info.run_id
    client.set_terminated(child)
    other = client.create_run(client.create_experiment("other-problem"), tags={"robustprune.search": "parent"})
    client.log_param(other.info.run_id, "model.name", "resnet20")
    client.set_terminated(other.info.run_id)
    # a search whose front model logged no latency (searches before latency was measured per runtime)
    old = client.create_run(client.create_experiment("no-latency"), tags={"robustprune.search": "parent"})
    front = client.create_run(old.info.experiment_id, tags={"mlflow.parentRunId": old.info.run_id, "pareto": "true"})
    for key, value in {"flops": 100.0, "robust_acc": 0.5, "clean_acc": 0.9}.items():
        client.log_metric(front.info.run_id, key, value)
    for run in (front, old):
        client.set_terminated(run.info.run_id)
    _, baseline = digits_baseline
    model_file = save_model(baseline.model(), baseline.payload["spec"], root / "baseline.pt")
    (root / "truncated.pt").write_bytes(model_file.read_bytes()[:2000])
    payload = torch.load(model_file, weights_only=True)  # loadable, but its weights do not fit its spec
    payload["state_dict"] = {k: v[:1] if v.dim() else v for k, v in payload["state_dict"].items()}
    torch.save(payload, root / "wrong_weights.pt")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    yield {"store": store, "child": child, "baseline": str(model_file), "busy": busy.getsockname()[1],
           "closed": free_port(), "truncated": root / "truncated.pt", "wrong_weights": root / "wrong_weights.pt",
           "client": client}
    busy.close()


def _registry_state(client: MlflowClient) -> tuple:
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    versions = client.search_model_versions()
    return (sorted((r.info.run_id, r.info.status) for r in runs), len(versions),
            sorted(e.name for e in client.search_experiments()))


def _fill(text: str, values: dict) -> str:
    """The case's placeholders replaced (str.format would trip on YAML's braces)."""
    for key, value in values.items():
        text = text.replace("{%s}" % key, str(value))
    return text


def _tree(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*"))


def test_the_matrix_is_large_and_its_ids_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("argv, files, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, monkeypatch, capsys, world, argv, files,
                                                          message):
    values = {**world, "tmp": str(tmp_path)}
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_fill(content, values).encode() if isinstance(content, str) else content)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr("search.tracking.storage.CLOUD_TIMEOUT_S", 2.0)  # no network here: gs:// and s3:// never answer
    before, store_before = _tree(tmp_path), _registry_state(world["client"])

    code = main([_fill(arg, values) for arg in argv])

    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err[-3000:]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("robustprune: error: ") and _fill(message, values) in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert _tree(tmp_path) == before  # no file, folder, database or partial output
    assert _registry_state(world["client"]) == store_before  # no MLflow run or model version
    assert not ray.is_initialized()
