"""The model host: one llama.cpp model in a child process, shared by every caller.

As Ollama's runner and Jan's llama-server do, the model lives in its own process: an abort,
a segfault or an out-of-memory kill in llama.cpp ends that process, the caller gets a clear
error, and the next request starts a fresh one. Loading another model replaces the process,
so memory is freed completely. Callers (GUI, CLI, API server) are served one at a time.
"""

from __future__ import annotations

import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import psutil

from multiprocessing.connection import Connection

from .errors import (
    ContextOverflow, HostCrashed, ModelLoadFailed, NotEnoughMemory, R1deskError, TemplateError,
)
from .modelfile import GGUFInfo, check_model

CANCEL_GRACE_SECONDS = 2.0  # a host that has not stopped by then is killed and restarted
RENDER_TIMEOUT_SECONDS = 15.0  # a chat template that renders longer than this is hostile
DEFAULT_MAX_CONTEXT = 8192


@dataclass
class LoadOptions:
    """How to load a model; ``None`` means "pick from the model's metadata and this machine"."""

    n_ctx: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int | str = "auto"
    flash_attn: bool = False
    kv_type: str = "f16"
    use_mmap: bool = True
    n_batch: int = 512


@dataclass
class ModelInfo:
    path: str
    name: str
    architecture: str
    n_ctx: int
    n_ctx_train: int
    n_vocab: int
    is_reasoning: bool
    chat_template_sha256: str
    n_gpu_layers: int = 0
    load_seconds: float = 0.0
    sampling: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    file_size: int = 0

    @property
    def is_r1(self) -> bool:
        """A DeepSeek-R1 distill: R1's recommended sampling and prompting apply."""
        text = f"{self.name} {Path(self.path).name}".lower()
        return "deepseek-r1" in text.replace(" ", "-") or ("r1" in text and self.is_reasoning)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"is_r1": self.is_r1}


_ERRORS: dict[str, type[R1deskError]] = {
    cls.__name__: cls for cls in (ContextOverflow, ModelLoadFailed, NotEnoughMemory, TemplateError)
}


def _death_reason(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGKILL:
            return f"was killed ({name}; the system may have run out of memory)"
        if sig == signal.SIGABRT:
            return f"aborted inside llama.cpp ({name})"
        if sig == signal.SIGSEGV:
            return f"crashed inside llama.cpp ({name})"
        return f"ended by signal {name}"
    return f"exited with code {code}"


def default_threads() -> int:
    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


def resolve_options(info: GGUFInfo, options: LoadOptions) -> dict[str, Any]:
    """Concrete load settings: the user's where given, else from the model and the machine."""
    trained = info.context_length or 4096
    n_ctx = options.n_ctx or min(trained, DEFAULT_MAX_CONTEXT)
    if n_ctx < 16:
        raise ModelLoadFailed(f"a context of {n_ctx} tokens is too small")
    n_ctx = -(-n_ctx // 256) * 256  # llama.cpp pads the context to a multiple of 256
    return {
        "n_ctx": int(n_ctx),
        "n_ctx_auto": options.n_ctx is None,
        "n_threads": int(options.n_threads or default_threads()),
        "n_gpu_layers": options.n_gpu_layers,
        "flash_attn": bool(options.flash_attn),
        "kv_type": options.kv_type,
        "use_mmap": bool(options.use_mmap),
        "n_batch": int(options.n_batch),
    }


class CancelFlag:
    """One byte of memory shared with the model process: set here, read there per token."""

    def __init__(self, fd: int | None = None):
        if fd is None:
            self._file = tempfile.TemporaryFile()
            self._file.write(b"\0")
            self._file.flush()
            fd = self._file.fileno()
        else:
            self._file = None
        self.fd = fd
        self._map = mmap.mmap(fd, 1)

    def set(self) -> None:
        self._map[0] = 1

    def clear(self) -> None:
        self._map[0] = 0

    def is_set(self) -> bool:
        return self._map[0] != 0


class _Process:
    """The model process, started with ``python -m engine.runner`` (no fork, no main re-import)."""

    def __init__(self, cancel: CancelFlag):
        parent, child = socket.socketpair()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "engine.runner", str(child.fileno()), str(cancel.fd)],
            pass_fds=(child.fileno(), cancel.fd), env=env, stdin=subprocess.DEVNULL,
            start_new_session=False,
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.pid = self.popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.is_alive():
            self.popen.kill()

    def join(self, timeout: float | None = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()


class ModelHost:
    """Owns the model process. Thread-safe: one request at a time, others wait their turn."""

    def __init__(self) -> None:
        self._proc: _Process | None = None
        self._conn: Connection | None = None
        self._cancel = CancelFlag()
        self._lock = threading.RLock()
        self._cancel_at: float | None = None
        self.info: ModelInfo | None = None
        self._load_args: tuple[str, LoadOptions] | None = None
        self._needs_reload = False

    # Process ------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def _spawn(self) -> None:
        self._cancel.clear()
        proc = _Process(self._cancel)
        self._proc, self._conn = proc, proc.conn

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is not None and proc.is_alive():
            proc.kill()
        if proc is not None:
            proc.join(5)
        if conn is not None:
            conn.close()

    def _stop(self) -> None:
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            try:
                self._conn.send({"op": "shutdown"})
                self._proc.join(3)
            except (OSError, BrokenPipeError):
                pass
        self._kill()

    def _recv(self, timeout: float | None = None):
        """The next message from the model process; HostCrashed if it died."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            try:
                if self._conn.poll(wait):
                    return self._conn.recv()
            except (EOFError, OSError):
                pass
            if not self._proc.is_alive() or self._conn is None:
                self._proc.join(1)
                code = self._proc.exitcode
                self._kill()
                self._needs_reload = True
                crash = HostCrashed(f"the model process {_death_reason(code)}; it will be restarted on the next message")
                crash.reason = _death_reason(code)
                raise crash
            if deadline is not None and time.monotonic() >= deadline:
                return None

    # Loading ------------------------------------------------------------------------------
    def load(self, path: str | os.PathLike, options: LoadOptions | None = None) -> ModelInfo:
        options = options or LoadOptions()
        # Not resolve(): split GGUFs in the HF cache are links whose names llama.cpp needs.
        path = os.path.abspath(Path(path).expanduser())
        header = check_model(path)
        resolved = resolve_options(header, options)
        with self._lock:
            self._stop()  # a fresh process per model: memory is returned in full
            self._spawn()
            self._conn.send({"op": "load", "path": path, "options": resolved})
            try:
                reply = self._recv()
            except HostCrashed as exc:
                self._needs_reload = False
                raise ModelLoadFailed(f"{path}: the model process {exc.reason} while loading") from None
            if reply[0] == "error":
                self._kill()
                raise _ERRORS.get(reply[1], ModelLoadFailed)(reply[2])
            data = reply[1]
            self.info = ModelInfo(
                path=data["path"], name=data["name"], architecture=data["architecture"], n_ctx=data["n_ctx"],
                n_ctx_train=data["n_ctx_train"], n_vocab=data["n_vocab"], is_reasoning=data["is_reasoning"],
                chat_template_sha256=data["chat_template_sha256"], n_gpu_layers=data["n_gpu_layers"],
                load_seconds=data["load_seconds"], sampling=data["sampling"], warnings=data["warnings"],
                options=resolved, file_size=Path(path).stat().st_size,
            )
            self._load_args = (path, options)
            self._needs_reload = False
            return self.info

    def _ensure_loaded(self) -> None:
        if self.info is None or self._load_args is None:
            raise ModelLoadFailed("no model is loaded")
        if self._needs_reload or not self.alive:
            self.load(*self._load_args)

    def unload(self) -> None:
        with self._lock:
            self._stop()
            self.info = None
            self._load_args = None

    def close(self) -> None:
        self.unload()

    # Requests -----------------------------------------------------------------------------
    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        with self._lock:
            self._ensure_loaded()
            self._conn.send({"op": "count", "messages": messages})
            reply = self._recv()
            if reply[0] == "error":
                raise _ERRORS.get(reply[1], R1deskError)(reply[2])
            return reply[1]

    def cancel(self) -> None:
        """Ask the running generation to stop; it ends within a fraction of a second."""
        self._cancel_at = time.monotonic()
        self._cancel.set()

    def chat(self, messages: list[dict[str, Any]], params: dict[str, Any],
             template_vars: dict[str, Any] | None = None, *, requested_at: float | None = None) -> Iterator[tuple]:
        """Stream raw events from the model process: ("rendered", n, dropped, cached), ("r", text),
        ("c", text), then ("done", stats). Errors are raised as R1deskError.

        ``requested_at`` (time.monotonic()) is when the caller began this request: a cancel made
        after it, even before this call got the model, still stops this reply.
        """
        requested_at = time.monotonic() if requested_at is None else requested_at
        with self._lock:
            self._ensure_loaded()
            if self._cancel_at is None or self._cancel_at < requested_at:
                self._cancel.clear()
                self._cancel_at = None
            else:
                self._cancel.set()
            self._conn.send({"op": "chat", "messages": messages, "params": params,
                             "template_vars": template_vars or {}})
            finished = False
            rendered = False
            started = time.monotonic()
            try:
                while True:
                    msg = self._recv(timeout=0.1)
                    if msg is None:
                        now = time.monotonic()
                        if self._cancel_at is not None and now - self._cancel_at > CANCEL_GRACE_SECONDS:
                            self._kill()
                            self._needs_reload = True
                            finished = True
                            yield ("done", {"finish_reason": "cancelled",
                                            "notes": ["the model did not stop in time and was restarted"]})
                            return
                        if not rendered and now - started > RENDER_TIMEOUT_SECONDS:
                            self._kill()
                            self._needs_reload = True
                            finished = True
                            raise TemplateError("the model's chat template took too long to render and was stopped")
                        continue
                    kind = msg[0]
                    if kind == "rendered":
                        rendered = True
                    elif kind == "error":
                        finished = True
                        raise _ERRORS.get(msg[1], R1deskError)(msg[2])
                    if kind == "done":
                        finished = True
                        yield msg
                        return
                    yield msg
            finally:
                if not finished:
                    self._abandon()

    def _abandon(self) -> None:
        """The caller stopped reading mid-reply: stop the model and drain its stream."""
        if not self.alive:
            return
        self._cancel.set()
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS
        try:
            while time.monotonic() < deadline:
                msg = self._recv(timeout=0.1)
                if msg is not None and msg[0] in ("done", "error"):
                    return
        except HostCrashed:
            return
        self._kill()
        self._needs_reload = True
