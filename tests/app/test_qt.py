"""The Qt binding itself: guards against binding bugs that would crash a long chat."""

from __future__ import annotations

import sys

from r1desk.app.qt import QObject, Signal


class _Emitter(QObject):
    with_value = Signal(object)
    bare = Signal()


def test_emitting_signals_keeps_reference_counts_balanced(qapp):
    # PySide6 6.12.0 drops a reference to True on every emit(): after a few thousand streamed
    # tokens Python frees True and aborts. pyproject.toml excludes that version.
    emitter = _Emitter()
    received = []
    emitter.with_value.connect(received.append)
    emitter.bare.connect(lambda: received.append(None))
    before = (sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None))
    for i in range(200):
        emitter.with_value.emit(i)
        emitter.bare.emit()
    after = (sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None))
    assert len(received) == 400
    assert [a - b for a, b in zip(after, before)] == [0, 0, 200]  # received holds 200 Nones
