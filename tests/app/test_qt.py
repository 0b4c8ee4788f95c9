"""The Qt binding itself: guards against binding bugs that would crash a long chat."""

from __future__ import annotations

import gc
import sys
import weakref

import pytest

from r1desk.app.qt import QCoreApplication, QObject, Qt, Signal

EMITS = 20  # enough to see one reference per emit; few enough that a leaking build fails before it crashes


class _Emitter(QObject):
    with_value = Signal(object)
    bare = Signal()


class _Piece:
    """A streamed event: an ordinary object, reference counted on every Python (None and True are not from 3.12)."""


def reference_counted(obj: object) -> bool:
    """Whether sys.getrefcount follows ``obj``: not for objects Python made immortal (None, True... from 3.12)."""
    before = sys.getrefcount(obj)
    held = [obj] * 10
    counted = sys.getrefcount(obj) - before == len(held)
    del held
    return counted


@pytest.mark.parametrize("connection", [Qt.ConnectionType.DirectConnection, Qt.ConnectionType.QueuedConnection])
def test_emit_takes_and_gives_back_the_references_to_what_it_sends(qapp, connection):
    """Every emit hands the slot the object itself and, once delivered, holds no reference to it.

    The worker streams each reply piece to the window as an object through ``Signal(object)``, queued
    across threads. A binding that drops a reference per emit frees a piece the chat still shows
    (a crash later, somewhere else); one that keeps a reference leaks every piece of every reply.
    Either shows as a changed reference count of a fresh object emitted a few times, direct or queued.
    """
    emitter = _Emitter()
    seen: list[int] = []
    emitter.with_value.connect(lambda value: seen.append(id(value)), connection)
    piece = _Piece()
    gone = weakref.ref(piece)
    before = sys.getrefcount(piece)
    for _ in range(EMITS):
        emitter.with_value.emit(piece)
    if connection == Qt.ConnectionType.QueuedConnection:
        assert seen == [], "not queued"
        QCoreApplication.processEvents()
    assert seen == [id(piece)] * EMITS
    assert sys.getrefcount(piece) - before == 0
    del piece
    assert gone() is None, "emit kept a reference to what it sent"


def test_emit_returns_a_reference_of_its_own_to_true(qapp):
    """emit() returns True; PySide6 6.12.0 returns it without taking a reference (pyproject.toml excludes it).

    Each emit then drops one reference to True: after a few thousand streamed tokens Python frees
    True and aborts (Python 3.10 and 3.11, where True is reference counted; this test fails there
    on 6.12.0). From 3.12 True is immortal: a dropped reference cannot free it, and where its count
    does not move at all there is nothing to measure, so the test skips.
    """
    if not reference_counted(True):
        pytest.skip("True is immortal on this Python: a dropped reference cannot free it")
    emitter = _Emitter()
    emitter.with_value.connect(lambda value: None)
    emitter.bare.connect(lambda: None)
    gc.collect()
    gc.disable()  # a collection mid-count could free objects that held True
    try:
        before = sys.getrefcount(True)
        for i in range(EMITS):
            emitter.with_value.emit(i)
            emitter.bare.emit()
        after = sys.getrefcount(True)
    finally:
        gc.enable()
    assert after - before == 0, f"{2 * EMITS} emits changed True's reference count by {after - before}"
