"""Unit tests of search/driver/signals.py: a stop is never lost in a finalizer, and a shutdown that
hangs on a library's idle thread still ends with the command's status."""
import subprocess
import sys
import time

import pytest

from search.driver.signals import stopping_like_ctrl_c


class _InterruptedWhileFinalized:
    def __del__(self):
        raise KeyboardInterrupt  # what a signal handler does when the signal lands in a finalizer


def test_an_interrupt_raised_in_a_finalizer_is_raised_again_outside_it():
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with stopping_like_ctrl_c():
            _InterruptedWhileFinalized()  # dropped at once: Python ignores what __del__ raises
            for _ in range(200):
                time.sleep(0.001)
            reached_the_end = True
    assert not reached_the_end


def test_a_shutdown_held_by_an_idle_thread_exits_with_the_status_in_time():
    code = ("import threading; from search.driver.signals import exit_within; "
            "threading.Thread(target=threading.Event().wait).start(); exit_within(0.5, 143)")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 143
    assert "shutdown did not finish within" in proc.stderr
    assert time.monotonic() - started < 20


def test_a_port_whose_server_just_stopped_can_be_served_again():
    """The server side of a closed connection stays in TIME_WAIT for a minute; `ui` started
    again at once must not call the port taken (servers listen with SO_REUSEADDR)."""
    import socket

    from search.commands.cli import _check_port_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's, which MLflow serves with
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server closes first: its side of the connection goes to TIME_WAIT
    server.close()
    client.close()
    _check_port_free("127.0.0.1", port)
