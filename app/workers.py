"""Runs an engine call or generator off the GUI thread and turns it into Qt signals."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from r1desk.app.qt import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

# Workers are referenced here until their ``finished`` reaches the GUI thread; a worker
# collected earlier would drop its queued signals.
_running: set[GeneratorWorker] = set()
_pool: QThreadPool | None = None


def pool() -> QThreadPool:
    """The GUI's own thread pool: generating, loading, downloading, estimating."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(6)
        _pool.setExpiryTimeout(30_000)
    return _pool


def running() -> list[GeneratorWorker]:
    return list(_running)


def wait_for_all(msecs: int = 5000) -> bool:
    """Wait for every worker thread to end (at exit, and in tests)."""
    return pool().waitForDone(msecs)


class _Runnable(QRunnable):
    def __init__(self, worker: GeneratorWorker):
        super().__init__()
        self.setAutoDelete(True)
        self._worker = worker

    def run(self) -> None:
        self._worker._work()


class GeneratorWorker(QObject):
    """Calls ``func(*args, **kwargs)`` in the pool; a generator's items arrive as ``yielded``.

    Signals, always in this order: ``started``; ``yielded(item)`` per item; then either
    ``returned(value)`` (the function's or generator's return value) or ``errored(exc)`` (any
    exception, bugs included); ``finished`` last, whatever happened.

    ``quit()`` asks it to stop: with a ``cancel`` callable (an engine cancel handle) that is
    called and the generator is read to its end, so its final event (a ``Stats`` with
    ``finish_reason="cancelled"``, say) still arrives; without one the generator is closed at
    its next item.
    """

    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    finished = Signal()

    def __init__(self, func: Callable[..., Any], *args: Any,
                 cancel: Callable[[], Any] | None = None, **kwargs: Any):
        super().__init__()
        self._func = func
        self._args = args
        self._kwargs = kwargs
        self._cancel = cancel
        self._abort = threading.Event()
        self._started = False
        self.done = False
        self.thread_id: int | None = None

    @property
    def cancel_requested(self) -> bool:
        return self._abort.is_set()

    def start(self) -> GeneratorWorker:
        if self._started:
            raise RuntimeError("a worker runs once")
        self._started = True
        _running.add(self)
        self.finished.connect(self._forget)
        pool().start(_Runnable(self))
        return self

    def quit(self) -> None:
        """Ask the job to stop; returns at once and may be called from any thread."""
        if self._abort.is_set():
            return
        self._abort.set()
        if self._cancel is not None:
            try:
                self._cancel()
            except Exception:  # a failing cancel must not take the GUI down
                log.exception("cancel handle failed")

    def _forget(self) -> None:
        self.done = True
        _running.discard(self)

    def _work(self) -> None:
        self.thread_id = threading.get_ident()
        self.started.emit()
        try:
            result = self._func(*self._args, **self._kwargs)
            if inspect.isgenerator(result) or isinstance(result, Iterator):
                result = self._drain(result)
            self.returned.emit(result)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a signal
            if not _is_user_error(exc):
                log.error("worker %s failed", getattr(self._func, "__qualname__", self._func),
                          exc_info=(type(exc), exc, exc.__traceback__))
            self.errored.emit(exc)
        finally:
            self.finished.emit()

    def _drain(self, gen: Iterator[Any]) -> Any:
        try:
            while True:
                if self._abort.is_set() and self._cancel is None:
                    close = getattr(gen, "close", None)
                    if close is not None:
                        close()
                    return None
                item = next(gen)
                self.yielded.emit(item)
        except StopIteration as stop:
            return stop.value


def _is_user_error(exc: BaseException) -> bool:
    from r1desk.engine.errors import R1deskError

    return isinstance(exc, R1deskError)
