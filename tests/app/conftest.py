"""GUI test set-up: a real main window over the real engine, closed and cleaned after each test."""

from __future__ import annotations

import os

import pytest

from r1desk.app import workers
from r1desk.app.qt import QApplication, QEvent, QSettings


class Windows:
    """Builds main windows (real History, real ChatService and model process) and closes them."""

    def __init__(self, qtbot):
        self.qtbot = qtbot
        self.open: list = []

    def __call__(self, *, start: bool = False, **settings):
        from r1desk.app.main import application, build_window

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


@pytest.fixture(autouse=True)
def fresh_gui_state():
    """Qt settings of the test's own; afterwards, pass or fail, no trace of the test is left.

    The language goes back to English and the theme to light (the calls build_window makes, which
    need a QApplication), and the detected hardware and running downloads are forgotten, so a test
    that switched to Chinese or dark, or failed half-way, does not change the next one.
    """
    # Qt works out where QSettings files live once per process, so the test's XDG_CONFIG_HOME
    # (tests/conftest.py) is handed to it for every test.
    for kind in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(kind, QSettings.Scope.UserScope, os.environ["XDG_CONFIG_HOME"])
    try:
        yield
    finally:
        from r1desk.app import hardware, i18n, modelpicker, theme

        hardware._probe = None
        modelpicker._downloads = None
        if QApplication.instance() is not None:
            try:
                i18n.install("en")
            finally:
                theme.apply("light")


CPU_16GB = {"name": "cpu-16", "ram_total": "16 GiB", "ram_available": "14 GiB",
            "cpu": {"name": "Test CPU", "physical_cores": 8, "logical_cores": 16, "flags": ["avx2"]}}


def described_machine(profile: dict = CPU_16GB):
    """Use a described machine instead of this one, so recommendations do not depend on the host."""
    from r1desk.app.hardware import probe
    from r1desk.engine.hardware.probe import Hardware

    hardware = Hardware.from_dict(profile)
    probe().set(hardware)
    return hardware


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


def send(qtbot, window, text):
    """Type a message into the composer and press Enter, as the user does."""
    from r1desk.app.qt import Qt

    window.activateWindow()
    window.composer.edit.setFocus()
    window.composer.set_text(text)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    assert window.reply is not None, window.composer.disabled_reason
    return window.reply


def record_texts(label) -> list[str]:
    """Every text ``label`` is given from now on, however briefly it stays (sampling misses some)."""
    shown: list[str] = []
    set_text = label.setText

    def record(text: str) -> None:
        shown.append(text)
        set_text(text)

    label.setText = record
    return shown
