"""The final evaluation in fixed-size parts: the joined parts are the whole evaluation, a
part measured alone equals the same part measured in turn, and the baseline's test
metrics are cached per final-evaluation setting."""
import json

import pytest
import torch

from search.driver.baseline import baseline_test_metrics
from trainables.data import load_dataset
from trainables.test_eval import (TEST_PART_SIZE, evaluate_test_part, final_eval_images, final_eval_key,
                                  final_evaluation, join_test_parts, part_count)


def changed(cfg, **fields):
    return type(cfg).model_validate({**cfg.model_dump(), **fields})


@pytest.fixture(scope="module")
def setup(digits_baseline):
    cfg, baseline = digits_baseline
    # digits' test split has 180 images: a part size of 100 gives two parts, the second short
    cfg = changed(cfg, final_attacks=[{"name": "fgsm", "eps": 0.1}, {"name": "pgd", "eps": 0.1, "steps": 3}],
                  eps_grid=[0.0, 0.05, 0.1])
    data = load_dataset("digits", seed=cfg.seeds()["splits"], val_size=cfg.val_size)
    return cfg, baseline.model(), data


def test_parts_cover_the_test_subset_once(setup, monkeypatch):
    cfg, model, data = setup
    monkeypatch.setattr("trainables.test_eval.TEST_PART_SIZE", 100)
    assert part_count(cfg) == 2 == -(-len(final_eval_images(data, cfg)) // 100)
    parts = [evaluate_test_part(model, data, cfg, torch.device("cpu"), k) for k in range(2)]
    assert [len(p.suite.clean) for p in parts] == [100, 80]
    joined = join_test_parts(parts)
    assert joined == final_evaluation(model, data, cfg, torch.device("cpu"))  # the same, part by part
    alone = evaluate_test_part(model, data, cfg, torch.device("cpu"), 1)  # e.g. on another worker
    assert torch.equal(alone.suite.robust, parts[1].suite.robust)
    # joined per image: per-sample worst case over both parts, the curve ends at the suite's own eps
    robust = torch.cat([p.suite.robust for p in parts])
    assert joined["test_robust_acc"] == pytest.approx(robust.float().mean().item())
    assert joined["test_robust_acc"] <= min(joined["test_robust_acc_fgsm"], joined["test_robust_acc_pgd"])
    curve = {p["eps"]: p["test_robust_acc"] for p in joined["robustness_curve"]}
    assert curve[0.0] == pytest.approx(joined["test_clean_acc"]) and curve[0.1] == joined["test_robust_acc"]


def test_part_count_follows_test_size(setup):
    cfg, _, _ = setup
    assert part_count(cfg) == 1  # 180 images
    big = changed(cfg, dataset="mnist5k", val_size=500)
    assert part_count(big) == -(-big.test_eval_size() // TEST_PART_SIZE) and part_count(big) >= 2


def test_baseline_test_metrics_are_cached_per_setting(setup, digits_baseline, tmp_path):
    cfg, _, _ = setup
    _, baseline = digits_baseline
    calls = []

    def measure(payload):
        calls.append(payload)
        return {"test_robust_acc": 0.25 * len(calls)}

    first, reused = baseline_test_metrics(str(tmp_path), cfg, "cpu", baseline, measure)
    assert (first, reused, len(calls)) == ({"test_robust_acc": 0.25}, False, 1) and calls[0] is baseline.payload
    again, reused = baseline_test_metrics(str(tmp_path), cfg, "cpu", baseline, measure)
    assert (again, reused, len(calls)) == (first, True, 1)  # read back, not measured again
    stronger = changed(cfg, final_attacks=[{"name": "pgd", "eps": 0.1, "steps": 20}])
    assert final_eval_key(stronger) != final_eval_key(cfg)
    assert baseline_test_metrics(str(tmp_path), stronger, "cpu", baseline, measure) == ({"test_robust_acc": 0.5},
                                                                                          False)
    cached = next(tmp_path.glob(f"baselines/*/test_{final_eval_key(cfg)}.json"))
    assert json.loads(cached.read_text()) == first
    cached.write_text('{"test_robust')  # a torn write: measured again, never a failed search
    assert baseline_test_metrics(str(tmp_path), cfg, "cpu", baseline, measure) == ({"test_robust_acc": 0.75},
                                                                                    False)
