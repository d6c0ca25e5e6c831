"""The study's statistics (search/front/statistics.py, study_stats.py) against values computed
another way: closed forms, textbook quantiles, and Demšar's (JMLR 2006) worked example."""
import math
import statistics as stdlib

import numpy as np
import pytest

from search.front.statistics import (compare_criteria, critical_difference, holm, interval, nemenyi_q,
                                     paired_vs_baseline, variance_shares)
from search.front.study_stats import cells_csv, study_statistics

T_975_DF2 = 4.302652729  # Student t, 97.5 % quantile, 2 degrees of freedom (any statistics table)


def test_an_interval_is_the_mean_and_the_t_interval_of_the_sample():
    values = [0.5, 0.6, 0.7]
    got = interval(values)
    half = T_975_DF2 * stdlib.stdev(values) / math.sqrt(3)
    assert got["n"] == 3 and got["mean"] == pytest.approx(0.6) and got["std"] == pytest.approx(0.1)
    assert got["ci_low"] == pytest.approx(0.6 - half, abs=1e-9) and got["ci_high"] == pytest.approx(0.6 + half, abs=1e-9)


def test_one_value_has_no_spread_and_no_interval():
    assert interval([0.4]) == {"n": 1, "mean": 0.4, "std": None, "ci_low": None, "ci_high": None}


def test_the_paired_test_is_the_one_sample_t_test_of_the_differences():
    pruned, baseline = [0.52, 0.61, 0.58], [0.50, 0.55, 0.50]
    diff = [p - b for p, b in zip(pruned, baseline)]
    t = stdlib.fmean(diff) / (stdlib.stdev(diff) / math.sqrt(3))
    p_two_sided = 1 - t / math.sqrt(2 + t * t)  # the t distribution's CDF in closed form for 2 degrees of freedom
    got = paired_vs_baseline(pruned, baseline)
    assert got["mean_diff"] == pytest.approx(stdlib.fmean(diff))
    assert got["p"] == pytest.approx(p_two_sided, rel=1e-9)
    assert got["ci_low"] < got["mean_diff"] < got["ci_high"]


def test_equal_differences_have_no_p_value():
    assert paired_vs_baseline([0.6, 0.7], [0.5, 0.6])["p"] is None


def test_holm_adjusts_by_rank_and_keeps_the_order():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005, None]) == pytest.approx([0.03, 0.06, 0.06, 0.02, None])


def test_the_nemenyi_critical_values_are_demsars_table_5():
    table_5 = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031, 9: 3.102, 10: 3.164}
    assert {k: round(nemenyi_q(k), 3) for k in table_5} == pytest.approx(table_5, abs=0.0011)
    assert critical_difference(4, 14) == pytest.approx(1.25, abs=0.005)  # Demšar, section 3.2.4


# Demšar's worked example (section 3.2.2): four variants of C4.5 on 14 data sets, average ranks
# 3.143, 2.000, 2.893, 1.964 (1 the best). These ranks (one block with a tie) give exactly them.
DEMSAR_RANKS = [(1, 4, 2, 3), (4, 2, 3, 1), (4, 1, 3, 2), (4, 1, 3, 2), (3, 1, 4, 2), (4, 1, 2, 3), (4, 1, 3, 2),
                (1, 4, 3, 2), (3, 1, 4, 2), (2, 4, 3, 1), (4, 3, 2, 1), (2, 1, 4, 3), (4, 3, 2, 1), (4, 1, 2.5, 2.5)]


def test_demsars_worked_example_gives_his_ranks_friedman_statistic_and_critical_difference():
    accuracy = 5 - np.array(DEMSAR_RANKS)  # higher is better: rank 1 is the most accurate
    got = compare_criteria(accuracy, ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"])
    assert [round(r, 3) for r in got.average_ranks.values()] == [3.143, 2.000, 2.893, 1.964]
    n, k = 14, 4
    ranks = list(got.average_ranks.values())
    chi2 = 12 * n / (k * (k + 1)) * (sum(r * r for r in ranks) - k * (k + 1) ** 2 / 4)  # Demšar's formula
    assert chi2 == pytest.approx(9.28, abs=0.01)
    ties = 1 - (2 ** 3 - 2) / (n * k * (k * k - 1))  # one tie of two, in one block
    assert got.friedman_stat == pytest.approx(chi2 / ties, rel=1e-6)
    assert got.critical_difference == pytest.approx(1.25, abs=0.005)
    # the pairwise Nemenyi p-values (scikit-posthocs) agree with the critical difference (scipy's
    # studentized range): below 0.05 exactly where two average ranks are further apart than CD,
    # and smaller the further apart (Demšar's largest gap, 1.18, falls short of 1.25)
    gaps = {(a, b): abs(ranks[i] - ranks[j]) for i, a in enumerate(got.criteria) for j, b in enumerate(got.criteria)
            if i < j}
    for (a, b), gap in gaps.items():
        assert (got.nemenyi_p[a][b] < 0.05) == (gap > got.critical_difference)
    by_gap = sorted(gaps, key=gaps.get)
    assert [got.nemenyi_p[a][b] for a, b in by_gap] == sorted((got.nemenyi_p[a][b] for a, b in by_gap), reverse=True)
    assert got.test == "friedman"


def test_two_criteria_are_compared_by_the_wilcoxon_test_and_one_by_none():
    table = np.array([[0.5, 0.4], [0.6, 0.5], [0.7, 0.65], [0.3, 0.2], [0.55, 0.5], [0.45, 0.4]])
    two = compare_criteria(table, ["a", "b"])
    assert two.test == "wilcoxon" and two.average_ranks == {"a": 1.0, "b": 2.0}
    assert two.friedman_p == pytest.approx(2 / 2 ** 6)  # exact: every block favours a, two-sided
    one = compare_criteria(table[:, :1], ["a"])
    assert one.friedman_p is None and "one criterion" in one.best_on_average()


def test_variance_shares_of_a_balanced_design_are_the_factor_sums_of_squares():
    rng = np.random.default_rng(0)
    rows = [{"a": a, "b": b, "y": 0.3 * a + 0.1 * b + rng.normal(0, 0.05)} for a in range(3) for b in range(2)
            for _ in range(4)]
    y = np.array([r["y"] for r in rows])
    total = ((y - y.mean()) ** 2).sum()

    def share(factor):
        levels = {r[factor] for r in rows}
        return sum(len(g) * (np.mean(g) - y.mean()) ** 2
                   for g in ([r["y"] for r in rows if r[factor] == v] for v in levels)) / total

    for order in (["a", "b"], ["b", "a"]):  # balanced: each factor's main effect, whatever the order
        got = variance_shares(rows, "y", order)
        assert got["a"] == pytest.approx(share("a")) and got["b"] == pytest.approx(share("b"))
        assert got["a"] + got["b"] + got["residual"] == pytest.approx(1.0)


def test_a_factor_confounded_with_an_earlier_one_explains_nothing_more():
    """Each setup studied at one granularity (as the MNIST study's LeNet filters and ResNet-20
    layers): granularity adds nothing to setup, and the shares still add up to one."""
    rows = [{"setup": s, "granularity": g, "criterion": c, "y": y}
            for (s, g), c, y in [(("lenet", "filter"), "l1", 0.3), (("lenet", "filter"), "kl", 0.4),
                                 (("resnet20", "layer"), "l1", 0.6), (("resnet20", "layer"), "kl", 0.2),
                                 (("resnet20", "layer"), "kl", 0.25)]]
    got = variance_shares(rows, "y", ["setup", "granularity", "criterion"])
    y = np.array([r["y"] for r in rows])
    setup_means = {s: y[[r["setup"] == s for r in rows]].mean() for s in ("lenet", "resnet20")}
    between = sum((setup_means[r["setup"]] - y.mean()) ** 2 for r in rows) / ((y - y.mean()) ** 2).sum()
    assert got["setup"] == pytest.approx(between) and got["granularity"] == pytest.approx(0.0, abs=1e-9)
    assert sum(got.values()) == pytest.approx(1.0)


def _row(setup, criterion, seed, robust, flops=0.5, ratio=0.5):
    return {"setup": setup, "granularity": "filter", "criterion": criterion, "ratio": ratio, "iterations": 1,
            "finetune_method": "natural", "seed": seed, "test_robust_acc": robust, "test_clean_acc": 0.9,
            "test_robust_acc_fgsm": robust + 0.1, "flops_reduction": flops, "params_reduction": flops}


def test_a_fixed_table_gives_the_cells_the_claim_and_the_ranking():
    rows = []
    for seed in range(3):
        rows.append(_row("net", "baseline", seed, 0.30 + 0.01 * seed, flops=0.0))
        rows.append(_row("net", "l1", seed, 0.40 + 0.02 * seed))  # clearly above its baseline
        rows.append(_row("net", "hrank", seed, 0.30 + 0.011 * seed))  # about the same
        rows.append(_row("net", "kl", seed, 0.20 + 0.01 * seed + 0.001 * seed ** 2))  # below
    stats = study_statistics(rows)
    by = {c["criterion"]: c for c in stats["cells"]}
    assert set(by) == {"l1", "hrank", "kl"} and all(c["n"] == 3 for c in by.values())
    assert by["l1"]["vs_baseline"]["mean_diff"] == pytest.approx(0.11)
    assert by["l1"]["vs_baseline"]["p_holm"] < 0.05 < by["hrank"]["vs_baseline"]["p_holm"]
    assert stats["counts"] == {"cells": 3, "tested": 3, "more_robust": 1, "less_robust": 1, "no_difference": 1}
    assert stats["summary"].startswith("pruned more robust than its baseline in 1 of 3 cells")
    ranking = stats["ranking"]["filter"]
    assert ranking["average_ranks"] == {"l1": 1.0, "hrank": 2.0, "kl": 3.0} and ranking["blocks"] == 1
    assert ranking["friedman_p"] is None  # one block: nothing to test, and none is invented
    assert stats["baselines"]["net"]["test_robust_acc"]["mean"] == pytest.approx(0.31)
    header = cells_csv(rows).splitlines()[0].split(",")
    assert header[:7] == ["setup", "granularity", "criterion", "ratio", "iterations", "finetune_method", "seed"]
    assert "test_robust_acc_fgsm" in header


def test_one_seed_reports_means_and_says_intervals_need_two():
    rows = [_row("net", "baseline", 0, 0.3, flops=0.0), _row("net", "l1", 0, 0.4)]
    stats = study_statistics(rows)
    cell = stats["cells"][0]
    assert cell["test_robust_acc"]["mean"] == 0.4 and cell["test_robust_acc"]["ci_low"] is None
    assert cell["vs_baseline"]["p"] is None and stats["counts"]["tested"] == 0
    assert any("at least 2 seeds" in note for note in stats["notes"])
