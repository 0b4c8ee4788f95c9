"""Where the user types: Enter sends, Shift+Enter adds a line; says why it is off when it is."""

from __future__ import annotations

from r1desk.app import theme
from r1desk.app.qt import (
    QEvent,
    QFrame,
    QHBoxLayout,
    QKeyEvent,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSize,
    QSizePolicy,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)

MAX_LINES = 10


class ComposerEdit(QPlainTextEdit):
    submitted = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ComposerEdit")
        self.setTabChangesFocus(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            mods = event.modifiers()
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
                return
            if not mods & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
                # An input method composing Chinese uses Enter itself; it never reaches here.
                self.submitted.emit()
                return
        super().keyPressEvent(event)

    def _fit(self, *_) -> None:
        # QPlainTextEdit measures its document in lines.
        wanted = max(1, int(self.document().size().height()))
        lines = min(MAX_LINES, wanted)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded if wanted > MAX_LINES
                                        else Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        height = (lines * self.fontMetrics().lineSpacing() + int(2 * self.document().documentMargin())
                  + 2 * self.frameWidth() + 2)
        self.setFixedHeight(height)


class Composer(QWidget):
    """The message box and its Send/Stop button."""

    send_requested = Signal(str)
    stop_requested = Signal()
    choose_model_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Composer")
        self._generating = False
        self._reason: str | None = None  # why sending is off (no model, loading...)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 10, 24, 12)
        outer.setSpacing(6)
        self.reason_row = QWidget(self)
        reason_layout = QHBoxLayout(self.reason_row)
        reason_layout.setContentsMargins(4, 0, 4, 0)
        self.reason_label = QLabel(self.reason_row)
        self.reason_label.setObjectName("ComposerReason")
        self.reason_label.setWordWrap(True)
        self.choose_button = QPushButton(self.reason_row)
        self.choose_button.setObjectName("Primary")
        self.choose_button.clicked.connect(self.choose_model_requested)
        reason_layout.addWidget(self.reason_label, 1)
        reason_layout.addWidget(self.choose_button)
        outer.addWidget(self.reason_row)
        frame = QFrame(self)
        frame.setObjectName("ComposerFrame")
        row = QHBoxLayout(frame)
        row.setContentsMargins(12, 6, 6, 6)
        self.edit = ComposerEdit(frame)
        self.edit.submitted.connect(self._submit)
        self.edit.textChanged.connect(self._update)
        self.button = QToolButton(frame)
        self.button.setObjectName("SendButton")
        self.button.setIconSize(QSize(18, 18))
        self.button.setFixedSize(32, 32)
        self.button.clicked.connect(self._button_clicked)
        row.addWidget(self.edit, 1)
        row.addWidget(self.button, 0, Qt.AlignmentFlag.AlignBottom)
        self._row = row
        outer.addWidget(frame)
        # What sending this message would do to the context, once it is long enough to matter.
        self.budget_label = QLabel(self)
        self.budget_label.setObjectName("ComposerBudget")
        self.budget_label.setWordWrap(True)
        self.budget_label.setVisible(False)
        outer.addWidget(self.budget_label)
        self._too_long = False
        self.retranslate()
        self._update()

    # State -------------------------------------------------------------------------------
    @property
    def generating(self) -> bool:
        return self._generating

    @property
    def can_send(self) -> bool:
        return (self._reason is None and not self._generating and not self._too_long
                and bool(self.edit.toPlainText().strip()))

    def set_budget(self, text: str | None, *, too_long: bool = False) -> None:
        """Say what sending would do (``None`` hides it); ``too_long`` turns sending off."""
        self.budget_label.setText(text or "")
        self.budget_label.setVisible(bool(text))
        self.budget_label.setProperty("kind", "error" if too_long else "info")
        self.budget_label.style().unpolish(self.budget_label)
        self.budget_label.style().polish(self.budget_label)
        self._too_long = too_long
        self._update()

    def set_generating(self, on: bool) -> None:
        self._generating = on
        self._update()

    def set_disabled_reason(self, reason: str | None, *, offer_model: bool = False) -> None:
        """``reason`` is shown above the box and sending is off; ``None`` turns it back on."""
        self._reason = reason
        self.reason_label.setText(reason or "")
        self.choose_button.setVisible(offer_model)
        self.reason_row.setVisible(reason is not None)
        self._update()

    @property
    def disabled_reason(self) -> str | None:
        return self._reason

    def add_tool(self, widget: QWidget) -> None:
        """A button for this message's options (the documents it answers from), left of the box."""
        self._row.insertWidget(0, widget, 0, Qt.AlignmentFlag.AlignBottom)

    def text(self) -> str:
        return self.edit.toPlainText()

    def set_text(self, text: str) -> None:
        self.edit.setPlainText(text)

    def focus(self) -> None:
        self.edit.setFocus()

    def _update(self) -> None:
        # Typing stays possible while sending is off: the message is ready when the model is.
        if self._generating:
            self.button.setIcon(theme.icon("stop", "accent_text"))
            self.button.setEnabled(True)
            self.button.setToolTip(self.tr("Stop (Esc)"))
        else:
            self.button.setIcon(theme.icon("send", "accent_text"))
            self.button.setEnabled(self.can_send)
            self.button.setToolTip(self.tr("Send (Enter)"))

    def _button_clicked(self) -> None:
        if self._generating:
            self.stop_requested.emit()
        else:
            self._submit()

    def _submit(self) -> None:
        if not self.can_send:
            return
        text = self.edit.toPlainText().strip()
        self.edit.clear()
        self.send_requested.emit(text)

    # Words -------------------------------------------------------------------------------
    def retranslate(self) -> None:
        self.edit.setPlaceholderText(self.tr("Message the model… (Enter sends, Shift+Enter adds a line)"))
        self.choose_button.setText(self.tr("Choose a model"))
        self._update()

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        elif event.type() == QEvent.Type.PaletteChange:
            self._update()
        super().changeEvent(event)
