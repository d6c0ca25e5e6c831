"""The front as text: CSV, a fixed-width table, formatted cells and markdown."""
from __future__ import annotations

import csv
import io

from .objectives import finetune_method_of


FRONT_COLUMNS = ["run_id", "trial_id", "criterion", "granularity", "ratio", "iterations", "finetune_method",
                 "flops", "flops_reduction", "params", "clean_acc", "robust_acc", "test_clean_acc", "test_robust_acc",
                 "latency_ms", "latency_ratio"]


def front_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FRONT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def front_table(rows: list[dict]) -> str:
    """Fixed-width text table of the front, best robust accuracy first. clean_acc / robust_acc
    are validation (what the front was selected on); test_* come from the final evaluation."""
    cols = ["criterion", "granularity", "ratio", "iterations", "finetune_method", "flops_reduction", "latency_ratio",
            "clean_acc", "robust_acc", "test_clean_acc", "test_robust_acc", "run_id"]

    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    body = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


FRONT_HEADERS = ["criterion", "granularity", "ratio", "it", "fine-tune", "FLOPs red.", "latency ratio", "val clean",
                 "val robust", "test clean", "test robust", "run"]


def front_cells(r: dict) -> list[str]:
    """One front row as formatted text, every FRONT_HEADERS column but the run ("–" where a
    metric is missing, e.g. test metrics before the final evaluation)."""
    def fmt(key, spec):
        v = r.get(key)
        return format(v, spec) if isinstance(v, float) else "–"

    return [str(r["criterion"]), str(r["granularity"]), f"{r['ratio']:.2f}", str(r["iterations"]),
            finetune_method_of(r), fmt("flops_reduction", ".1%"), fmt("latency_ratio", ".2f"), fmt("clean_acc", ".3f"),
            fmt("robust_acc", ".3f"), fmt("test_clean_acc", ".3f"), fmt("test_robust_acc", ".3f")]


def front_markdown(front: list[dict], experiment_id: str) -> str:
    """The front as a markdown table (MLflow renders a run's description as markdown), each
    row linking to its run in the UI."""
    lines = ["| " + " | ".join(FRONT_HEADERS) + " |", "|" + "---|" * len(FRONT_HEADERS)]
    for r in front:
        link = f"[{r['run_id'][:8]}](#/experiments/{experiment_id}/runs/{r['run_id']})"
        lines.append("| " + " | ".join([*front_cells(r), link]) + " |")
    return "\n".join(lines)

