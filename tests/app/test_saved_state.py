"""Conversations' saved state in the app: where the footer says the prompt came from, and
Settings › Chat showing the disk it takes, clearing it and changing its budget."""

from __future__ import annotations

import pytest

from r1desk.app.qt import QDialogButtonBox, Qt
from r1desk.engine.inference.snapshots import SnapshotStore

from tests.app.conftest import load, send

pytestmark = pytest.mark.slow

SETTINGS = {"chat.temperature": 0.0, "chat.n_ctx": 1024, "chat.max_tokens": 24}


def finish(qtbot, window, text: str):
    send(qtbot, window, text)
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    return window.chat_view.messages[-1]


def test_going_back_to_a_conversation_says_its_prompt_was_restored(make_window, tiny_r1, qtbot) -> None:
    window = make_window(**SETTINGS)
    load(qtbot, window, tiny_r1)
    finish(qtbot, window, "hi " * 20)
    first = window.current_id
    footer = finish(qtbot, window, "again").stats_label.text()
    assert "prompt: " in footer and " reused" in footer
    window.new_conversation()
    finish(qtbot, window, "something else entirely")
    window.open_conversation(first)
    reply = finish(qtbot, window, "and once more")
    assert reply.stats["reused_from"] == "memory" and reply.stats["cached_tokens"] > 20
    assert "restored from memory" in reply.stats_label.text()
    # The footer keeps saying it when the conversation is opened again later.
    window.open_conversation(first)
    assert "restored from memory" in window.chat_view.messages[-1].stats_label.text()


def test_settings_show_clear_and_bound_the_saved_state(make_window, tiny_r1, qtbot) -> None:
    window = make_window(**SETTINGS)
    load(qtbot, window, tiny_r1)
    finish(qtbot, window, "hi")
    window.new_conversation()
    finish(qtbot, window, "hello")
    store = SnapshotStore()
    qtbot.waitUntil(lambda: store.usage()[1] == 2, timeout=10_000)  # written as each reply ended
    window.show_settings()
    dialog = window._dialogs["settings"]
    assert "for 2 conversation(s)" in dialog.kv_usage.text() and dialog.kv_clear.isEnabled()
    assert dialog.kv_spin.value() == 4096 and dialog.kv_spin.suffix() == " MB"
    qtbot.mouseClick(dialog.kv_clear, Qt.MouseButton.LeftButton)
    assert store.usage() == (0, 0)
    assert "for 0 conversation(s)" in dialog.kv_usage.text() and not dialog.kv_clear.isEnabled()
    # 0 keeps nothing on disk, from now on, without reloading the model.
    dialog.kv_spin.setValue(0)
    assert dialog.kv_spin.text() == "None"
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert window.settings.get("cache.kv_disk_bytes") == 0 and window.chat.snapshot_budget() == 0
    finish(qtbot, window, "and again")
    window.chat.host.unload()  # anything still being written is written before the process ends
    assert store.usage() == (0, 0)
