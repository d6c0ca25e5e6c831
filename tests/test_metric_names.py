"""The metrics reference's names: placeholders match what trials log and nothing more, the
baseline twins follow the trials' metrics, and the docs' tables list every entry."""
import pytest

from search.tracking.metric_names import METRIC_NAMES, SEARCH, STUDY, TRIAL, documented, metrics_reference


@pytest.mark.parametrize("name, run", [
    ("robust_acc_pgd", TRIAL), ("test_robust_acc_fgsm", TRIAL), ("latency_ms_onnxruntime_b4", TRIAL),
    ("latency_ratio_torch_b1", TRIAL), ("test_robust_acc_ci_low", TRIAL), ("robust_acc_mean", TRIAL),
    ("flops_baseline", SEARCH), ("test_robust_acc_baseline", STUDY), ("latency_ms_torch_b1_baseline", TRIAL),
    ("hypervolume", SEARCH), ("cells_more_robust", STUDY), ("efficiency", STUDY),
])
def test_logged_names_are_documented(name, run):
    assert documented(name, run)


@pytest.mark.parametrize("name, run", [
    ("hypervolume", TRIAL),  # a parent's metric on a trial
    ("cells_finished", SEARCH),  # a study's on a search
    ("latency_ms_torch_bx", TRIAL), ("robust_acc_", TRIAL), ("flops_mean", TRIAL),  # flops is not over seeds
    ("accuracy", TRIAL), ("hypervolume_baseline", SEARCH),  # no trial logs a hypervolume
    ("flops_reduction_extra", TRIAL),
])
def test_other_names_are_not(name, run):
    assert not documented(name, run)


def test_the_reference_has_a_row_per_name_and_kind_of_run():
    page = metrics_reference()
    for entry in METRIC_NAMES:
        assert page.count(f"| `{entry.name}` | {entry.meaning} |") == len(entry.runs), entry.name
