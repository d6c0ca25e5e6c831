"""`robustprune report`: write a search's (or a study's) page to a file, and log it to its parent run."""
from __future__ import annotations

from pathlib import Path

from trainables.store import write_text_atomic

from ..tracking.records import SearchRecords
from ..tracking.report import build_report, log_report


def write_report(records: SearchRecords, out: Path) -> Path:
    """Write the page atomically to `out` (no half-written file), and log it to the parent run."""
    page = build_report(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, page)
    log_report(records, page)
    return out
