"""The one generic worker: engine generators become Qt signals, off the GUI thread."""

from __future__ import annotations

import threading
import time

import pytest

from r1desk.app import workers
from r1desk.app.workers import GeneratorWorker
from r1desk.engine.errors import Offline


def collect(worker: GeneratorWorker) -> dict:
    seen: dict = {"order": [], "items": [], "returned": None, "errored": None}
    worker.started.connect(lambda: seen["order"].append("started"))
    worker.yielded.connect(lambda item: (seen["order"].append("yielded"), seen["items"].append(item)))
    worker.returned.connect(lambda v: (seen["order"].append("returned"), seen.__setitem__("returned", v)))
    worker.errored.connect(lambda e: (seen["order"].append("errored"), seen.__setitem__("errored", e)))
    worker.finished.connect(lambda: seen["order"].append("finished"))
    return seen


def test_generator_items_arrive_in_order_off_the_gui_thread(qtbot):
    def job(n):
        for i in range(n):
            yield i
        return "done"

    worker = GeneratorWorker(job, 5)
    seen = collect(worker)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert seen["items"] == [0, 1, 2, 3, 4]
    assert seen["returned"] == "done"
    assert seen["order"][0] == "started" and seen["order"][-2:] == ["returned", "finished"]
    assert worker.thread_id != threading.get_ident()
    qtbot.waitUntil(lambda: worker.done)
    assert worker not in workers.running()


def test_any_exception_becomes_errored_then_finished(qtbot):
    def job():
        yield 1
        raise ZeroDivisionError("bug")

    worker = GeneratorWorker(job)
    seen = collect(worker)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert isinstance(seen["errored"], ZeroDivisionError)
    assert seen["order"] == ["started", "yielded", "errored", "finished"]


def test_user_errors_arrive_as_themselves(qtbot):
    def job():
        raise Offline("the model hub cannot be reached")

    worker = GeneratorWorker(job)
    seen = collect(worker)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert isinstance(seen["errored"], Offline)


def test_plain_function_result_is_returned(qtbot):
    worker = GeneratorWorker(lambda a, b: a + b, 2, b=3)
    seen = collect(worker)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert seen["returned"] == 5 and seen["items"] == []


def test_quit_with_cancel_handle_reads_the_generator_to_its_end(qtbot):
    cancelled = threading.Event()

    def job():
        for i in range(10_000):
            if cancelled.is_set():
                yield "cancelled"
                return
            yield i
            time.sleep(0.002)

    worker = GeneratorWorker(job, cancel=cancelled.set)
    seen = collect(worker)
    worker.start()
    qtbot.waitUntil(lambda: len(seen["items"]) >= 3, timeout=5000)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.quit()
    assert seen["items"][-1] == "cancelled"
    assert len(seen["items"]) < 10_000


def test_quit_without_cancel_handle_closes_the_generator(qtbot):
    closed = threading.Event()

    def job():
        try:
            while True:
                yield 1
                time.sleep(0.002)
        finally:
            closed.set()

    worker = GeneratorWorker(job)
    seen = collect(worker)
    worker.start()
    qtbot.waitUntil(lambda: len(seen["items"]) >= 2, timeout=5000)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.quit()
    assert closed.is_set()
    assert seen["errored"] is None


def test_a_worker_runs_once(qtbot):
    worker = GeneratorWorker(lambda: None)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    with pytest.raises(RuntimeError):
        worker.start()
    assert workers.wait_for_all(2000)
