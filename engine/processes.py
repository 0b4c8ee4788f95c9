"""Child processes of r1desk: how to start one, from a checkout, an installed wheel or a frozen app.

A child that runs an r1desk module is started as ``python -m r1desk.…`` where Python is the
interpreter running r1desk, so it finds the same installed package without ``PYTHONPATH``. A
frozen bundle (PyInstaller) has no ``-m``: its executable is started with ``CHILD_FLAG`` and
the module name, and the entry point hands that over to ``run_child``.

Each child gets a lifeline: the reading end of a pipe whose writing end only the parent
holds. When the parent process ends, by any means including ``kill -9``, the kernel closes the
writing end and the child sees end-of-file and exits. Unlike ``PR_SET_PDEATHSIG``, which
follows the *thread* that started the child, this follows the parent process as a whole.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading

CHILD_FLAG = "--r1desk-child"


def child_command(module: str, *args: str) -> list[str]:
    """The command line that runs ``module`` as ``__main__`` in a new process."""
    if getattr(sys, "frozen", False):
        return [sys.executable, CHILD_FLAG, module, *args]
    return [sys.executable, "-m", module, *args]


def run_child(argv: list[str]) -> bool:
    """In a frozen app's entry point: run the child module named after ``CHILD_FLAG``, if any."""
    if len(argv) < 3 or argv[1] != CHILD_FLAG:
        return False
    module = argv[2]
    if not module.startswith("r1desk."):
        raise SystemExit(f"not an r1desk module: {module}")
    sys.argv = [module, *argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return True


def lifeline() -> tuple[int, int]:
    """A pipe (read_fd, write_fd): pass the read end to the child, keep the write end open."""
    read_fd, write_fd = os.pipe()
    os.set_inheritable(write_fd, False)
    return read_fd, write_fd


def exit_with_parent(read_fd: int) -> threading.Thread:
    """In the child: exit at once when the parent's end of the lifeline closes."""

    def watch() -> None:
        while True:
            try:
                if not os.read(read_fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        os._exit(0)

    thread = threading.Thread(target=watch, name="r1desk-lifeline", daemon=True)
    thread.start()
    return thread
