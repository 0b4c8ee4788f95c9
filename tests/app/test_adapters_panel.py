"""The adapters panel: import with progress, details, a conversation's adapters and scales, export, delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1desk.app.qt import Qt

from tests.app.conftest import load, send
from tests.engine.adapters.lora_files import write_lora

pytestmark = pytest.mark.slow

SETTINGS = {"chat.temperature": 0.0, "chat.n_ctx": 512, "chat.max_tokens": 16}


def test_an_adapter_is_imported_chosen_for_a_conversation_and_changes_its_replies(
        make_window, tiny_r1, qtbot, tmp_path: Path) -> None:
    window = make_window(**SETTINGS)
    load(qtbot, window, tiny_r1)
    send(qtbot, window, "hi")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    base_reply = window.chat_view.messages[-1].text
    window.show_adapters()
    dialog = window._dialogs["adapters"]
    assert dialog.list.count() == 0 and "No adapters yet" in dialog.details.text()
    assert not dialog.export_button.isEnabled() and not dialog.apply_button.isEnabled()

    # Import: in a worker, with the result listed and described.
    lora = write_lora(tmp_path / "pirate.gguf", magnitude=2.0)
    worker = dialog.import_path(lora)
    assert worker is not None and not dialog.import_file_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=30_000)
    assert dialog.list.count() == 1 and dialog.list.currentItem().text() == "pirate"
    assert "Imported pirate (rank 4" in dialog.status.text()
    assert "qwen2" in dialog.details.text() and "Rank, alpha" in dialog.details.text()

    # A refused file says why, and nothing is added.
    junk = tmp_path / "junk.gguf"
    junk.write_text("not a model")
    dialog.import_path(junk)
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=30_000)
    assert dialog.list.count() == 1 and dialog.status.text() and dialog.status.objectName() == "MessageNotice"

    # Chosen for this conversation at a scale: the next reply is made with it, and says so.
    check, scale = dialog.checks["pirate"]
    check.setChecked(True)
    scale.setValue(1.5)
    qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    assert window.chat.adapters(window.current_id) == [("pirate", 1.5)]
    assert "pirate × 1.5" in dialog.status.text()
    send(qtbot, window, "hi")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    adapted = window.chat_view.messages[-1]
    assert adapted.text != base_reply
    saved = window.history.messages(window.current_id)[-1]
    assert [(a["name"], a["scale"]) for a in saved.adapters] == [("pirate", 1.5)]
    assert adapted.stats_label.text().startswith("with pirate × 1.5 · ")
    window.open_conversation(window.current_id)  # from the history, the footer still says it
    assert window.chat_view.messages[-1].stats_label.text().startswith("with pirate × 1.5 · ")
    assert not window.chat_view.messages[1].stats_label.text().startswith("with")  # the reply before it

    # Export writes the same bytes back out; delete removes it from the list and the choice.
    out = tmp_path / "out.gguf"
    assert dialog.export_selected(out) and out.read_bytes() == lora.read_bytes()
    dialog.delete_selected()
    assert dialog.list.count() == 0 and dialog.checks == {}
