"""The main window over the real engine: send, stream, stop, think, switch, come back later."""

from __future__ import annotations

import time

import pytest

from app.qt import Qt
from tests.app.conftest import load

GREEDY = {"chat.temperature": 0.0, "chat.n_ctx": 1024}
PARIS = "What is the capital of France? Answer in one word."


def send(qtbot, window, text):
    window.composer.set_text(text)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    assert window.reply is not None, window.composer.disabled_reason
    return window.reply


@pytest.mark.slow
def test_a_message_to_smollm2_streams_into_the_view(make_window, smollm2, qtbot):
    window = make_window(**GREEDY, **{"chat.max_tokens": 40})
    assert window.composer.disabled_reason is not None  # no model yet: says why
    load(qtbot, window, smollm2)
    assert window.composer.disabled_reason is None
    reply = send(qtbot, window, PARIS)
    widget = reply.widget
    lengths = []
    reply.worker.yielded.connect(lambda _e: lengths.append(len(widget.text)))
    qtbot.waitUntil(lambda: window.reply is None, timeout=120_000)
    assert "Paris" in widget.text, (widget.status, widget.error, window.notice.label.text())
    assert len(set(lengths)) >= 2, "the reply arrived in one piece instead of streaming"
    assert widget.stats.get("completion_tokens", 0) > 0
    assert widget.stats_label.text()
    saved = window.history.messages(window.current_id)
    assert [m.role for m in saved] == ["user", "assistant"]
    assert saved[-1].content == widget.text and saved[-1].status == "complete"
    assert window.sidebar.items(), "the new conversation is listed"


@pytest.mark.slow
def test_escape_stops_a_reply_mid_way(make_window, smollm2, qtbot):
    window = make_window(**GREEDY, **{"chat.max_tokens": 1500})
    load(qtbot, window, smollm2)
    reply = send(qtbot, window, "Write a very long story about a dragon.")
    widget = reply.widget
    assert window.composer.generating
    seen = []
    reply.worker.yielded.connect(lambda _e: seen.append(len(widget.text)))
    qtbot.waitUntil(lambda: len(widget.text) > 60, timeout=120_000)
    assert len(set(seen)) > 5  # it streams, piece by piece
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.reply is None, timeout=10_000)
    assert widget.status == "cancelled"
    assert widget.stats["finish_reason"] == "cancelled"
    assert widget.stats["completion_tokens"] < 1500
    assert widget.stats_label.text()
    assert not window.composer.generating
    saved = window.history.messages(window.current_id)[-1]
    assert saved.status == "cancelled" and saved.content == widget.text
