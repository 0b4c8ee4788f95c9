"""The conversation list: newest first, grouped by day; new, rename, delete with undo, search."""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from typing import Any

from r1desk.app import theme
from r1desk.app.qt import (
    QAbstractItemView,
    QApplication,
    QEvent,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPalette,
    QPushButton,
    QRect,
    QSize,
    QStyle,
    Qt,
    QTextDocument,
    QtGui,
    QTimer,
    QtWidgets,
    QVBoxLayout,
    QWidget,
    Signal,
)

ID_ROLE = Qt.ItemDataRole.UserRole
MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 1
HTML_ROLE = Qt.ItemDataRole.UserRole + 2  # a search hit: title and snippet as rich text
UNDO_SECONDS = 10
SEARCH_LIMIT = 100


class HitDelegate(QtWidgets.QStyledItemDelegate):
    """Draws a search hit as rich text, so that the matched words stand out; other rows as usual."""

    def _document(self, option, index, width: int) -> QTextDocument:
        doc = QTextDocument()
        doc.setDocumentMargin(0)
        doc.setDefaultFont(option.font)
        doc.setHtml(index.data(HTML_ROLE))
        doc.setTextWidth(max(width, 40))
        return doc

    def _text_rect(self, option, rect: QRect) -> QRect:
        """Where the style sheet's padding leaves room for text in a row at ``rect``."""
        opt = QtWidgets.QStyleOptionViewItem(option)
        opt.rect = rect
        opt.text = ""
        opt.features &= ~QtWidgets.QStyleOptionViewItem.ViewItemFeature.HasDecoration
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        return style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, opt.widget)

    def paint(self, painter, option, index) -> None:
        if index.data(HTML_ROLE) is None:
            super().paint(painter, option, index)
            return
        opt = QtWidgets.QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        rect = self._text_rect(option, option.rect)
        doc = self._document(opt, index, rect.width())
        context = QtGui.QAbstractTextDocumentLayout.PaintContext()
        context.palette.setColor(QPalette.ColorRole.Text, theme.color("text"))
        painter.save()
        painter.translate(rect.topLeft())
        painter.setClipRect(QRect(0, 0, rect.width(), rect.height()))
        doc.documentLayout().draw(painter, context)
        painter.restore()

    def sizeHint(self, option, index) -> QSize:  # noqa: N802 - Qt override
        if index.data(HTML_ROLE) is None:
            return super().sizeHint(option, index)
        view = option.widget
        width = view.viewport().width() if view is not None else 240
        outer = QRect(0, 0, width, 1000)
        inner = self._text_rect(option, outer)
        doc = self._document(option, index, inner.width())
        return QSize(width, int(doc.size().height() + 0.99) + outer.height() - inner.height())


class Sidebar(QFrame):
    conversation_selected = Signal(int)
    message_selected = Signal(int, int)  # conversation id, message id (a search hit)
    new_requested = Signal()
    conversation_deleted = Signal(int)
    conversation_restored = Signal(int)
    system_prompt_requested = Signal(int)
    export_requested = Signal(int)

    def __init__(self, history: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.history = history
        self.current_id: int | None = None
        self.current_message_id: int | None = None  # the search hit last opened
        self._deleted: list[int] = []
        self._refreshing = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 12, 10, 10)
        layout.setSpacing(8)
        self.new_button = QPushButton(self)
        self.new_button.setObjectName("NewChatButton")
        self.new_button.clicked.connect(self.new_requested)
        layout.addWidget(self.new_button)
        self.search = QLineEdit(self)
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._search_changed)
        self.search.addAction(theme.icon("search", "muted"), QLineEdit.ActionPosition.LeadingPosition)
        layout.addWidget(self.search)
        self.list = QListWidget(self)
        self.list.setObjectName("SidebarList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.itemClicked.connect(self._clicked)
        self.list.itemActivated.connect(self._clicked)
        self.list.itemChanged.connect(self._renamed)
        self.list.setWordWrap(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setItemDelegate(HitDelegate(self.list))
        self.list.setResizeMode(QtWidgets.QListView.ResizeMode.Adjust)  # hits re-wrap to the new width
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # long titles elide
        layout.addWidget(self.list, 1)
        self.undo_bar = QFrame(self)
        self.undo_bar.setObjectName("Notice")
        undo_layout = QHBoxLayout(self.undo_bar)
        undo_layout.setContentsMargins(8, 4, 4, 4)
        self.undo_label = QLabel(self.undo_bar)
        self.undo_label.setWordWrap(True)
        self.undo_button = QPushButton(self.undo_bar)
        self.undo_button.clicked.connect(self.undo_delete)
        undo_layout.addWidget(self.undo_label, 1)
        undo_layout.addWidget(self.undo_button)
        self.undo_bar.setVisible(False)
        layout.addWidget(self.undo_bar)
        self._undo_timer = QTimer(self)
        self._undo_timer.setSingleShot(True)
        self._undo_timer.setInterval(UNDO_SECONDS * 1000)
        self._undo_timer.timeout.connect(self._undo_expired)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self.refresh)
        self.retranslate()

    # Listing -----------------------------------------------------------------------------
    @property
    def searching(self) -> bool:
        return bool(self.search.text().strip())

    def refresh(self, select: int | None = None) -> None:
        if select is not None:
            self.current_id = select
        self._refreshing = True
        try:
            self.list.clear()
            if self.searching:
                self._fill_search(self.search.text().strip())
            else:
                self._fill_conversations()
        finally:
            self._refreshing = False

    def _fill_conversations(self) -> None:
        groups: dict[str, list[Any]] = {}
        order: list[str] = []
        for conv in self.history.list_conversations(limit=500):
            label = self._day_group(conv.updated_at)
            if label not in groups:
                groups[label] = []
                order.append(label)
            groups[label].append(conv)
        for label in order:
            self._heading(label)
            for conv in groups[label]:
                item = QListWidgetItem(conv.title or self.tr("New conversation"))
                item.setData(ID_ROLE, conv.id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                item.setToolTip(conv.title or "")
                self.list.addItem(item)
                if conv.id == self.current_id:
                    item.setSelected(True)
                    self.list.setCurrentItem(item)
        if not order:
            self._heading(self.tr("No conversations yet"))

    def _fill_search(self, text: str) -> None:
        hits = self.history.search(text, limit=SEARCH_LIMIT + 1)
        if not hits:
            self._heading(self.tr("Nothing found"))
            return
        self._heading(self.found(len(hits[:SEARCH_LIMIT]), more=len(hits) > SEARCH_LIMIT))
        for hit in hits[:SEARCH_LIMIT]:
            title = hit.get("title") or self.tr("New conversation")
            item = QListWidgetItem(f"{title}\n{hit['snippet']}")
            item.setData(ID_ROLE, hit["conversation_id"])
            item.setData(MESSAGE_ROLE, hit["id"])
            item.setData(HTML_ROLE, self._hit_html(title, hit))
            item.setToolTip(hit["snippet"])
            self.list.addItem(item)
            if hit["id"] == self.current_message_id:
                item.setSelected(True)
                self.list.setCurrentItem(item)

    def found(self, n: int, *, more: bool = False) -> str:
        """How many messages the search found, in words."""
        if more:
            return self.tr("More than {n} messages found").format(n=n)
        if n == 1:
            return self.tr("1 message found")
        return self.tr("{n} messages found").format(n=n)

    def _hit_html(self, title: str, hit: dict[str, Any]) -> str:
        """The title, then the snippet with its matches in bold; the message's text is escaped."""
        colors = theme.colors()
        snippet, parts, at = hit["snippet"], [], 0
        for start, end in hit["matches"]:
            parts.append(html.escape(snippet[at:start]))
            parts.append(f'<span style="font-weight:700; color:{colors["accent"]};">'
                         f"{html.escape(snippet[start:end])}</span>")
            at = end
        parts.append(html.escape(snippet[at:]))
        notes = []
        if hit.get("field") == "reasoning":
            notes.append(self.tr("in the thinking"))
        if hit.get("count", 1) > 1:
            notes.append(self.tr("{n} matches").format(n=hit["count"]))
        head = html.escape(title)
        if notes:
            head += f' <span style="color:{colors["muted"]};">· {html.escape(" · ".join(notes))}</span>'
        return f'<div>{head}</div><div style="color:{colors["muted"]};">{"".join(parts)}</div>'

    def _heading(self, text: str) -> None:
        item = QListWidgetItem(text)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        font = item.font()
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        font.setBold(True)
        item.setFont(font)
        item.setForeground(theme.color("muted"))
        self.list.addItem(item)

    def _day_group(self, timestamp: float) -> str:
        day = datetime.fromtimestamp(timestamp).date()
        today = datetime.now().date()
        if day == today:
            return self.tr("Today")
        if day == today - timedelta(days=1):
            return self.tr("Yesterday")
        if day > today - timedelta(days=7):
            return self.tr("Previous 7 days")
        if day > today - timedelta(days=30):
            return self.tr("Previous 30 days")
        return self.tr("Older")

    def items(self) -> list[QListWidgetItem]:
        """The rows that stand for a conversation or a search hit (not the headings)."""
        return [self.list.item(i) for i in range(self.list.count())
                if self.list.item(i).data(ID_ROLE) is not None]

    def select(self, conversation_id: int | None) -> None:
        if conversation_id != self.current_id:
            self.current_message_id = None
        self.current_id = conversation_id
        self._refreshing = True
        try:
            self.list.clearSelection()
            for item in self.items():
                message_id = item.data(MESSAGE_ROLE)
                if item.data(ID_ROLE) == conversation_id and message_id in (None, self.current_message_id):
                    item.setSelected(True)
                    self.list.setCurrentItem(item)
        finally:
            self._refreshing = False

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _search_changed(self, _text: str) -> None:
        self._search_timer.start()

    def _clicked(self, item: QListWidgetItem) -> None:
        conversation_id = item.data(ID_ROLE)
        if conversation_id is None:
            return
        message_id = item.data(MESSAGE_ROLE)
        self.current_id = conversation_id
        self.current_message_id = message_id
        if message_id is not None:
            self.message_selected.emit(conversation_id, message_id)
        else:
            self.conversation_selected.emit(conversation_id)

    # Rename and delete -------------------------------------------------------------------
    def _context_menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None or item.data(ID_ROLE) is None:
            return
        menu = QMenu(self)
        rename = menu.addAction(theme.icon("rename"), self.tr("Rename"))
        system = menu.addAction(theme.icon("edit"), self.tr("System prompt…"))
        export = menu.addAction(theme.icon("download"), self.tr("Export…"))
        delete = menu.addAction(theme.icon("delete"), self.tr("Delete"))
        rename.setEnabled(item.data(MESSAGE_ROLE) is None)
        chosen = menu.exec(self.list.viewport().mapToGlobal(pos))
        if chosen is rename:
            self.start_rename(item.data(ID_ROLE))
        elif chosen is system:
            self.system_prompt_requested.emit(item.data(ID_ROLE))
        elif chosen is export:
            self.export_requested.emit(item.data(ID_ROLE))
        elif chosen is delete:
            self.delete(item.data(ID_ROLE))

    def start_rename(self, conversation_id: int) -> None:
        for item in self.items():
            if item.data(ID_ROLE) == conversation_id and item.data(MESSAGE_ROLE) is None:
                self.list.editItem(item)
                return

    def rename(self, conversation_id: int, title: str) -> None:
        title = " ".join(title.split())
        if title:
            self.history.rename(conversation_id, title)
        self.refresh()

    def _renamed(self, item: QListWidgetItem) -> None:
        if self._refreshing or item.data(ID_ROLE) is None or item.data(MESSAGE_ROLE) is not None:
            return
        self.rename(item.data(ID_ROLE), item.text())

    def delete(self, conversation_id: int) -> None:
        """Move to the bin at once; Undo brings it back for a few seconds."""
        self.history.delete(conversation_id)
        self._deleted.append(conversation_id)
        self.undo_label.setText(self.tr("Conversation deleted."))
        self.undo_bar.setVisible(True)
        self._undo_timer.start()
        if self.current_id == conversation_id:
            self.current_id = None
        self.refresh()
        self.conversation_deleted.emit(conversation_id)

    def undo_delete(self) -> None:
        if not self._deleted:
            return
        conversation_id = self._deleted.pop()
        self.history.restore(conversation_id)
        if not self._deleted:
            self.undo_bar.setVisible(False)
            self._undo_timer.stop()
        self.refresh(select=conversation_id)
        self.conversation_restored.emit(conversation_id)

    def _undo_expired(self) -> None:
        self._deleted.clear()
        self.undo_bar.setVisible(False)

    # Words -------------------------------------------------------------------------------
    def retranslate(self) -> None:
        self.new_button.setText(self.tr("New chat"))
        self.new_button.setToolTip(self.tr("Start a new conversation (Ctrl+N)"))
        self.new_button.setIcon(theme.icon("new-chat", "accent_text"))
        self.search.setPlaceholderText(self.tr("Search all messages (Ctrl+F)"))
        self.undo_button.setText(self.tr("Undo"))
        if self.undo_bar.isVisible():
            self.undo_label.setText(self.tr("Conversation deleted."))
        self.refresh()

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() in (QEvent.Type.LanguageChange, QEvent.Type.PaletteChange):
            self.retranslate()
        super().changeEvent(event)
