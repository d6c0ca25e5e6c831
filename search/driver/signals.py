"""How a command ends on a signal sent to its own PID: SIGTERM (a process manager, `kill`,
`timeout`) and SIGHUP (a closed terminal) end it the way Ctrl+C does, so one cleanup path
serves all three: a search stops Tune, marks its parent run KILLED, says how to resume and
shuts its local Ray down; `ui` stops the MLflow server's whole process group. The command
then exits 128 + the signal's number, as a shell reports a process killed by it.
"""
from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

STOPPING = (signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []  # the signals that stopped the command, first first
_active: list[bool] = []  # non-empty while a command runs with these handlers
_previous_unraisablehook: list = []


def _like_ctrl_c(signum, _frame) -> None:
    _received.append(signum)
    signal.raise_signal(signal.SIGINT)  # whichever SIGINT handler is in place runs next (Tune's, or KeyboardInterrupt)


def _note_sigint(signum, frame) -> None:
    if not _received:
        _received.append(signum)
    signal.default_int_handler(signum, frame)


def _rearm_lost_interrupt(unraisable) -> None:
    """A KeyboardInterrupt raised while a finalizer (`__del__`, a weakref callback) runs is
    printed and dropped by Python, and the stop would be lost; it is raised again at the next
    point the main thread checks for signals after this hook has returned. (From another
    thread, a moment later: on the main thread interrupt_main would run the handler at once,
    inside this hook.)"""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        _thread.start_new_thread(_interrupt_main_soon, ())
    else:
        _previous_unraisablehook[-1](unraisable)


def _interrupt_main_soon() -> None:
    time.sleep(0.01)
    _thread.interrupt_main()


@contextmanager
def stopping_like_ctrl_c():
    """The handlers in place while the command runs (main thread only); the previous ones after."""
    previous = {signum: signal.getsignal(signum) for signum in (*STOPPING, signal.SIGINT)}
    _previous_unraisablehook.append(sys.unraisablehook)
    sys.unraisablehook = _rearm_lost_interrupt
    signal.signal(signal.SIGINT, _note_sigint)
    _received.clear()
    _active.append(True)
    reclaim_stop_signals()
    try:
        yield
    finally:
        _active.pop()
        sys.unraisablehook = _previous_unraisablehook.pop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def reclaim_stop_signals() -> None:
    """Put the handlers back after a library replaced them: `ray.init` installs a SIGTERM
    handler of its own that exits the driver without Tune's cleanup (the parent run would
    stay RUNNING). A no-op outside a command."""
    if _active:
        for signum in STOPPING:
            signal.signal(signum, _like_ctrl_c)


def exit_status() -> tuple[int, str]:
    """(128 + the signal that stopped the command, its name); SIGINT when none was recorded."""
    signum = _received[0] if _received else signal.SIGINT
    return 128 + signum, signal.Signals(signum).name


def exit_within(seconds: float, status: int) -> None:
    """Exit with `status` after `seconds` if the interpreter's own shutdown has not ended the
    process by then. A signal that lands while a library starts a thread pool (MLflow's
    artifact download does) can leave an idle non-daemon worker that interpreter shutdown
    then waits for forever; the command's own cleanup has already run by the time this is armed."""
    def force_exit():
        print(f"robustprune: shutdown did not finish within {seconds:.0f} s; exiting", file=sys.stderr, flush=True)
        os._exit(status)

    timer = threading.Timer(seconds, force_exit)
    timer.daemon = True
    timer.start()


def stop_process_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End a child started with start_new_session=True and everything it started: SIGTERM to its
    group, SIGKILL to what is left of it after `grace_s`."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break  # the whole group is gone
        deadline = time.monotonic() + grace_s
        while _group_alive(process.pid) and time.monotonic() < deadline:
            process.poll()  # reaps the leader once it exits (a zombie still counts as a member)
            time.sleep(0.05)
        if not _group_alive(process.pid):
            break
    process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
