"""Child processes of r1desk: how to start one, from a checkout, an installed wheel or a frozen app.

A child that runs an r1desk module is started as ``python -m r1desk.…`` where Python is the
interpreter running r1desk, so it finds the same installed package without ``PYTHONPATH``. A
frozen bundle (PyInstaller) has no ``-m``: its executable is started with ``CHILD_FLAG`` and
the module name, and the entry point hands that over to ``run_child``.

Each child gets a lifeline: the reading end of a pipe whose writing end only the parent
holds. When the parent process ends, by any means including ``kill -9``, the kernel closes the
writing end and the child sees end-of-file and exits. Unlike ``PR_SET_PDEATHSIG``, which
follows the *thread* that started the child, this follows the parent process as a whole.

What a child inherits (its end of a ``channel``, the lifeline, a shared file) goes through a
``Handover``: descriptor numbers and ``pass_fds`` on POSIX; on Windows, which has no
descriptor passing, handle numbers, made inheritable and listed in the process's
``handle_list`` so the child inherits those handles and no others. The child turns the
numbers on its command line back into descriptors and connections with ``fd_from_parent``
and ``connection_from_parent``.
"""

from __future__ import annotations

import os
import runpy
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

WINDOWS = os.name == "nt"

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


def channel() -> tuple[Any, Any]:
    """A two-way connection (this side, the child's side) a child can inherit: a socket pair on
    POSIX, a named pipe on Windows (whose sockets do not survive inheritance reliably)."""
    if WINDOWS:
        from multiprocessing.connection import Pipe

        return Pipe(duplex=True)
    mine, theirs = socket.socketpair()
    return Connection(mine.detach()), Connection(theirs.detach())


class Handover:
    """What a child process inherits: descriptors (POSIX) or handles (Windows).

    ``fd(fd)`` and ``connection(conn)`` give the text to put on the child's command line;
    ``popen_kwargs()`` the arguments of ``subprocess.Popen`` that hand them over.
    """

    def __init__(self) -> None:
        self._fds: list[int] = []
        self._handles: list[int] = []

    def fd(self, fd: int) -> str:
        if WINDOWS:
            import msvcrt

            return self._handle(msvcrt.get_osfhandle(fd))
        self._fds.append(fd)
        return str(fd)

    def connection(self, conn: Any) -> str:
        if WINDOWS:
            return self._handle(conn.fileno())
        return self.fd(conn.fileno())

    def _handle(self, handle: int) -> str:
        os.set_handle_inheritable(handle, True)
        self._handles.append(handle)
        return str(handle)

    def popen_kwargs(self) -> dict[str, Any]:
        if WINDOWS:
            info = subprocess.STARTUPINFO()
            info.lpAttributeList = {"handle_list": list(self._handles)}
            return {"close_fds": True, "startupinfo": info}
        return {"pass_fds": tuple(self._fds)}


def fd_from_parent(text: str) -> int:
    """In the child: the descriptor a ``Handover.fd`` gave."""
    if WINDOWS:
        import msvcrt

        return msvcrt.open_osfhandle(int(text), 0)
    return int(text)


def connection_from_parent(text: str) -> Any:
    """In the child: the connection a ``Handover.connection`` gave."""
    if WINDOWS:
        from multiprocessing.connection import PipeConnection  # type: ignore[attr-defined]

        return PipeConnection(int(text))
    return Connection(int(text))


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
