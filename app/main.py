"""Start the desktop app: one running instance, language and theme applied, the window shown."""

from __future__ import annotations

import getpass
import hashlib
import logging
import logging.handlers
import sys
from typing import Any

from r1desk.app import i18n, markdown, theme
from r1desk.app.qt import (
    QApplication,
    QByteArray,
    QLocalServer,
    QLocalSocket,
    QMessageBox,
    QObject,
    QTimer,
    Signal,
)
from r1desk.app.workers import GeneratorWorker

log = logging.getLogger("app")
ACTIVATE = b"activate\n"


def instance_name() -> str:
    """One name per user and data folder: a second launch on the same data finds the first."""
    from r1desk.engine import paths

    key = f"{getpass.getuser()}|{paths.home()}".encode()
    return "r1desk-" + hashlib.sha1(key).hexdigest()[:16]


def activate_running_instance(name: str, timeout_ms: int = 500) -> bool:
    """Ask a running r1desk to come to the front; False when none is running."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(timeout_ms):
        return False
    socket.write(QByteArray(ACTIVATE))
    socket.flush()
    socket.waitForBytesWritten(timeout_ms)
    socket.disconnectFromServer()
    return True


class SingleInstance(QObject):
    """Listens for later launches; each one becomes an ``activated`` signal."""

    activated = Signal()

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not self.server.listen(name):
            # A socket file left by a crashed instance: nobody answered on it, so remove it.
            QLocalServer.removeServer(name)
            self.server.listen(name)
        self._sockets: list[QLocalSocket] = []
        self.server.newConnection.connect(self._connection)

    def _connection(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()  # owned by the server
            self._sockets.append(socket)
            socket.readyRead.connect(self._read)
            socket.disconnected.connect(self._read)
        self._read()

    def _read(self) -> None:
        for socket in list(self._sockets):
            if ACTIVATE.strip() in bytes(socket.readAll().data()):
                self.activated.emit()
            if socket.state() == QLocalSocket.LocalSocketState.UnconnectedState:
                self._sockets.remove(socket)

    def close(self) -> None:
        self.server.close()


def setup_logging() -> None:
    from r1desk.engine import paths

    handler = logging.handlers.RotatingFileHandler(paths.logs_dir() / "r1desk.log", maxBytes=2_000_000,
                                                   backupCount=2, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if not any(isinstance(h, logging.handlers.RotatingFileHandler) for h in root.handlers):
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("r1desk")
    app.setOrganizationName("r1desk")
    app.setApplicationDisplayName("r1desk")
    app.setDesktopFileName("r1desk")
    app.setWindowIcon(theme.app_icon())
    return app


def build_window(*, chat: Any = None, history: Any = None) -> Any:
    """The main window over the real engine (or the given parts), with the saved look applied."""
    from r1desk.app.settings import AppSettings
    from r1desk.app.window import MainWindow
    from r1desk.engine.chat.history import History

    history = history if history is not None else History()
    if chat is None:
        from r1desk.engine.chat.service import ChatService

        chat = ChatService()  # its own database connection: it writes from a worker thread
    settings = AppSettings(history.db)
    i18n.install(settings.get("app.language"))
    theme.apply(settings.get("app.theme"))
    GeneratorWorker(markdown.warm_up).start()
    return MainWindow(chat, history, settings)


def startup_failure(exc: BaseException) -> QMessageBox:
    """Why the window cannot open (its database is damaged, read-only, in use, from a newer r1desk).

    Worded in the system's language: the language the user chose is kept in that database.
    """
    from r1desk.app.errors import user_message

    i18n.install("system")
    box = QMessageBox(QMessageBox.Icon.Critical, i18n.translate("Main", "r1desk cannot start"), user_message(exc))
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    return box


def run(argv: list[str]) -> int:
    from r1desk.app.settings import bootstrap_data_folder

    bootstrap_data_folder()
    app = application(argv)
    setup_logging()
    name = instance_name()
    if activate_running_instance(name):
        log.info("r1desk is already running; brought it to the front")
        return 0
    instance = SingleInstance(name)
    from r1desk.engine import paths
    from r1desk.engine.errors import R1deskError

    log.info("r1desk started, data in %s", paths.home())
    try:
        window = build_window()
    except R1deskError as exc:
        log.error("cannot start: %s", exc)
        startup_failure(exc).exec()
        instance.close()
        return 1

    def bring_to_front() -> None:
        window.showNormal()
        window.raise_()
        window.activateWindow()

    instance.activated.connect(bring_to_front)
    window.show()
    QTimer.singleShot(0, window.start)
    code = app.exec()
    instance.close()
    window.chat.close()
    return code
