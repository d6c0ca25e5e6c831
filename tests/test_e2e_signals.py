"""The signal table: SIGTERM, SIGHUP and SIGINT sent to a command's own PID (not its group,
as a process manager, `kill PID` or `timeout` does) once it has started its children. The
command exits non-zero within a bounded time, every process it started is gone (Ray's
agents may take a few seconds to notice their parent went), a port it served is free, and
nothing is half-written: a search's parent run ends KILLED and the output says how to resume.
`run` and `resume` share one search, stopped three times."""
import signal
import socket

import psutil
import pytest
import yaml

from e2e_helpers import descendants, finished_children, free_port, running_cli, search_runs, tiny_config, \
    wait_for_http, wait_until
from image_data import write_image_folder
from mlflow_store import store_at

pytestmark = pytest.mark.e2e
SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop(proc, signum: int, exit_within_s: float = 120, started: list | None = None) -> int:
    """Send `signum` to the command's PID once it has children (`started`: as seen last); its
    exit status, after every process it had started is gone (bounded)."""
    started = started or descendants(proc.pid)
    assert started, "the command had started no process yet"
    proc.send_signal(signum)
    proc.wait(timeout=exit_within_s)
    wait_until(lambda: not [p for p in started if _alive(p)], 30,
               "every process the command started to exit: "
               + ", ".join(" ".join(p.cmdline()[:2]) for p in started if _alive(p)))
    return proc.returncode


def test_a_search_stopped_by_each_signal_leaves_no_process_and_a_killed_parent(tmp_path):
    """One search of dry-run trials (the trial's content is not under test; many, so it is
    still running), stopped three times: `run` by SIGTERM, then `resume` by SIGHUP and by
    SIGINT sent to its PID alone (Ctrl+C of `run`, which reaches the whole process group,
    is tests/test_e2e_interrupt.py). Every signal takes the same path once Tune runs."""
    cfg = tiny_config(tmp_path, "stopped", 400, search={"dry_run": True}, baseline={"epochs": 2})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stops = [(["run", cfg], signal.SIGTERM), (["resume", None], signal.SIGHUP), (["resume", None], signal.SIGINT)]
    for command, signum in stops:
        if command[0] == "resume":
            command[1] = next((tmp_path / "runs").glob("stopped_*"))
        logged = finished_children(uri, "stopped")
        log = tmp_path / f"{command[0]}-{signal.Signals(signum).name}.log"
        with running_cli(*command, cwd=tmp_path, log=log) as proc:
            wait_until(lambda: finished_children(uri, "stopped") >= logged + 2, 300, "two more finished trials",
                       process=proc)
            status = stop(proc, signum)
        out = log.read_text()
        assert status != 0, out[-3000:]
        assert "continue with:" in out, out[-3000:]
        parent, children = search_runs(uri, "stopped")
        assert parent.info.status == "KILLED"
        assert len(children) < 400


@pytest.mark.parametrize("signum", SIGNALS)
def test_ui_stopped_leaves_no_server_and_frees_its_port(tmp_path, signum):
    store, port = store_at(tmp_path / "mlflow.db"), free_port()
    with running_cli("ui", "--tracking-uri", store, "--port", str(port), cwd=tmp_path,
                     log=tmp_path / "ui.log") as proc:
        wait_for_http(f"http://127.0.0.1:{port}/", proc, 60, tmp_path / "ui.log")
        assert len(descendants(proc.pid)) >= 2  # the server and its workers
        status = stop(proc, signum)
    assert status == 128 + signum, (tmp_path / "ui.log").read_text()[-2000:]
    assert f"stopped by {signal.Signals(signum).name}" in (tmp_path / "ui.log").read_text()
    with socket.socket() as sock:  # free again: a server can listen on it (as servers do, past TIME_WAIT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_stopped_trial_leaves_no_loader_process_and_no_file(tmp_path, signum):
    folder = write_image_folder(tmp_path / "images", train_per_class=40)
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump({"data_workers": 1, "image_size": 32, "baseline": {"epochs": 200}}))
    out = tmp_path / "out"
    with running_cli("trial", "--config", config, "--dataset", "imagefolder", "--data-dir", folder,
                     "--model", "resnet20", "--out", out, cwd=tmp_path, log=tmp_path / "trial.log") as proc:
        # a loader's workers end with its pass over the data and the next loader starts new
        # ones: the signal goes at once to the workers seen, which may be between two loaders
        seen = []
        wait_until(lambda: seen.extend(descendants(proc.pid)) or seen, 120, "a DataLoader worker", process=proc)
        status = stop(proc, signum, started=seen)
    assert status == 128 + signum, (tmp_path / "trial.log").read_text()[-2000:]
    assert not out.exists() or not list(out.iterdir())
