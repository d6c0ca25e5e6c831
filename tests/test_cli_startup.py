"""`robustprune --help`, every subcommand's `--help` and a mistyped command answer without
importing torch, Ray, MLflow or the config models (seconds of imports on a busy 2-core
machine): a fresh interpreter runs them and lists what they imported. Their times are in
bench/bench_cli_startup.py."""
import subprocess
import sys

from search.commands.cli import build_parser

HEAVY = ("torch", "ray", "mlflow", "pydantic", "numpy", "optuna")
PROBE = """
import contextlib, io, sys
from search.commands.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        status = main({argv!r})
    except SystemExit as e:
        status = e.code
print(status, len(out.getvalue()), err.getvalue().strip()[:200], sep="|")
print(",".join(m for m in {heavy!r} if m in sys.modules))
"""


def _probe(argv: list[str]) -> tuple[str, int, str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer, imported = proc.stdout.splitlines()[-2:]
    status, printed, error = answer.split("|", 2)
    return status, int(printed), error, [m for m in imported.split(",") if m]


def test_help_of_every_command_imports_none_of_the_heavy_libraries():
    commands = list(build_parser()._subparsers._group_actions[0].choices)
    assert {"run", "resume", "study", "trial", "pareto", "report", "export", "ui"} <= set(commands)
    for argv in [["--help"], *([c, "--help"] for c in commands)]:
        status, printed, _, imported = _probe(argv)
        assert status == "0" and printed > 100, argv  # the help text itself
        assert imported == [], (argv, imported)


def test_a_mistyped_command_is_one_line_without_the_heavy_imports():
    status, printed, error, imported = _probe(["rnu", "configs/quickstart.yaml"])
    assert status == "2" and printed == 0 and imported == []
    assert error.startswith("robustprune: error: argument command: invalid choice: 'rnu'") and "\n" not in error
