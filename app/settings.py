"""The settings the user can change, kept in r1desk's database, and the dialog that edits them."""

from __future__ import annotations

import os
import re
import secrets
from typing import Any, Callable

from r1desk.app import i18n, theme
from r1desk.app.hardware import probe
from r1desk.app.qt import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QEvent,
    QFileDialog,
    QFormLayout,
    QGuiApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSettings,
    QSpinBox,
    QTabWidget,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)

# Keys in the settings table. Hub keys are shared with the engine's downloader.
DEFAULTS: dict[str, Any] = {
    "app.language": "system",
    "app.theme": "system",
    "app.last_model": None,
    "app.first_run_done": False,
    "chat.n_ctx": None,  # None: the engine picks from the model and the machine
    "chat.n_gpu_layers": "auto",
    "chat.temperature": None,  # None: the model's recommended value
    "chat.top_p": None,
    "chat.top_k": None,
    "chat.min_p": None,
    "chat.repeat_penalty": None,
    "chat.max_tokens": None,
    "chat.seed": None,
    "chat.reasoning_budget": None,
    "chat.reasoning_seconds": None,
    "chat.system_prompt": None,  # for new conversations; each keeps its own once it starts
    "cache.kv_disk_bytes": None,  # None: the engine's default (see engine.inference.snapshots)
    "hub.endpoint": None,
    "hub.token": None,
    "server.enabled": False,  # the window's "Serve API" switch, on again at the next start
    "server.port": 1337,
    "server.host": "127.0.0.1",  # "0.0.0.0": other computers on the network too (a key is then required)
    "server.api_key": None,
    "server.cors_origins": [],  # web pages allowed to call the API from a browser
}
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed",
                 "reasoning_budget", "reasoning_seconds")
LOAD_KEYS = ("chat.n_ctx", "chat.n_gpu_layers")

NETWORK_HOST = "0.0.0.0"
_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")

# Where the data folder is, when the user moved it: outside the data folder by necessity.
DATA_FOLDER_KEY = "data_folder"


def _qsettings() -> QSettings:
    return QSettings("r1desk", "r1desk")


def bootstrap_data_folder() -> None:
    """Point the engine at the folder the user chose, unless R1DESK_HOME already says where."""
    from r1desk.engine.paths import ENV_HOME

    if os.environ.get(ENV_HOME):
        return
    chosen = _qsettings().value(DATA_FOLDER_KEY)
    if chosen:
        os.environ[ENV_HOME] = str(chosen)


def choose_data_folder(path: str) -> None:
    _qsettings().setValue(DATA_FOLDER_KEY, path)


class AppSettings:
    """Typed access to the settings table; ``None`` values mean "automatic"."""

    def __init__(self, db: Any):
        self.db = db

    def get(self, key: str) -> Any:
        from r1desk.engine.db.database import get_setting

        return get_setting(self.db, key, DEFAULTS.get(key))

    def set(self, key: str, value: Any) -> None:
        from r1desk.engine.db.database import set_setting

        set_setting(self.db, key, value)

    def update(self, values: dict[str, Any]) -> list[str]:
        """Store several values, all or none, in one transaction; returns the keys whose value changed."""
        from r1desk.engine.db.database import update_settings

        return update_settings(self.db, values, DEFAULTS)

    def load_options(self):
        from r1desk.engine.inference.host import LoadOptions

        gpu = self.get("chat.n_gpu_layers")
        return LoadOptions(n_ctx=self.get("chat.n_ctx"), n_gpu_layers=gpu if gpu is not None else "auto")

    def sampling(self):
        from r1desk.engine.chat.service import SamplingParams

        return SamplingParams(**{key: self.get(f"chat.{key}") for key in SAMPLING_KEYS})

    def system_prompt(self) -> str | None:
        """The system prompt a new conversation starts with (None: none)."""
        text = self.get("chat.system_prompt")
        return text.strip() or None if isinstance(text, str) else None


class _OptionalSpin:
    """A number that may be left to the model: a spin box whose lowest value reads "Default"."""

    def __init__(self, spin: QSpinBox | QDoubleSpinBox, none_value: float):
        self.spin = spin
        self.none_value = none_value
        spin.setMinimum(none_value)

    def value(self) -> Any:
        v = self.spin.value()
        if v == self.none_value:
            return None
        return int(v) if isinstance(self.spin, QSpinBox) else round(float(v), 4)

    def set(self, value: Any) -> None:
        self.spin.setValue(self.none_value if value is None else value)


class _ReplyLimit:
    """The longest answer, in tokens: the engine's default unless changed; 0 reads "No limit".

    The default is shown as its number but kept as ``None``, so the setting follows the engine's
    default rather than freezing today's.
    """

    def __init__(self, spin: QSpinBox):
        from r1desk.engine.chat.service import DEFAULT_MAX_TOKENS

        self.spin = spin
        self.default = DEFAULT_MAX_TOKENS
        spin.setMinimum(0)
        spin.setGroupSeparatorShown(True)

    def value(self) -> int | None:
        v = int(self.spin.value())
        return None if v == self.default else v

    def set(self, value: Any) -> None:
        self.spin.setValue(self.default if value is None else int(value))


class SettingsDialog(QDialog):
    """Context, GPU layers (with a live estimate), sampling, the default system prompt, hub, data
    folder, language, theme, the API server."""

    applied = Signal(list)  # the keys that changed
    estimate_requested = Signal(object, object)  # n_ctx (or None), n_gpu_layers ("auto" or int)

    def __init__(self, settings: AppSettings, parent: QWidget | None = None,
                 data_folder: str = "", estimator: Callable[[Any, Any], None] | None = None):
        super().__init__(parent)
        self.settings = settings
        self.setObjectName("SettingsDialog")
        self.setMinimumWidth(560)
        self._data_folder = data_folder
        self._new_data_folder: str | None = None
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        layout.addWidget(self.tabs)
        self._build_model_tab()
        self._build_sampling_tab()
        self._build_chat_tab()
        self._build_downloads_tab()
        self._build_general_tab()
        self._build_server_tab()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.Apply, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        layout.addWidget(self.buttons)
        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(250)
        self._estimate_timer.timeout.connect(self._request_estimate)
        if estimator is not None:
            self.estimate_requested.connect(estimator)
        self.load()
        self.retranslate()
        self._request_estimate()
        probe().request(self._hardware_known)

    # Building ----------------------------------------------------------------------------
    def _build_model_tab(self) -> None:
        page = QWidget()
        form = QFormLayout(page)
        self.ctx_spin = QSpinBox(page)
        self.ctx_spin.setRange(0, 1_048_576)
        self.ctx_spin.setSingleStep(1024)
        self.ctx_auto = _OptionalSpin(self.ctx_spin, 0)
        self.ctx_spin.valueChanged.connect(self._schedule_estimate)
        self.ctx_label = QLabel(page)
        form.addRow(self.ctx_label, self.ctx_spin)
        gpu_row = QHBoxLayout()
        self.gpu_auto = QRadioButton(page)
        self.gpu_manual = QRadioButton(page)
        self.gpu_spin = QSpinBox(page)
        self.gpu_spin.setRange(0, 999)
        self.gpu_auto.toggled.connect(self._gpu_mode_changed)
        self.gpu_spin.valueChanged.connect(self._schedule_estimate)
        gpu_row.addWidget(self.gpu_auto)
        gpu_row.addWidget(self.gpu_manual)
        gpu_row.addWidget(self.gpu_spin)
        gpu_row.addStretch(1)
        self.gpu_label = QLabel(page)
        form.addRow(self.gpu_label, gpu_row)
        # Shown instead of choices that would change nothing: no GPU this llama.cpp can use.
        self.gpu_unusable = False
        self.gpu_reason = QLabel(page)
        self.gpu_reason.setObjectName("Muted")
        self.gpu_reason.setWordWrap(True)
        self.gpu_reason.setVisible(False)
        form.addRow("", self.gpu_reason)
        self.estimate_label = QLabel(page)
        self.estimate_label.setObjectName("Muted")
        self.estimate_label.setWordWrap(True)
        form.addRow("", self.estimate_label)
        self.load_note = QLabel(page)
        self.load_note.setObjectName("Muted")
        self.load_note.setWordWrap(True)
        form.addRow("", self.load_note)
        self.tabs.addTab(page, "")

    def _build_sampling_tab(self) -> None:
        page = QWidget()
        form = QFormLayout(page)

        def dspin(maximum: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
            spin = QDoubleSpinBox(page)
            spin.setDecimals(decimals)
            spin.setSingleStep(step)
            spin.setMaximum(maximum)
            return spin

        def ispin(maximum: int, step: int = 1) -> QSpinBox:
            spin = QSpinBox(page)
            spin.setMaximum(maximum)
            spin.setSingleStep(step)
            return spin

        self.sampling = {
            "temperature": _OptionalSpin(dspin(2.0, 0.05), -0.05),
            "top_p": _OptionalSpin(dspin(1.0, 0.01), 0.0),
            "top_k": _OptionalSpin(ispin(1000), 0),
            "min_p": _OptionalSpin(dspin(1.0, 0.01), -0.01),
            "repeat_penalty": _OptionalSpin(dspin(2.0, 0.01), 0.99),
            "max_tokens": _ReplyLimit(ispin(1_000_000, 256)),
            "seed": _OptionalSpin(ispin(2_147_483_647), -1),
            "reasoning_budget": _OptionalSpin(ispin(1_000_000, 256), 0),
            "reasoning_seconds": _OptionalSpin(ispin(3600, 5), 0),
        }
        self.sampling_labels = {}
        for key, opt in self.sampling.items():
            label = QLabel(page)
            self.sampling_labels[key] = label
            form.addRow(label, opt.spin)
        self.sampling_note = QLabel(page)
        self.sampling_note.setObjectName("Muted")
        self.sampling_note.setWordWrap(True)
        form.addRow("", self.sampling_note)
        self.tabs.addTab(page, "")

    def _build_chat_tab(self) -> None:
        page = QWidget()
        column = QVBoxLayout(page)
        self.system_prompt_label = QLabel(page)
        self.system_prompt_label.setWordWrap(True)
        column.addWidget(self.system_prompt_label)
        self.system_prompt_edit = QPlainTextEdit(page)
        self.system_prompt_edit.setTabChangesFocus(True)
        self.system_prompt_label.setBuddy(self.system_prompt_edit)
        column.addWidget(self.system_prompt_edit, 1)
        self.system_prompt_note = QLabel(page)
        self.system_prompt_note.setObjectName("Muted")
        self.system_prompt_note.setWordWrap(True)
        column.addWidget(self.system_prompt_note)
        # Conversations' saved state: what makes going back to one start at once.
        cache_row = QHBoxLayout()
        self.kv_label = QLabel(page)
        self.kv_spin = QSpinBox(page)
        self.kv_spin.setRange(0, 1_000_000)
        self.kv_spin.setSingleStep(512)
        self.kv_label.setBuddy(self.kv_spin)
        self.kv_clear = QPushButton(page)
        self.kv_clear.clicked.connect(self._clear_saved_state)
        cache_row.addWidget(self.kv_label)
        cache_row.addWidget(self.kv_spin)
        cache_row.addStretch(1)
        cache_row.addWidget(self.kv_clear)
        column.addLayout(cache_row)
        self.kv_usage = QLabel(page)
        self.kv_usage.setObjectName("Muted")
        self.kv_usage.setWordWrap(True)
        column.addWidget(self.kv_usage)
        self.tabs.addTab(page, "")

    def _build_downloads_tab(self) -> None:
        page = QWidget()
        self.downloads_page = page
        form = QFormLayout(page)
        self.endpoint_combo = QComboBox(page)
        self.endpoint_combo.setEditable(True)
        self.endpoint_combo.addItems(["", "https://huggingface.co", "https://hf-mirror.com"])
        self.endpoint_label = QLabel(page)
        form.addRow(self.endpoint_label, self.endpoint_combo)
        self.token_edit = QLineEdit(page)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_label = QLabel(page)
        form.addRow(self.token_label, self.token_edit)
        self.hub_note = QLabel(page)
        self.hub_note.setObjectName("Muted")
        self.hub_note.setWordWrap(True)
        form.addRow("", self.hub_note)
        self.hub_error = QLabel(page)
        self.hub_error.setObjectName("MessageNotice")
        self.hub_error.setWordWrap(True)
        self.hub_error.setVisible(False)
        form.addRow("", self.hub_error)
        self.tabs.addTab(page, "")

    def _build_general_tab(self) -> None:
        page = QWidget()
        form = QFormLayout(page)
        self.language_combo = QComboBox(page)
        for value, _name in i18n.LANGUAGES:
            self.language_combo.addItem("", value)
        self.language_label = QLabel(page)
        form.addRow(self.language_label, self.language_combo)
        self.theme_combo = QComboBox(page)
        for value in theme.THEMES:
            self.theme_combo.addItem("", value)
        self.theme_label = QLabel(page)
        form.addRow(self.theme_label, self.theme_combo)
        folder_row = QHBoxLayout()
        self.folder_path = QLabel(page)
        self.folder_path.setWordWrap(True)
        self.folder_button = QPushButton(page)
        self.folder_button.clicked.connect(self._choose_folder)
        folder_row.addWidget(self.folder_path, 1)
        folder_row.addWidget(self.folder_button)
        self.folder_label = QLabel(page)
        form.addRow(self.folder_label, folder_row)
        self.folder_note = QLabel(page)
        self.folder_note.setObjectName("Muted")
        self.folder_note.setWordWrap(True)
        form.addRow("", self.folder_note)
        self.tabs.addTab(page, "")

    def _build_server_tab(self) -> None:
        """The API server the window's "Serve API" switch starts: port, who may connect, key, web pages."""
        page = QWidget()
        self.server_page = page
        form = QFormLayout(page)
        self.server_port = QSpinBox(page)
        self.server_port.setRange(1, 65535)
        self.server_port_label = QLabel(page)
        form.addRow(self.server_port_label, self.server_port)
        self.server_local = QRadioButton(page)
        self.server_network = QRadioButton(page)
        self.server_network.toggled.connect(self._server_reach_changed)
        reach = QVBoxLayout()
        reach.addWidget(self.server_local)
        reach.addWidget(self.server_network)
        self.server_reach_label = QLabel(page)
        form.addRow(self.server_reach_label, reach)
        self.server_key_required = QCheckBox(page)
        self.server_key_required.toggled.connect(self._server_key_toggled)
        form.addRow("", self.server_key_required)
        key_row = QHBoxLayout()
        self.server_key = QLineEdit(page)
        self.server_key.setReadOnly(True)
        self.server_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.server_key_show = QPushButton(page)
        self.server_key_show.setCheckable(True)
        self.server_key_show.toggled.connect(lambda shown: self.server_key.setEchoMode(
            QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password))
        self.server_key_copy = QPushButton(page)
        self.server_key_copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.server_key.text()))
        self.server_key_new = QPushButton(page)
        self.server_key_new.clicked.connect(self._new_server_key)
        key_row.addWidget(self.server_key, 1)
        for button in (self.server_key_show, self.server_key_copy, self.server_key_new):
            key_row.addWidget(button)
        self.server_key_label = QLabel(page)
        form.addRow(self.server_key_label, key_row)
        self.server_origins = QLineEdit(page)
        self.server_origins_label = QLabel(page)
        form.addRow(self.server_origins_label, self.server_origins)
        self.server_note = QLabel(page)
        self.server_note.setObjectName("Muted")
        self.server_note.setWordWrap(True)
        form.addRow("", self.server_note)
        self.server_error = QLabel(page)
        self.server_error.setObjectName("MessageNotice")
        self.server_error.setWordWrap(True)
        self.server_error.setVisible(False)
        form.addRow("", self.server_error)
        self.tabs.addTab(page, "")

    def _server_reach_changed(self, network: bool) -> None:
        # On the network the key is what keeps other people out: it cannot be switched off there.
        if network:
            self.server_key_required.setChecked(True)
        self.server_key_required.setEnabled(not network)

    def _server_key_toggled(self, required: bool) -> None:
        if required and not self.server_key.text():
            self._new_server_key()
        for w in (self.server_key, self.server_key_show, self.server_key_copy, self.server_key_new):
            w.setEnabled(required)

    def _new_server_key(self) -> None:
        self.server_key.setText(secrets.token_urlsafe(24))
        self.server_key.setCursorPosition(0)

    def server_origins_list(self) -> list[str] | None:
        """The web pages typed (comma or space between them), or None when one is not an origin."""
        origins = [o.rstrip("/") for o in re.split(r"[\s,]+", self.server_origins.text().strip()) if o]
        return origins if all(_ORIGIN.match(o) for o in origins) else None

    # Values ------------------------------------------------------------------------------
    def load(self) -> None:
        s = self.settings
        self.ctx_auto.set(s.get("chat.n_ctx"))
        gpu = s.get("chat.n_gpu_layers")
        manual = isinstance(gpu, int)
        self.gpu_manual.setChecked(manual)
        self.gpu_auto.setChecked(not manual)
        self.gpu_spin.setValue(gpu if manual else 0)
        self._enable_gpu_controls()
        for key, opt in self.sampling.items():
            opt.set(s.get(f"chat.{key}"))
        self.system_prompt_edit.setPlainText(s.get("chat.system_prompt") or "")
        self.kv_spin.setValue(round(self._kv_budget() / 2**20))
        self.endpoint_combo.setCurrentText(s.get("hub.endpoint") or "")
        self.token_edit.setText(s.get("hub.token") or "")
        self.language_combo.setCurrentIndex(max(0, self.language_combo.findData(s.get("app.language"))))
        self.theme_combo.setCurrentIndex(max(0, self.theme_combo.findData(s.get("app.theme"))))
        self.folder_path.setText(self._data_folder)
        self.server_port.setValue(int(s.get("server.port") or 1337))
        key = s.get("server.api_key") or ""
        self.server_key.setText(key)
        self.server_key.setCursorPosition(0)  # a key longer than the field shows from its start
        network = (s.get("server.host") or "127.0.0.1") == NETWORK_HOST
        self.server_key_required.setChecked(bool(key) or network)
        self._server_key_toggled(self.server_key_required.isChecked())
        self.server_network.setChecked(network)
        self.server_local.setChecked(not network)
        self._server_reach_changed(network)
        self.server_origins.setText(", ".join(s.get("server.cors_origins") or []))

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "chat.n_ctx": self.ctx_auto.value(),
            "chat.n_gpu_layers": self.gpu_spin.value() if self.gpu_manual.isChecked() else "auto",
            "chat.system_prompt": self.system_prompt_edit.toPlainText().strip() or None,
            "cache.kv_disk_bytes": self.kv_spin.value() * 2**20,
            "hub.endpoint": self.endpoint_combo.currentText().strip().rstrip("/") or None,
            "hub.token": self.token_edit.text().strip() or None,
            "app.language": self.language_combo.currentData(),
            "app.theme": self.theme_combo.currentData(),
            "server.port": self.server_port.value(),
            "server.host": NETWORK_HOST if self.server_network.isChecked() else "127.0.0.1",
            "server.api_key": (self.server_key.text() or None) if self.server_key_required.isChecked() else None,
            "server.cors_origins": self.server_origins_list(),
        }
        for key, opt in self.sampling.items():
            out[f"chat.{key}"] = opt.value()
        return out

    def apply(self) -> list[str] | None:
        """Store the values; None (and a message on the Downloads tab) when one is not acceptable."""
        values = self.values()
        endpoint = values.pop("hub.endpoint")
        changed = []
        if endpoint != self.settings.get("hub.endpoint"):
            from r1desk.engine.errors import R1deskError
            from r1desk.engine.models.download import set_hub_endpoint

            try:
                set_hub_endpoint(endpoint, db=self.settings.db)
            except R1deskError as exc:
                self.tabs.setCurrentWidget(self.downloads_page)
                self.hub_error.setText(str(exc))
                self.hub_error.setVisible(True)
                return None
            changed.append("hub.endpoint")
        self.hub_error.setVisible(False)
        if values["server.cors_origins"] is None:
            self.tabs.setCurrentWidget(self.server_page)
            self.server_error.setText(self.tr("Web pages are given as their origin, such as https://example.com "
                                              "or http://localhost:3000 (no path), with commas between them."))
            self.server_error.setVisible(True)
            return None
        self.server_error.setVisible(False)
        changed += self.settings.update(values)
        if self._new_data_folder:
            choose_data_folder(self._new_data_folder)
            changed.append("data_folder")
            self._new_data_folder = None
        if changed:
            self.applied.emit(changed)
        return changed

    def accept(self) -> None:
        if self.apply() is not None:
            super().accept()

    def _gpu_mode_changed(self) -> None:
        self._enable_gpu_controls()
        self._schedule_estimate()

    def _hardware_known(self, hardware: Any) -> None:
        self.gpu_unusable = not hardware.usable_gpus()
        self.gpu_reason.setVisible(self.gpu_unusable)
        self._enable_gpu_controls()

    def _enable_gpu_controls(self) -> None:
        """Without a usable GPU every layer runs on the processor: the choice is shown, disabled, with why."""
        self.gpu_auto.setEnabled(not self.gpu_unusable)
        self.gpu_manual.setEnabled(not self.gpu_unusable)
        self.gpu_spin.setEnabled(not self.gpu_unusable and self.gpu_manual.isChecked())

    def _schedule_estimate(self, *_: Any) -> None:
        self._estimate_timer.start()

    def _request_estimate(self) -> None:
        self.estimate_requested.emit(
            self.ctx_auto.value(), self.gpu_spin.value() if self.gpu_manual.isChecked() else "auto"
        )

    def show_estimate(self, text: str) -> None:
        self.estimate_label.setText(text)

    def _kv_budget(self) -> int:
        from r1desk.engine.inference.snapshots import DEFAULT_DISK_BUDGET

        value = self.settings.get("cache.kv_disk_bytes")
        return int(value) if value is not None else DEFAULT_DISK_BUDGET

    def _show_kv_usage(self) -> None:
        from r1desk.engine.inference.snapshots import SnapshotStore
        from r1desk.engine.units import human_bytes

        used, count = SnapshotStore().usage()
        self.kv_usage.setText(self.tr(
            "r1desk keeps what the model has read of each recent conversation, so going back to one, "
            "or starting r1desk again, answers at once instead of reading the whole conversation again. "
            "Now: {size} for {n} conversation(s). 0 keeps nothing on disk."
        ).format(size=human_bytes(used), n=count))
        self.kv_clear.setEnabled(count > 0)

    def _clear_saved_state(self) -> None:
        from r1desk.engine.inference.snapshots import SnapshotStore

        SnapshotStore().clear()
        self._show_kv_usage()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose the data folder"), self._data_folder)
        if folder:
            self._new_data_folder = folder
            self.folder_path.setText(folder)
            self.folder_note.setText(self.tr(
                "r1desk will use this folder the next time it starts. Move your files there yourself "
                "if you want to keep them."
            ))

    # Words -------------------------------------------------------------------------------
    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Settings"))
        self.tabs.setTabText(0, self.tr("Model"))
        self.tabs.setTabText(1, self.tr("Sampling"))
        self.tabs.setTabText(2, self.tr("Chat"))
        self.tabs.setTabText(3, self.tr("Downloads"))
        self.tabs.setTabText(4, self.tr("General"))
        self.ctx_label.setText(self.tr("Context length"))
        self.ctx_spin.setSpecialValueText(self.tr("Automatic"))
        self.ctx_spin.setSuffix(self.tr(" tokens"))
        self.gpu_label.setText(self.tr("GPU layers"))
        self.gpu_auto.setText(self.tr("Automatic"))
        self.gpu_manual.setText(self.tr("Number:"))
        self.gpu_reason.setText(self.tr("This computer has no graphics card r1desk can use: every layer runs on "
                                        "the processor, so there is nothing to choose here."))
        self.load_note.setText(self.tr(
            "Context length and GPU layers take effect when the model is loaded again "
            "(r1desk reloads it for you)."
        ))
        names = {
            "temperature": self.tr("Temperature"), "top_p": self.tr("Top P"), "top_k": self.tr("Top K"),
            "min_p": self.tr("Min P"), "repeat_penalty": self.tr("Repeat penalty"),
            "max_tokens": self.tr("Longest reply"), "seed": self.tr("Seed"),
            "reasoning_budget": self.tr("Reasoning budget"),
            "reasoning_seconds": self.tr("Reasoning time"),
        }
        for key, label in self.sampling_labels.items():
            label.setText(names[key])
        for key, opt in self.sampling.items():
            if key == "seed":
                opt.spin.setSpecialValueText(self.tr("Random"))
            elif key == "max_tokens":
                opt.spin.setSpecialValueText(self.tr("No limit"))
                opt.spin.setSuffix(self.tr(" tokens"))
            elif key == "reasoning_budget":
                opt.spin.setSpecialValueText(self.tr("Unlimited"))
                opt.spin.setSuffix(self.tr(" tokens"))
            elif key == "reasoning_seconds":
                opt.spin.setSpecialValueText(self.tr("Unlimited"))
                opt.spin.setSuffix(self.tr(" seconds"))
            else:
                opt.spin.setSpecialValueText(self.tr("Model default"))
        reply_limit = self.tr(
            "The longest reply counts the answer only: R1's thinking is not counted, and the context "
            "holds both. \"No limit\" (0) lets a reply run until the context is full."
        )
        self.sampling["max_tokens"].spin.setToolTip(reply_limit)
        self.sampling_note.setText(self.tr(
            "\"Model default\" uses what the model recommends (for DeepSeek-R1: temperature 0.6, "
            "top P 0.95). The reasoning budget and reasoning time limit how long R1 may think before it "
            "must answer: when either is reached, the thinking is closed and the model answers."
        ) + " " + reply_limit)
        self.system_prompt_label.setText(self.tr("System prompt for new conversations"))
        self.system_prompt_edit.setPlaceholderText(self.tr("None: the model gets only your messages"))
        self.system_prompt_note.setText(self.tr(
            "Instructions the model gets before every new conversation. A conversation keeps the system "
            "prompt it started with; change it from the conversation's menu in the sidebar. DeepSeek-R1 "
            "works best without one: r1desk puts it at the start of your first message instead."
        ))
        self.kv_label.setText(self.tr("Disk space for saved conversations"))
        self.kv_spin.setSuffix(self.tr(" MB"))
        self.kv_spin.setSpecialValueText(self.tr("None"))
        self.kv_clear.setText(self.tr("Clear"))
        self._show_kv_usage()
        self.endpoint_label.setText(self.tr("Download server"))
        self.endpoint_combo.setItemText(0, "")
        self.endpoint_combo.lineEdit().setPlaceholderText(self.tr("Hugging Face (default)"))
        self.token_label.setText(self.tr("Access token"))
        self.token_edit.setPlaceholderText(self.tr("Only for gated or private models"))
        self.hub_note.setText(self.tr(
            "If huggingface.co is blocked where you are, choose a mirror such as hf-mirror.com."
        ))
        self.language_label.setText(self.tr("Language"))
        for i, (value, name) in enumerate(i18n.LANGUAGES):
            self.language_combo.setItemText(i, name or self.tr("Follow the system"))
        self.theme_label.setText(self.tr("Theme"))
        theme_names = {"system": self.tr("Follow the system"), "light": self.tr("Light"), "dark": self.tr("Dark")}
        for i, value in enumerate(theme.THEMES):
            self.theme_combo.setItemText(i, theme_names[value])
        self.folder_label.setText(self.tr("Data folder"))
        self.folder_button.setText(self.tr("Change…"))
        self.folder_note.setText(self.tr("Conversations, settings and downloaded models are kept here."))
        self.tabs.setTabText(self.tabs.indexOf(self.server_page), self.tr("API server"))
        self.server_port_label.setText(self.tr("Port"))
        self.server_reach_label.setText(self.tr("Who can connect"))
        self.server_local.setText(self.tr("Programs on this computer only"))
        self.server_network.setText(self.tr("Other computers on the network too (the key is required)"))
        self.server_key_required.setText(self.tr("Require the API key"))
        self.server_key_label.setText(self.tr("API key"))
        self.server_key.setPlaceholderText(self.tr("No key"))
        self.server_key_show.setText(self.tr("Show"))
        self.server_key_copy.setText(self.tr("Copy"))
        self.server_key_new.setText(self.tr("New key"))
        self.server_origins_label.setText(self.tr("Web pages allowed"))
        self.server_origins.setPlaceholderText(self.tr("None (for example: http://localhost:3000)"))
        self.server_note.setText(self.tr(
            "Turn the server on with Serve API at the top of the window, which then shows its address. It "
            "serves the model loaded in r1desk through OpenAI's API: requests wait their turn with your own "
            "chats, and conversations through the API are not saved in the history. Clients send the key "
            "as \"Authorization: Bearer KEY\". Web pages in a browser may call the API only from the "
            "addresses listed here."
        ))
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText(self.tr("OK"))
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setText(self.tr("Cancel"))
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).setText(self.tr("Apply"))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
