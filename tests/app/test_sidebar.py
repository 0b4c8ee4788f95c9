"""The conversation list over a real history database: order, rename, delete with undo, search."""

from __future__ import annotations

import time

import pytest

from r1desk.app.qt import QGuiApplication, QLineEdit, Qt
from r1desk.app.sidebar import ID_ROLE, MESSAGE_ROLE, Sidebar
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
