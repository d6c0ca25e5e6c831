"""Intermediate reports of a trial (for multi-objective early stopping): one per fine-tune
epoch, the final cost known up front, and no effect on the trial's own result."""
import pytest

from trainables.trial import Progress, run_trial


@pytest.mark.parametrize("criterion", ["l1", "taylor"])
def test_reports_one_per_epoch_with_the_final_cost_and_leave_the_result_unchanged(digits_baseline, criterion):
    cfg, baseline = digits_baseline
    cfg = cfg.model_copy(update={"criterion": criterion, "ratio": 0.5, "iterations": 2,
                                 "finetune": cfg.finetune.model_copy(update={"epochs": 2})})
    reports = []
    with_progress = run_trial(cfg, baseline, progress=Progress(reports.append, eval_size=60))
    without = run_trial(cfg, baseline)

    assert [r["step"] for r in reports] == [1, 2, 3, 4]  # 2 rounds x 2 epochs
    assert {r["flops"] for r in reports} == {with_progress.metrics["flops"]}  # known before round 1
    assert all(r["params"] == with_progress.metrics["params"] for r in reports)
    assert all(0 <= r["robust_acc"] <= r["clean_acc"] <= 1 for r in reports)
    for key in ("clean_acc", "robust_acc", "flops"):
        assert with_progress.metrics[key] == without.metrics[key]


def test_without_fine_tuning_reports_once_per_round(synthetic_resnet20):
    cfg, baseline = synthetic_resnet20
    for granularity in ("filter", "layer"):
        reports = []
        result = run_trial(cfg.model_copy(update={"granularity": granularity}), baseline,
                           progress=Progress(reports.append, eval_size=16))
        assert [r["step"] for r in reports] == [1, 2]
        assert reports[0]["flops"] == result.metrics["flops"]
