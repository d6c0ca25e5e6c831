import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from search.config import load_config
from search.driver.space import SAMPLERS, SearchSpace, make_sampler

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "robustprune")


def test_shipped_configs_validate():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        if "cifar" in path.name or "imagenet" in path.name:  # the user's files: validated with a fake folder below
            continue
        if path.name.startswith("study-"):  # studies: tests/test_study_config.py
            continue
        cfg = load_config(path)
        assert cfg.search.num_samples >= 1


def _fake_cifar_folder(tmp_path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (folder / name).write_bytes(b"")
    return tmp_path


def test_paper_config_validates_with_cifar_files(tmp_path):
    cfg = load_config(ROOT / "configs" / "cifar10-resnet56.yaml", [f"data.data_dir={_fake_cifar_folder(tmp_path)}"])
    assert cfg.model.name == "resnet56" and set(cfg.space.granularities) == {"filter", "layer"}
    assert cfg.resources.gpus_per_trial > 0


def test_robust_config_trains_and_fine_tunes_with_trades_and_ends_with_autoattack(tmp_path):
    cfg = load_config(ROOT / "configs" / "cifar10-resnet18-robust.yaml",
                      [f"data.data_dir={_fake_cifar_folder(tmp_path)}"])
    methods = cfg.resolved_training_methods()
    assert methods["baseline"] == {"method": "trades", "eps": 0.0313725, "alpha": 0.0313725 / 4, "steps": 10,
                                   "beta": 6.0}
    assert methods["finetune"] == {"trades": {"eps": 0.0313725, "alpha": 0.0313725 / 4, "steps": 10, "beta": 6.0}}
    assert [a.name for a in cfg.final_attacks()] == ["autoattack"]
    assert cfg.model.name == "resnet18" and cfg.resources.gpus_per_trial > 0


def test_imagenet_config_validates_and_its_network_is_built_for_its_data(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from image_data import write_image_folder
    from search.driver.preflight import check_model_fits_data

    folder = write_image_folder(tmp_path / "imagenet", train_per_class=3, val_per_class=1, size=16)
    cfg = load_config(ROOT / "configs" / "imagenet-resnet50.yaml", [f"data.data_dir={folder}", "model.weights=null",
                                                                    "data.val_size=3"])
    trial = cfg.fixed_trial_config()
    assert (cfg.model.name, trial.image_size, trial.baseline.epochs) == ("torchvision:resnet50", 224, 5)
    check_model_fits_data(cfg)  # ResNet-50 at 224 px, its 12 removable bottlenecks for the layer granularity
    given = load_config(ROOT / "configs" / "imagenet-resnet50.yaml", [f"data.data_dir={folder}", "data.val_size=3"])
    assert given.fixed_trial_config().baseline.epochs == 0  # with weights: measured, not trained


def test_overrides_keep_types_and_merge_ranges():
    cfg = load_config(None, ["search.num_samples=3", "space.ratio.high=0.6", "space.iterations=[2, 4]",
                             "experiment.name=smoke", "space.criteria=[l1, hrank]"])
    assert cfg.search.num_samples == 3
    assert (cfg.space.ratio.low, cfg.space.ratio.high) == (0.2, 0.6)
    assert (cfg.space.iterations.low, cfg.space.iterations.high) == (2, 4)
    assert cfg.space.criteria == ["l1", "hrank"]


@pytest.mark.e2e  # the command as a process
def test_cli_bad_config_exits_2_before_ray_or_mlflow(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("experiment: {name: bad}\nsearch: {num_samples: 0}\n")
    proc = subprocess.run([CLI, "run", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "robustprune: error: search.num_samples: got 0; allowed: >= 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no mlflow.db, no storage folder


def test_config_module_does_not_import_ray_or_mlflow():
    code = ("import sys; from search.config import load_config; load_config(None);"
            "print(sorted(m for m in ('ray', 'mlflow', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_space_is_one_categorical_for_granularity_and_criterion():
    cfg = load_config(None, ["model.name=resnet20", "space.granularities=[filter, layer]",
                             "space.criteria=[l1, lamp, pls_vip]", "space.ratio=[0.3, 0.4]",
                             "space.iterations=[1, 2]"])
    study = optuna.create_study(directions=["minimize", "maximize"],
                                sampler=make_sampler(cfg.search.model_copy(update={"sampler": "random"}), 0))
    space = SearchSpace(cfg.space)
    seen = set()
    for _ in range(30):
        trial = study.ask()
        extra = space(trial)
        g = extra["granularity"]
        assert trial.params["method"] == f"{g}/{extra['criterion']}"
        assert set(trial.params) == {"method", "ratio", "iterations", "finetune_epochs",
                                     "finetune_method"}  # the same for every trial
        assert extra["criterion"] in ({"l1", "lamp", "pls_vip"} if g == "filter" else {"l1", "pls_vip"})
        assert 0.3 <= trial.params["ratio"] <= 0.4 and trial.params["iterations"] in (1, 2)
        seen.add((g, extra["criterion"]))
        study.tell(trial, [trial.params["ratio"], 0.5])
    assert ("layer", "pls_vip") in seen and ("filter", "lamp") in seen


def test_criterion_params_reach_only_their_criterion():
    cfg = load_config(None, ["space.criteria=[l1, pls_vip]", "space.criterion_params={pls_vip: {pooling: mean}}"])
    corner = cfg.space.corner("filter")
    assert cfg.trial_config({**corner, "criterion": "pls_vip"}).prune_settings().params == {"pooling": "mean"}
    assert cfg.trial_config({**corner, "criterion": "l1"}).prune_settings().params == {}
    assert cfg.resolved_criterion_params() == {"pls_vip": {"pooling": "mean", "components": 2}}


def test_every_sampler_is_buildable():
    cfg = load_config(None)
    for name in SAMPLERS:
        assert isinstance(make_sampler(cfg.search.model_copy(update={"sampler": name}), 0),
                          optuna.samplers.BaseSampler)


def test_infeasible_trials_get_the_worst_objective_values():
    from search.front.objectives import objective_values

    m = {"flops": 10.0, "flops_baseline": 100.0, "robust_acc": 0.6}
    objectives = {"flops": "min", "robust_acc": "max"}
    assert objective_values(m, objectives, feasible=True) == {"objective_flops": 10.0, "objective_robust_acc": 0.6}
    assert objective_values(m, objectives, feasible=False) == {"objective_flops": 100.0,
                                                               "objective_robust_acc": 0.0}


def test_a_latency_objective_is_the_ratio_to_the_baseline_timed_beside_the_trial():
    """A trial timed beside another (or on a slower node) measures its baseline slower too:
    the searcher is told the ratio, never the raw milliseconds against another time's baseline."""
    from search.front.objectives import objective_values

    objectives = {"latency_ms_onnxruntime_b1": "min", "robust_acc": "max"}
    final = {"latency_ms_onnxruntime_b1": 0.049, "latency_ms_onnxruntime_b1_baseline": 0.070,
             "latency_ratio_onnxruntime_b1": 0.7, "robust_acc": 0.5}
    assert objective_values(final, objectives, feasible=True)["objective_latency_ms_onnxruntime_b1"] == 0.7
    assert objective_values(final, objectives, feasible=False)["objective_latency_ms_onnxruntime_b1"] == 1.0
    rung = {"latency_ms_onnxruntime_b1": 0.03, "latency_ms_onnxruntime_b1_baseline": 0.06, "robust_acc": 0.4}
    assert objective_values(rung, objectives, feasible=True)["objective_latency_ms_onnxruntime_b1"] == 0.5


def test_final_evaluation_defaults_to_the_search_attacks_at_full_strength():
    cfg = load_config(None, ["attacks=[{name: fgsm, eps: 0.04}, {name: pgd, eps: 0.04, steps: 10, "
                             "params: {restarts: 1}}]"])
    search, final = cfg.fixed_trial_config().attack_specs(), cfg.fixed_trial_config().final_attack_specs()
    assert search[1].params["steps"] == 10 and search[1].params["restarts"] == 1
    assert final[1].params["steps"] == 50 and final[1].params["restarts"] == 5 and final[1].eps == 0.04
    assert cfg.eps_grid() == [0.0, 0.02, 0.04, 0.06, 0.08]
    assert load_config(None, ["evaluation.eps_grid=[]"]).eps_grid() == []


def test_baseline_key_covers_device_amp_and_validation_split():
    from trainables.trial import baseline_key

    base = load_config(None).fixed_trial_config()
    keys = {baseline_key(base, "cpu"), baseline_key(base, "cuda"),
            baseline_key(base.model_copy(update={"amp": True}), "cuda"),
            baseline_key(base.model_copy(update={"val_size": 300}), "cpu"),
            baseline_key(base.model_copy(update={"eval_size": 100}), "cpu")}
    assert len(keys) == 5
    # what does not change the baseline does not change the key: pruning fields, AMP on CPU
    assert baseline_key(base.model_copy(update={"ratio": 0.7}), "cpu") == baseline_key(base, "cpu")
    assert baseline_key(base.model_copy(update={"amp": True}), "cpu") == baseline_key(base, "cpu")


def test_a_config_of_one_key_runs_with_every_other_default(tmp_path):
    """An empty file is refused (tests/test_bad_input.py); every default stays one key away."""
    path = tmp_path / "one.yaml"
    path.write_text("experiment: {name: defaults}\n")
    assert load_config(path) == load_config(None, ["experiment.name=defaults"])

