"""The main window: sidebar, chat, composer, model button, status bar, and the wiring between them.

Every engine call that can take time (loading, generating, downloading, scanning) runs in a
GeneratorWorker; the window only reacts to its signals, so the GUI thread never waits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from r1desk.app import i18n, theme
from r1desk.app.about import AboutButton
from r1desk.app.chatview import ChatView, MessageWidget
from r1desk.app.composer import Composer
from r1desk.app.documents import Documents
from r1desk.app.errors import describe, user_message
from r1desk.app.qt import (
    QEvent,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QKeySequence,
    QLabel,
    QMainWindow,
    QPushButton,
    QShortcut,
    QSize,
    QSplitter,
    Qt,
    QTimer,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from r1desk.app.serverpanel import ServerPanel
from r1desk.app.settings import LOAD_KEYS, AppSettings, SettingsDialog
from r1desk.app.sidebar import Sidebar
from r1desk.app.statusbar import StatusBar
from r1desk.app.workers import GeneratorWorker

log = logging.getLogger(__name__)


MEASURE_DELAY_MS = 400  # after the last keystroke
MEASURE_FROM_CHARS = 2000  # shorter messages always fit; no need to count them
PROMPT_PROGRESS_AFTER_SECONDS = 1.0  # a prompt read quicker than this shows no progress


@dataclass
class Reply:
    """The reply being generated: its worker, its widget and what has arrived so far."""

    worker: GeneratorWorker
    widget: MessageWidget | None
    conversation_id: int | None
    message_id: int | None = None
    reasoning: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    finished: bool = False
    context_used: int = 0  # prompt tokens, then one more per piece that arrives
    sources: list = field(default_factory=list)  # passages of the user's documents it was given
    prompt_started: float | None = None  # time.monotonic() when the model began reading the prompt


class NoticeBar(QFrame):
    """A one-line message above the chat (errors, hints) with an optional action."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Notice")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action = QPushButton(self)
        self.action.setVisible(False)
        self.close_button = QToolButton(self)
        self.close_button.setAutoRaise(True)
        self.close_button.setIcon(theme.icon("close", "muted"))
        self.close_button.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action)
        layout.addWidget(self.close_button)
        self._callback = None
        self._text: str | Callable[[], str] | None = None
        self._action_text: str | Callable[[], str] | None = None
        self.action.clicked.connect(self._act)
        self.setVisible(False)

    def show_message(self, text: str | Callable[[], str], *, kind: str = "info",
                     action: str | Callable[[], str] | None = None, callback=None) -> None:
        """Show ``text``; a callable is called again when the language changes, so the whole
        message is always in the current language."""
        self._text, self._action_text = text, action
        self.setProperty("kind", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        self.action.setVisible(action is not None)
        self._callback = callback
        self.retranslate()
        self.setVisible(True)

    def retranslate(self) -> None:
        text, action = self._text, self._action_text
        self.label.setText(text() if callable(text) else (text or ""))
        self.action.setText((action() if callable(action) else action) or "")

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _act(self) -> None:
        callback, self._callback = self._callback, None
        self.hide()
        if callback is not None:
            callback()


class MainWindow(QMainWindow):
    model_loaded = Signal(object)  # ModelInfo
    model_load_failed = Signal(str)
    reply_finished = Signal()

    def __init__(self, chat: Any, history: Any, settings: AppSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.chat = chat
        self.history = history
        self.settings = settings
        self.current_id: int | None = None
        self.reply: Reply | None = None
        self.loading: GeneratorWorker | None = None
        self.loading_name: str | None = None
        self._dialogs: dict[str, Any] = {}
        self.setWindowIcon(theme.app_icon())
        self.resize(1180, 780)
        self.setMinimumSize(QSize(720, 480))

        self.sidebar = Sidebar(history, self)
        self.sidebar.conversation_selected.connect(self.open_conversation)
        self.sidebar.message_selected.connect(self.open_message)
        self.sidebar.new_requested.connect(self.new_conversation)
        self.sidebar.conversation_deleted.connect(self._conversation_deleted)
        self.sidebar.system_prompt_requested.connect(self.ask_system_prompt)
        self.sidebar.export_requested.connect(self.ask_export)

        right = QWidget(self)
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        self.top_bar = self._make_top_bar()
        column.addWidget(self.top_bar)
        self.notice = NoticeBar(right)
        notice_holder = QWidget(right)
        holder_layout = QVBoxLayout(notice_holder)
        holder_layout.setContentsMargins(24, 8, 24, 0)
        holder_layout.addWidget(self.notice)
        column.addWidget(notice_holder)
        self.chat_view = ChatView(right)
        self.chat_view.regenerate_requested.connect(self.regenerate)
        self.chat_view.edit_submitted.connect(self.edit_and_resend)
        self.chat_view.alternative_requested.connect(self.show_alternative)
        column.addWidget(self.chat_view, 1)
        self.composer = Composer(right)
        self.composer.send_requested.connect(self.send)
        self.composer.stop_requested.connect(self.stop)
        self.composer.choose_model_requested.connect(self.show_model_picker)
        column.addWidget(self.composer)
        self.documents = Documents(self)
        # The message's size against the context, counted by the model's tokenizer as it grows.
        self._measure_timer = QTimer(self)
        self._measure_timer.setSingleShot(True)
        self._measure_timer.setInterval(MEASURE_DELAY_MS)
        self._measure_timer.timeout.connect(self._measure)
        self._measure_worker: GeneratorWorker | None = None
        self._measured: tuple | None = None  # (conversation, text) the last budget is for
        self._budget: Any = None
        self.composer.edit.textChanged.connect(self._measure_timer.start)

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.sidebar)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 920])
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)

        self.status = StatusBar(self)
        self.setStatusBar(self.status)
        self._make_shortcuts()
        self.retranslate()
        self.sidebar.refresh()
        self._update_composer()

    # Layout pieces -----------------------------------------------------------------------
    def _make_top_bar(self) -> QWidget:
        bar = QFrame(self)
        bar.setObjectName("TopBar")
        row = QHBoxLayout(bar)
        row.setContentsMargins(16, 8, 12, 8)
        self.model_button = QPushButton(bar)
        self.model_button.setObjectName("ModelButton")
        self.model_button.clicked.connect(self.show_model_picker)
        row.addWidget(self.model_button)
        row.addStretch(1)
        self.server_panel = ServerPanel(self, bar)
        row.addWidget(self.server_panel)
        self.adapters_button = QToolButton(bar)
        self.adapters_button.clicked.connect(self.show_adapters)
        self.hardware_button = QToolButton(bar)
        self.hardware_button.clicked.connect(self.show_hardware)
        self.settings_button = QToolButton(bar)
        self.settings_button.clicked.connect(self.show_settings)
        for button in (self.adapters_button, self.hardware_button, self.settings_button):
            button.setIconSize(QSize(20, 20))
            row.addWidget(button)
        self.about_button = AboutButton(bar)
        row.addWidget(self.about_button)
        return bar

    def _make_shortcuts(self) -> None:
        self.shortcuts = {
            "new": QShortcut(QKeySequence("Ctrl+N"), self, self.new_conversation),
            "search": QShortcut(QKeySequence("Ctrl+F"), self, self.sidebar.focus_search),
            "stop": QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop),
            "settings": QShortcut(QKeySequence("Ctrl+,"), self, self.show_settings),
        }
        if QKeySequence(QKeySequence.StandardKey.Preferences).toString():
            QShortcut(QKeySequence(QKeySequence.StandardKey.Preferences), self, self.show_settings)

    # Start -------------------------------------------------------------------------------
    def start(self) -> None:
        """Once the window shows: empty the old bin, then load the last model or welcome a new user."""
        self.history.purge_deleted(older_than=30 * 86400)
        self.documents.start()
        self.server_panel.start_if_enabled()
        last = self.settings.get("app.last_model")
        if last and Path(last).is_file():
            self.load_model(last)
        elif not self.library_models() and not self.settings.get("app.first_run_done"):
            self.show_first_run()

    def library_models(self) -> list[Any]:
        from r1desk.engine.models.library import Library

        return [m for m in Library(self.history.db).list(refresh=False) if m.status == "ready"]

    def show_first_run(self) -> None:
        from r1desk.app.firstrun import FirstRunDialog

        dialog = self._dialogs.get("first_run")
        if dialog is None:
            dialog = FirstRunDialog(self)
            self._dialogs["first_run"] = dialog
        dialog.open()

    # Conversations -----------------------------------------------------------------------
    def new_conversation(self) -> None:
        self.current_id = None
        self.chat_view.clear()
        self.sidebar.select(None)
        self.documents.conversation_changed(None)
        self.status.set_context_used(0)
        self._measure_timer.start()
        self.composer.focus()

    def open_conversation(self, conversation_id: int) -> None:
        self.current_id = conversation_id
        messages = self.history.messages(conversation_id)
        reply = self.reply
        streaming_here = reply is not None and not reply.finished and reply.conversation_id == conversation_id
        if streaming_here:
            messages = [m for m in messages if m.id != reply.message_id]
        conv_model = None
        try:
            conv_model = self.history.get_conversation(conversation_id).model
        except Exception:  # a conversation deleted meanwhile shows empty
            log.debug("conversation %s vanished", conversation_id)
        self.chat_view.load(messages, model=conv_model)
        for shown in self.chat_view.messages:
            if shown.role == "assistant" and shown.message_id is not None:
                self.documents.show_sources(shown, self.documents.sources_of(shown.message_id))
        self.documents.conversation_changed(conversation_id)
        if streaming_here:
            # Re-attach the running reply to a fresh widget holding what has arrived so far.
            widget = self.chat_view.add_assistant(self._model_name())
            widget.message_id = reply.message_id
            if reply.sources:
                self.documents.show_sources(widget, reply.sources)
            if reply.reasoning:
                widget.append_reasoning("".join(reply.reasoning))
            if reply.content:
                widget.append_content("".join(reply.content))
            reply.widget = widget
        elif reply is not None:
            reply.widget = None
        if streaming_here:
            self.status.set_context_used(reply.context_used)
        else:
            last = next((m.stats for m in reversed(messages) if m.role == "assistant" and m.stats.get("prompt_tokens")),
                        {})
            self.status.set_context_used((last.get("prompt_tokens") or 0) + (last.get("completion_tokens") or 0))
        self._show_alternatives()
        self._update_actions()
        self.sidebar.select(conversation_id)
        self._measure_timer.start()  # the same message weighs differently in another conversation

    def open_message(self, conversation_id: int, message_id: int) -> None:
        """Open a conversation at one message (a search hit), with the searched text marked for a moment."""
        self.open_conversation(conversation_id)
        widget = next((w for w in self.chat_view.messages if w.message_id == message_id), None)
        if widget is None:
            return
        found = self.sidebar.search.text().strip() if self.sidebar.searching else ""
        # Once the view has laid the messages out: before that the message has no place yet.
        QTimer.singleShot(0, widget, lambda: self._reveal_message(widget, found))

    def _reveal_message(self, widget: MessageWidget, found: str) -> None:
        from r1desk.app.qt import QApplication, QTextBrowser, QTextCharFormat, QTextEdit

        if widget not in self.chat_view.messages:
            return
        mark = QTextCharFormat()
        mark.setBackground(theme.color("accent"))
        mark.setForeground(theme.color("accent_text"))
        thinking = widget.thinking.body if widget.thinking is not None else None
        browsers = [b for b in widget.findChildren(QTextBrowser) if b is not thinking]
        marks: dict[Any, list[Any]] = {}
        for browser in [*browsers, thinking] if found else []:
            if browser is None or (browser is thinking and marks):
                continue  # the answer's matches come first; the thinking only when the answer has none
            cursor = browser.document().find(found)  # any case, as the search
            while not cursor.isNull():
                selection = QTextEdit.ExtraSelection()
                selection.cursor, selection.format = cursor, mark
                marks.setdefault(browser, []).append(selection)
                cursor = browser.document().find(found, cursor)
        if thinking in marks:
            widget.thinking.button.setChecked(True)
        for browser, selections in marks.items():
            browser.setExtraSelections(selections)
        # A message's height follows its width, so the layout settles in a few rounds.
        for _ in range(8):
            QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        view = self.chat_view
        view.ensureWidgetVisible(widget, 0, 40)
        if marks:
            browser, selections = next(iter(marks.items()))
            at = browser.viewport().mapTo(view.widget(), browser.cursorRect(selections[0].cursor).center())
            view.ensureVisible(at.x(), at.y(), 0, view.viewport().height() // 4)  # a long message: its match
            QTimer.singleShot(2500, widget, lambda: [b.setExtraSelections([]) for b in marks])

    def _conversation_deleted(self, conversation_id: int) -> None:
        if self.reply is not None and self.reply.conversation_id == conversation_id:
            self.stop()
        if self.current_id == conversation_id:
            self.new_conversation()

    # Sending -----------------------------------------------------------------------------
    def send(self, text: str) -> None:
        if self.reply is not None or self.chat.loaded is None:
            return
        key = (self.current_id, text)
        if len(text) >= MEASURE_FROM_CHARS and self._measured != key and self.loading is None:
            # Sent before the count came back: count now (the model is idle) and send only if it fits.
            self._measured = key
            self._show_budget(self.chat.measure(self.current_id, text, self.settings.sampling(),
                                                system=self._new_system_prompt()))
        if self._measured == key and self._budget is not None and self._budget.outcome == "too-long":
            self.composer.set_text(text)  # nothing is sent or saved; the message stays to be shortened
            return
        self.chat_view.add_user(text)
        widget = self.chat_view.add_assistant(self._model_name())
        system = self._new_system_prompt()
        if self.current_id is None:  # made now when documents were chosen for it
            self.current_id = self.documents.conversation_for(system)
        reply = self.chat.send(self.current_id, text, self.settings.sampling(), system=system)
        worker = GeneratorWorker(iter, reply, cancel=reply.cancel)
        self._start_reply(worker, widget)

    def regenerate(self, widget: MessageWidget) -> None:
        if self.reply is not None or self.chat.loaded is None or self.current_id is None:
            return
        self.chat_view.remove_from(widget)
        new = self.chat_view.add_assistant(self._model_name())
        reply = self.chat.regenerate(self.current_id, self.settings.sampling())
        worker = GeneratorWorker(iter, reply, cancel=reply.cancel)
        self._start_reply(worker, new)

    def edit_and_resend(self, widget: MessageWidget, text: str) -> None:
        if self.reply is not None or self.chat.loaded is None or widget.message_id is None:
            return
        message_id = widget.message_id
        self.chat_view.remove_from(widget)
        self.chat_view.add_user(text)
        new = self.chat_view.add_assistant(self._model_name())
        reply = self.chat.edit_and_resend(message_id, text, self.settings.sampling())
        worker = GeneratorWorker(iter, reply, cancel=reply.cancel)
        self._start_reply(worker, new)

    def stop(self) -> None:
        """Stop the reply being written (Esc); the engine ends it within a fraction of a second."""
        if self.reply is not None and not self.reply.finished:
            self.reply.worker.quit()

    def _start_reply(self, worker: GeneratorWorker, widget: MessageWidget) -> None:
        if self.current_id is not None:  # what the footer says made it; a new conversation has none
            widget.adapters = [{"name": n, "scale": s} for n, s in self.chat.adapters(self.current_id) if s > 0]
        self.reply = Reply(worker=worker, widget=widget, conversation_id=self.current_id)
        worker.yielded.connect(self._on_chat_event)
        worker.errored.connect(self._on_chat_error)
        worker.finished.connect(self._on_reply_finished)
        self.composer.set_generating(True)
        self._update_actions()
        self.notice.hide()
        worker.start()

    def _on_chat_event(self, event: Any) -> None:
        from r1desk.engine.events import (
            ChatError,
            ContentDelta,
            Loading,
            PromptProgress,
            PromptRead,
            Queued,
            ReasoningDelta,
            Sources,
            Started,
            Stats,
        )

        reply = self.reply
        if reply is None:
            return
        widget = reply.widget
        if isinstance(event, (ContentDelta, ReasoningDelta, Stats, ChatError)):
            self.status.clear_wait()
        shown = reply.conversation_id == self.current_id
        if isinstance(event, (ContentDelta, ReasoningDelta, PromptRead)):
            reply.context_used = event.tokens if isinstance(event, PromptRead) else reply.context_used + event.tokens
            if shown:
                self.status.set_context_used(reply.context_used)
        if isinstance(event, PromptRead):
            reply.prompt_started = time.monotonic()
        if isinstance(event, ContentDelta):
            reply.content.append(event.text)
            if widget is not None:
                widget.append_content(event.text)
        elif isinstance(event, ReasoningDelta):
            reply.reasoning.append(event.text)
            if widget is not None:
                widget.append_reasoning(event.text)
        elif isinstance(event, Started):
            reply.message_id = event.message_id
            new_conversation = reply.conversation_id is None
            reply.conversation_id = event.conversation_id
            if widget is not None:
                widget.message_id = event.message_id
                users = [w for w in self.chat_view.messages if w.role == "user"]
                if users and users[-1].message_id is None:
                    users[-1].message_id = event.user_message_id
            if new_conversation and self.current_id is None:
                self.current_id = event.conversation_id
            self.sidebar.refresh(select=self.current_id)
        elif isinstance(event, Sources):
            reply.sources = list(event.items)
            if widget is not None:
                self.documents.show_sources(widget, reply.sources)
        elif isinstance(event, Loading):
            self.status.set_loading(event.model, event.reason, event.detail)
        elif isinstance(event, Queued):
            self.status.set_queued(event.position)
        elif isinstance(event, PromptProgress):
            started = reply.prompt_started
            if (widget is not None and started is not None
                    and time.monotonic() - started >= PROMPT_PROGRESS_AFTER_SECONDS):
                widget.set_prompt_progress(event.done, event.total)
        elif isinstance(event, Stats):
            stats = event.to_dict()
            if widget is not None:
                widget.finish(stats)
            if shown:
                self.status.set_reply_stats(stats)
            reply.finished = True
        elif isinstance(event, ChatError):
            if widget is not None:
                widget.fail(lambda e=event: describe(e.kind, e.message, facts=e.facts))
            reply.finished = True

    def _on_chat_error(self, exc: BaseException) -> None:
        reply = self.reply
        def message() -> str:
            return user_message(exc)

        if reply is not None and reply.widget is not None and not reply.finished:
            reply.widget.fail(message)
        if reply is not None:
            reply.finished = True
        self.notice.show_message(message, kind="error")

    def _on_reply_finished(self) -> None:
        reply = self.reply
        self.reply = None
        if reply is not None and reply.widget is not None and reply.widget.streaming:
            reply.widget.finish({})
        self.composer.set_generating(False)
        if reply is not None and reply.conversation_id == self.current_id:
            self._show_alternatives()  # a regenerated reply says it is 2/2, with the earlier one a click away
        self._update_actions()
        self.sidebar.refresh(select=self.current_id)
        self.reply_finished.emit()

    # Models ------------------------------------------------------------------------------
    def _model_name(self) -> str | None:
        info = self.chat.loaded
        return info.name if info is not None else None

    def load_model(self, model: str | Path) -> GeneratorWorker | None:
        """Load a model (a path or a library name) in the background; replaces the current one."""
        if self.reply is not None:
            self.notice.show_message(self.tr("Stop the reply being written before switching models."))
            return None
        if self.loading is not None:
            return None
        self.loading_name = Path(str(model)).stem if str(model).lower().endswith(".gguf") else str(model)
        worker = GeneratorWorker(self._load_and_register, str(model), self.settings.load_options())
        worker.returned.connect(self._model_loaded)
        worker.errored.connect(self._model_failed)
        worker.finished.connect(self._load_finished)
        self.loading = worker
        self.status.set_loading(self.loading_name)
        self._update_composer()
        worker.start()
        return worker

    def _load_and_register(self, model: str, options: Any) -> Any:
        """In a worker: load the model, and list it in the library if it came from elsewhere."""
        return self.chat.load_model(model, options, remember=True)

    def _model_loaded(self, info: Any) -> None:
        self.settings.set("app.last_model", info.path)
        self._load_finished()
        self.status.set_model(info.name, info.n_ctx)
        for warning in getattr(info, "warnings", []) or []:
            self.notice.show_message(warning)
        self.model_loaded.emit(info)

    def _model_failed(self, exc: BaseException) -> None:
        self.status.set_model(self._model_name())
        self.notice.show_message(lambda: self.tr("The model could not be loaded: {error}").format(
                                     error=user_message(exc)),
                                 kind="error", action=lambda: self.tr("Choose another model"),
                                 callback=self.show_model_picker)
        self.model_load_failed.emit(user_message(exc))

    def _load_finished(self) -> None:
        self.loading = None
        self.loading_name = None
        self._update_composer()
        self.retranslate()

    def _update_actions(self) -> None:
        """Regenerate and edit need a loaded model and no reply being written."""
        self.chat_view.set_busy(self.reply is not None or self.loading is not None or self.chat.loaded is None)

    def _update_composer(self) -> None:
        self._update_actions()
        if self.loading is not None:
            self.composer.set_disabled_reason(
                self.tr("Loading {model}… you can type while you wait.").format(model=self.loading_name))
        elif self.chat.loaded is None:
            self.composer.set_disabled_reason(
                self.tr("No model is loaded. Choose or download a model to start chatting."), offer_model=True)
        else:
            self.composer.set_disabled_reason(None)

    # Alternatives of the last reply ---------------------------------------------------------
    def _show_alternatives(self) -> None:
        last = next((w for w in reversed(self.chat_view.messages) if w.role == "assistant"), None)
        if last is not None and last.message_id is not None and not last.streaming:
            last.set_alternatives(self.history.alternatives(last.message_id))

    def show_alternative(self, message_id: int) -> None:
        """Show an earlier (or later) reply to the last message instead of the one shown."""
        if self.reply is not None or self.current_id is None:
            return
        self.history.show_alternative(message_id)
        self.open_conversation(self.current_id)

    # A conversation's system prompt and export ---------------------------------------------
    def ask_system_prompt(self, conversation_id: int) -> None:
        from r1desk.app.qt import QInputDialog

        text, ok = QInputDialog.getMultiLineText(
            self, self.tr("System prompt"),
            self.tr("Instructions the model gets before this conversation (empty: none):"),
            self.history.system_prompt(conversation_id))
        if ok:
            self.set_system_prompt(conversation_id, text)

    def set_system_prompt(self, conversation_id: int, text: str) -> None:
        self.history.set_system_prompt(conversation_id, text)
        if conversation_id == self.current_id and self.reply is None:
            self.open_conversation(conversation_id)

    def ask_export(self, conversation_id: int) -> None:
        title = self.history.get_conversation(conversation_id).title or self.tr("Conversation")
        safe = "".join(c if c.isalnum() or c in " -_" else "_" for c in title).strip()[:60] or "conversation"
        path, chosen = QFileDialog.getSaveFileName(
            self, self.tr("Export the conversation"), str(Path.home() / f"{safe}.md"),
            self.tr("Markdown (*.md);;JSON (*.json);;Fine-tuning data, chat messages (*.jsonl)"))
        if path:
            self.export_conversation(conversation_id, path)

    def export_conversation(self, conversation_id: int, path: str | Path) -> bool:
        """Write the conversation as Markdown, JSON for a .json name, or a fine-tuning dataset line
        for a .jsonl name; a failure is said, not raised."""
        path = Path(path)
        if path.suffix.lower() == ".jsonl":
            from r1desk.app.errors import user_message
            from r1desk.engine.chat.dataset import write_dataset
            from r1desk.engine.errors import R1deskError

            try:
                summary = write_dataset(self.history, [conversation_id], path)
            except (R1deskError, OSError) as exc:
                self.notice.show_message(lambda: self.tr("The conversation could not be saved to {path}: {error}").format(
                    path=str(path), error=user_message(exc) if isinstance(exc, R1deskError) else str(exc)),
                    kind="error")
                return False
            self.notice.show_message(lambda: self.tr(
                "Saved {n} finished replies as fine-tuning data to {path}.").format(n=summary.replies, path=str(path)))
            return True
        fmt = "json" if path.suffix.lower() == ".json" else "md"
        text = (self.history.export_json(conversation_id) + "\n" if fmt == "json"
                else self.history.export_markdown(conversation_id))
        tmp = path.with_name(path.name + ".part")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self.notice.show_message(lambda: self.tr("The conversation could not be saved to {path}: {error}").format(
                path=str(path), error=exc.strerror or str(exc)), kind="error")
            return False
        self.notice.show_message(lambda: self.tr("Saved the conversation to {path}.").format(path=str(path)))
        return True

    def _new_system_prompt(self) -> str | None:
        """Only a new conversation takes the default: one that exists keeps its own (set from the sidebar)."""
        return self.settings.system_prompt() if self.current_id is None else None

    # The message's budget ------------------------------------------------------------------
    def _measure(self) -> None:
        text = self.composer.text().strip()
        if len(text) < MEASURE_FROM_CHARS or self.chat.loaded is None:
            self._show_budget(None)
            return
        if self.reply is not None or self.loading is not None or self._measure_worker is not None:
            self._measure_timer.start()  # the model is busy: count once it is free
            return
        key = (self.current_id, text)
        worker = GeneratorWorker(self.chat.measure, self.current_id, text, self.settings.sampling(),
                                 system=self._new_system_prompt())
        worker.returned.connect(lambda budget, key=key: self._measured_budget(key, budget))
        worker.errored.connect(lambda exc: log.info("could not measure the message: %s", exc))
        worker.finished.connect(lambda: setattr(self, "_measure_worker", None))
        self._measure_worker = worker
        worker.start()

    def _measured_budget(self, key: tuple, budget: Any) -> None:
        if key != (self.current_id, self.composer.text().strip()):
            self._measure_timer.start()  # typed on meanwhile: this count is stale
            return
        self._measured = key
        self._show_budget(budget)

    def _show_budget(self, budget: Any) -> None:
        self._budget = budget
        self.composer.set_budget(self._budget_words(budget), too_long=budget is not None and budget.outcome == "too-long")

    def _budget_words(self, budget: Any) -> str | None:
        if budget is None:
            return None
        sizes = self.tr("This message is {n} tokens; with the conversation, {total} of the {ctx} the context holds.").format(
            n=f"{budget.message_tokens:,}", total=f"{budget.prompt_tokens:,}", ctx=f"{budget.n_ctx:,}")
        if budget.outcome == "fits":
            return sizes if budget.prompt_tokens > budget.n_ctx // 4 else None
        if budget.outcome == "drops-older":
            return sizes + " " + self.tr("Older turns will be left out so that it fits.")
        if budget.outcome == "little-room":
            return sizes + " " + self.tr("It fits, but leaves less room for the answer than the reply limit.")
        if budget.n_ctx < budget.n_ctx_train:
            return sizes + " " + self.tr("It is too long to send: shorten it, or raise the context length in "
                                         "Settings (this model was trained for {train} tokens).").format(
                train=f"{budget.n_ctx_train:,}")
        return sizes + " " + self.tr("It is too long to send: shorten it (this is the longest context the "
                                     "model was trained for).")

    def choose_model_file(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Open a GGUF model"), str(Path.home()),
                                              self.tr("GGUF models (*.gguf)"))
        return path or None

    def open_model_file(self) -> None:
        path = self.choose_model_file()
        if path:
            self.load_model(path)

    # Dialogs -----------------------------------------------------------------------------
    def show_model_picker(self) -> None:
        from r1desk.app.modelpicker import ModelPicker

        dialog = self._dialogs.get("models")
        if dialog is None:
            dialog = ModelPicker(self)
            self._dialogs["models"] = dialog
        dialog.refresh()
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    def show_adapters(self) -> None:
        from r1desk.app.adapters import AdaptersDialog

        dialog = self._dialogs.get("adapters")
        if dialog is None:
            dialog = AdaptersDialog(self)
            self._dialogs["adapters"] = dialog
        else:
            dialog.refresh()  # the conversation may have changed since
        dialog.show()
        dialog.raise_()

    def show_hardware(self) -> None:
        from r1desk.app.hardware import HardwarePanel

        dialog = self._dialogs.get("hardware")
        if dialog is None:
            dialog = HardwarePanel(self)
            self._dialogs["hardware"] = dialog
        dialog.show()
        dialog.raise_()

    def show_settings(self) -> None:
        from r1desk.engine import paths

        dialog = self._dialogs.get("settings")
        if dialog is not None and dialog.isVisible():
            dialog.raise_()
            return
        dialog = SettingsDialog(self.settings, self, data_folder=str(paths.home()), estimator=self._estimate)
        dialog.applied.connect(self.settings_changed)
        self._dialogs["settings"] = dialog
        dialog.open()

    def _estimate(self, n_ctx: Any, n_gpu_layers: Any) -> None:
        from r1desk.app.modelpicker import request_estimate

        dialog = self._dialogs.get("settings")
        if dialog is not None:
            request_estimate(self, dialog, n_ctx, n_gpu_layers)

    def settings_changed(self, keys: list[str]) -> None:
        if "app.language" in keys:
            i18n.install(self.settings.get("app.language"))
        if "app.theme" in keys:
            theme.apply(self.settings.get("app.theme"))
            if self.reply is None and self.current_id is not None:
                self.open_conversation(self.current_id)  # rendered text takes the new colours
        if "data_folder" in keys:
            self.notice.show_message(self.tr("The new data folder is used from the next start."))
        self.server_panel.settings_changed(keys)
        if "cache.kv_disk_bytes" in keys:
            self.chat.set_snapshot_budget(int(self.settings.get("cache.kv_disk_bytes") or 0))
        info = self.chat.loaded
        if info is not None and any(k in keys for k in LOAD_KEYS) and self.reply is None:
            self.load_model(info.path)

    # Words -------------------------------------------------------------------------------
    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("r1desk"))
        name = self._model_name()
        if self.loading_name:
            self.model_button.setText(self.tr("Loading {model}…").format(model=self.loading_name))
        else:
            self.model_button.setText(name or self.tr("Choose a model"))
        self.model_button.setIcon(theme.icon("model"))
        self.model_button.setToolTip(self.tr("Models on this computer and recommended downloads"))
        self.adapters_button.setIcon(theme.icon("adapters"))
        self.adapters_button.setToolTip(self.tr("Adapters: fine-tunes applied on top of the model"))
        self.hardware_button.setIcon(theme.icon("hardware"))
        self.hardware_button.setToolTip(self.tr("What this computer can run"))
        self.settings_button.setIcon(theme.icon("settings"))
        self.settings_button.setToolTip(self.tr("Settings (Ctrl+,)"))
        self.notice.close_button.setToolTip(self.tr("Close"))
        self._update_composer()
        if hasattr(self, "_budget"):
            self.composer.set_budget(self._budget_words(self._budget), too_long=self.composer._too_long)

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() in (QEvent.Type.LanguageChange, QEvent.Type.PaletteChange):
            self.retranslate()
        super().changeEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        from r1desk.app import workers

        self.stop()
        self.server_panel.shut_down()
        self.documents.shut_down()
        for worker in workers.running():
            worker.quit()
        workers.wait_for_all(5000)
        super().closeEvent(event)
