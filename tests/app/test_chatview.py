"""The chat view and composer on their own: appending, code blocks with Copy, keys."""

from __future__ import annotations

import r1desk.app.chatview as chatview
from r1desk.app.chatview import ChatView
from r1desk.app.composer import Composer
from r1desk.app.qt import QGuiApplication, Qt

REPLY = ("Here is a function:\n\n```python\ndef double(x):\n    return 2 * x\n```\n\n"
         "It **doubles** its input.\n\n" + "".join(f"Paragraph {i} says something short.\n\n" for i in range(40)))


def stream(widget, text, size=3):
    for i in range(0, len(text), size):
        widget.append_content(text[i:i + size])


def test_code_blocks_are_highlighted_and_copied_whole(qtbot):
    view = ChatView()
    qtbot.addWidget(view)
    widget = view.add_assistant("model")
    stream(widget, REPLY)
    widget.finish({"completion_tokens": 99, "tokens_per_second": 12.5, "ttft_ms": 420.0, "total_seconds": 8.0})
    blocks = widget.content.code_blocks()
    assert len(blocks) == 1 and blocks[0].language == "python" and blocks[0].closed
    assert "color" in blocks[0].body.toHtml()  # highlighted once the fence closed
    qtbot.mouseClick(blocks[0].copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "def double(x):\n    return 2 * x"
    assert blocks[0].copy_button.text() == "Copied"
    assert widget.text == REPLY
    assert widget.stats_label.text() == "99 tokens · 12.5 tokens/s · first token 0.42 s · 8.0 s in all"
    qtbot.mouseClick(widget.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == REPLY


def test_streaming_renders_only_the_block_being_written(qtbot, monkeypatch):
    rendered = []
    original = chatview.TextSegment._render_tail

    def spy(self, markdown):
        rendered.append(len(markdown))
        return original(self, markdown)

    monkeypatch.setattr(chatview.TextSegment, "_render_tail", spy)
    view = ChatView()
    qtbot.addWidget(view)
    widget = view.add_assistant("model")
    stream(widget, REPLY, size=2)
    widget.finish({})
    longest_block = max(len(b) for b in REPLY.split("\n\n"))
    # Never the whole reply: each render covers at most the paragraph being written.
    assert max(rendered) <= longest_block
    assert sum(rendered) < 20 * len(REPLY)
    # And the document is the whole reply, in order.
    text = "\n".join(seg.toPlainText() for seg in widget.content.segments if hasattr(seg, "markdown_blocks"))
    assert "Paragraph 0 says" in text and text.index("Paragraph 3 ") < text.index("Paragraph 39 ")


def test_enter_sends_shift_enter_adds_a_line_and_a_reason_blocks_sending(qtbot):
    composer = Composer()
    qtbot.addWidget(composer)
    with qtbot.waitActive(composer):
        composer.show()
        composer.activateWindow()
    composer.edit.setFocus()
    sent = []
    composer.send_requested.connect(sent.append)
    qtbot.keyClicks(composer.edit, "first line")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(composer.edit, "second line")
    assert composer.text() == "first line\nsecond line" and sent == []
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert sent == ["first line\nsecond line"] and composer.text() == ""
    composer.set_disabled_reason("No model is loaded.", offer_model=True)
    assert composer.reason_label.text() == "No model is loaded." and composer.choose_button.isVisible()
    qtbot.keyClicks(composer.edit, "typed while waiting")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert sent == ["first line\nsecond line"] and not composer.button.isEnabled()
    assert composer.text() == "typed while waiting"  # kept for when sending is possible
    composer.set_disabled_reason(None)
    composer.set_text("go")
    composer.set_generating(True)
    stops = []
    composer.stop_requested.connect(lambda: stops.append(True))
    qtbot.mouseClick(composer.button, Qt.MouseButton.LeftButton)
    assert stops == [True] and sent == ["first line\nsecond line"]


def test_the_footer_says_which_limit_stopped_a_reply():
    limit = {"finish_reason": "length", "completion_tokens": 2100, "reasoning_tokens": 52, "n_ctx": 8192,
             "context_used": 2200}
    assert "stopped at the reply limit of 2,048 tokens (Longest reply, in Settings › Sampling)" in \
        chatview.stats_text(limit)
    full = dict(limit, context_used=8192)
    assert "cut off at the length limit" in chatview.stats_text(full)
