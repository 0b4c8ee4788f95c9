"""GUI test set-up: a real main window over the real engine, closed and cleaned after each test."""

from __future__ import annotations

import pytest

from app import workers


@pytest.fixture
def make_window(qtbot):
    """Build the main window (real History, real ChatService with its model process)."""
    from app.main import application, build_window

    made = []

    def make(**settings):
        application()
        window = build_window()
        for key, value in settings.items():
            window.settings.set(key, value)
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:
        window.stop()
        window.close()
        assert workers.wait_for_all(15_000), "a worker thread was still running"
        window.chat.close()
        window.history.db.conn.close()


def load(qtbot, window, path, timeout=60_000):
    """Load a model through the window and wait until it is ready."""
    with qtbot.waitSignal(window.model_loaded, timeout=timeout) as blocker:
        window.load_model(str(path))
    qtbot.waitUntil(lambda: window.loading is None, timeout=5000)
    return blocker.args[0]
