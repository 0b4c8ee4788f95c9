"""GUI test set-up: a real main window over the real engine, closed and cleaned after each test."""

from __future__ import annotations

import pytest

from app import workers
from app.qt import QApplication, QEvent


class Windows:
    """Builds main windows (real History, real ChatService and model process) and closes them."""

    def __init__(self, qtbot):
        self.qtbot = qtbot
        self.open: list = []

    def __call__(self, *, start: bool = False, **settings):
        from app.main import application, build_window

        application()
        window = build_window()
        for key, value in settings.items():
            window.settings.set(key, value)
        window.show()
        self.open.append(window)
        if start:
            window.start()
        return window

    def close(self, window) -> None:
        """Close as the user would: the window, its workers, its model process, its database."""
        window.stop()
        window.close()
        assert workers.wait_for_all(15_000), "a worker thread was still running"
        window.chat.close()
        window.chat.history.db.conn.close()
        window.history.db.conn.close()
        self.open.remove(window)
        # Gone for good, so later language or theme changes do not reach it.
        window.deleteLater()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)

    def close_all(self) -> None:
        for window in list(self.open):
            self.close(window)


@pytest.fixture
def make_window(qtbot):
    windows = Windows(qtbot)
    yield windows
    windows.close_all()


def load(qtbot, window, path, timeout=60_000):
    """Load a model through the window and wait until it is ready."""
    with qtbot.waitSignal(window.model_loaded, timeout=timeout) as blocker:
        window.load_model(str(path))
    qtbot.waitUntil(lambda: window.loading is None, timeout=5000)
    return blocker.args[0]
