"""The window's "Serve API" switch: other programs use the model loaded here, through OpenAI's API.

While it is on, the top bar shows where the server listens, its key (masked, with a copy
button) and how many API requests are being served. The server is the window's own
ChatService behind server/background.py: one model process, one queue, and API conversations
stay out of the history. Starting and stopping run in a worker, so the window never waits.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from r1desk.app import theme
from r1desk.app.errors import user_message
from r1desk.app.qt import (
    QEvent,
    QGuiApplication,
    QHBoxLayout,
    QLabel,
    QSize,
    Qt,
    QTimer,
    QToolButton,
    QWidget,
    Signal,
)
from r1desk.app.workers import GeneratorWorker

log = logging.getLogger(__name__)

REFRESH_MS = 500
COPIED_MS = 1500
# Settings the running server is started again for when they change.
SERVER_KEYS = ("server.port", "server.host", "server.api_key", "server.cors_origins")


def server_from_settings(chat: Any, settings: Any) -> Any:
    from r1desk.server.background import BackgroundServer

    return BackgroundServer(chat, host=settings.get("server.host") or "127.0.0.1",
                            port=int(settings.get("server.port") or 1337),
                            api_key=settings.get("server.api_key") or None,
                            cors_origins=tuple(settings.get("server.cors_origins") or ()))


class ServerPanel(QWidget):
    """The switch, and while the server runs: its address, its key and the live request count."""

    started = Signal(str)  # the address
    stopped = Signal()
    failed = Signal(object)  # the exception; its words are in the window's message bar

    def __init__(self, window: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.window = window
        self.server: Any = None  # the running BackgroundServer, set by the worker that started it
        self.worker: GeneratorWorker | None = None  # a start, stop or restart under way
        self._wanted: bool | None = None  # the switch moved while a worker ran: do this next
        self._restart = False
        self._error_shown = False
        self._closing = threading.Event()
        self._guard = threading.Lock()  # one start or stop at a time, and none after the window closes

        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        self.details = QWidget(self)
        line = QHBoxLayout(self.details)
        line.setContentsMargins(0, 0, 0, 0)
        line.setSpacing(2)
        self.dot = QLabel("●", self.details)
        self.address_label = QLabel(self.details)
        self.address_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_address = self._small_button()
        self.copy_address.clicked.connect(lambda: self._copy(self.copy_address, self.server.address))
        self.key_label = QLabel(self.details)
        self.copy_key = self._small_button()
        self.copy_key.clicked.connect(lambda: self._copy(self.copy_key, self.server.api_key or ""))
        self.count_label = QLabel(self.details)
        self.count_label.setObjectName("Muted")
        line.addWidget(self.dot)
        line.addWidget(self.address_label)
        line.addWidget(self.copy_address)
        line.addSpacing(8)
        line.addWidget(self.key_label)
        line.addWidget(self.copy_key)
        line.addSpacing(8)
        line.addWidget(self.count_label)
        line.addSpacing(6)
        row.addWidget(self.details)
        self.details.setVisible(False)

        self.switch = QToolButton(self)
        self.switch.setObjectName("ServerSwitch")
        self.switch.setCheckable(True)
        self.switch.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.switch.setIconSize(QSize(18, 18))
        self.switch.clicked.connect(self.set_on)
        row.addWidget(self.switch)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self._shown_count: tuple[int, int] | None = None
        self._style()
        self.retranslate()
        if parent is not None:
            parent.installEventFilter(self)  # the top bar's width decides how much of the details fit

    def _small_button(self) -> QToolButton:
        button = QToolButton(self.details)
        button.setAutoRaise(True)
        button.setIconSize(QSize(14, 14))
        button.setProperty("copied", False)
        return button

    # State -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        server = self.server
        return server is not None and server.running

    @property
    def busy(self) -> bool:
        """Starting or stopping."""
        return self.worker is not None

    def start_if_enabled(self) -> None:
        """At start-up: serve again if the switch was on when r1desk last closed."""
        if self.window.settings.get("server.enabled"):
            self.set_on(True)

    def set_on(self, on: bool) -> None:
        """The switch: remembered for the next start, then the server started or stopped."""
        self.window.settings.set("server.enabled", bool(on))
        self.switch.setChecked(bool(on))
        self._want(bool(on))

    def settings_changed(self, keys: list[str]) -> None:
        """New port, address, key or web pages: a running server starts again with them."""
        if any(k in keys for k in SERVER_KEYS) and (self.running or self.busy) and self.switch.isChecked():
            if self.busy:
                self._restart = True
            else:
                self._begin(self.server, server_from_settings(self.window.chat, self.window.settings))

    def _want(self, on: bool) -> None:
        if self.busy:
            self._wanted = on
            return
        if on and not self.running:
            self._begin(None, server_from_settings(self.window.chat, self.window.settings))
        elif not on and self.server is not None:
            self._begin(self.server, None)

    def _begin(self, old: Any, new: Any) -> None:
        self.timer.stop()
        self.details.setVisible(False)
        worker = GeneratorWorker(self._swap, old, new)
        worker.returned.connect(self._done)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._worker_finished)
        self.worker = worker
        self.switch.setEnabled(False)
        self.retranslate()
        worker.start()

    def _swap(self, old: Any, new: Any) -> str | None:
        """In a worker: stop ``old``, start ``new``; the address, or None when nothing serves now."""
        with self._guard:
            if old is not None:
                old.stop()
                if self.server is old:
                    self.server = None
            if new is None or self._closing.is_set():
                return None
            address = new.start()
            self.server = new
            return address

    def _done(self, address: str | None) -> None:
        if address is not None:
            if self._error_shown:  # the earlier failure is mended
                self.window.notice.hide()
            self._error_shown = False
            self.started.emit(address)
        else:
            self.stopped.emit()

    def _failed(self, exc: BaseException) -> None:
        self.window.settings.set("server.enabled", False)
        self.switch.setChecked(False)
        self._wanted = None
        self._restart = False
        self.window.notice.show_message(lambda: self.error_words(exc), kind="error",
                                        action=lambda: self.tr("Open Settings"), callback=self.open_settings)
        self._error_shown = True
        self.failed.emit(exc)

    def _worker_finished(self) -> None:
        self.worker = None
        self.switch.setEnabled(True)
        if self._closing.is_set():
            return
        wanted, self._wanted = self._wanted, None
        restart, self._restart = self._restart, False
        if wanted is not None and wanted != self.running:
            self._want(wanted)
        elif restart and self.running:
            self._begin(self.server, server_from_settings(self.window.chat, self.window.settings))
        if self.running and not self.busy:
            self.timer.start()
        self.retranslate()
        self.refresh()

    def shut_down(self) -> None:
        """The window closes: stop serving now (a request under way gets a moment to end)."""
        self._closing.set()
        self.timer.stop()
        with self._guard:
            server, self.server = self.server, None
            if server is not None:
                server.stop()

    def open_settings(self) -> None:
        self.window.show_settings()
        dialog = self.window._dialogs.get("settings")
        page = getattr(dialog, "server_page", None)
        if page is not None:
            dialog.tabs.setCurrentWidget(page)

    # Showing -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """The live figures (the timer calls this twice a second while serving)."""
        server = self.server
        on = server is not None and server.running
        self.details.setVisible(on)
        if not on:
            return
        count = (server.requests_in_flight, server.requests_total)
        if count != self._shown_count:
            self._shown_count = count
            self._show_count()
        self._fit()

    def _fit(self) -> None:
        """Show what fits beside the top bar's other buttons: the address first, then the count, then the key."""
        bar = self.parentWidget()
        layout = bar.layout() if bar is not None else None
        if layout is None or not self.details.isVisible():
            return
        used = 0
        for i in range(layout.count()):
            item = layout.itemAt(i)
            widget = item.widget()
            if widget is None or widget is self or widget.isHidden():
                continue
            used += item.sizeHint().width() + layout.spacing()
        margins = layout.contentsMargins()
        room = bar.width() - margins.left() - margins.right() - used - self.switch.sizeHint().width() - 24
        key = self.server is not None and bool(self.server.api_key)
        groups = [(self.dot, self.address_label, self.copy_address), (self.count_label,),
                  (self.key_label, self.copy_key) if key else (self.key_label,)]
        for group in groups:
            need = sum(w.sizeHint().width() for w in group) + 12
            fits = need <= room
            room -= need if fits else 0
            room = room if fits else -1  # once one part is left out, so are the less important ones
            for w in group:
                w.setVisible(fits)
        if not key:
            self.copy_key.setVisible(False)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        if watched is self.parentWidget() and event.type() == QEvent.Type.Resize:
            self._fit()
        return super().eventFilter(watched, event)

    def _show_count(self) -> None:
        now, total = self._shown_count or (0, 0)
        self.count_label.setText(self.tr("Requests: {n}").format(n=f"{now:,}"))
        self.count_label.setToolTip(self.tr("API requests being answered or waiting for the model now; "
                                            "{total} since the server started").format(total=f"{total:,}"))

    def _copy(self, button: QToolButton, text: str) -> None:
        QGuiApplication.clipboard().setText(text)
        button.setIcon(theme.icon("check", "muted"))
        QTimer.singleShot(COPIED_MS, button, lambda: button.setIcon(theme.icon("copy", "muted")))

    def error_words(self, exc: BaseException) -> str:
        """Why the server did not start, in the user's language."""
        facts = getattr(exc, "facts", None) or {}
        code = facts.get("code")
        if code == "port-in-use":
            return self.tr("The API server cannot start: port {port} is in use by another program. "
                           "Choose another port in Settings › API server.").format(port=facts.get("port"))
        if code == "port-denied":
            return self.tr("The API server cannot start: port {port} is reserved or needs administrator "
                           "rights. Choose a port above 1024 in Settings › API server.").format(port=facts.get("port"))
        if code == "no-such-address":
            return self.tr("The API server cannot start: {host} is not an address of this computer. "
                           "Choose where to listen in Settings › API server.").format(host=facts.get("host"))
        if code == "needs-key":
            return self.tr("The API server cannot listen on the network without an API key. "
                           "Create one in Settings › API server.")
        if code == "failed":
            return self.tr("The API server cannot start: {error}").format(error=facts.get("error") or str(exc))
        return self.tr("The API server cannot start: {error}").format(error=user_message(exc))

    def _style(self) -> None:
        c = theme.colors()
        # Checked, the switch takes the accent colour: the top bar's buttons are otherwise flat.
        self.switch.setStyleSheet(
            f"QToolButton#ServerSwitch {{ border: 1px solid {c['border']}; border-radius: 6px; padding: 4px 8px; }}"
            f"QToolButton#ServerSwitch:checked {{ background: {c['accent']}; color: {c['accent_text']};"
            f" border-color: {c['accent']}; }}")
        self.dot.setStyleSheet(f"color: {c['gpu']};")
        self.switch.setIcon(theme.icon("server", "accent_text" if self.switch.isChecked() else "text"))
        for button in (self.copy_address, self.copy_key):
            button.setIcon(theme.icon("copy", "muted"))

    def retranslate(self) -> None:
        if self.busy:
            self.switch.setText(self.tr("Stopping…") if self.switch.isChecked() is False else self.tr("Starting…"))
        else:
            self.switch.setText(self.tr("Serve API"))
        about = self.tr("Let other programs use the loaded model through an OpenAI-compatible API. "
                        "Conversations through the API are not saved in the history.")
        if self.server is not None:  # the address, also when the window is too narrow to show it beside
            about = self.tr("Serving at {address}").format(address=self.server.address) + "\n" + about
        self.switch.setToolTip(about)
        self.switch.setIcon(theme.icon("server", "accent_text" if self.switch.isChecked() else "text"))
        server = self.server
        if server is not None:
            self.address_label.setText(server.address)
            key = server.api_key
            self.key_label.setText(self.tr("Key {masked}").format(masked="•" * 8) if key else self.tr("No key"))
            self.key_label.setToolTip(self.tr("Clients send it as: Authorization: Bearer KEY") if key else
                                      self.tr("Only programs on this computer can connect"))
            self.copy_key.setVisible(bool(key))
            self._fit()
        self.address_label.setToolTip(self.tr("The base URL for OpenAI clients"))
        self.copy_address.setToolTip(self.tr("Copy the address"))
        self.copy_key.setToolTip(self.tr("Copy the API key"))
        self.dot.setToolTip(self.tr("Serving"))
        self._show_count()

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        elif event.type() == QEvent.Type.PaletteChange:
            self._style()
        super().changeEvent(event)
