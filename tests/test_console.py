"""What a search prints (search/driver/console.py): the libraries' logs in the log file and
only their warnings on the console (the known noise left out), put back as they were; the
progress bar on a terminal only, with the lines printed above it. A real search's console
is checked in tests/test_e2e_search.py."""
import io
import logging
import os
import sys

import pytest

from search.driver import console


@pytest.mark.parametrize("verbose", [False, True])
def test_library_logs_go_to_the_file_and_their_warnings_to_the_console(tmp_path, capsys, verbose):
    log = tmp_path / "experiment" / console.LOG_FILE
    ray, mlflow = logging.getLogger("ray.tune.tune"), logging.getLogger("mlflow.store.db.utils")
    before = [(logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in console.LIBRARY_LOGGERS]
    with console.libraries_logged_to(log, verbose):
        assert os.environ.get(console.TUNE_REPORTER) == (None if verbose else "0")  # Tune's silent reporter
        assert not log.parent.exists()  # made with the first record, not before
        mlflow.info("Creating initial MLflow database tables...")
        ray.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.")
        ray.warning("a trial's resources cannot be met")
    after = [(logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in console.LIBRARY_LOGGERS]
    assert after == before and console.TUNE_REPORTER not in os.environ  # the loggers are put back
    shown = capsys.readouterr()
    if verbose:
        assert not log.exists() and "--verbose" not in shown.out
        return
    assert shown.out == f"[robustprune] the logs of Ray, Tune, MLflow and Optuna: {log} (--verbose shows them here)\n"
    assert shown.err == "WARNING ray.tune.tune: a trial's resources cannot be met\n"
    kept = log.read_text()
    for message in ("INFO mlflow.store.db.utils: Creating initial", "WARNING ray.tune.tune: Token authentication",
                    "resources cannot be met"):
        assert message in kept


def test_a_log_file_beside_a_cloud_experiment_is_local():
    assert console.log_file_of("/runs/q_1", "q_1") == console.Path("/runs/q_1") / console.LOG_FILE
    assert console.log_file_of("s3://bucket/runs/q_1", "q_1") == console.Path.cwd() / f"q_1.{console.LOG_FILE}"


def test_no_bar_when_the_output_is_not_a_terminal(capsys):
    with console.progress_bar(16, 0, "trial", verbose=False):
        print("[robustprune] trial 1/16 ...")
        console.trial_ended(1, 0.25)  # nothing to move: a no-op
    shown = capsys.readouterr()
    assert shown.out == "[robustprune] trial 1/16 ...\n" and shown.err == ""


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_a_bar_counts_trials_and_lines_print_above_it(monkeypatch):
    terminal, out = _Terminal(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", out)
    with console.progress_bar(16, 2, "trial", verbose=False):
        assert sys.stdout is not out
        print("[robustprune] trial 3/16 l1 filter ratio=0.24")
        console.trial_ended(3, 0.4382)
        console.trial_ended()  # a failed or stopped trial: counted, the front as it was
    assert sys.stdout is out and console._progress is None
    assert out.getvalue() == "[robustprune] trial 3/16 l1 filter ratio=0.24\n"
    bar = terminal.getvalue().replace("\r", "\n").splitlines()[-1]
    assert bar.startswith("trials |") and "| 4/16, front 3 | hypervolume 0.4382 [" in bar


def test_verbose_has_no_bar_and_tunes_tables(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    with console.progress_bar(16, 0, "trial", verbose=True):
        assert console._progress is None
    assert (console.tune_verbosity(True), console.tune_verbosity(False)) == (1, 0)
