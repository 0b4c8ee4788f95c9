"""The main window over the real engine: send, stream, stop, think, switch, come back later."""

from __future__ import annotations

import pytest

from r1desk.app.qt import Qt

from tests.app.conftest import load, record_texts, send
from tests.support.models import tiny_r1_expected

GREEDY = {"chat.temperature": 0.0, "chat.n_ctx": 1024}
PARIS = "What is the capital of France? Answer in one word."


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
    qtbot.waitUntil(lambda: len(widget.text) > 300, timeout=120_000)
    assert len(set(seen)) > 3  # it streams, piece by piece
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.reply is None, timeout=10_000)
    assert widget.status == "cancelled"
    assert widget.stats["finish_reason"] == "cancelled"
    assert widget.stats["completion_tokens"] < 1500
    assert widget.stats_label.text()
    assert not window.composer.generating
    saved = window.history.messages(window.current_id)[-1]
    assert saved.status == "cancelled" and saved.content == widget.text


def click_conversation(qtbot, window, conversation_id):
    item = next(i for i in window.sidebar.items() if i.data(Qt.ItemDataRole.UserRole) == conversation_id)
    rect = window.sidebar.list.visualItemRect(item)
    qtbot.mouseClick(window.sidebar.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


@pytest.mark.slow
def test_tiny_r1_reasoning_streams_into_a_thinking_section(make_window, tiny_r1, qtbot):
    window = make_window(**{**GREEDY, "chat.n_ctx": 512})
    load(qtbot, window, tiny_r1)
    seen = []
    widgets = []
    add_assistant = window.chat_view.add_assistant

    def watched(*args, **kwargs):
        # Each piece as the GUI thread shows it, with the thinking section's state just after.
        widget = add_assistant(*args, **kwargs)
        for name, kind in (("append_reasoning", "ReasoningDelta"), ("append_content", "ContentDelta")):
            def wrap(text, _f=getattr(widget, name), _kind=kind):
                _f(text)
                seen.append((_kind, widget.thinking.state, widget.thinking.expanded))
            setattr(widget, name, wrap)
        widgets.append(widget)
        return widget

    window.chat_view.add_assistant = watched
    reply = send(qtbot, window, "hi")
    widget = reply.widget
    assert widgets == [widget]
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    reasoning, answer = tiny_r1_expected()
    assert widget.reasoning == reasoning
    assert widget.text == answer
    # While the reasoning streamed the section was open with its clock running...
    thinking = [s for s in seen if s[0] == "ReasoningDelta"]
    assert thinking and all(state == "thinking" and open_ for _, state, open_ in thinking)
    # ...and it folded away when the answer started.
    answering = [s for s in seen if s[0] == "ContentDelta"]
    assert answering and all(state == "done" and not open_ for _, state, open_ in answering)
    assert widget.thinking.isVisible() and not widget.thinking.body.isVisible()
    assert widget.thinking.seconds is not None
    assert widget.thinking.button.text().startswith("Thought for")
    qtbot.mouseClick(widget.thinking.button, Qt.MouseButton.LeftButton)
    assert widget.thinking.body.isVisible()


@pytest.mark.slow
def test_switching_conversations_while_a_reply_streams(make_window, smollm2, qtbot):
    window = make_window(**GREEDY, **{"chat.max_tokens": 80})
    other = window.history.create_conversation("Earlier chat")
    window.history.add_message(other, "user", "An earlier question")
    window.history.add_message(other, "assistant", "An earlier **answer**")
    window.sidebar.refresh()
    load(qtbot, window, smollm2)
    reply = send(qtbot, window, "Write a very long story about a dragon.")
    qtbot.waitUntil(lambda: reply.message_id is not None and len("".join(reply.content)) > 20, timeout=120_000)
    streaming_id = reply.conversation_id
    click_conversation(qtbot, window, other)
    assert window.current_id == other
    assert [w.text for w in window.chat_view.messages] == ["An earlier question", "An earlier **answer**"]
    assert window.reply is not None and reply.widget is None  # still generating, out of sight
    click_conversation(qtbot, window, streaming_id)
    assert window.current_id == streaming_id
    attached = reply.widget
    assert attached is not None and attached in window.chat_view.messages and attached.streaming
    qtbot.waitUntil(lambda: window.reply is None, timeout=180_000)
    saved = window.history.messages(streaming_id)[-1]
    assert attached.text == saved.content and len(saved.content) > 20


@pytest.mark.slow
def test_history_is_there_after_a_restart(make_window, tiny_r1, qtbot):
    first = make_window(**{**GREEDY, "chat.n_ctx": 512})
    load(qtbot, first, tiny_r1)
    send(qtbot, first, "hi there")
    qtbot.waitUntil(lambda: first.reply is None, timeout=60_000)
    conversation = first.current_id
    make_window.close(first)

    again = make_window(start=True)  # the next day: a new process would do the same
    qtbot.waitUntil(lambda: again.chat.loaded is not None and again.loading is None, timeout=60_000)
    assert again.chat.loaded.path == str(tiny_r1.resolve())  # the last model comes back
    items = again.sidebar.items()
    assert [i.text() for i in items] == ["hi there"]
    click_conversation(qtbot, again, conversation)
    user, answer = again.chat_view.messages
    reasoning, text = tiny_r1_expected()
    assert user.text == "hi there" and answer.text == text
    assert answer.reasoning == reasoning, (answer.reasoning, again.history.messages(conversation))
    assert not answer.thinking.isHidden() and not answer.thinking.expanded
    assert answer.stats_label.text()
    # Search finds it, in the answer's words.
    again.sidebar.search.setText("answer")
    hit = Qt.ItemDataRole.UserRole + 1
    qtbot.waitUntil(lambda: any(i.data(hit) for i in again.sidebar.items()), timeout=5000)
    assert [i.data(hit) for i in again.sidebar.items()] == [answer.message_id]


@pytest.mark.slow
def test_regenerate_and_edit_and_resend(make_window, tiny_r1, qtbot):
    window = make_window(**{**GREEDY, "chat.n_ctx": 512})
    load(qtbot, window, tiny_r1)
    send(qtbot, window, "first question")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    send(qtbot, window, "second question")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    conversation = window.current_id
    user1, reply1, user2, reply2 = window.chat_view.messages
    assert reply2.regenerate_button.isVisibleTo(window) and not reply1.regenerate_button.isVisibleTo(window)
    qtbot.mouseClick(reply2.regenerate_button, Qt.MouseButton.LeftButton)
    assert window.reply is not None
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    saved = window.history.messages(conversation)
    assert [m.role for m in saved] == ["user", "assistant", "user", "assistant"]
    new_reply = window.chat_view.messages[-1]
    assert new_reply is not reply2 and len(window.chat_view.messages) == 4
    assert saved[-1].content == new_reply.text and saved[-1].status == "complete"
    # Edit the first question: everything after it is replaced by the new exchange.
    first = window.chat_view.messages[0]
    qtbot.mouseClick(first.edit_button, Qt.MouseButton.LeftButton)
    assert first.editor is not None
    first.editor.setPlainText("a better first question")
    qtbot.mouseClick(first._send_edit, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    saved = window.history.messages(conversation)
    assert [(m.role, m.content if m.role == "user" else "") for m in saved] == [
        ("user", "a better first question"), ("assistant", "")]
    assert [w.text for w in window.chat_view.messages][0] == "a better first question"
    assert len(window.chat_view.messages) == 2


def test_a_second_launch_brings_the_first_to_the_front(qtbot):
    from r1desk.app.main import SingleInstance, activate_running_instance, instance_name

    name = instance_name() + "-test"
    assert not activate_running_instance(name, timeout_ms=200)  # nobody is running
    first = SingleInstance(name)
    try:
        with qtbot.waitSignal(first.activated, timeout=5000):
            assert activate_running_instance(name)
    finally:
        first.close()


@pytest.mark.slow
def test_the_model_stays_loaded_after_the_worker_threads_retire(make_window, tiny_r1, qtbot):
    """The app loads from pool threads that retire when idle; the model process must not go with them."""
    from r1desk.app import workers

    pool = workers.pool()
    expiry = pool.expiryTimeout()
    pool.setExpiryTimeout(300)  # retire idle threads after 0.3 s instead of 30 s
    try:
        window = make_window(**GREEDY)
        load(qtbot, window, tiny_r1)
        pid = window.chat.host.pid
        qtbot.wait(2000)  # well past the expiry: the loading thread is gone
        assert window.chat.host.pid == pid
        reply = send(qtbot, window, "hi")
        events = []
        reply.worker.yielded.connect(events.append)
        qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
        assert (reply.widget.reasoning, reply.widget.text) == tiny_r1_expected()
        assert window.chat.host.pid == pid
        assert not [e for e in events if type(e).__name__ == "Loading"], "the model was reloaded"
    finally:
        pool.setExpiryTimeout(expiry)


@pytest.mark.slow
def test_a_reload_is_shown_in_the_status_bar_with_its_reason(make_window, tiny_r1, qtbot):
    import os
    import signal

    window = make_window(**GREEDY)
    load(qtbot, window, tiny_r1)
    os.kill(window.chat.host.pid, signal.SIGKILL)
    shown = record_texts(window.status.model_label)
    reply = send(qtbot, window, "hi")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    assert any(t.startswith("Reloading ") and "the model process stopped" in t for t in shown), shown
    assert window.status.model_label.text().startswith("Model: ")
    assert (reply.widget.reasoning, reply.widget.text) == tiny_r1_expected()
    # The first-token time is the wait the user saw, the reload included.
    stats = reply.widget.stats
    assert stats["ttft_ms"] >= window.chat.host.info.load_seconds * 1000
    assert "the model was reloaded before this reply" in stats["notes"]


@pytest.mark.slow
def test_the_context_counter_follows_the_conversation_and_the_stream(make_window, tiny_r1, qtbot):
    window = make_window(**GREEDY)
    load(qtbot, window, tiny_r1)
    seen = []
    shown = window.status.set_context_used
    window.status.set_context_used = lambda used: (seen.append(used), shown(used))
    reply = send(qtbot, window, "hi")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    # The prompt, then the reply's pieces as they come (gathered while they come fast), then the total.
    assert len(set(seen)) >= 3 and seen == sorted(seen), "the count did not move while the reply streamed"
    # Pieces say how many tokens they carry: the count while streaming reaches the reply's total.
    assert seen[-1] == reply.widget.stats["context_used"], seen
    used = window.status.context[0]
    assert used == reply.widget.stats["context_used"] > 0
    assert window.status.context_label.text() == f"Context {used:,} / 1,024"
    first = window.current_id
    window.new_conversation()
    assert window.status.context[0] == 0
    window.open_conversation(first)
    assert window.status.context[0] == used


@pytest.mark.slow
def test_one_name_per_model_everywhere(make_window, smollm2, qtbot):
    """The header, the status bar, the library and the history call the model by one name."""
    from r1desk.engine.models.library import Library

    window = make_window(**GREEDY, **{"chat.max_tokens": 5})
    info = load(qtbot, window, smollm2)
    listed = Library(window.history.db).by_path(smollm2)
    assert listed is not None and info.name == listed.name == "SmolLM2-135M-Instruct.Q4_1"
    assert window.model_button.text() == info.name
    assert window.status.model_label.text() == f"Model: {info.name}"
    send(qtbot, window, PARIS)
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    assert window.history.get_conversation(window.current_id).model == info.name
    assert info.internal_name != info.name  # the file's own general.name is kept, not shown


@pytest.mark.slow
def test_a_message_too_long_for_the_context_is_caught_before_sending(make_window, smollm2, qtbot):
    """200 KB pasted into an 8k-trained model: said before sending, nothing sent or saved."""
    window = make_window(**{"chat.n_ctx": 2048, "chat.max_tokens": 256})
    load(qtbot, window, smollm2)
    composer = window.composer
    composer.set_text("word " * 200)  # short: no budget shown
    qtbot.wait(800)
    assert not composer.budget_label.isVisible() or not composer.budget_label.text()
    composer.set_text("All work and no play makes Jack a dull boy. " * 4000)  # ~180 KB
    qtbot.waitUntil(lambda: composer.budget_label.text() != "", timeout=30_000)
    text = composer.budget_label.text()
    assert "It is too long to send" in text and "raise the context length in Settings" in text
    assert "8,192" in text  # what this model was trained for
    assert not composer.can_send and not composer.button.isEnabled()
    send_attempt = composer.text()
    window.send(send_attempt.strip())  # even if sent before the count came back
    assert window.reply is None and window.current_id is None
    assert window.history.list_conversations() == []
    # A message that fits alone, in a conversation too long to keep whole: older turns will go.
    cid = window.history.create_conversation(model=window.chat.loaded.name)
    window.history.add_message(cid, "user", "Tell me about dragons. " * 150)
    window.history.add_message(cid, "assistant", "Dragons are large. " * 150)
    window.open_conversation(cid)
    composer.set_text("And what about their wings? " * 150)
    qtbot.waitUntil(lambda: "Older turns" in composer.budget_label.text(), timeout=30_000)
    assert composer.can_send and "It is too long" not in composer.budget_label.text()


def test_a_conversation_gets_a_system_prompt_and_is_exported(make_window, qtbot, tmp_path):
    import json

    window = make_window()
    cid = window.history.create_conversation("Dragons")
    window.history.add_message(cid, "user", "Tell me about dragons")
    window.history.add_message(cid, "assistant", "They **fly**.")
    window.set_system_prompt(cid, "Answer like a pirate.")
    assert window.history.system_prompt(cid) == "Answer like a pirate."
    assert window.export_conversation(cid, tmp_path / "dragons.md")
    md = (tmp_path / "dragons.md").read_text()
    assert md.startswith("# Dragons") and "Answer like a pirate." in md and "They **fly**." in md
    assert window.export_conversation(cid, tmp_path / "dragons.json")
    data = json.loads((tmp_path / "dragons.json").read_text())
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "system"]
    # .jsonl: a line of fine-tuning data, the system prompt first.
    assert window.export_conversation(cid, tmp_path / "dragons.jsonl")
    row = json.loads((tmp_path / "dragons.jsonl").read_text())
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert "fine-tuning data" in window.notice.label.text()
    assert not window.export_conversation(cid, tmp_path / "missing" / "x.jsonl")
    assert "There is no folder" in window.notice.label.text()
    # A folder that does not exist: said in one line, nothing half-written left behind.
    assert not window.export_conversation(cid, tmp_path / "missing" / "x.md")
    assert window.notice.isVisible() and "could not be saved" in window.notice.label.text()
    assert not list(tmp_path.rglob("*.part"))
    window.set_system_prompt(cid, "")
    assert window.history.system_prompt(cid) == ""


@pytest.mark.slow
def test_the_default_system_prompt_starts_new_conversations_and_their_own_wins(make_window, tiny_r1, qtbot):
    from r1desk.app.qt import QDialogButtonBox

    window = make_window(**{**GREEDY, "chat.n_ctx": 512, "chat.max_tokens": 8})
    window.show_settings()
    dialog = window._dialogs["settings"]
    dialog.tabs.setCurrentIndex(dialog.tabs.indexOf(dialog.system_prompt_edit.parentWidget()))
    dialog.system_prompt_edit.setPlainText("  You are a pirate.\nSpeak like one.  ")
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert window.settings.get("chat.system_prompt") == "You are a pirate.\nSpeak like one."
    window.show_settings()
    assert window._dialogs["settings"].system_prompt_edit.toPlainText() == "You are a pirate.\nSpeak like one."
    window._dialogs["settings"].reject()
    load(qtbot, window, tiny_r1)
    send(qtbot, window, "hi")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    new_id = window.current_id
    assert window.history.system_prompt(new_id) == "You are a pirate.\nSpeak like one."
    assert [w.role for w in window.chat_view.messages] == ["user", "assistant"]  # not shown as a message
    # A conversation's own prompt (from the sidebar), or its having none, is kept when it goes on.
    own = window.history.create_conversation("Own")
    window.set_system_prompt(own, "Answer in French.")
    none = window.history.create_conversation("None")
    for cid in (own, none):
        window.open_conversation(cid)
        send(qtbot, window, "again")
        qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    assert window.history.system_prompt(own) == "Answer in French."
    assert window.history.system_prompt(none) == ""
    # Emptied in Settings: new conversations start without one.
    window.settings.set("chat.system_prompt", None)
    window.new_conversation()
    send(qtbot, window, "hi")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    assert window.current_id not in (new_id, own, none) and window.history.system_prompt(window.current_id) == ""


@pytest.mark.slow
def test_regenerate_keeps_the_earlier_reply_to_flip_back_to(make_window, tiny_r1, qtbot):
    window = make_window(**{**GREEDY, "chat.n_ctx": 512})
    load(qtbot, window, tiny_r1)
    send(qtbot, window, "question")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    first_id = window.chat_view.messages[-1].message_id
    assert not window.chat_view.messages[-1].alternative_label.isVisibleTo(window)
    for _ in range(2):
        qtbot.mouseClick(window.chat_view.messages[-1].regenerate_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    last = window.chat_view.messages[-1]
    assert last.message_id != first_id and last.alternative_label.text() == "3/3"
    assert last.previous_button.isEnabled() and not last.next_button.isEnabled()
    qtbot.mouseClick(last.previous_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(window.chat_view.messages[-1].previous_button, Qt.MouseButton.LeftButton)
    shown = window.chat_view.messages[-1]
    assert shown.message_id == first_id and shown.alternative_label.text() == "1/3"
    assert len(window.chat_view.messages) == 2
    # The choice is saved: the conversation reopens, and continues, from the first reply.
    assert [m.id for m in window.history.messages(window.current_id)][-1] == first_id


@pytest.mark.slow
def test_a_long_prompt_shows_how_far_it_has_been_read(make_window, smollm2, qtbot, monkeypatch):
    from r1desk.app import window as window_module

    from tests.engine.inference.test_runner import long_prompt

    monkeypatch.setattr(window_module, "PROMPT_PROGRESS_AFTER_SECONDS", 0.0)
    window = make_window(**{**GREEDY, "chat.n_ctx": 4096, "chat.max_tokens": 4})
    load(qtbot, window, smollm2)
    reply = send(qtbot, window, long_prompt(60))
    widget = reply.widget
    seen = []
    reply.worker.yielded.connect(lambda e: seen.append((type(e).__name__, widget.stats_label.text())))
    qtbot.waitUntil(lambda: window.reply is None, timeout=180_000)
    shown = [text for kind, text in seen if kind == "PromptProgress"]
    assert shown, seen
    assert shown[0].startswith("Reading the prompt… 512 / ") and shown[0].endswith(" tokens")
    assert all(text.startswith("Reading the prompt… ") for text in shown)
    # Gone with the reply's first words: the footer then shows the reply's figures.
    first_words = next(text for kind, text in seen if kind == "ContentDelta")
    assert not first_words.startswith("Reading")
    assert widget.text and not widget.stats_label.text().startswith("Reading")
