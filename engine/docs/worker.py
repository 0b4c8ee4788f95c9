"""Extraction in a child process, so a parser that crashes, hangs or balloons costs one file only.

The parsers read whatever is on the user's disk, and some of it is hostile: PDFs crafted to
loop or to inflate to petabytes, zip bombs, files a C extension chokes on. ``Extractor`` keeps
one worker process (``python -m r1desk.engine.docs.worker``, started as the model process is:
``engine.processes.child_command`` and a lifeline, so it ends with the app however the app
ends) and hands it files one at a time. A file that takes longer than ``Limits.seconds``, or
makes the worker use more than ``Limits.memory_bytes``, or kills it, comes back as a
``Problem`` ("timeout", "too-much-memory", "crashed"), and the next file gets a fresh worker.
One worker serves many files in turn: starting one per file would cost more than reading
most files (the parsers alone take most of a second to import).

Memory is bounded twice. In the worker, ``RLIMIT_AS`` (Linux; macOS accepts it but does not
enforce it) makes an allocation past the limit fail at once, which a parser sees as
``MemoryError``. In the parent, the worker's resident memory is read several times a second and
the worker is killed past the same limit, which also holds where the kernel limit does not.
The worker may not write files (``RLIMIT_FSIZE`` 0) nor dump core. Windows would need a job
object for a kernel memory limit; that is not done here, and this module, like the model host,
passes descriptors to its child in a way Windows does not support.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Mapping

import psutil

from r1desk.engine.docs.extract import Extracted, Limits, Parser, Problem, extract_file
from r1desk.engine.errors import Cancelled, R1deskError
from r1desk.engine.events import CancelToken
from r1desk.engine.processes import Handover, channel, child_command, lifeline

START_SECONDS = 60.0  # a worker that is not ready by then (importing the parsers) is given up on
POLL_SECONDS = 0.05
MEMORY_CHECK_SECONDS = 0.2
RECYCLE_AFTER = 1000  # files one worker serves before a fresh one takes over (fragmented memory)


class _Worker:
    """One worker process and this side's ends of its socket and lifeline."""

    def __init__(self, limits: Limits, parsers: Mapping[str, str], kernel_limit: bool):
        parent, child = channel()
        life_read, self._life_write = lifeline()
        given = Handover()
        try:
            self.popen = subprocess.Popen(
                child_command("r1desk.engine.docs.worker", given.connection(child), given.fd(life_read)),
                stdin=subprocess.DEVNULL, **given.popen_kwargs(),
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
            os.close(life_read)
        self.conn = parent
        self.pid = self.popen.pid
        self.served = 0
        try:
            self.process: psutil.Process | None = psutil.Process(self.pid)
        except psutil.Error:
            self.process = None
        self.conn.send(("config", asdict(limits), dict(parsers), kernel_limit))

    def wait_ready(self, token: CancelToken | None = None) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if token is not None and token.cancelled:
                self.kill()
                raise Cancelled("cancelled")
            if self.conn.poll(POLL_SECONDS):
                try:
                    msg = self.conn.recv()
                except (EOFError, OSError):
                    break
                if msg[0] == "ready":
                    return
                raise R1deskError(f"the document reader could not start: {msg[1]}")
            if self.popen.poll() is not None:
                break
        self.kill()
        raise R1deskError(f"the document reader could not start ({self._ended()})")

    def rss(self) -> int:
        try:
            return self.process.memory_info().rss if self.process else 0
        except psutil.Error:
            return 0

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _ended(self) -> str:
        code = self.popen.poll()
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"ended by {signal.Signals(-code).name}"
            except ValueError:
                return f"ended by signal {-code}"
        return f"exited with code {code}"

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.release()

    def close(self) -> None:
        """Ask the worker to leave; kill it if it has not within a second."""
        try:
            self.conn.send(("quit",))
        except OSError:
            pass
        self.release()
        try:
            self.popen.wait(1)
        except subprocess.TimeoutExpired:
            self.kill()

    def release(self) -> None:
        self.conn.close()
        if self._life_write is not None:
            os.close(self._life_write)
            self._life_write = None


class Extractor:
    """Extracts files one at a time in a worker process that a bad file cannot take the caller down with.

    ``extract(path)`` returns ``Extracted`` or a ``Problem``, never raises for a bad file (it raises
    ``Cancelled`` if ``token`` is cancelled while a file is read). ``parsers`` maps a suffix to a
    parser the worker imports as "module:function" (a format of one's own, or a stand-in in tests).
    ``kernel_limit=False`` leaves out ``RLIMIT_AS``, leaving memory to the parent's watch alone
    (as on a system without it). Thread-safe; use as a context manager, or call ``close()``.
    """

    def __init__(self, limits: Limits | None = None, *, parsers: Mapping[str, str] | None = None,
                 recycle_after: int = RECYCLE_AFTER, kernel_limit: bool = True):
        self.limits = limits or Limits()
        self.parsers = dict(parsers or {})
        self.recycle_after = recycle_after
        self.kernel_limit = kernel_limit
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        self.started = 0  # workers started so far; more than one means some were replaced
        self.peak_rss = 0  # the largest resident memory a worker was seen using, in bytes
        self._finalizer = weakref.finalize(self, Extractor._drop, [None])

    @staticmethod
    def _drop(holder: list) -> None:
        if holder[0] is not None:
            holder[0].kill()

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def worker_pid(self) -> int | None:
        """The worker's process id, or None when none is running."""
        worker = self._worker
        return worker.pid if worker is not None and worker.alive() else None

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None
            self._finalizer.detach()

    def _ensure(self, token: CancelToken | None = None) -> _Worker:
        worker = self._worker
        if worker is not None and (not worker.alive() or worker.served >= self.recycle_after):
            worker.close()
            worker = self._worker = None
        if worker is None:
            worker = _Worker(self.limits, self.parsers, self.kernel_limit)
            self.started += 1
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, Extractor._drop, [worker])
            try:
                worker.wait_ready(token)
            except BaseException:
                self._worker = None
                raise
            self._worker = worker
        return worker

    def _lose(self, worker: _Worker) -> None:
        worker.kill()
        if self._worker is worker:
            self._worker = None

    def extract(self, path: str | os.PathLike, *, token: CancelToken | None = None) -> Extracted | Problem:
        name = str(path)
        with self._lock:
            if token is not None and token.cancelled:
                raise Cancelled("cancelled")
            worker = self._ensure(token)
            try:
                worker.conn.send(("extract", os.fspath(path)))
            except OSError:
                self._lose(worker)
                return Problem(name, "crashed", "the document reader stopped before reading it")
            started = time.monotonic()
            next_check = started
            limits = self.limits
            while True:
                try:
                    ready = worker.conn.poll(POLL_SECONDS)
                except OSError:
                    ready = False
                if ready:
                    try:
                        msg = worker.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is not None:
                        worker.served += 1
                        self.peak_rss = max(self.peak_rss, msg[-1])
                        if msg[0] == "ok":
                            return msg[1]
                        if msg[1] == "too-much-memory":  # its memory may be in pieces: a fresh worker next
                            self._lose(worker)
                        return Problem(name, msg[1], msg[2])
                if (ready and msg is None) or not worker.alive():
                    try:
                        worker.popen.wait(2)  # its socket closed: it is on its way out
                    except subprocess.TimeoutExpired:
                        pass
                    ended = worker._ended()
                    self._lose(worker)
                    return Problem(name, "crashed", f"the document reader died while reading it ({ended})")
                now = time.monotonic()
                if token is not None and token.cancelled:
                    self._lose(worker)
                    raise Cancelled("cancelled")
                if now - started > limits.seconds:
                    self._lose(worker)
                    return Problem(name, "timeout", f"reading it took longer than {limits.seconds:g} seconds")
                if now >= next_check:
                    next_check = now + MEMORY_CHECK_SECONDS
                    rss = worker.rss()
                    self.peak_rss = max(self.peak_rss, rss)
                    if rss > limits.memory_bytes:
                        self._lose(worker)
                        megabytes = limits.memory_bytes / (1 << 20)
                        return Problem(name, "too-much-memory",
                                       f"reading it needed more than {megabytes:.0f} MB of memory")


# --- the worker process -------------------------------------------------------------------

def _limit_self(limits: Limits, kernel_limit: bool) -> None:
    try:
        import resource
    except ImportError:  # Windows
        return
    wanted = [(resource.RLIMIT_FSIZE, 0), (resource.RLIMIT_CORE, 0)]
    if kernel_limit:
        wanted.append((resource.RLIMIT_AS, limits.memory_bytes))
    for which, value in wanted:
        try:
            soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))
        except (ValueError, OSError):
            pass


def _peak_rss() -> int:
    """This process's own peak resident memory, in bytes. On Linux ``ru_maxrss`` carries over
    through exec, so a worker would report the peak of the process that started it; the memory
    map's own high-water mark (VmHWM) starts afresh at exec."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _load_parser(spec: str) -> Parser:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def serve(conn: Connection) -> None:
    """The worker's loop: configuration first, then one file per message until told to quit."""
    msg = conn.recv()
    _, limits_dict, parser_specs, kernel_limit = msg
    limits = Limits(**limits_dict)
    try:
        parsers = {suffix.lower(): _load_parser(spec) for suffix, spec in parser_specs.items()}
        # Import the parsers now, so their start-up is not charged to the first file's time.
        import charset_normalizer  # noqa: F401
        import docx  # noqa: F401
        import markdown_it  # noqa: F401
        import pypdf  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - told to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}", 0))
        return
    _limit_self(limits, kernel_limit)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] != "extract":
            return
        path = msg[1]
        try:
            result = extract_file(path, limits, parsers=parsers)
        except MemoryError:
            result = Problem(path, "too-much-memory", "reading it needed more memory than the limit")
        except Exception as exc:  # noqa: BLE001 - a parser of one's own that raised
            result = Problem(path, "corrupt", f"the file could not be read ({type(exc).__name__}: {exc})")
        try:
            if isinstance(result, Problem):
                conn.send(("problem", result.code, result.reason, _peak_rss()))
            else:
                conn.send(("ok", result, _peak_rss()))
        except MemoryError:
            result = None
            conn.send(("problem", "too-much-memory", "handing its text back needed more memory than the limit",
                       _peak_rss()))
        if isinstance(result, Problem) and result.code == "too-much-memory":
            return


def main(argv: list[str]) -> None:
    """Entry point: ``python -m r1desk.engine.docs.worker CONN LIFELINE``."""
    from r1desk.engine.processes import connection_from_parent, exit_with_parent, fd_from_parent

    exit_with_parent(fd_from_parent(argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    serve(connection_from_parent(argv[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
