"""Statistics over seeds and cells, from scipy, statsmodels and scikit-posthocs: pure functions
on plain rows, used by studies (and by anything else that reports over seeds).

* `interval`: mean, std and a Student-t confidence interval of a sample.
* `paired_vs_baseline`: a pruned cell against the unpruned baseline of the same seeds
  (paired t test), then Holm's correction over the cells (`holm`).
* `compare_criteria`: ranks within blocks (1 the best, ties share the mean rank), the
  Friedman test and the Nemenyi post-hoc test with its critical difference (Demšar, JMLR 2006).
* `variance_shares`: the share of a metric's variance each factor explains (ANOVA sums of
  squares of an additive model of the factors).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
NEEDS_SEEDS = "intervals and tests need at least 2 seeds"


def _finite(value: float) -> float | None:
    """JSON has no NaN: a value that cannot be computed is None."""
    return float(value) if value is not None and math.isfinite(value) else None


def interval(values) -> dict:
    """{n, mean, std, ci_low, ci_high} of a sample: std with n - 1, the t interval; one value
    gives its mean and no spread or interval (None)."""
    x = np.asarray(values, dtype=float)
    out = {"n": int(x.size), "mean": _finite(x.mean()) if x.size else None, "std": None, "ci_low": None,
           "ci_high": None}
    if x.size >= 2:
        std = x.std(ddof=1)
        out["std"] = float(std)
        if std > 0:
            low, high = stats.t.interval(CONFIDENCE, x.size - 1, loc=x.mean(), scale=std / math.sqrt(x.size))
        else:
            low = high = x.mean()
        out["ci_low"], out["ci_high"] = float(low), float(high)
    return out


def paired_vs_baseline(pruned, baseline) -> dict:
    """pruned − baseline over paired seeds: {n, mean_diff, ci_low, ci_high, p} (a paired t test,
    two-sided). Differences all equal give no p (the test is undefined): None."""
    diff = np.asarray(pruned, dtype=float) - np.asarray(baseline, dtype=float)
    spread = interval(diff)
    p = None
    if diff.size >= 2 and diff.std(ddof=1) > 0:
        p = _finite(stats.ttest_rel(pruned, baseline).pvalue)
    return {"n": spread["n"], "mean_diff": spread["mean"], "ci_low": spread["ci_low"],
            "ci_high": spread["ci_high"], "p": p}


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (statsmodels), None where a p-value is None."""
    from statsmodels.stats.multitest import multipletests

    known = [i for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    if known:
        corrected = multipletests([p_values[i] for i in known], alpha=ALPHA, method="holm")[1]
        for i, p in zip(known, corrected):
            adjusted[i] = float(p)
    return adjusted


def claim_counts(cells: list[dict]) -> dict:
    """How many cells are significantly more robust than their baseline (Holm-adjusted p below
    ALPHA, mean difference above 0), significantly less, or not significantly different."""
    tested = [c["vs_baseline"] for c in cells if c["vs_baseline"]["p_holm"] is not None]
    more = sum(t["p_holm"] < ALPHA and t["mean_diff"] > 0 for t in tested)
    less = sum(t["p_holm"] < ALPHA and t["mean_diff"] < 0 for t in tested)
    return {"cells": len(cells), "tested": len(tested), "more_robust": more, "less_robust": less,
            "no_difference": len(tested) - more - less}


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    """The Nemenyi test's critical value q_alpha for k methods: the studentized range quantile
    over sqrt(2) (Demšar's Table 5)."""
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def critical_difference(k: int, blocks: int, alpha: float = ALPHA) -> float:
    """Two methods' average ranks differ significantly when further apart than this."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * blocks))


@dataclass
class CriteriaComparison:
    criteria: list[str]
    blocks: int
    average_ranks: dict[str, float]
    friedman_stat: float | None
    friedman_p: float | None
    critical_difference: float | None
    nemenyi_p: dict[str, dict[str, float]] | None  # pairwise p-values
    test: str  # which test gave friedman_* ("friedman", "wilcoxon" for two criteria, or why none)

    def as_dict(self) -> dict:
        return {"criteria": self.criteria, "blocks": self.blocks, "average_ranks": self.average_ranks,
                "friedman_stat": self.friedman_stat, "friedman_p": self.friedman_p,
                "critical_difference": self.critical_difference, "nemenyi_p": self.nemenyi_p, "test": self.test}

    def best_on_average(self) -> str:
        """The answer to "is one criterion best on average?" that the tests give."""
        if self.friedman_p is None:
            return f"no test ({self.test})"
        order = sorted(self.average_ranks, key=self.average_ranks.get)
        if self.friedman_p >= ALPHA:
            return (f"no: the criteria do not differ significantly ({self.test} p = {self.friedman_p:.3g}); "
                    f"best average rank {order[0]} ({self.average_ranks[order[0]]:.2f})")
        if self.nemenyi_p is None:  # two criteria: the test compared them directly
            return f"yes: {order[0]} ({self.test} p = {self.friedman_p:.3g})"
        beaten = [c for c in order[1:] if self.nemenyi_p[order[0]][c] < ALPHA]
        if len(beaten) == len(order) - 1:
            return f"yes: {order[0]} beats every other criterion (Nemenyi, CD {self.critical_difference:.2f})"
        return (f"not one: {order[0]} ranks best ({self.average_ranks[order[0]]:.2f}) but is not significantly "
                f"better than {', '.join(c for c in order[1:] if c not in beaten)} (Nemenyi, "
                f"CD {self.critical_difference:.2f})")


def compare_criteria(table: np.ndarray, criteria: list[str], higher_is_better: bool = True) -> CriteriaComparison:
    """`table`: one row per block, one column per criterion (e.g. mean robust accuracy over seeds).
    Ranks per block (1 the best), Friedman over the blocks and, with 3 or more criteria, the
    Nemenyi post-hoc test; two criteria are compared with the Wilcoxon signed-rank test."""
    table = np.asarray(table, dtype=float)
    blocks, k = table.shape
    ranks = stats.rankdata(-table if higher_is_better else table, axis=1)
    average = {c: float(r) for c, r in zip(criteria, ranks.mean(axis=0))} if blocks else {}
    comparison = CriteriaComparison(criteria, blocks, average, None, None, None, None, "")
    if k < 2:
        comparison.test = "one criterion: nothing to compare"
    elif blocks < 2:
        comparison.test = f"{blocks} block(s): a rank test needs at least 2"
    elif k == 2:
        diff = table[:, 0] - table[:, 1]
        if np.all(diff == 0):
            comparison.test = "two criteria, equal in every block"
        else:
            result = stats.wilcoxon(table[:, 0], table[:, 1])
            comparison.friedman_stat, comparison.friedman_p = float(result.statistic), float(result.pvalue)
            comparison.test = "wilcoxon"
    elif np.all(table == table[:, :1]):
        comparison.test = "every criterion equal in every block"
    else:
        import scikit_posthocs

        result = stats.friedmanchisquare(*table.T)
        comparison.friedman_stat, comparison.friedman_p = float(result.statistic), float(result.pvalue)
        comparison.critical_difference = critical_difference(k, blocks)
        pairwise = scikit_posthocs.posthoc_nemenyi_friedman(table)
        comparison.nemenyi_p = {a: {b: float(pairwise.iloc[i, j]) for j, b in enumerate(criteria)}
                                for i, a in enumerate(criteria)}
        comparison.test = "friedman"
    return comparison


def variance_shares(rows: list[dict], metric: str, factors: list[str]) -> dict[str, float]:
    """The share of the total sum of squares of `metric` explained by each factor, and the
    residual's: sequential (type I) sums of squares, each factor's the drop in the residual
    sum of squares of statsmodels' least-squares fit when it joins the model, in `factors`
    order. They add up to the total; on a balanced grid (a study without failed or
    inapplicable cells) they are every factor's main-effect sum of squares, whatever the
    order; a factor confounded with an earlier one (a setup studied at one granularity)
    explains nothing more (share 0). Factors with one level explain nothing."""
    import warnings

    import pandas as pd
    from statsmodels.formula.api import ols

    frame = pd.DataFrame([{**{f: str(r[f]) for f in factors}, "y": float(r[metric])} for r in rows])
    total = float(((frame["y"] - frame["y"].mean()) ** 2).sum()) if len(frame) else 0.0
    shares = {f: 0.0 for f in factors}
    if total == 0.0:
        return {**shares, "residual": 0.0}
    names = {f: f"f{i}" for i, f in enumerate(factors)}  # column names a formula takes whatever the factor
    data, terms, residual = frame.rename(columns=names), [], total
    for f in (f for f in factors if frame[f].nunique() > 1):
        terms.append(f"C({names[f]})")
        with warnings.catch_warnings():  # a confounded factor makes the design rank-deficient: expected
            warnings.simplefilter("ignore")
            fitted = ols("y ~ " + " + ".join(terms), data=data).fit().ssr
        shares[f], residual = max(0.0, (residual - fitted) / total), fitted
    shares["residual"] = max(0.0, residual / total)
    return shares
