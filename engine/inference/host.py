"""The model host: one llama.cpp model in a child process, shared by every caller.

As Ollama's runner and Jan's llama-server do, the model lives in its own process: an abort,
a segfault or an out-of-memory kill in llama.cpp ends that process, the caller gets a clear
error, and the next request reloads the model (saying so, with the reason). Loading another
model replaces the process, so memory is freed completely.

Many callers share one host (the GUI, the CLI, the API server's threads). Each request is a
``Generation`` with its own cancel; requests are served one at a time, first come first served,
by the host's own thread, which alone talks to the model process. A caller only ever waits on
its own event queue, so no lock is held while it reads, and a caller that closes, drops or
stops reading its stream frees the model for the next within ``CANCEL_GRACE_SECONDS``.

The model process lives as long as its ``ModelHost``, whichever thread started it, and ends
with the app process however that ends (see ``engine.processes``).
"""

from __future__ import annotations

import mmap
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil

from r1desk.engine.errors import (
    AdapterError,
    Cancelled,
    ContextOverflow,
    HostCrashed,
    ModelLoadFailed,
    NotEnoughMemory,
    R1deskError,
    TemplateError,
)
from r1desk.engine.events import CancelToken
from r1desk.engine.gguf.header import GGUFInfo, check_model
from r1desk.engine.inference.snapshots import DEFAULT_RAM_BUDGET, SnapshotStore
from r1desk.engine.processes import Handover, channel, child_command, lifeline

CANCEL_GRACE_SECONDS = 2.0  # a host that has not stopped by then is killed and restarted
RENDER_TIMEOUT_SECONDS = 15.0  # a chat template that renders longer than this is hostile
DEFAULT_MAX_CONTEXT = 8192
EMBED_GROUP = 64  # texts per embedding request to the model process


@dataclass
class LoadOptions:
    """How to load a model; ``None`` means "pick from the model's metadata and this machine"."""

    n_ctx: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int | str = "auto"
    flash_attn: bool = False
    kv_type: str = "f16"
    use_mmap: bool = True
    n_batch: int | None = None  # None: llama.cpp's default for where the weights sit (512 CPU, 2048 GPU)
    embedding: bool = False  # for embeddings (documents), not chat
    rpc_servers: list[str] = field(default_factory=list)  # host:port of llama.cpp RPC workers to split the model over


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
    internal_name: str = ""  # general.name inside the file; ``name`` is what the user sees
    snapshot_ram_budget: int = 0  # RAM the model process may keep recent conversations' state in
    is_embedding: bool = False  # loaded for embeddings, not chat
    embedding_length: int = 0  # the width of the model's vectors
    tool_style: str | None = None  # how its chat template lets it call tools; None: it cannot
    tool_args_as_objects: bool = False  # its template wants a call's arguments as an object, not text
    remote_devices: list[dict[str, Any]] = field(default_factory=list)  # RPC devices the model is split over

    @property
    def is_r1(self) -> bool:
        """A DeepSeek-R1 distill: R1's recommended sampling and prompting apply."""
        text = f"{self.internal_name or self.name} {Path(self.path).name}".lower()
        return "deepseek-r1" in text.replace(" ", "-") or ("r1" in text and self.is_reasoning)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"is_r1": self.is_r1}


_ERRORS: dict[str, type[R1deskError]] = {
    cls.__name__: cls for cls in (AdapterError, ContextOverflow, ModelLoadFailed, NotEnoughMemory, TemplateError)
}


def _remote_error(msg: tuple, default: type[R1deskError] = R1deskError) -> R1deskError:
    """The error the model process reported as ("error", kind, message[, facts])."""
    facts = msg[3] if len(msg) > 3 else None
    return _ERRORS.get(msg[1], default)(msg[2], facts=facts)


def oom_kills(vmstat: str = "/proc/vmstat") -> int | None:
    """How many processes the kernel's out-of-memory killer has ended since boot (Linux), or None."""
    try:
        with open(vmstat, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


# Exit codes of a Windows process ended by an exception (NTSTATUS), as causes and names.
_WINDOWS_STATUS = {
    0xC0000005: ("crash", "STATUS_ACCESS_VIOLATION"),
    0xC000001D: ("crash", "STATUS_ILLEGAL_INSTRUCTION"),
    0xC00000FD: ("crash", "STATUS_STACK_OVERFLOW"),
    0xC0000409: ("abort", "STATUS_STACK_BUFFER_OVERRUN"),  # abort() and fail-fast
    0xC0000017: ("out-of-memory", "STATUS_NO_MEMORY"),
}


def death_facts(code: int | None, *, oom_before: int | None = None, oom_after: int | None = None,
                available: float | None = None) -> dict[str, Any]:
    """How the model process ended, as facts: ``cause`` (out-of-memory, killed, abort, crash,
    signal, exit, hung), ``signal`` and ``code``. "Out of memory" only on evidence: the kernel's
    OOM-kill counter went up while the process ran, or (without that counter) less than 5% of
    RAM was available when it was found dead.
    """
    if code is None:
        return {"cause": "hung"}
    if code in _WINDOWS_STATUS:  # a process that crashed on Windows exits with the exception's status
        cause, name = _WINDOWS_STATUS[code]
        return {"cause": cause, "signal": name, "code": code}
    if code >= 0:
        return {"cause": "exit", "code": code}
    sig = -code
    name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
    if sig == signal.SIGKILL:
        if oom_before is not None and oom_after is not None:
            oom = oom_after > oom_before
        else:
            oom = available is not None and available < 0.05
        return {"cause": "out-of-memory" if oom else "killed", "signal": name}
    cause = {signal.SIGABRT: "abort", signal.SIGSEGV: "crash", signal.SIGBUS: "crash"}.get(sig, "signal")
    return {"cause": cause, "signal": name}


def death_reason(code: int | None, **evidence: Any) -> str:
    """``death_facts`` in English words."""
    facts = death_facts(code, **evidence)
    cause, name = facts["cause"], facts.get("signal")
    return {
        "hung": "stopped answering",
        "exit": f"exited with code {facts.get('code')}",
        "out-of-memory": f"was killed by the system because memory ran out ({name})",
        "killed": f"was killed ({name}) by another program or the user",
        "abort": f"aborted inside llama.cpp ({name})",
        "crash": f"crashed inside llama.cpp ({name})",
    }.get(cause, f"ended by signal {name}")


def default_threads() -> int:
    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


def resolve_options(info: GGUFInfo, options: LoadOptions) -> dict[str, Any]:
    """Concrete load settings: the user's where given, else from the model and the machine."""
    trained = info.context_length or 4096
    n_ctx = options.n_ctx or min(trained, DEFAULT_MAX_CONTEXT if not options.embedding else 2048)
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
        "n_batch": int(options.n_batch) if options.n_batch else None,
        "embedding": bool(options.embedding),
        "rpc_servers": list(options.rpc_servers),
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
    """The model process: ``python -m r1desk.engine.inference.runner`` (no fork, no main re-import)."""

    def __init__(self, cancel: CancelFlag):
        parent, child = channel()
        life_read, self._life_write = lifeline()
        given = Handover()
        try:
            self.popen = subprocess.Popen(
                child_command("r1desk.engine.inference.runner", given.connection(child), given.fd(cancel.fd),
                              given.fd(life_read)),
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
        self.oom_kills_at_start = oom_kills()

    def death(self) -> tuple[str, dict[str, Any]]:
        """(English reason, facts) of how this process ended."""
        vm = psutil.virtual_memory()
        evidence = dict(oom_before=self.oom_kills_at_start, oom_after=oom_kills(), available=vm.available / vm.total)
        return death_reason(self.exitcode, **evidence), death_facts(self.exitcode, **evidence)

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

    def release(self) -> None:
        """Close this side's ends; the child sees its lifeline close and exits if it has not."""
        self.conn.close()
        if self._life_write is not None:
            os.close(self._life_write)
            self._life_write = None

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()


def _cancelled_stats(notes: list[str] | None = None) -> dict[str, Any]:
    return {"finish_reason": "cancelled", "notes": list(notes or [])}


class _Job:
    """A request as the host's thread sees it: its events go out through ``events``."""

    def __init__(self, token: CancelToken | None = None):
        self.token = token if token is not None else CancelToken()
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.position: int | None = None
        self.consumer = threading.current_thread()
        self.last_read = time.monotonic()
        self.abandoned = False

    def put(self, item: Any) -> None:
        self.events.put(item)

    def forgotten(self, now: float) -> bool:
        """Its reader is gone: the stream was dropped or closed, or its thread ended without it."""
        if self.abandoned:
            return True
        return not self.consumer.is_alive() and now - self.last_read > CANCEL_GRACE_SECONDS


class _Chat(_Job):
    def __init__(self, messages: list[dict[str, Any]], params: dict[str, Any],
                 template_vars: dict[str, Any], token: CancelToken | None, session: str | None = None,
                 adapters: list | None = None, prompt: str | None = None):
        super().__init__(token)
        self.messages, self.params, self.template_vars = messages, params, template_vars
        self.session = session
        self.adapters = [list(a) for a in adapters or []]
        self.prompt = prompt  # a plain completion of this text: no template, no conversation

    def run(self, core: "_Core") -> None:
        if self.token.cancelled:
            self.put(("done", _cancelled_stats()))
            return
        try:
            core.ensure_loaded(self)
        except R1deskError as exc:
            self.put(exc)
            return
        core.cancel.clear()
        unhook = self.token.on_cancel(core.cancel.set)
        try:
            core.stream(self)
        except R1deskError as exc:
            self.put(exc)
        finally:
            unhook()


class _Call(_Job):
    """A synchronous request (load, count, unload): its caller waits for ``result``."""

    def __init__(self, fn: Callable[["_Core"], Any]):
        super().__init__()
        self.fn = fn

    def run(self, core: "_Core") -> None:
        try:
            self.put(("result", self.fn(core)))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            self.put(exc)


class Generation:
    """One caller's chat request: an iterator of raw events with its own ``cancel()``.

    Events: ("queued", position) while waiting its turn, ("loading", reason, detail) when the
    model must be reloaded first, ("rendered", n, dropped, cached, reused_from), ("prompt",
    done, total) while a long prompt is read, ("r", text), ("c", text), then ("done", stats). Errors are raised as R1deskError. Any thread may read it (one at a
    time) and any thread may cancel or close it; dropping it unread cancels it too.
    """

    def __init__(self, core: "_Core", job: _Chat):
        self._core = core
        self._job = job
        self._finished = False

    @property
    def token(self) -> CancelToken:
        return self._job.token

    @property
    def position(self) -> int | None:
        """How many requests are ahead of this one (``None`` once it runs)."""
        return self._job.position

    def __iter__(self) -> "Generation":
        return self

    def __next__(self) -> tuple:
        if self._finished:
            raise StopIteration
        job = self._job
        job.consumer = threading.current_thread()
        job.last_read = time.monotonic()
        while True:
            try:
                item = job.events.get(timeout=0.5)
            except queue.Empty:
                if not self._core.serving():
                    self._finished = True
                    raise HostCrashed("the model host stopped") from None
                continue
            job.last_read = time.monotonic()
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            if item[0] == "done":
                self._finished = True
            return item

    def cancel(self) -> None:
        """Stop this request only; the stream still ends with its ("done", stats)."""
        self._job.token.cancel()

    def close(self) -> None:
        """Stop reading: the request is cancelled and the model freed for the next caller."""
        if not self._finished:
            self._finished = True
            self._job.abandoned = True
            self._job.token.cancel()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class _Core:
    """The host's state; only its own thread touches the model process."""

    def __init__(self) -> None:
        self.proc: _Process | None = None
        self.cancel = CancelFlag()
        self.info: ModelInfo | None = None
        self.load_args: tuple[str, LoadOptions] | None = None
        self.reload_reason: tuple[str, str] | None = None  # why the next request must reload first
        self.jobs: deque[_Job] = deque()
        self.current: _Job | None = None
        self.cv = threading.Condition()
        self.closed = False
        self.thread: threading.Thread | None = None
        self.snapshots: SnapshotStore | None = None
        self.snapshot_ram_budget = DEFAULT_RAM_BUDGET

    # The queue ----------------------------------------------------------------------------
    def submit(self, job: _Job) -> None:
        with self.cv:
            if self.closed:
                raise ModelLoadFailed("the model host is closed")
            self.jobs.append(job)
            self._positions()
            if self.thread is None:
                self.thread = threading.Thread(target=self._serve, name="r1desk-model-host", daemon=True)
                self.thread.start()
            self.cv.notify()
        if isinstance(job, _Chat):
            job.token.on_cancel(lambda: self._withdraw(job))

    def _withdraw(self, job: _Job) -> None:
        """A cancelled request that is still waiting leaves the queue at once."""
        with self.cv:
            if job in self.jobs:
                self.jobs.remove(job)
                job.position = None
                job.put(("done", _cancelled_stats()))
                self._positions()

    def _positions(self) -> None:
        ahead = 1 if self.current is not None else 0
        for i, job in enumerate(self.jobs):
            if job.position != ahead + i:
                job.position = ahead + i
                if isinstance(job, _Chat) and job.position > 0:
                    job.put(("queued", job.position))

    def serving(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _serve(self) -> None:
        while True:
            with self.cv:
                while not self.jobs and not self.closed:
                    self.cv.wait()
                if not self.jobs:
                    break
                job = self.current = self.jobs.popleft()
                job.position = None
                self._positions()
            try:
                job.run(self)
            except BaseException as exc:  # noqa: BLE001 - a bug here must not hang the caller
                job.put(exc)
            finally:
                with self.cv:
                    self.current = None
                    self._positions()
        self.stop()

    def close(self, wait: float = 10.0) -> None:
        with self.cv:
            if self.closed:
                return
            self.closed = True
            waiting = list(self.jobs)
            self.jobs.clear()
            running = self.current
            self.cv.notify_all()
            thread = self.thread
        for job in waiting:
            job.put(ModelLoadFailed("the model host was closed"))
        if running is not None:
            running.token.cancel()
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)
        if thread is None or not thread.is_alive():
            self.stop()
        elif self.proc is not None:  # the host's thread is stuck: end the process regardless
            self.proc.kill()

    # The process (host thread only) -------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def spawn(self) -> None:
        self.cancel.clear()
        self.proc = _Process(self.cancel)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.join(5)
            proc.release()

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.is_alive():
            try:
                proc.conn.send({"op": "shutdown"})
                proc.join(3)
            except OSError:
                pass
        self.kill()

    def recv(self, timeout: float | None = None):
        """The next message from the model process; HostCrashed if it died."""
        proc = self.proc
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            try:
                if proc.conn.poll(wait):
                    return proc.conn.recv()
            except (EOFError, OSError):
                pass
            if not proc.is_alive():
                proc.join(1)
                reason, facts = proc.death()
                self.kill()
                self.reload_reason = ("crashed", reason)
                crash = HostCrashed(f"the model process {reason}; it will be restarted on the next message",
                                    facts=facts)
                crash.reason = reason
                raise crash
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def load(self, path: str, options: LoadOptions, resolved: dict[str, Any]) -> ModelInfo:
        self.stop()  # a fresh process per model: memory is returned in full
        self.spawn()
        store = self.snapshots
        snaps = {"ram_budget": self.snapshot_ram_budget,
                 "dir": str(store.folder) if store is not None else None,
                 "disk_budget": store.budget if store is not None else 0}
        self.proc.conn.send({"op": "load", "path": path, "options": dict(resolved, snapshots=snaps)})
        try:
            reply = self.recv()
        except HostCrashed as exc:
            self.reload_reason = None
            raise ModelLoadFailed(f"{path}: the model process {exc.reason} while loading") from None
        if reply[0] == "error":
            self.kill()
            raise _remote_error(reply, ModelLoadFailed)
        data = reply[1]
        self.info = ModelInfo(
            path=data["path"], name=data["name"], architecture=data["architecture"], n_ctx=data["n_ctx"],
            n_ctx_train=data["n_ctx_train"], n_vocab=data["n_vocab"], is_reasoning=data["is_reasoning"],
            chat_template_sha256=data["chat_template_sha256"], n_gpu_layers=data["n_gpu_layers"],
            load_seconds=data["load_seconds"], sampling=data["sampling"], warnings=data["warnings"],
            options=resolved, file_size=Path(path).stat().st_size, internal_name=data["name"],
            snapshot_ram_budget=data.get("snapshot_ram_budget", 0),
            is_embedding=bool(data.get("is_embedding")), embedding_length=int(data.get("embedding_length") or 0),
            tool_style=data.get("tool_style"), tool_args_as_objects=bool(data.get("tool_args_as_objects")),
            remote_devices=list(data.get("remote_devices") or []),
        )
        self.load_args = (path, options)
        self.reload_reason = None
        return self.info

    def unload(self) -> None:
        self.stop()
        self.info = None
        self.load_args = None
        self.reload_reason = None

    def ensure_loaded(self, job: _Job | None = None) -> None:
        if self.info is None or self.load_args is None:
            raise ModelLoadFailed("no model is loaded")
        if self.reload_reason is None and self.alive:
            return
        if self.reload_reason is not None:
            reason, detail = self.reload_reason
        else:  # ended while idle (killed from outside, say)
            reason, detail = "crashed", (self.proc.death()[0] if self.proc else "stopped answering")
        if job is not None:
            job.put(("loading", reason, detail))
        path, options = self.load_args
        self.load(path, options, resolve_options(check_model(path), options))

    def forget(self, session: str) -> None:
        self.send_quietly({"op": "forget", "session": session})

    def send_quietly(self, request: dict[str, Any]) -> None:
        """A request the model process answers with nothing (host thread only)."""
        if self.alive:
            try:
                self.proc.conn.send(request)
            except OSError:
                pass

    def count(self, messages: list[dict[str, Any]]) -> int:
        return self.ask({"op": "count", "messages": messages})

    def ask(self, request: dict[str, Any]) -> Any:
        """One request the model process answers with one message (host thread only)."""
        self.ensure_loaded()
        self.proc.conn.send(request)
        reply = self.recv()
        if reply[0] == "error":
            raise _remote_error(reply)
        return reply[1]

    def stream(self, job: _Chat) -> None:
        """Send one chat request to the model process and pass its events to the job."""
        self.proc.conn.send({"op": "chat", "messages": job.messages, "params": job.params,
                             "template_vars": job.template_vars, "session": job.session,
                             "adapters": job.adapters, "prompt": job.prompt})
        rendered = False
        started = time.monotonic()
        token = job.token
        while True:
            msg = self.recv(timeout=0.1)
            # Checked at every step, not only when the process is quiet: a model streaming fast
            # never leaves the pipe idle, and a forgotten reader must still free it.
            now = time.monotonic()
            if not token.cancelled and job.forgotten(now):
                token.cancel()
            if token.cancelled and now - max(token.cancelled_at or now, started) > CANCEL_GRACE_SECONDS:
                self.kill()
                self.reload_reason = ("unresponsive", "")
                job.put(("done", _cancelled_stats(["the model did not stop in time and was restarted"])))
                return
            if msg is None:
                if not rendered and now - started > RENDER_TIMEOUT_SECONDS:
                    self.kill()
                    self.reload_reason = ("template-timeout", "")
                    raise TemplateError("the model's chat template took too long to render and was stopped",
                                        facts={"code": "template-too-slow", "seconds": RENDER_TIMEOUT_SECONDS})
                continue
            kind = msg[0]
            if kind == "rendered":
                rendered = True
            elif kind == "error":
                raise _remote_error(msg)
            job.put(msg)
            if kind == "done":
                return


class ModelHost:
    """Owns the model process. Thread-safe: requests run one at a time, in the order they came."""

    def __init__(self, snapshots: SnapshotStore | None = None, snapshot_ram_budget: int = DEFAULT_RAM_BUDGET) -> None:
        """``snapshots``: where conversations' KV state is saved across restarts (None: not saved);
        ``snapshot_ram_budget``: the most RAM recent conversations' state may take (also bounded
        by what the model's memory plan leaves free). Both apply from the next load."""
        self._core = _Core()
        self._core.snapshots = snapshots
        self._core.snapshot_ram_budget = int(snapshot_ram_budget)
        # The process ends with this object, even if nobody calls close().
        self._finalizer = weakref.finalize(self, self._core.close, 2.0)

    @property
    def snapshots(self) -> SnapshotStore | None:
        return self._core.snapshots

    def set_snapshots(self, store: SnapshotStore | None, ram_budget: int | None = None) -> None:
        """Change how much state is saved on disk (at once) and where and how much RAM (from the next load)."""
        self._core.snapshots = store
        if ram_budget is not None:
            self._core.snapshot_ram_budget = int(ram_budget)
        budget = store.budget if store is not None else 0
        try:
            self._core.submit(_Call(lambda core: core.send_quietly({"op": "snapshots", "disk_budget": budget})))
        except ModelLoadFailed:
            pass

    # Process ------------------------------------------------------------------------------
    @property
    def info(self) -> ModelInfo | None:
        return self._core.info

    @property
    def pid(self) -> int | None:
        proc = self._core.proc
        return proc.pid if proc is not None and proc.is_alive() else None

    @property
    def alive(self) -> bool:
        return self._core.alive

    @property
    def busy(self) -> int:
        """Requests running or waiting."""
        core = self._core
        with core.cv:
            return len(core.jobs) + (core.current is not None)

    def _call(self, fn: Callable[[_Core], Any]) -> Any:
        job = _Call(fn)
        self._core.submit(job)
        while True:
            try:
                item = job.events.get(timeout=0.5)
            except queue.Empty:
                if not self._core.serving():
                    raise HostCrashed("the model host stopped") from None
                continue
            if isinstance(item, BaseException):
                raise item
            return item[1]

    # Loading ------------------------------------------------------------------------------
    def load(self, path: str | os.PathLike, options: LoadOptions | None = None) -> ModelInfo:
        options = options or LoadOptions()
        # Not resolve(): split GGUFs in the HF cache are links whose names llama.cpp needs.
        path = os.path.abspath(Path(path).expanduser())
        resolved = resolve_options(check_model(path), options)
        return self._call(lambda core: core.load(path, options, resolved))

    def unload(self) -> None:
        self._call(lambda core: core.unload())

    def forget(self, session: str) -> None:
        """Drop a conversation's saved state, in the model process and on disk (after any reply
        in flight); returns at once."""
        if self._core.snapshots is not None:
            self._core.snapshots.forget(session)
        try:
            self._core.submit(_Call(lambda core: core.forget(session)))
        except ModelLoadFailed:  # closed: nothing in memory to drop
            pass

    def close(self) -> None:
        """Stop the model process; waiting requests fail, the running one is cancelled."""
        self._finalizer()

    # Requests -----------------------------------------------------------------------------
    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        return self._call(lambda core: core.count(messages))

    def embed(self, texts: list[str], token: CancelToken | None = None):
        """Vectors for ``texts`` from the loaded embedding model: a float32 array (len(texts), width),
        each row L2-normalised; a text longer than the model takes is cut to fit.

        The texts go to the model process in groups, so a cancel on ``token`` stops between groups
        (raising Cancelled) and other requests queue between them.
        """
        import numpy as np

        info = self.info
        if info is not None and not info.is_embedding:
            raise ModelLoadFailed(f"{info.name}: loaded for chat, not for embeddings",
                                  facts={"code": "not-embedding-model", "model": info.name})
        parts = []
        for start in range(0, len(texts), EMBED_GROUP):
            if token is not None and token.cancelled:
                raise Cancelled("cancelled")
            group = list(texts[start:start + EMBED_GROUP])
            parts.append(self._call(lambda core, group=group: core.ask({"op": "embed", "texts": group})))
        width = info.embedding_length if info is not None else 0
        return np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.float32)

    def count_tokens_of(self, texts: list[str]) -> list[int]:
        """How many tokens each text is for the loaded model (its special tokens included)."""
        return self._call(lambda core: core.ask({"op": "token_counts", "texts": list(texts)}))

    def chat(self, messages: list[dict[str, Any]], params: dict[str, Any],
             template_vars: dict[str, Any] | None = None, *, cancel: CancelToken | None = None,
             session: str | None = None, adapters: list | None = None) -> Generation:
        """Queue a chat request and return its stream at once (see ``Generation``).

        ``cancel`` is the caller's token, if it made one before this call: a cancel made on it
        earlier still stops this request. ``session`` names the conversation (see
        ``snapshots.session_key``): its KV state is kept and restored when the conversation comes back.
        ``adapters``: LoRA adapters to apply, ``[(path, scale, sha256[, name]), ...]`` (checked
        against the model by the caller); none for the base model alone.
        """
        job = _Chat(messages, params, template_vars or {}, cancel, session, adapters)
        self._core.submit(job)
        return Generation(self._core, job)

    def complete(self, prompt: str, params: dict[str, Any], *, cancel: CancelToken | None = None) -> Generation:
        """Queue a plain completion: the model continues ``prompt`` as written (no chat template,
        no conversation kept); the same stream as ``chat``."""
        job = _Chat([], params, {}, cancel, None, None, prompt=prompt)
        self._core.submit(job)
        return Generation(self._core, job)
