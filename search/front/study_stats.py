"""A study's answer from its rows (one per cell and seed, and one per baseline and seed with
criterion "baseline"): per-cell intervals, each cell against its unpruned baseline, the
criteria ranked per granularity, and which factor explains the variance of robustness.
Pure functions; `statistics.py` holds the tests themselves."""
from __future__ import annotations

import csv
import io
from collections import defaultdict

import numpy as np

from .statistics import ALPHA, NEEDS_SEEDS, claim_counts, compare_criteria, holm, interval, paired_vs_baseline, \
    variance_shares

BASELINE = "baseline"
CELL_FACTORS = ("setup", "granularity", "criterion", "ratio", "iterations", "finetune_method")
BLOCK_FACTORS = ("setup", "ratio", "iterations", "finetune_method")  # criteria are ranked within these
VARIANCE_FACTORS = ("setup", "granularity", "criterion", "ratio", "iterations", "finetune_method", "seed")
SUMMARISED = ("test_robust_acc", "test_clean_acc", "flops_reduction", "params_reduction")
METRIC = "test_robust_acc"


def attack_metrics(rows: list[dict]) -> list[str]:
    """`test_robust_acc_<attack>` for every attack the rows were measured against."""
    return sorted({k for r in rows for k in r if k.startswith(f"{METRIC}_") and k != f"{METRIC}_curve"})


def _grouped(rows: list[dict], factors: tuple[str, ...]) -> dict[tuple, list[dict]]:
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[f] for f in factors)].append(r)
    return groups


def cell_statistics(rows: list[dict]) -> list[dict]:
    """One entry per cell: its factors, `n` seeds, an interval of every summarised metric, and
    `vs_baseline` (the paired difference in test robust accuracy, Holm-corrected over cells)."""
    baselines = {(r["setup"], r["seed"]): r for r in rows if r["criterion"] == BASELINE}
    metrics = [*SUMMARISED, *attack_metrics(rows)]
    cells = []
    for factors, runs in _grouped([r for r in rows if r["criterion"] != BASELINE], CELL_FACTORS).items():
        paired = [r for r in runs if (r["setup"], r["seed"]) in baselines]
        entry = {**dict(zip(CELL_FACTORS, factors)), "n": len(runs), "seeds": sorted(r["seed"] for r in runs)}
        entry.update({m: interval([r[m] for r in runs if m in r]) for m in metrics})
        entry["vs_baseline"] = paired_vs_baseline([r[METRIC] for r in paired],
                                                  [baselines[(r["setup"], r["seed"])][METRIC] for r in paired])
        cells.append(entry)
    for entry, p in zip(cells, holm([c["vs_baseline"]["p"] for c in cells])):
        entry["vs_baseline"]["p_holm"] = p
    return cells


def baseline_statistics(rows: list[dict]) -> dict[str, dict]:
    """Per setup, the unpruned baseline's intervals over seeds."""
    metrics = [m for m in (*SUMMARISED, *attack_metrics(rows)) if m not in ("flops_reduction", "params_reduction")]
    return {setup: {"n": len(runs), **{m: interval([r[m] for r in runs if m in r]) for m in metrics}}
            for (setup,), runs in _grouped([r for r in rows if r["criterion"] == BASELINE], ("setup",)).items()}


def criteria_ranking(cells: list[dict]) -> dict[str, dict]:
    """Per granularity: criteria ranked by mean test robust accuracy within each block (setup x
    ratio x iterations x fine-tuning method, blocks holding every criterion), Friedman and Nemenyi."""
    out = {}
    for (granularity,), entries in _grouped(cells, ("granularity",)).items():
        criteria = list(dict.fromkeys(c["criterion"] for c in entries))
        blocks = _grouped(entries, BLOCK_FACTORS)
        complete = [b for b in blocks.values() if {c["criterion"] for c in b} == set(criteria)]
        table = np.array([[next(c[METRIC]["mean"] for c in b if c["criterion"] == name) for name in criteria]
                          for b in complete]).reshape(len(complete), len(criteria))
        comparison = compare_criteria(table, criteria)
        out[granularity] = {**comparison.as_dict(), "answer": comparison.best_on_average()}
    return out


def summary_line(counts: dict) -> str:
    line = (f"pruned more robust than its baseline in {counts['more_robust']} of {counts['cells']} cells "
            f"(significant, Holm-corrected paired t test at {ALPHA:g}), less robust in {counts['less_robust']}, "
            f"no significant difference in {counts['no_difference']}")
    untested = counts["cells"] - counts["tested"]
    return line + (f"; {untested} not tested ({NEEDS_SEEDS}, or equal differences)" if untested else "")


def study_statistics(rows: list[dict]) -> dict:
    """study_stats.json: `cells`, `baselines`, `ranking`, `variance_shares`, `summary` (and `notes`)."""
    cells = cell_statistics(rows)
    counts = claim_counts(cells)
    pruned = [r for r in rows if r["criterion"] != BASELINE and METRIC in r]
    notes = []
    if cells and max(c["n"] for c in cells) < 2:
        notes.append(f"one seed per cell: {NEEDS_SEEDS}; none is reported")
    return {"cells": cells, "baselines": baseline_statistics(rows), "ranking": criteria_ranking(cells),
            "variance_shares": variance_shares(pruned, METRIC, list(VARIANCE_FACTORS)) if pruned else {},
            "counts": counts, "summary": summary_line(counts), "notes": notes}


def cells_csv(rows: list[dict]) -> str:
    """study_cells.csv: one row per cell x seed and per baseline x seed."""
    columns = [*CELL_FACTORS, "seed", "flops_reduction", "params_reduction", "test_clean_acc", METRIC,
               *attack_metrics(rows), "clean_acc", "robust_acc", "flops", "params", "run_id"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
