"""The conversation pane: messages as Markdown, streamed by appending, with thinking and stats.

Cost per streamed token stays flat as a reply grows: finished Markdown blocks are rendered
once into their own frame of the text document; only the block being written is rendered
again; reasoning and open code blocks are appended as plain text.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from r1desk.app import theme
from r1desk.app.i18n import translate
from r1desk.app.markdown import (
    BlockSplitter,
    CodeClose,
    CodeLine,
    CodeOpen,
    CodePartial,
    Op,
    Tail,
    TextBlock,
    highlight_html,
    split_all,
)
from r1desk.app.qt import (
    QDesktopServices,
    QElapsedTimer,
    QEvent,
    QFrame,
    QGuiApplication,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    Qt,
    QTextBlockFormat,
    QTextBrowser,
    QTextCharFormat,
    QTextCursor,
    QTextEdit,
    QTextFrameFormat,
    QTimer,
    QToolButton,
    QUrl,
    QVBoxLayout,
    QWidget,
    Signal,
)
from r1desk.app.sources import SourcesList

# Above this many characters the block being written is re-rendered at most every
# TAIL_INTERVAL_MS instead of on every token.
TAIL_RENDER_LIMIT = 1500
TAIL_INTERVAL_MS = 120


class AutoHeightBrowser(QTextBrowser):
    """A read-only rich-text view as tall as its content; the chat pane does the scrolling."""

    def __init__(self, parent: QWidget | None = None, *, wrap: bool = True):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAlwaysOff if wrap else Qt.ScrollBarPolicy.ScrollBarAsNeeded
        )
        self.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth if wrap else QTextEdit.LineWrapMode.NoWrap)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setOpenLinks(False)
        self.anchorClicked.connect(_open_link)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("background: transparent;")
        self.document().setDocumentMargin(2)
        self.document().setDefaultStyleSheet(theme.document_css())
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._wrap = wrap
        self.setFixedHeight(self._wanted_height())

    def _wanted_height(self) -> int:
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth()
        if not self._wrap and self.document().idealWidth() > self.viewport().width():
            height += self.horizontalScrollBar().sizeHint().height()
        return max(height, 4)

    def _fit(self, *_: Any) -> None:
        height = self._wanted_height()
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit()

    def wheelEvent(self, event) -> None:  # noqa: N802 - let the chat pane scroll
        if self._wrap or event.angleDelta().x() == 0:
            event.ignore()
        else:
            super().wheelEvent(event)

    def restyle(self) -> None:
        self.document().setDefaultStyleSheet(theme.document_css())


def _open_link(url: QUrl) -> None:
    if url.scheme() in ("http", "https", "mailto"):
        QDesktopServices.openUrl(url)


class TextSegment(AutoHeightBrowser):
    """Rendered Markdown blocks, each in its own frame; the last frame is the block being written."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._tail_frame = None
        self._pending_tail: str | None = None
        self._tail_timer = QTimer(self)
        self._tail_timer.setSingleShot(True)
        self._tail_timer.setInterval(TAIL_INTERVAL_MS)
        self._tail_timer.timeout.connect(self._render_pending_tail)
        self._gap = QTextBlockFormat()
        self._gap.setLineHeight(0, 2)  # 2 = QTextBlockFormat.FixedHeight: the block between frames is 0 px
        self._gap_chars = QTextCharFormat()
        self._gap_chars.setFontPointSize(1)
        self._frame_format = QTextFrameFormat()
        self._frame_format.setBottomMargin(6)
        cursor = QTextCursor(self.document())
        cursor.setBlockFormat(self._gap)
        cursor.setBlockCharFormat(self._gap_chars)
        self.markdown_blocks: list[str] = []
        self.citations: frozenset[int] = frozenset()  # the reply's sources: its [n] become links

    def set_tail(self, markdown: str) -> None:
        if len(markdown) > TAIL_RENDER_LIMIT:
            self._pending_tail = markdown
            if not self._tail_timer.isActive():
                self._tail_timer.start()
            return
        self._tail_timer.stop()
        self._pending_tail = None
        self._render_tail(markdown)

    def finish_block(self, markdown: str) -> None:
        self._tail_timer.stop()
        self._pending_tail = None
        self._render_tail(markdown)
        self._tail_frame = None
        self.markdown_blocks.append(markdown)

    def _render_pending_tail(self) -> None:
        if self._pending_tail is not None:
            markdown, self._pending_tail = self._pending_tail, None
            self._render_tail(markdown)

    def _render_tail(self, markdown: str) -> None:
        from r1desk.app.markdown import render_html

        doc = self.document()
        if self._tail_frame is None:
            if not markdown:
                return
            cursor = QTextCursor(doc)
            cursor.movePosition(QTextCursor.MoveOperation.End)
            self._tail_frame = cursor.insertFrame(self._frame_format)
            after = QTextCursor(doc)
            after.movePosition(QTextCursor.MoveOperation.End)
            after.setBlockFormat(self._gap)
            after.setBlockCharFormat(self._gap_chars)
        frame = self._tail_frame
        cursor = QTextCursor(doc)
        cursor.setPosition(frame.firstPosition())
        cursor.setPosition(frame.lastPosition(), QTextCursor.MoveMode.KeepAnchor)
        cursor.beginEditBlock()
        cursor.removeSelectedText()
        cursor.setBlockFormat(QTextBlockFormat())
        cursor.setCharFormat(QTextCharFormat())
        if markdown:
            # The first inserted block merges into the frame's empty one and loses its block
            # format (lists, tables); an empty paragraph in front takes that hit instead.
            cursor.insertHtml("<p></p>" + render_html(markdown, self.citations))
            first = doc.findBlock(frame.firstPosition())
            if first.length() == 1 and first.next().isValid() and frame.lastPosition() > first.position():
                QTextCursor(first).deleteChar()
        cursor.endEditBlock()


class CodeBlock(QFrame):
    """A fenced code block: language, a Copy button, the code (highlighted once it is complete)."""

    def __init__(self, language: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("CodeBlock")
        self.language = language
        self._lines: list[str] = []
        self._partial = ""
        self.closed = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 6)
        layout.setSpacing(2)
        header = QHBoxLayout()
        self.language_label = QLabel(language)
        self.language_label.setObjectName("CodeHeader")
        self.copy_button = QToolButton()
        self.copy_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.copy_button.clicked.connect(self.copy)
        header.addWidget(self.language_label)
        header.addStretch(1)
        header.addWidget(self.copy_button)
        layout.addLayout(header)
        self.body = AutoHeightBrowser(self, wrap=False)
        self.body.document().setDefaultFont(_monospace())
        layout.addWidget(self.body)
        self._copied = QTimer(self)
        self._copied.setSingleShot(True)
        self._copied.setInterval(1500)
        self._copied.timeout.connect(self.retranslate)
        self.retranslate()

    @property
    def code(self) -> str:
        return "".join(self._lines) + self._partial

    def append_line(self, text: str) -> None:
        self._set_partial("")
        self._lines.append(text)
        self._append(text)

    def set_partial(self, text: str) -> None:
        self._set_partial(text)

    def _set_partial(self, text: str) -> None:
        if text == self._partial:
            return
        cursor = QTextCursor(self.body.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if self._partial:
            cursor.movePosition(QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor,
                                len(self._partial))
        cursor.insertText(text)
        self._partial = text

    def _append(self, text: str) -> None:
        cursor = QTextCursor(self.body.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)

    def close_block(self) -> None:
        """The fence closed: highlight the whole block once."""
        self._set_partial("")
        self.closed = True
        self.body.setHtml(highlight_html(self.code, self.language))

    def set_code(self, code: str) -> None:
        self._lines = [code]
        self._partial = ""
        self.close_block()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code.rstrip("\n"))
        self.copy_button.setText(self.tr("Copied"))
        self.copy_button.setIcon(theme.icon("check", "muted"))
        self._copied.start()

    def retranslate(self) -> None:
        self.language_label.setText(self.language or self.tr("code"))
        self.copy_button.setText(self.tr("Copy"))
        self.copy_button.setIcon(theme.icon("copy", "muted"))
        self.copy_button.setToolTip(self.tr("Copy this code"))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        elif event.type() == QEvent.Type.PaletteChange:
            self.body.restyle()
            if self.closed:
                self.body.setHtml(highlight_html(self.code, self.language))
            self.retranslate()
        super().changeEvent(event)


def _monospace():
    from r1desk.app.qt import QFontDatabase

    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


class MarkdownView(QWidget):
    """An answer: text segments and code blocks, fed by a BlockSplitter as it streams."""

    citation_clicked = Signal(int)  # an [n] marker of the answer: its source n

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.citations: frozenset[int] = frozenset()
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self._splitter = BlockSplitter()
        self._text: TextSegment | None = None
        self._code: CodeBlock | None = None
        self._parts: list[str] = []
        self.segments: list[QWidget] = []

    @property
    def markdown(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def append(self, text: str) -> None:
        self._parts.append(text)
        self._apply(self._splitter.feed(text))

    def finish(self) -> None:
        self._apply(self._splitter.finish())

    def set_markdown(self, text: str) -> None:
        """Show a whole message at once (from history), in place of what it showed."""
        for widget in self.segments:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        self.segments, self._text, self._code = [], None, None
        self._parts = [text]
        self._apply(split_all(text))
        self._splitter = BlockSplitter()

    def code_blocks(self) -> list[CodeBlock]:
        return [w for w in self.segments if isinstance(w, CodeBlock)]

    def set_citations(self, numbers: frozenset[int]) -> None:
        """The numbers of the reply's sources: text rendered from now on links its [n] markers."""
        self.citations = frozenset(numbers)
        for segment in self.segments:
            if isinstance(segment, TextSegment):
                segment.citations = self.citations

    def _text_segment(self) -> TextSegment:
        if self._text is None:
            self._text = TextSegment(self)
            self._text.citations = self.citations
            self._text.anchorClicked.connect(self._anchor)
            self._add(self._text)
        return self._text

    def _anchor(self, url: QUrl) -> None:
        from r1desk.app.markdown import CITATION_SCHEME

        if url.scheme() == CITATION_SCHEME and url.path().isdigit():
            self.citation_clicked.emit(int(url.path()))

    def _add(self, widget: QWidget) -> None:
        self.segments.append(widget)
        self._layout.addWidget(widget)

    def _apply(self, ops: list[Op]) -> None:
        for op in ops:
            if isinstance(op, Tail):
                if op.markdown or self._text is not None:
                    self._text_segment().set_tail(op.markdown)
            elif isinstance(op, TextBlock):
                self._text_segment().finish_block(op.markdown)
            elif isinstance(op, CodeOpen):
                self._text = None
                self._code = CodeBlock(op.language, self)
                self._add(self._code)
            elif isinstance(op, CodeLine):
                self._code.append_line(op.text)
            elif isinstance(op, CodePartial):
                self._code.set_partial(op.text)
            elif isinstance(op, CodeClose):
                self._code.close_block()
                self._code = None


class ThinkingSection(QWidget):
    """R1's reasoning: streams open with a running clock, folds away when the answer starts."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.button = QToolButton(self)
        self.button.setObjectName("ThinkingButton")
        self.button.setCheckable(True)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.toggled.connect(self._toggled)
        self.body = AutoHeightBrowser(self)
        self.body.setObjectName("ThinkingBody")
        self.body.setVisible(False)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.body)
        self._clock = QElapsedTimer()
        self._tick = QTimer(self)
        self._tick.setInterval(100)
        self._tick.timeout.connect(self.retranslate)
        self.state = "idle"  # idle | thinking | done
        self.seconds: float | None = None
        self._chars = 0
        self._apply_colour()
        self.retranslate()

    @property
    def expanded(self) -> bool:
        return self.button.isChecked()

    @property
    def text(self) -> str:
        return self.body.toPlainText()

    def start(self) -> None:
        self.state = "thinking"
        self._clock.start()
        self._tick.start()
        self.setVisible(True)
        self.button.setChecked(True)
        self.retranslate()

    def append(self, text: str) -> None:
        if self.state == "idle":
            self.start()
        cursor = QTextCursor(self.body.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self._chars += len(text)

    def finish(self, seconds: float | None = None) -> None:
        """Thinking is over (the answer started, or the reply ended): fold it away."""
        if self.state == "thinking":
            self.seconds = seconds if seconds is not None else self._clock.elapsed() / 1000.0
        elif seconds is not None:
            self.seconds = seconds
        self.state = "done"
        self._tick.stop()
        self.button.setChecked(False)
        self.retranslate()

    def set_text(self, text: str, seconds: float | None) -> None:
        self.body.setPlainText(text)
        self._chars = len(text)
        self.state = "done"
        self.seconds = seconds
        self.button.setChecked(False)
        self.retranslate()

    def _toggled(self, on: bool) -> None:
        self.body.setVisible(on)
        self.button.setIcon(theme.icon("chevron-down" if on else "chevron-right", "thinking"))

    def _apply_colour(self) -> None:
        self.body.document().setDefaultStyleSheet(theme.document_css())
        c = theme.colors()
        self.body.setStyleSheet(
            f"background: transparent; color: {c['thinking']}; border: none;"
            f" border-left: 2px solid {c['border']}; padding-left: 8px;"
        )
        self.button.setIcon(theme.icon("chevron-down" if self.expanded else "chevron-right", "thinking"))

    def retranslate(self) -> None:
        if self.state == "thinking":
            seconds = self._clock.elapsed() / 1000.0
            self.button.setText(self.tr("Thinking… {seconds} s").format(seconds=f"{seconds:.1f}"))
        elif self.seconds is not None:
            self.button.setText(self.tr("Thought for {seconds} s").format(seconds=f"{self.seconds:.1f}"))
        else:
            self.button.setText(self.tr("Thinking"))
        self.button.setToolTip(self.tr("Show or hide the model's reasoning"))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        elif event.type() == QEvent.Type.PaletteChange:
            self._apply_colour()
        super().changeEvent(event)


def stats_text(stats: dict[str, Any], adapters: list[dict[str, Any]] | None = None) -> str:
    """One line of figures for a reply's footer, and the adapters that made it."""
    parts = []
    if adapters:
        parts.append(translate("Stats", "with {adapters}").format(
            adapters=", ".join(f"{a['name']} × {float(a['scale']):g}" for a in adapters)))
    tokens = stats.get("completion_tokens")
    if tokens:
        parts.append(translate("Stats", "{n} tokens").format(n=tokens))
    tps = stats.get("tokens_per_second")
    if tps:
        parts.append(translate("Stats", "{tps} tokens/s").format(tps=f"{tps:.1f}"))
    ttft = stats.get("ttft_ms")
    if ttft is not None:
        parts.append(translate("Stats", "first token {seconds} s").format(seconds=f"{ttft / 1000:.2f}"))
    read = stats.get("prompt_tokens_read")
    if read is not None and stats.get("prompt_tokens"):
        reused = int(stats.get("cached_tokens") or 0)
        words = {
            "memory": translate("Stats", "prompt: {read} tokens read, {reused} restored from memory"),
            "disk": translate("Stats", "prompt: {read} tokens read, {reused} restored from disk"),
        }.get(stats.get("reused_from") or "", translate("Stats", "prompt: {read} tokens read, {reused} reused"))
        if not reused:
            words = translate("Stats", "prompt: {read} tokens read")
        parts.append(words.format(read=f"{int(read):,}", reused=f"{reused:,}"))
    total = stats.get("total_seconds")
    if total:
        parts.append(translate("Stats", "{seconds} s in all").format(seconds=f"{total:.1f}"))
    dropped = stats.get("dropped_turns")
    if dropped:
        parts.append(translate("Stats", "{n} earlier messages left out to fit the context").format(n=dropped))
    reason = stats.get("finish_reason")
    if reason == "cancelled":
        parts.append(translate("Stats", "stopped"))
    elif reason == "length" and stats.get("n_ctx") and (stats.get("context_used") or 0) < stats["n_ctx"]:
        answer = (stats.get("completion_tokens") or 0) - (stats.get("reasoning_tokens") or 0)
        parts.append(translate("Stats", "stopped at the reply limit of {n} tokens (Longest reply, in Settings › "
                                        "Sampling)").format(n=f"{answer:,}"))
    elif reason == "length":
        parts.append(translate("Stats", "cut off at the length limit"))
    return " · ".join(parts)


class MessageWidget(QFrame):
    """One message: the user's text, or the model's thinking, answer, footer and actions."""

    regenerate_requested = Signal(object)
    edit_submitted = Signal(object, str)
    alternative_requested = Signal(int)  # a message id: show that reply instead of this one
    source_requested = Signal(object)  # one of the reply's sources, to open at its place

    def __init__(self, role: str, *, message_id: int | None = None, model: str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.message_id = message_id
        self.model = model
        self.streaming = False
        self.status = "complete"
        self._error: str | Callable[[], str] | None = None
        self.stats: dict[str, Any] = {}
        self.adapters: list[dict[str, Any]] = []  # the LoRA adapters that made this reply
        self.prompt_progress: tuple[int, int] | None = None  # (done, total) while a long prompt is read
        self.setObjectName("MessageUser" if role == "user" else "MessageAssistant")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(14, 10, 14, 8)
        outer.setSpacing(4)
        self.role_label = QLabel()
        self.role_label.setObjectName("RoleLabel")
        outer.addWidget(self.role_label)
        self.thinking: ThinkingSection | None = None
        self.content: MarkdownView | None = None
        self.user_text: AutoHeightBrowser | None = None
        if role == "user":
            self.user_text = AutoHeightBrowser(self)
            outer.addWidget(self.user_text)
        else:
            self.thinking = ThinkingSection(self)
            self.thinking.setVisible(False)
            outer.addWidget(self.thinking)
            self.content = MarkdownView(self)
            outer.addWidget(self.content)
        self.sources: SourcesList | None = None
        if role == "assistant":
            self.sources = SourcesList(self)
            self.sources.source_requested.connect(self.source_requested)
            self.content.citation_clicked.connect(self._cited)
            outer.addWidget(self.sources)
        self.editor: QPlainTextEdit | None = None
        self._edit_row: QWidget | None = None
        self.notice = QLabel()
        self.notice.setObjectName("MessageNotice")
        self.notice.setWordWrap(True)
        self.notice.setVisible(False)
        outer.addWidget(self.notice)
        footer = QHBoxLayout()
        footer.setSpacing(2)
        self.copy_button = self._action("copy")
        self.copy_button.clicked.connect(self.copy)
        self.regenerate_button = self._action("regenerate")
        self.regenerate_button.clicked.connect(lambda: self.regenerate_requested.emit(self))
        self.edit_button = self._action("edit")
        self.edit_button.clicked.connect(self.start_editing)
        self.regenerate_button.setVisible(role == "assistant")
        self.edit_button.setVisible(role == "user")
        # Earlier replies to the same message (regenerate keeps them): ‹ 2/3 ›
        self._alternatives: tuple[int, int, int | None, int | None] | None = None
        self.previous_button = self._action("chevron-left")
        self.previous_button.clicked.connect(lambda: self._flip(2))
        self.alternative_label = QLabel()
        self.alternative_label.setObjectName("StatsFooter")
        self.next_button = self._action("chevron-right")
        self.next_button.clicked.connect(lambda: self._flip(3))
        for w in (self.previous_button, self.alternative_label, self.next_button):
            w.setVisible(False)
        footer.addWidget(self.copy_button)
        footer.addWidget(self.edit_button)
        footer.addWidget(self.regenerate_button)
        footer.addWidget(self.previous_button)
        footer.addWidget(self.alternative_label)
        footer.addWidget(self.next_button)
        self.stats_label = QLabel()
        self.stats_label.setObjectName("StatsFooter")
        footer.addSpacing(6)
        footer.addWidget(self.stats_label, 1)
        outer.addLayout(footer)
        self._copied = QTimer(self)
        self._copied.setSingleShot(True)
        self._copied.setInterval(1500)
        self._copied.timeout.connect(self._restore_copy_icon)
        self.retranslate()

    def _action(self, icon: str) -> QToolButton:
        button = QToolButton(self)
        button.setObjectName("MessageAction")
        button.setIcon(theme.icon(icon, "muted"))
        button.setAutoRaise(True)
        button.setProperty("icon_name", icon)
        return button

    # Content -----------------------------------------------------------------------------
    @property
    def text(self) -> str:
        if self.user_text is not None:
            return self.user_text.toPlainText()
        return self.content.markdown if self.content else ""

    @property
    def reasoning(self) -> str:
        return self.thinking.text if self.thinking else ""

    def set_user_text(self, text: str) -> None:
        self.user_text.setPlainText(text)

    def start_streaming(self) -> None:
        self.streaming = True
        self.status = "streaming"
        self._update_actions()

    def set_prompt_progress(self, done: int | None, total: int | None = None) -> None:
        """How far the model has read a long prompt, shown until the reply's first words (None: gone)."""
        progress = (done, total) if done is not None and total else None
        if progress != self.prompt_progress:
            self.prompt_progress = progress
            self._show_footer()

    def append_reasoning(self, text: str) -> None:
        if self.prompt_progress is not None:
            self.set_prompt_progress(None)
        self.thinking.setVisible(True)
        self.thinking.append(text)

    def append_content(self, text: str) -> None:
        if self.prompt_progress is not None:
            self.set_prompt_progress(None)
        if self.thinking.state == "thinking":
            self.thinking.finish()
        self.content.append(text)

    def set_sources(self, sources: list[Any], focus: dict[int, str] | None = None) -> None:
        """The passages of the user's documents this reply was given; its [n] markers link to them.
        ``focus``: for source n, the part of it that matched the question (shown on hover)."""
        if self.sources is None:
            return
        self.sources.set_sources(sources, focus)
        self.content.set_citations(frozenset(s.n for s in sources))
        if not self.streaming:
            if self.content.markdown:
                self.content.set_markdown(self.content.markdown)
            self._mark_cited()

    def _mark_cited(self) -> None:
        from r1desk.app.markdown import CITATION

        if self.sources is None or not self.sources.sources:
            return
        used = {int(n) for m in CITATION.finditer(self.content.markdown) for n in re.split(r"\D+", m.group(1)) if n}
        self.sources.set_cited(used & {s.n for s in self.sources.sources})

    def _cited(self, n: int) -> None:
        source = next((s for s in (self.sources.sources if self.sources else []) if s.n == n), None)
        if source is not None:
            self.source_requested.emit(source)

    def finish(self, stats: dict[str, Any] | None = None) -> None:
        self.content.finish()
        self._mark_cited()
        stats = stats or {}
        if self.thinking.state == "thinking":
            self.thinking.finish(stats.get("reasoning_seconds"))
        elif stats.get("reasoning_seconds") is not None and self.thinking.state == "done":
            self.thinking.finish(stats["reasoning_seconds"])
        self.streaming = False
        self.prompt_progress = None
        self.stats = stats
        reason = stats.get("finish_reason")
        self.status = "cancelled" if reason == "cancelled" else "complete"
        self.retranslate()
        self._update_actions()

    @property
    def error(self) -> str | None:
        """The error in the current language (re-worded when the language changes)."""
        return self._error() if callable(self._error) else self._error

    @error.setter
    def error(self, value: str | Callable[[], str] | None) -> None:
        self._error = value

    def fail(self, message: str | Callable[[], str]) -> None:
        if self.content is not None:
            self.content.finish()
        if self.thinking is not None and self.thinking.state == "thinking":
            self.thinking.finish()
        self.streaming = False
        self.prompt_progress = None
        self.status = "error"
        self.error = message
        self.retranslate()
        self._update_actions()

    def load(self, message: Any) -> None:
        """Show a message from the history database."""
        self.message_id = message.id
        self.status = message.status
        self.error = message.error
        self.stats = dict(message.stats or {})
        self.adapters = list(getattr(message, "adapters", None) or [])
        if message.status == "cancelled":
            self.stats.setdefault("finish_reason", "cancelled")
        self.model = message.model or self.model
        if self.role == "user":
            self.set_user_text(message.content)
        else:
            if message.reasoning.strip():
                self.thinking.setVisible(True)
                self.thinking.set_text(message.reasoning, self.stats.get("reasoning_seconds"))
            self.content.set_markdown(message.content)
        self.retranslate()
        self._update_actions()

    # Actions -----------------------------------------------------------------------------
    def set_last(self, last: bool) -> None:
        self._is_last = last
        self._update_actions()

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._update_actions()

    def set_alternatives(self, ids: list[int]) -> None:
        """This reply is one of ``ids`` (replies to the same message, oldest first)."""
        if self.message_id not in ids or len(ids) < 2:
            self._alternatives = None
        else:
            i = ids.index(self.message_id)
            self._alternatives = (i + 1, len(ids), ids[i - 1] if i > 0 else None,
                                  ids[i + 1] if i + 1 < len(ids) else None)
        self.retranslate()
        self._update_actions()

    def _flip(self, which: int) -> None:
        if self._alternatives is not None and self._alternatives[which] is not None:
            self.alternative_requested.emit(self._alternatives[which])

    def _update_actions(self) -> None:
        busy = getattr(self, "_busy", False)
        last = getattr(self, "_is_last", False)
        self.regenerate_button.setVisible(self.role == "assistant" and last and not self.streaming)
        self.regenerate_button.setEnabled(not busy)
        self.edit_button.setVisible(self.role == "user" and self.editor is None)
        self.edit_button.setEnabled(not busy)
        self.copy_button.setEnabled(not self.streaming)
        alt = self._alternatives
        for w in (self.previous_button, self.alternative_label, self.next_button):
            w.setVisible(alt is not None and not self.streaming)
        if alt is not None:
            self.previous_button.setEnabled(not busy and alt[2] is not None)
            self.next_button.setEnabled(not busy and alt[3] is not None)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text)
        self.copy_button.setIcon(theme.icon("check", "muted"))
        self._copied.start()

    def _restore_copy_icon(self) -> None:
        self.copy_button.setIcon(theme.icon("copy", "muted"))

    def start_editing(self) -> None:
        if self.role != "user" or self.editor is not None:
            return
        self.editor = QPlainTextEdit(self)
        self.editor.setPlainText(self.text)
        self.editor.setMinimumHeight(80)
        self._edit_row = QWidget(self)
        row = QHBoxLayout(self._edit_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addStretch(1)
        self._cancel_edit = QPushButton(self._edit_row)
        self._cancel_edit.clicked.connect(self.stop_editing)
        self._send_edit = QPushButton(self._edit_row)
        self._send_edit.setObjectName("Primary")
        self._send_edit.clicked.connect(self._submit_edit)
        row.addWidget(self._cancel_edit)
        row.addWidget(self._send_edit)
        layout: QVBoxLayout = self.layout()
        index = layout.indexOf(self.user_text)
        self.user_text.setVisible(False)
        layout.insertWidget(index + 1, self.editor)
        layout.insertWidget(index + 2, self._edit_row)
        self.retranslate()
        self._update_actions()
        self.editor.setFocus()

    def stop_editing(self) -> None:
        if self.editor is None:
            return
        self.editor.deleteLater()
        self._edit_row.deleteLater()
        self.editor = None
        self._edit_row = None
        self.user_text.setVisible(True)
        self._update_actions()

    def _submit_edit(self) -> None:
        text = self.editor.toPlainText().strip()
        if text:
            self.edit_submitted.emit(self, text)

    # Words -------------------------------------------------------------------------------
    def retranslate(self) -> None:
        if self.role == "user":
            self.role_label.setText(self.tr("You"))
        else:
            self.role_label.setText(self.model or self.tr("Assistant"))
        self.copy_button.setToolTip(self.tr("Copy message"))
        self.regenerate_button.setToolTip(self.tr("Regenerate this reply (this one is kept: flip back with ‹ ›)"))
        self.previous_button.setToolTip(self.tr("The earlier reply"))
        self.next_button.setToolTip(self.tr("The later reply"))
        if getattr(self, "_alternatives", None) is not None:
            self.alternative_label.setText(f"{self._alternatives[0]}/{self._alternatives[1]}")
        self.edit_button.setToolTip(self.tr("Edit and send again"))
        if self.editor is not None:
            self._cancel_edit.setText(self.tr("Cancel"))
            self._send_edit.setText(self.tr("Send"))
        self._show_footer()
        notice = ""
        if self.status == "error":
            notice = self.tr("The reply failed: {error}").format(error=self.error or self.tr("unknown error"))
        elif self.status == "interrupted":
            notice = self.tr("This reply was interrupted (the app was closed while it was written).")
        self.notice.setText(notice)
        self.notice.setVisible(bool(notice))

    def _show_footer(self) -> None:
        if self.prompt_progress is not None:
            done, total = self.prompt_progress
            text = self.tr("Reading the prompt… {done} / {total} tokens").format(done=f"{done:,}", total=f"{total:,}")
        else:
            text = stats_text(self.stats, self.adapters) if self.stats else ""
        self.stats_label.setText(text)

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        elif event.type() == QEvent.Type.PaletteChange:
            for button in (self.copy_button, self.regenerate_button, self.edit_button):
                button.setIcon(theme.icon(button.property("icon_name"), "muted"))
            if self.user_text is not None:
                self.user_text.restyle()
        super().changeEvent(event)


class ChatView(QScrollArea):
    """The messages of one conversation, newest at the bottom, following the stream."""

    regenerate_requested = Signal(object)
    edit_submitted = Signal(object, str)
    alternative_requested = Signal(int)  # show this reply instead
    source_requested = Signal(object)  # a source of a reply, to open at its place

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ChatArea")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._container = QWidget()
        self._container.setObjectName("ChatContainer")
        self._column = QVBoxLayout(self._container)
        self._column.setContentsMargins(24, 16, 24, 16)
        self._column.setSpacing(10)
        self._empty = self._make_empty_state()
        self._column.addWidget(self._empty)
        self._column.addStretch(1)
        self.setWidget(self._container)
        self.messages: list[MessageWidget] = []
        self._follow = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._range_changed)
        self.retranslate()

    def _make_empty_state(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 80, 0, 0)
        self._empty_title = QLabel()
        self._empty_title.setObjectName("EmptyTitle")
        self._empty_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty_text = QLabel()
        self._empty_text.setObjectName("EmptyText")
        self._empty_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty_text.setWordWrap(True)
        layout.addWidget(self._empty_title)
        layout.addWidget(self._empty_text)
        return box

    def retranslate(self) -> None:
        self._empty_title.setText(self.tr("What can I help you with?"))
        self._empty_text.setText(self.tr(
            "Everything runs on this computer: your conversations never leave it.\n"
            "Enter sends, Shift+Enter starts a new line."
        ))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    # Building ----------------------------------------------------------------------------
    def clear(self) -> None:
        for widget in self.messages:
            self._column.removeWidget(widget)
            widget.deleteLater()
        self.messages = []
        self._empty.setVisible(True)
        self._follow = True

    def load(self, messages: list[Any], model: str | None = None) -> None:
        self.clear()
        for message in messages:
            if message.role == "system":
                continue
            widget = self._insert(MessageWidget(message.role, message_id=message.id, model=model))
            widget.load(message)
        self._mark_last()
        self.scroll_to_bottom()

    def add_user(self, text: str, message_id: int | None = None) -> MessageWidget:
        widget = self._insert(MessageWidget("user", message_id=message_id))
        widget.set_user_text(text)
        self._mark_last()
        self._follow = True
        return widget

    def add_assistant(self, model: str | None = None) -> MessageWidget:
        widget = self._insert(MessageWidget("assistant", model=model))
        widget.start_streaming()
        self._mark_last()
        self._follow = True
        self.scroll_to_bottom()
        return widget

    def remove_from(self, widget: MessageWidget) -> None:
        """Remove a message and everything after it (regenerate, edit-and-resend)."""
        if widget not in self.messages:
            return
        index = self.messages.index(widget)
        for gone in self.messages[index:]:
            self._column.removeWidget(gone)
            gone.deleteLater()
        self.messages = self.messages[:index]
        self._empty.setVisible(not self.messages)
        self._mark_last()

    def set_busy(self, busy: bool) -> None:
        for widget in self.messages:
            widget.set_busy(busy)

    def _insert(self, widget: MessageWidget) -> MessageWidget:
        self._empty.setVisible(False)
        widget.regenerate_requested.connect(self.regenerate_requested)
        widget.edit_submitted.connect(self.edit_submitted)
        widget.alternative_requested.connect(self.alternative_requested)
        widget.source_requested.connect(self.source_requested)
        # Before the trailing stretch.
        self._column.insertWidget(self._column.count() - 1, widget)
        self.messages.append(widget)
        return widget

    def _mark_last(self) -> None:
        for i, widget in enumerate(self.messages):
            widget.set_last(i == len(self.messages) - 1)

    # Following the stream ----------------------------------------------------------------
    def _scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 8

    def _range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)

    def scroll_to_bottom(self) -> None:
        self._follow = True
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
