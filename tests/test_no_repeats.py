"""NoRepeats around a real OptunaSearch (no Ray cluster needed): a point is measured once;
repeats are answered from the cache and the sampler moves on; the cache survives the
state round trip Tune's checkpoint makes."""
import optuna
import pytest
from ray.tune.search.optuna import OptunaSearch

from search.config import load_config, sampled_point
from search.driver.no_repeats import NoRepeats, point_key
from search.driver.space import SAMPLERS, SearchSpace, make_sampler

KEYS = ["objective_flops", "objective_robust_acc"]


def _searcher(overrides, sampler="nsga2"):
    cfg = load_config(None, [f"search.sampler={sampler}", *overrides])
    space = SearchSpace(cfg.space)
    inner = OptunaSearch(space=space, metric=KEYS, mode=["min", "max"], sampler=make_sampler(cfg.search, 0))
    return NoRepeats(inner, KEYS, space)


def _objectives(config) -> dict:
    ratio = config["ratio"]
    return {"objective_flops": 1 - ratio, "objective_robust_acc": 0.5 + ratio * (1 - ratio)}


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_a_small_space_is_measured_point_by_point_never_twice(sampler):
    # 2 criteria x 5 ratios x 1 iterations x 1 epoch = 10 points; 40 proposals would repeat many
    searcher = _searcher(["space.criteria=[l1, random]", "space.ratio=[0.2, 0.6]", "space.ratio_step=0.1",
                          "space.iterations=1", "search.num_samples=10"], sampler)
    measured, ratios = [], set()
    for i in range(10):
        config = searcher.suggest(f"t{i}")
        measured.append(point_key(config))
        ratios.add(sampled_point(config)["ratio"])
        searcher.on_trial_complete(f"t{i}", result=_objectives(config))
    assert len(set(measured)) == 10  # every point once
    assert ratios == {0.2, 0.3, 0.4, 0.5, 0.6}  # on the grid, without Optuna's float noise (0.30000000000000004)
    assert searcher.answered_from_cache > 0  # the sampler did propose repeats
    told = searcher.searcher._ot_study.trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in told)  # repeats are told their cached values


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_a_point_still_running_is_not_proposed_again(sampler):
    # past the samplers' random start-up (a model-based sampler proposes its optimum again)
    searcher = _searcher(["space.criteria=[l1, random]", "space.ratio=[0.2, 0.6]", "space.ratio_step=0.1",
                          "space.iterations=1", "search.num_samples=8"], sampler)
    for i in range(4):
        config = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", result=_objectives(config))
    first, second = searcher.suggest("a"), searcher.suggest("b")
    assert point_key(first) != point_key(second)


def test_the_cache_survives_the_checkpoint_state_round_trip():
    searcher = _searcher(["space.criteria=[l1, random]", "space.ratio=[0.2, 0.6]", "space.ratio_step=0.1"])
    config = searcher.suggest("t0")
    searcher.on_trial_complete("t0", result=_objectives(config))
    restored = _searcher(["space.criteria=[l1, random]", "space.ratio=[0.2, 0.6]", "space.ratio_step=0.1"])
    restored.set_state(searcher.get_state())
    assert restored.measured == searcher.measured and point_key(config) in restored.measured


def test_a_restored_searcher_adopts_trials_logged_after_its_checkpoint(tmp_path):
    """A driver killed just after MLflow logged a short trial: Tune's checkpoint predates
    that trial, and `resume` must neither measure its point again nor run more trials."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from mlflow_store import store_at
    from search.tracking.logged_trials import LoggedTrials

    uri = store_at(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("adopt")
    parent = client.create_run(experiment_id).info.run_id
    logged = LoggedTrials(uri, experiment_id, parent, {"flops": "min", "robust_acc": "max"})
    overrides = ["space.criteria=[l1, random]", "space.ratio=[0.2, 0.6]", "space.ratio_step=0.1", "space.iterations=1"]

    def searcher():
        s = _searcher(overrides, "random")
        s.total, s.logged = 6, logged
        return s

    def log(trial_id, config):
        run = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent, "ray_trial_id": trial_id})
        point, values = sampled_point(config), _objectives(config)
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in point.items()],
                         metrics=[Metric(k.removeprefix("objective_"), v, 0, 0) for k, v in values.items()],
                         tags=[RunTag("feasible", "true")])
        client.set_terminated(run.info.run_id, "FINISHED")

    live = searcher()
    configs = {t: live.suggest(t) for t in ("t0", "t1")}
    checkpoint = live.get_state()  # Tune's last periodic checkpoint: t0 and t1 running
    configs["t2"] = live.suggest("t2")
    for t in ("t0", "t2"):  # t2 started, ended and was logged after the checkpoint; then the driver died
        live.on_trial_complete(t, result=_objectives(configs[t]))
        log(t, configs[t])

    restored = searcher()
    restored.set_state(checkpoint)
    proposals = []
    while isinstance(config := restored.suggest(f"r{len(proposals)}"), dict):
        proposals.append(point_key(config))
    assert restored.adopted == 1  # t2 only: t0 was running in the checkpoint, and Tune reruns it
    assert point_key(configs["t2"]) in restored.measured
    assert len(proposals) == 3  # 2 trials in the checkpoint + t2 + 3 new = the 6 asked for
    assert point_key(configs["t2"]) not in proposals
    told = [t for t in restored.searcher._ot_study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert any(t.values == list(_objectives(configs["t2"]).values()) for t in told)  # the sampler knows t2


def test_a_state_saved_by_an_earlier_release_restores_and_adopts_nothing():
    searcher = _searcher(["space.criteria=[l1, random]", "space.ratio=[0.2, 0.6]", "space.ratio_step=0.1"])
    config = searcher.suggest("t0")
    searcher.on_trial_complete("t0", result=_objectives(config))
    old_state = {k: v for k, v in searcher.get_state().items()
                 if k not in ("total", "logged", "completed", "adopted")}
    restored = _searcher(["space.criteria=[l1, random]", "space.ratio=[0.2, 0.6]", "space.ratio_step=0.1"])
    for name in ("total", "logged", "completed", "adopted"):
        delattr(restored, name)  # as unpickled from that release's tuner.pkl
    restored.set_state(old_state)
    assert isinstance(restored.suggest("t1"), dict) and restored.adopted == 0


def test_the_same_pruning_fine_tuned_another_way_is_another_point():
    """A search of several fine-tuning methods measures each pruning point once per method."""
    config = {"granularity": "filter", "criterion": "l1", "ratio": 0.5, "iterations": 1, "finetune_epochs": 1,
              "finetune_method": "natural"}
    assert point_key(config) != point_key({**config, "finetune_method": "trades"})
    assert point_key(config) == point_key(dict(config))
