"""The adapters panel: LoRA fine-tunes kept in r1desk's database, and which ones this conversation uses.

Every action is an engine call (``converters.lora.import_adapter``, ``engine.adapters.store.Adapters``,
``ChatService.set_adapters``), the same the command line makes; imports run in a worker with progress.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import Any

from r1desk.app.errors import user_message
from r1desk.app.qt import (
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QEvent,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from r1desk.app.workers import GeneratorWorker
from r1desk.engine.units import human_bytes


class AdaptersDialog(QDialog):
    """List, import, export and delete adapters; choose this conversation's adapters and scales."""

    changed = Signal()  # the adapters, or the conversation's choice of them, changed

    def __init__(self, window: Any):
        super().__init__(window)
        self.window_ = window
        self.chat = window.chat
        self.store = window.chat.adapter_store
        self.worker: GeneratorWorker | None = None
        self.job: Any = None
        self.setObjectName("AdaptersDialog")
        self.setMinimumSize(640, 520)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.list = QListWidget(self)
        self.list.currentItemChanged.connect(self._show_details)
        top.addWidget(self.list, 1)
        self.details = QLabel(self)
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        top.addWidget(self.details, 2)
        layout.addLayout(top, 1)
        buttons = QHBoxLayout()
        self.import_file_button = QPushButton(self)
        self.import_file_button.clicked.connect(self._ask_import_file)
        self.import_folder_button = QPushButton(self)
        self.import_folder_button.clicked.connect(self._ask_import_folder)
        self.export_button = QPushButton(self)
        self.export_button.clicked.connect(self._ask_export)
        self.delete_button = QPushButton(self)
        self.delete_button.clicked.connect(self.delete_selected)
        for b in (self.import_file_button, self.import_folder_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        for b in (self.export_button, self.delete_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.progress = QProgressBar(self)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.status = QLabel(self)
        self.status.setObjectName("Muted")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        # This conversation's adapters.
        self.use_group = QGroupBox(self)
        use = QVBoxLayout(self.use_group)
        self.use_note = QLabel(self.use_group)
        self.use_note.setObjectName("Muted")
        self.use_note.setWordWrap(True)
        use.addWidget(self.use_note)
        self.use_rows = QWidget(self.use_group)
        self.use_grid = QGridLayout(self.use_rows)
        self.use_grid.setContentsMargins(0, 0, 0, 0)
        self.use_grid.setColumnStretch(2, 1)  # name and scale side by side, the rest empty
        use.addWidget(self.use_rows)
        self.apply_button = QPushButton(self.use_group)
        self.apply_button.clicked.connect(self.apply_to_conversation)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.apply_button)
        use.addLayout(row)
        layout.addWidget(self.use_group)
        self.checks: dict[str, tuple[QCheckBox, QDoubleSpinBox]] = {}
        self.retranslate()
        self.refresh()

    # Contents ----------------------------------------------------------------------------
    @property
    def conversation_id(self) -> int | None:
        return self.window_.current_id

    def refresh(self) -> None:
        current = self.list.currentItem().data(Qt.ItemDataRole.UserRole) if self.list.currentItem() else None
        self.list.clear()
        adapters = self.store.list()
        for a in adapters:
            item = QListWidgetItem(a.name, self.list)
            item.setData(Qt.ItemDataRole.UserRole, a.name)
            if a.name == current:
                self.list.setCurrentItem(item)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)
        self._show_details()
        self._fill_use_rows(adapters)

    def _fill_use_rows(self, adapters: list) -> None:
        while self.use_grid.count():
            w = self.use_grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.checks = {}
        cid = self.conversation_id
        chosen = dict(self.chat.adapters(cid)) if cid is not None else {}
        for i, a in enumerate(adapters):
            check = QCheckBox(a.name, self.use_rows)
            check.setChecked(a.name in chosen)
            scale = QDoubleSpinBox(self.use_rows)
            scale.setRange(0.0, 2.0)
            scale.setSingleStep(0.1)
            scale.setDecimals(2)
            scale.setValue(chosen.get(a.name, 1.0))
            scale.setMinimumWidth(90)
            self.use_grid.addWidget(check, i, 0)
            self.use_grid.addWidget(scale, i, 1)
            self.checks[a.name] = (check, scale)
        self.use_rows.setEnabled(cid is not None)
        self.apply_button.setEnabled(cid is not None and bool(adapters))
        self._word_use_note()

    def _show_details(self, *_: Any) -> None:
        item = self.list.currentItem()
        self.export_button.setEnabled(item is not None)
        self.delete_button.setEnabled(item is not None)
        if item is None:
            self.details.setText(self.tr("No adapters yet. Import a LoRA adapter as a GGUF file, or a PEFT folder "
                                         "(adapter_config.json and adapter_model.safetensors) trained on the "
                                         "loaded model."))
            return
        a = self.store.get(item.data(Qt.ItemDataRole.UserRole))
        rows = [
            (self.tr("Architecture"), a.architecture + (f", {a.n_embd} × {a.n_layer}" if a.n_embd and a.n_layer else "")),
            (self.tr("Trained on"), a.base_model or self.tr("not recorded")),
            (self.tr("Rank, alpha"), f"{a.rank}, {a.alpha:g}"),
            (self.tr("Changes"), ", ".join(a.target_modules)),
            (self.tr("Size"), human_bytes(a.size)),
            (self.tr("Imported"), f"{datetime.fromtimestamp(a.created_at):%Y-%m-%d %H:%M}"),
            ("SHA-256", a.sha256[:16] + "…"),
        ]
        if a.notes:
            rows.append((self.tr("Notes"), a.notes))
        body = "".join(f"<tr><td><b>{html.escape(k)}</b>&nbsp;&nbsp;</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in rows)
        self.details.setText(f"<h3>{html.escape(a.name)}</h3><table>{body}</table>")

    # Actions -----------------------------------------------------------------------------
    def _ask_import_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Import a LoRA adapter"), str(Path.home()),
                                              self.tr("GGUF adapters (*.gguf)"))
        if path:
            self.import_path(path)

    def _ask_import_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, self.tr("Import a PEFT adapter folder"), str(Path.home()))
        if path:
            self.import_path(path)

    def import_path(self, path: str | Path) -> GeneratorWorker | None:
        """Import a GGUF adapter file or a PEFT folder (converted against the loaded model)."""
        from r1desk.converters.lora import import_adapter

        if self.worker is not None:
            return None
        loaded = self.chat.loaded
        path = Path(path)
        if path.is_dir() and loaded is None:
            self._say(self.tr("Load the model this adapter was trained on first: a PEFT folder is converted "
                              "against it."), error=True)
            return None
        self.job = import_adapter(path, base=loaded.path if loaded is not None else None, db=self.store.db)
        worker = self.worker = GeneratorWorker(iter, self.job, cancel=self.job.cancel)
        worker.yielded.connect(self._progressed)
        worker.returned.connect(lambda _r: self._imported())
        worker.errored.connect(lambda exc: self._say(user_message(exc), error=True))
        worker.finished.connect(self._import_finished)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self._say(self.tr("Importing {name}…").format(name=path.name))
        self.import_file_button.setEnabled(False)
        self.import_folder_button.setEnabled(False)
        worker.start()
        return worker

    def _progressed(self, event: Any) -> None:
        fraction = getattr(event, "fraction", None)
        if fraction is not None:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(fraction * 1000))

    def _imported(self) -> None:
        a = self.job.adapter if self.job is not None else None
        if a is not None:
            self._say(self.tr("Imported {name} (rank {rank}, {size}).").format(
                name=a.name, rank=a.rank, size=human_bytes(a.size)))
        self.refresh()
        if a is not None:
            for i in range(self.list.count()):
                if self.list.item(i).data(Qt.ItemDataRole.UserRole) == a.name:
                    self.list.setCurrentRow(i)
        self.changed.emit()

    def _import_finished(self) -> None:
        self.worker = None
        self.progress.setVisible(False)
        self.import_file_button.setEnabled(True)
        self.import_folder_button.setEnabled(True)

    def _ask_export(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Export the adapter"), str(Path.home() / f"{name}.gguf"),
                                              self.tr("GGUF adapters (*.gguf)"))
        if path:
            self.export_selected(path)

    def export_selected(self, path: str | Path) -> bool:
        from r1desk.engine.errors import R1deskError

        item = self.list.currentItem()
        if item is None:
            return False
        try:
            out = self.store.export(item.data(Qt.ItemDataRole.UserRole), path, overwrite=True)
        except (R1deskError, OSError) as exc:
            self._say(user_message(exc), error=True)
            return False
        self._say(self.tr("Wrote {path}.").format(path=str(out)))
        return True

    def delete_selected(self) -> None:
        from r1desk.engine.errors import R1deskError

        item = self.list.currentItem()
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        try:
            self.store.remove(name)
        except R1deskError as exc:
            self._say(user_message(exc), error=True)
            return
        self._say(self.tr("Removed {name}; replies made with it still say so.").format(name=name))
        self.refresh()
        self.changed.emit()

    def apply_to_conversation(self) -> bool:
        from r1desk.engine.errors import R1deskError

        cid = self.conversation_id
        if cid is None:
            return False
        chosen = [(name, scale.value()) for name, (check, scale) in self.checks.items() if check.isChecked()]
        try:
            self.chat.set_adapters(cid, chosen)
        except R1deskError as exc:
            self._say(user_message(exc), error=True)
            return False
        if chosen:
            self._say(self.tr("This conversation's next replies use: {list}.").format(
                list=", ".join(f"{n} × {s:g}" for n, s in chosen)))
        else:
            self._say(self.tr("This conversation's next replies use the model alone."))
        self.changed.emit()
        return True

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.setObjectName("MessageNotice" if error else "Muted")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.status.setText(text)

    def done(self, result: int) -> None:
        if self.worker is not None:
            self.worker.quit()
        super().done(result)

    # Words -------------------------------------------------------------------------------
    def _word_use_note(self) -> None:
        if self.conversation_id is None:
            self.use_note.setText(self.tr("Open or start a conversation to choose the adapters its replies use."))
        elif not self.checks:
            self.use_note.setText(self.tr("Import an adapter to use it here."))
        else:
            self.use_note.setText(self.tr("Tick the adapters this conversation's replies use, each with its "
                                          "strength: 1 as trained, 0 off, up to 2. The model is not reloaded."))

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Adapters"))
        self.import_file_button.setText(self.tr("Import a GGUF file…"))
        self.import_folder_button.setText(self.tr("Import a PEFT folder…"))
        self.export_button.setText(self.tr("Export…"))
        self.delete_button.setText(self.tr("Delete"))
        self.use_group.setTitle(self.tr("This conversation"))
        self.apply_button.setText(self.tr("Use these"))
        self._word_use_note()
        self._show_details()

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
