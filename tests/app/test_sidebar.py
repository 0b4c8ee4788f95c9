"""The conversation list over a real history database: order, rename, delete with undo, search."""

from __future__ import annotations

import time

import pytest

from r1desk.app import i18n, theme
from r1desk.app.qt import QColor, QGuiApplication, QLineEdit, QRect, Qt, QTextCursor, QTextDocument
from r1desk.app.sidebar import HTML_ROLE, ID_ROLE, MESSAGE_ROLE, HitDelegate, Sidebar
from r1desk.engine.chat.history import History


@pytest.fixture
def history():
    h = History()
    yield h
    h.db.conn.close()


def conversation(history, title, *messages):
    cid = history.create_conversation(title)
    for role, text in messages:
        history.add_message(cid, role, text)
    return cid


def ids(sidebar):
    return [item.data(ID_ROLE) for item in sidebar.items()]


def test_newest_first_under_day_headings(qtbot, history):
    old = conversation(history, "Old one", ("user", "hello"))
    history.db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", [time.time() - 3 * 86400, old])
    new = conversation(history, "New one", ("user", "hi"))
    sidebar = Sidebar(history)
    qtbot.addWidget(sidebar)
    assert ids(sidebar) == [new, old]
    texts = [sidebar.list.item(i).text() for i in range(sidebar.list.count())]
    assert texts == ["Today", "New one", "Previous 7 days", "Old one"]
    assert not sidebar.list.item(0).flags() & Qt.ItemFlag.ItemIsSelectable


def test_rename_in_place(qtbot, history):
    cid = conversation(history, "Draft", ("user", "hi"))
    sidebar = Sidebar(history)
    qtbot.addWidget(sidebar)
    with qtbot.waitActive(sidebar):
        sidebar.show()
        sidebar.activateWindow()
    sidebar.start_rename(cid)
    editor = sidebar.list.findChild(QLineEdit)
    assert editor is not None
    editor.setFocus()
    editor.setText("Trip to Paris")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: history.get_conversation(cid).title == "Trip to Paris", timeout=3000)
    assert sidebar.items()[0].text() == "Trip to Paris"


def test_delete_then_undo(qtbot, history):
    keep = conversation(history, "Keep", ("user", "a"))
    gone = conversation(history, "Gone", ("user", "b"))
    sidebar = Sidebar(history)
    qtbot.addWidget(sidebar)
    sidebar.show()
    with qtbot.waitSignal(sidebar.conversation_deleted):
        sidebar.delete(gone)
    assert ids(sidebar) == [keep]
    assert sidebar.undo_bar.isVisible() and sidebar.undo_label.text() == "Conversation deleted."
    with qtbot.waitSignal(sidebar.conversation_restored):
        qtbot.mouseClick(sidebar.undo_button, Qt.MouseButton.LeftButton)
    assert ids(sidebar) == [gone, keep]
    assert history.get_conversation(gone).messages[0].content == "b"
    assert not sidebar.undo_bar.isVisible()


def test_search_across_all_messages_newest_first(qtbot, history):
    first = conversation(history, "Cooking", ("user", "How long to boil an egg?"),
                         ("assistant", "Boil the egg for nine minutes."))
    second = conversation(history, "中文", ("user", "上下文长度是什么意思？"), ("assistant", "上下文是模型能记住的内容。"))
    sidebar = Sidebar(history)
    qtbot.addWidget(sidebar)
    sidebar.show()
    sidebar.activateWindow()
    sidebar.focus_search()
    qtbot.keyClicks(sidebar.search, "egg")
    qtbot.waitUntil(lambda: any(i.data(MESSAGE_ROLE) for i in sidebar.items()), timeout=3000)
    hits = sidebar.items()
    assert [h.data(ID_ROLE) for h in hits] == [first, first]
    assert hits[0].data(MESSAGE_ROLE) > hits[1].data(MESSAGE_ROLE)  # newest first
    assert "Cooking" in hits[0].text()
    with qtbot.waitSignal(sidebar.message_selected) as picked:
        rect = sidebar.list.visualItemRect(hits[1])
        qtbot.mouseClick(sidebar.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert picked.args == [first, hits[1].data(MESSAGE_ROLE)]
    sidebar.search.setText("上下文")  # Chinese, three characters: full-text search
    qtbot.waitUntil(lambda: [i.data(ID_ROLE) for i in sidebar.items()] == [second, second], timeout=3000)
    sidebar.search.setText("模型")  # two characters: the short-query path
    qtbot.waitUntil(lambda: [i.data(ID_ROLE) for i in sidebar.items()] == [second], timeout=3000)
    sidebar.search.clear()
    qtbot.waitUntil(lambda: ids(sidebar) == [second, first], timeout=3000)
    assert QGuiApplication.instance() is not None


# ---------------------------------------------------------------------------------------
# Search hits: the matched text marked, the message's own text shown as it is, counts in words.

STORY = ("Long ago, in the hills above the old town, the shepherds told of a dragon that slept under "
         "the mountain for a hundred years and woke only when the bells of the abbey rang at night.")
LEGEND = "很久以前，在老城上面的山里，牧羊人说起一条睡在山下一百年的龙，只有修道院的钟在夜里响起时它才会醒来。"


def search(qtbot, sidebar, text):
    sidebar.search.setText(text)
    qtbot.waitUntil(lambda: bool(sidebar.items()) or sidebar.list.item(0).text() == "Nothing found", timeout=3000)
    qtbot.waitUntil(lambda: not sidebar._search_timer.isActive(), timeout=3000)
    return sidebar.items()


def shown(item):
    """A hit's rows as the user reads them, and the runs of bold text in them as (row, start, end)."""
    doc = QTextDocument()
    doc.setHtml(item.data(HTML_ROLE))
    rows = doc.toPlainText().split("\n")
    bold, cursor = [], QTextCursor(doc)
    block = doc.begin()
    while block.isValid():
        run = None
        for i in range(block.length() - 1):
            cursor.setPosition(block.position() + i + 1)  # the format of the character before
            if cursor.charFormat().fontWeight() >= 700:
                run = [block.blockNumber(), i, i + 1] if run is None else [run[0], run[1], i + 1]
            elif run is not None:
                bold.append(tuple(run))
                run = None
        if run is not None:
            bold.append(tuple(run))
        block = block.next()
    return rows, bold


def test_the_match_is_marked_in_english_any_case_and_in_chinese(qtbot, history):
    tales = conversation(history, "Tales", ("user", STORY + " Dragon!"))
    legends = conversation(history, "传说", ("assistant", LEGEND))
    sidebar = Sidebar(history)
    qtbot.addWidget(sidebar)
    sidebar.resize(280, 600)
    sidebar.show()
    assert isinstance(sidebar.list.itemDelegate(), HitDelegate)

    [hit] = search(qtbot, sidebar, "DRAGON")
    assert hit.data(ID_ROLE) == tales
    rows, bold = shown(hit)
    assert rows[0] == "Tales · 2 matches"
    snippet = rows[1]
    assert snippet.startswith("…the shepherds told of a dragon that slept") and "[" not in snippet
    assert [snippet[a:b] for _, a, b in bold] == ["dragon"] and bold[0][0] == 1
    assert snippet[bold[0][1] - len("told of a "):bold[0][1]] == "told of a "  # at its place, not elsewhere

    # Drawn so: the row shows pixels in the accent colour (the marked word), not just plain text.
    image = sidebar.list.viewport().grab(sidebar.list.visualItemRect(hit)).toImage()
    accent = theme.color("accent")
    assert any(_near(QColor(image.pixel(x, y)), accent)
               for x in range(image.width()) for y in range(image.height()))

    for query in ("龙", "钟在", "修道院的钟"):  # one and two characters: the scan; more: the index
        [hit] = search(qtbot, sidebar, query)
        assert hit.data(ID_ROLE) == legends
        rows, bold = shown(hit)
        assert rows[0] == "传说" and rows[1].strip("…") in LEGEND
        assert [(row, rows[row][a:b]) for row, a, b in bold] == [(1, query)]
        assert rows[1][:bold[0][1]].strip("…") in LEGEND.split(query)[0]


def _near(color, target, tolerance=40):
    return (abs(color.red() - target.red()) + abs(color.green() - target.green())
            + abs(color.blue() - target.blue())) < tolerance


def test_a_message_with_markup_shows_it_literally(qtbot, history):
    conversation(history, "A <b> & co", ("user", "Is <b>this</b> & <i>that</i> &amp; markup?"))
    sidebar = Sidebar(history)
    qtbot.addWidget(sidebar)
    [hit] = search(qtbot, sidebar, "markup")
    rows, bold = shown(hit)
    assert rows == ["A <b> & co", "Is <b>this</b> & <i>that</i> &amp; markup?"]
    assert [rows[row][a:b] for row, a, b in bold] == ["markup"]
    [hit] = search(qtbot, sidebar, "<b>")
    rows, bold = shown(hit)
    assert [rows[row][a:b] for row, a, b in bold] == ["<b>"]


def test_counts_are_worded_right_in_english_and_chinese(qtbot, history):
    conversation(history, "one", ("user", "a unicorn"))
    conversation(history, "two", ("user", "a griffin"), ("assistant", "griffin griffin griffin"))
    sidebar = Sidebar(history)
    qtbot.addWidget(sidebar)
    search(qtbot, sidebar, "unicorn")
    assert sidebar.list.item(0).text() == "1 message found"
    hits = search(qtbot, sidebar, "griffin")
    assert sidebar.list.item(0).text() == "2 messages found"
    assert [shown(h)[0][0] for h in hits] == ["two · 3 matches", "two"]
    i18n.install("zh_CN")
    try:
        qtbot.waitUntil(lambda: sidebar.list.item(0).text() == "找到 2 条消息", timeout=3000)
        assert shown(sidebar.items()[0])[0][0] == "two · 3 处匹配"
        search(qtbot, sidebar, "unicorn")
        assert sidebar.list.item(0).text() == "找到 1 条消息"
        assert sidebar.found(100, more=True) == "找到超过 100 条消息"
    finally:
        i18n.install("en")  # while the sidebar's database is still open


def test_clicking_a_hit_opens_the_conversation_at_that_message(make_window, qtbot):
    window = make_window()
    window.resize(1000, 640)
    history = window.history
    cid = history.create_conversation("A long talk")
    ids = []
    for n in range(30):
        text = f"Question {n}: tell me more, with a few words to make it long enough to wrap. " * 2
        if n == 4:
            text += "Where did the phoenix nest?"
        ids.append(history.add_message(cid, "user" if n % 2 == 0 else "assistant", text))
    window.sidebar.refresh()
    window.open_conversation(cid)  # first the conversation as usual: at its bottom
    bar = window.chat_view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), timeout=3000)

    [hit] = search(qtbot, window.sidebar, "PHOENIX")
    with qtbot.waitSignal(window.sidebar.message_selected):
        rect = window.sidebar.list.visualItemRect(hit)
        qtbot.mouseClick(window.sidebar.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    [found] = [w for w in window.chat_view.messages if w.message_id == ids[4]]
    viewport = window.chat_view.viewport()

    def in_view() -> bool:
        top_left = found.mapTo(viewport, found.rect().topLeft())
        return viewport.rect().contains(QRect(top_left, found.size()))

    qtbot.waitUntil(in_view, timeout=3000)
    qtbot.wait(300)  # and it stays there: nothing scrolls back to the bottom
    assert in_view() and bar.value() < bar.maximum()
    assert hit.isSelected()  # the hit stays selected in the list
    marks = found.user_text.extraSelections()
    assert [m.cursor.selectedText() for m in marks] == ["phoenix"]  # the found text, marked for a moment
    qtbot.waitUntil(lambda: not found.user_text.extraSelections(), timeout=5000)
