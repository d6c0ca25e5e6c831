"""Which networks each criterion prunes: every model x granularity x criterion cell
(tests/coverage_cells.py) tried on this machine, with the one-line error where a cell does
not work and the seconds the slowest cell took.

    make bench-coverage            # writes bench/coverage.md, the coverage table of docs/tutorials/own-network.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from coverage_cells import MODELS, MODERN_MODELS, fresh, try_cell  # noqa: E402

from trainables.models import removable_blocks  # noqa: E402
from trainables.prune import CRITERIA  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/coverage.md")
    ap.add_argument("--models", nargs="+", default=MODELS + MODERN_MODELS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    lines = ["| model | removable blocks | filter criteria | layer criteria | slowest cell |", "|---|---|---|---|---|"]
    for name in args.models:
        blocks = len(removable_blocks(fresh(name)))
        cells, slowest = {}, (0.0, "")
        for granularity in ("filter", "layer"):
            outcomes = {}
            for criterion in sorted(CRITERIA[granularity]):
                outcome, seconds = try_cell(name, granularity, criterion)
                outcomes[criterion] = outcome
                slowest = max(slowest, (seconds, f"{granularity} {criterion}"))
                print(f"{name} {granularity} {criterion}: {outcome} ({seconds:.1f} s)", flush=True)
            works = [c for c, o in outcomes.items() if o == "works"]
            errors = sorted({o for o in outcomes.values() if o != "works"})
            text = f"all {len(works)}" if not errors else (f"{', '.join(works)} work; " if works else "") + \
                "; ".join(f"`{e}`" for e in errors)
            cells[granularity] = text
        lines.append(f"| {name} | {blocks} | {cells['filter']} | {cells['layer']} | "
                     f"{slowest[1]}: {slowest[0]:.0f} s |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
