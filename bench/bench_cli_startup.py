"""How long `robustprune --help` and each subcommand's `--help` take: this tree against an
earlier commit (checked out in a temporary git worktree), side by side in one run, the two
alternating per repeat so both see the same load. The median wall time of a fresh
interpreter per call, what a person waits for.

    python bench/bench_cli_startup.py --before 1b4c91a --repeats 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [[], ["run"], ["resume"], ["study"], ["trial"], ["pareto"], ["report"], ["export"], ["ui"]]
CALL = "import sys; from search.commands.cli import main; sys.exit(main(sys.argv[1:]))"


def seconds(tree: Path, argv: list[str]) -> float:
    """One `robustprune ARGV --help` from `tree`'s code (first on the path, before the installed one)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", CALL, *argv, "--help"], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        before = Path(d) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before], check=True,
                       capture_output=True)
        try:
            times = {(tree, i): [] for tree in ("before", "now") for i in range(len(COMMANDS))}
            for _ in range(args.repeats):
                for i, argv in enumerate(COMMANDS):
                    times["before", i].append(seconds(before, argv))
                    times["now", i].append(seconds(ROOT, argv))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=True)
    print(f"| command | {args.before} (s) | now (s) | ratio |\n|---|---|---|---|")
    for i, argv in enumerate(COMMANDS):
        old, new = statistics.median(times["before", i]), statistics.median(times["now", i])
        print(f"| `robustprune {' '.join(argv + ['--help'])}` | {old:.2f} | {new:.2f} | {old / new:.0f}x |")


if __name__ == "__main__":
    main()
