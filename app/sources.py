"""A reply's sources: the list under the answer, and opening a source at the place the answer cites.

The sources are passages of the user's documents that the chat model was given (live, as the
engine's ``Sources`` event, or saved with the reply). Each opens where it was found: a PDF in
the app at its page with the passage highlighted (Qt PDF), a text-like file at its line with
the passage marked, anything else in the system's own viewer. The passage is highlighted from
the text the reply kept, so a file changed since is said to have changed, not mis-marked.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

from r1desk.app import theme
from r1desk.app.i18n import translate
from r1desk.app.qt import (
    QDesktopServices,
    QDialog,
    QEvent,
    QHBoxLayout,
    QLabel,
    QLayout,
    QPdfDocument,
    QPdfSearchModel,
    QPdfView,
    QPlainTextEdit,
    QPoint,
    QPointF,
    QPushButton,
    QRect,
    QSize,
    QSizePolicy,
    Qt,
    QTextCharFormat,
    QTextCursor,
    QTextEdit,
    QTimer,
    QToolButton,
    QUrl,
    QVBoxLayout,
    QWidget,
    QWidgetItem,
    Signal,
)

EXCERPT_TOOLTIP_CHARS = 800  # a chunk is about 600 characters: the matched one whole
SEARCH_MAX_CHARS = 600  # the longest passage handed to the PDF search to highlight
VIEW_MAX_BYTES = 8 << 20  # what the text viewer reads of a file (the index reads as much)
TEXT_KINDS = frozenset({"text", "code", "markdown", "csv"})  # extracted text is the file's own: offsets hold
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；])\s*")


# ---------------------------------------------------------------------------------------
# Where a source is, in words.


def excerpt_of(source: Any) -> str:
    return getattr(source, "excerpt", None) or getattr(source, "text", "") or ""


def place_text(source: Any) -> str:
    """"page 3", "pages 3-4", "lines 10-24" in the user's language; "" when the place is unknown."""
    page, page_end = getattr(source, "page", None), getattr(source, "page_end", None)
    if page is not None:
        if page_end and page_end != page:
            return translate("Sources", "pages {first}–{last}").format(first=page, last=page_end)
        return translate("Sources", "page {n}").format(n=page)
    first, last = getattr(source, "line_start", None), getattr(source, "line_end", None)
    if first is not None:
        if last and last != first:
            return translate("Sources", "lines {first}–{last}").format(first=first, last=last)
        return translate("Sources", "line {n}").format(n=first)
    return ""


def source_label(source: Any) -> str:
    place = place_text(source)
    name = Path(source.path).name
    return f"[{source.n}] {name} · {place}" if place else f"[{source.n}] {name}"


def source_tooltip(source: Any, focus: str | None = None) -> str:
    text = " ".join((focus or excerpt_of(source)).split())
    if len(text) > EXCERPT_TOOLTIP_CHARS:
        text = text[:EXCERPT_TOOLTIP_CHARS].rsplit(" ", 1)[0] + "…"
    headings = " › ".join(getattr(source, "headings", None) or [])
    parts = [f"<b>{html.escape(Path(source.path).name)}</b>"]
    where = ", ".join(p for p in (place_text(source), headings) if p)
    if where:
        parts.append(html.escape(where))
    parts.append(f"<i>{html.escape(text)}</i>")
    parts.append(f"<span style='color:{theme.colors()['muted']}'>{html.escape(source.path)}</span>")
    return "<p style='white-space:pre-wrap'>" + "<br>".join(parts) + "</p>"


def kind_of(path: str) -> str | None:
    from r1desk.engine.docs.extract import kind_of as engine_kind

    try:
        return engine_kind(path)
    except OSError:
        return None


# ---------------------------------------------------------------------------------------
# The list under a reply.


class FlowLayout(QLayout):
    """Lays its widgets out left to right, wrapping to the next line when the row is full."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6):
        super().__init__(parent)
        self._items: list[Any] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item) -> None:  # noqa: N802 - Qt override
        self._items.append(item)

    def addWidget(self, widget: QWidget) -> None:  # noqa: N802 - Qt override
        self.addChildWidget(widget)
        self.addItem(QWidgetItem(widget))

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int):  # noqa: N802 - Qt override
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int):  # noqa: N802 - Qt override
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self):  # noqa: N802 - Qt override
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt override
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt override
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect) -> None:  # noqa: N802 - Qt override
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return self.minimumSize()

    def minimumSize(self) -> QSize:  # noqa: N802 - Qt override
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _place(self, rect, *, move: bool) -> int:
        x, y, line = rect.x(), rect.y(), 0
        for item in self._items:
            if item.widget() is not None and item.widget().isHidden():
                continue
            hint = item.sizeHint()
            if x + hint.width() > rect.right() + 1 and line > 0:
                x, y, line = rect.x(), y + line + self._spacing, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._spacing
            line = max(line, hint.height())
        return y + line - rect.y()


class SourcesList(QWidget):
    """The sources of one reply as a row of small buttons: "[1] report.pdf · page 3"; the
    excerpt on hover; a click asks to open it. Sources the answer cites stand out once it is
    written; the others are dimmed."""

    source_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("SourcesList")
        self.sources: list[Any] = []
        self.focus: dict[int, str] = {}
        self.cited: set[int] | None = None  # None: the answer is still being written
        self.buttons: list[QToolButton] = []
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 2, 0, 2)
        outer.setSpacing(3)
        self.title = QLabel(self)
        self.title.setObjectName("StatsFooter")
        outer.addWidget(self.title)
        self.row = QWidget(self)
        self.flow = FlowLayout(self.row)
        self.row.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        outer.addWidget(self.row)
        self.setVisible(False)
        self.retranslate()

    def set_sources(self, sources: list[Any], focus: dict[int, str] | None = None) -> None:
        """``focus``: for source n, the part that matched the question, the excerpt on hover."""
        self.focus = dict(focus or {})
        for button in self.buttons:
            self.flow.removeWidget(button)
            button.deleteLater()
        self.buttons = []
        self.sources = list(sources)
        for source in self.sources:
            button = QToolButton(self.row)
            button.setObjectName("SourceButton")
            button.setAutoRaise(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.clicked.connect(lambda _=False, s=source: self.source_requested.emit(s))
            self.flow.addWidget(button)
            self.buttons.append(button)
        self.setVisible(bool(self.sources))
        self._restyle()
        self.retranslate()

    def set_cited(self, numbers: set[int] | None) -> None:
        """The [n] the finished answer uses (None while it streams: all look the same)."""
        self.cited = numbers
        self._restyle()

    def _restyle(self) -> None:
        c = theme.colors()
        for source, button in zip(self.sources, self.buttons):
            dim = self.cited is not None and bool(self.cited) and source.n not in self.cited
            colour = c["muted"] if dim else c["link"]
            button.setIcon(theme.icon("source", "muted" if dim else "link"))
            button.setStyleSheet(
                f"QToolButton {{ color: {colour}; border: 1px solid {c['border']}; border-radius: 6px;"
                f" padding: 2px 6px; font-size: 12px; }}"
                f"QToolButton:hover {{ background: {c['panel']}; }}")

    def retranslate(self) -> None:
        self.title.setText(translate("Sources", "Sources"))
        for source, button in zip(self.sources, self.buttons):
            button.setText(source_label(source))
            button.setToolTip(source_tooltip(source, self.focus.get(source.n)))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        elif event.type() == QEvent.Type.PaletteChange:
            self._restyle()
        super().changeEvent(event)


# ---------------------------------------------------------------------------------------
# Opening a source.


def read_text(path: str) -> str:
    """A text-like file's text as the index read it: the encoding detected the same way,
    newlines made "\\n", so its line n and its character offsets are the index's."""
    from r1desk.engine.docs.extract import decode

    with open(path, "rb") as fh:
        data = fh.read(VIEW_MAX_BYTES + 1)
    partial = len(data) > VIEW_MAX_BYTES
    text, _, _ = decode(data[:VIEW_MAX_BYTES], partial=partial)
    if partial and "\n" in text:
        text = text[: text.rindex("\n")]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        text = " " + text[1:]
    return text


_CJK = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_CJK_GAP = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}])")


def _squeeze(text: str) -> str:
    """White space as one space, and none between Chinese characters: a PDF's line breaks fall
    in other places in its own text than in the index's (Qt PDF's search matches either)."""
    return _CJK_GAP.sub("", " ".join(text.split()))


def _same_text(a: str, b: str) -> bool:
    return "".join(a.split()) == "".join(b.split())


def passage_on_page(page_text: str, excerpt: str) -> str | None:
    """What to search for on a PDF page to mark the passage: the longest run of the excerpt's
    sentences that the page's own text holds (the PDF's text and the index's can differ in
    line breaks and spacing), at most ``SEARCH_MAX_CHARS``; None if no sentence is there."""
    page = _squeeze(page_text)
    if not page:
        return None
    whole = _squeeze(excerpt)
    if whole and len(whole) <= SEARCH_MAX_CHARS and whole in page:
        return whole
    sentences = [s for s in (_squeeze(p) for p in _SENTENCE_END.split(excerpt)) if s]
    best = ""
    for i in range(len(sentences)):
        run = ""
        for sentence in sentences[i:]:
            candidate = f"{run} {sentence}".strip() if run else sentence
            if len(candidate) > SEARCH_MAX_CHARS or candidate not in page:
                break
            run = candidate
        if len(run) > len(best):
            best = run
    return best if len(best) >= 12 else None


class SourceViewer(QDialog):
    """One source, open at its place: a PDF page with the passage highlighted, or a text file
    scrolled to the passage, which is marked; "Open in its app" hands it to the system."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("SourceViewer")
        self.setMinimumSize(640, 520)
        self.resize(860, 760)
        self.source: Any = None
        self.focus: Any = None
        self.mode: str | None = None  # "pdf" | "text"
        self.marked: bool = False  # the passage was found and marked
        self.marked_range: tuple[int, int] | None = None  # in the text view's text
        self.page_count = 0
        layout = QVBoxLayout(self)
        head = QHBoxLayout()
        self.heading = QLabel(self)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.heading.setWordWrap(True)
        head.addWidget(self.heading, 1)
        self.page_label = QLabel(self)
        self.page_label.setObjectName("Muted")
        head.addWidget(self.page_label)
        self.open_button = QPushButton(self)
        self.open_button.clicked.connect(self.open_outside)
        head.addWidget(self.open_button)
        layout.addLayout(head)
        self.note = QLabel(self)
        self.note.setObjectName("Muted")
        self.note.setWordWrap(True)
        self.note.setVisible(False)
        layout.addWidget(self.note)
        self.text_view = QPlainTextEdit(self)
        self.text_view.setReadOnly(True)
        self.text_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text_view.setVisible(False)
        layout.addWidget(self.text_view, 1)
        self.pdf_document = None
        self.pdf_view = None
        self.search = None
        self._search_page = -1
        self._note_text: Any = None
        self.retranslate()

    # -- showing ----------------------------------------------------------------------------
    def show_source(self, source: Any, focus: Any = None) -> bool:
        """Open ``source``; False when it is not a PDF or text-like file (the caller hands it
        to the system) or Qt PDF is missing. ``focus``: the chunk of the passage that matched
        the question (``store.StoredChunk``), when the index still has it: the view opens
        there, since a passage grown by its neighbours may start a page or many lines earlier."""
        self.source = source
        self.focus = focus
        kind = kind_of(source.path)
        if kind == "pdf" and QPdfView is not None:
            shown = self._show_pdf(source)
        elif kind in TEXT_KINDS or kind == "html":
            shown = self._show_text(source, offsets=kind in TEXT_KINDS)
        else:
            shown = False
        self.retranslate()
        return shown

    def _say(self, text: Any) -> None:
        self._note_text = text
        self.note.setText(text() if callable(text) else (text or ""))
        self.note.setVisible(bool(text))

    def _show_pdf(self, source: Any) -> bool:
        self.text_view.setVisible(False)
        if self.pdf_view is None:
            self.pdf_document = QPdfDocument(self)
            self.pdf_view = QPdfView(self)
            self.pdf_view.setPageMode(QPdfView.PageMode.MultiPage)
            self.pdf_view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
            self.pdf_view.setDocument(self.pdf_document)
            self.search = QPdfSearchModel(self)
            self.search.setDocument(self.pdf_document)
            self.search.countChanged.connect(self._search_found)
            self.pdf_view.setSearchModel(self.search)
            self.pdf_view.pageNavigator().currentPageChanged.connect(self._page_changed)
            self.layout().addWidget(self.pdf_view, 1)
        self.search.setSearchString("")
        self.pdf_document.close()
        error = self.pdf_document.load(source.path)
        if error != QPdfDocument.Error.None_:
            return False
        self.mode = "pdf"
        self.marked = False
        self.page_count = self.pdf_document.pageCount()
        self.pdf_view.setVisible(True)
        focus = self.focus if self.focus is not None and self.focus.page is not None else None
        page = max(0, min(((focus or source).page or 1) - 1, self.page_count - 1))
        self._search_page = page
        self.pdf_view.pageNavigator().jump(page, QPointF(0, 0), 0)
        # Once the pages are laid out at the view's width, the jump again: it lands on the page.
        QTimer.singleShot(0, self, lambda p=page: self.marked or self.pdf_view.pageNavigator().jump(p, QPointF(0, 0), 0))
        wanted = passage_on_page(self.pdf_document.getAllText(page).text(), focus.text if focus else excerpt_of(source))
        if wanted:
            self.search.setSearchString(wanted)
            self._say(None)
        else:
            self._say(lambda: translate("Sources", "The cited passage could not be found on this page of the file "
                                                   "as it is now; the page is the one the reply cited."))
        self._word_page()
        return True

    def _search_found(self) -> None:
        """The search (run by Qt in the background) found its first results: mark the one on the cited page."""
        if self.marked or self.search is None:
            return
        for i in range(self.search.count()):
            if self.search.resultAtIndex(i).page() == self._search_page:
                self.marked = True
                self.pdf_view.setCurrentSearchResultIndex(i)  # marked, and scrolled to
                return

    def _show_text(self, source: Any, *, offsets: bool) -> bool:
        if self.pdf_view is not None:
            self.pdf_view.setVisible(False)
        try:
            text = read_text(source.path)
        except OSError:
            return False
        except Exception:  # noqa: BLE001 - a file that no longer decodes: the system's viewer
            return False
        self.mode = "text"
        self.marked = False
        self.text_view.setVisible(True)
        self.text_view.setPlainText(text)
        doc = self.text_view.document()
        excerpt = excerpt_of(source)
        start = end = None
        cs, ce = getattr(source, "char_start", None), getattr(source, "char_end", None)
        if offsets and cs is not None and ce is not None and ce <= len(text) and _same_text(
                text[cs:ce][:200], excerpt[: len(text[cs:ce][:200])]):
            start, end = cs, ce
        elif excerpt.strip():
            # Offsets of another text (HTML's, or a file edited since): find the passage itself.
            first_line = next((line.strip() for line in excerpt.splitlines() if line.strip()), "")
            at = text.find(first_line) if len(first_line) >= 8 else -1
            if at >= 0:
                start, end = at, at + len(first_line)
        first = getattr(source, "line_start", None)
        last = getattr(source, "line_end", None) or first
        if start is None and first is not None and first <= doc.blockCount():
            start = doc.findBlockByNumber(first - 1).position()
            block = doc.findBlockByNumber(min(last, doc.blockCount()) - 1)
            end = block.position() + block.length() - 1
            self._say(lambda: translate("Sources", "The file has changed since the reply was written: the lines it "
                                                   "cited are marked, the passage may have moved."))
        elif start is None:
            self._say(lambda: translate("Sources", "The cited passage is no longer in this file."))
        else:
            self._say(None)
        if start is not None:
            self.marked = True
            self.marked_range = (start, end)
            cursor = QTextCursor(doc)
            cursor.setPosition(min(start, doc.characterCount() - 1))
            cursor.setPosition(min(end, doc.characterCount() - 1), QTextCursor.MoveMode.KeepAnchor)
            mark = QTextEdit.ExtraSelection()
            mark.cursor = cursor
            fmt = QTextCharFormat()
            fmt.setBackground(theme.color("selection"))
            mark.format = fmt
            self.text_view.setExtraSelections([mark])
            # The passage's first line (the matched chunk's, when known) at the top of the view,
            # once it is laid out.
            top = QTextCursor(doc)
            focus = self.focus
            at = start
            if offsets and focus is not None and focus.char_start is not None and start <= focus.char_start <= end:
                at = focus.char_start
            elif focus is not None and focus.line_start is not None and focus.line_start <= doc.blockCount():
                at = doc.findBlockByNumber(focus.line_start - 1).position()
            top.setPosition(min(at, doc.characterCount() - 1))
            QTimer.singleShot(0, self, lambda c=top: self._scroll_to(c))
            self._scroll_to(top)
        return True

    def _scroll_to(self, cursor: QTextCursor) -> None:
        view = self.text_view
        bar = view.verticalScrollBar()
        bar.setValue(bar.maximum())  # from the end, so the line lands at the top
        view.setTextCursor(cursor)
        view.ensureCursorVisible()

    @property
    def current_line(self) -> int:
        """The line (from 1) at the top of the text view."""
        return self.text_view.cursorForPosition(QPoint(4, 4)).blockNumber() + 1

    @property
    def visible_lines(self) -> tuple[int, int]:
        """The first and last lines (from 1) the text view shows."""
        bottom = self.text_view.viewport().height() - 4
        return self.current_line, self.text_view.cursorForPosition(QPoint(4, bottom)).blockNumber() + 1

    @property
    def current_page(self) -> int:
        """The PDF page (from 1) shown."""
        return self.pdf_view.pageNavigator().currentPage() + 1 if self.pdf_view is not None else 0

    def open_outside(self) -> None:
        if self.source is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.source.path))

    # -- words ------------------------------------------------------------------------------
    def _page_changed(self, _page: int) -> None:
        self._word_page()

    def _word_page(self) -> None:
        if self.mode == "pdf" and self.page_count:
            self.page_label.setText(self.tr("Page {n} of {total}").format(n=self.current_page, total=self.page_count))
        else:
            self.page_label.setText("")

    def retranslate(self) -> None:
        self.open_button.setText(self.tr("Open in its app"))
        self.open_button.setIcon(theme.icon("open-external"))
        self.open_button.setToolTip(self.tr("Open the file in the program the system uses for it"))
        source = self.source
        if source is not None:
            name = Path(source.path).name
            place = place_text(source)
            self.setWindowTitle(f"{name} · {place}" if place else name)
            self.heading.setText(f"<b>{html.escape(name)}</b>" + (f" · {html.escape(place)}" if place else "")
                                 + f"<br><span style='color:{theme.colors()['muted']}'>{html.escape(source.path)}"
                                   "</span>")
        else:
            self.setWindowTitle(self.tr("Source"))
        if self._note_text is not None:
            self._say(self._note_text)
        self._word_page()

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


def missing_text(source: Any) -> str:
    return translate("Sources", "{name} is no longer at {path}: it was moved or deleted after this reply was "
                                "written.").format(name=Path(source.path).name, path=source.path)


def open_source(source: Any, viewer: SourceViewer | None, parent: QWidget,
                focus: Any = None) -> tuple[SourceViewer | None, str | None]:
    """Open ``source`` at its place: (the viewer showing it, or None; what to tell the user, or None).

    A PDF or text-like file opens in ``viewer`` (made when None); any other kind in the
    system's viewer; a file that is gone is said to be gone. ``focus``: see ``show_source``.
    """
    if not os.path.exists(source.path):
        return viewer, missing_text(source)
    kind = kind_of(source.path)
    if (kind == "pdf" and QPdfView is not None) or kind in TEXT_KINDS or kind == "html":
        viewer = viewer or SourceViewer(parent)
        viewer.show()  # first: a view places a page or line only once it has its size
        viewer.raise_()
        if viewer.show_source(source, focus):
            return viewer, None
        viewer.hide()
    if not QDesktopServices.openUrl(QUrl.fromLocalFile(source.path)):
        return viewer, translate("Sources", "No program on this computer opens {name}.").format(
            name=Path(source.path).name)
    return viewer, None
