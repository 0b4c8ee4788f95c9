"""English and Chinese: every string translated, the compiled file current, switching live."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from r1desk.app import i18n
from r1desk.app.qt import (
    QAbstractButton,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    Qt,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import translations  # noqa: E402

# Words that are the same in both languages (names, units).
SAME = {"r1desk", "llama.cpp", "LM Studio", "Ollama", "Top P", "Top K", "Min P", "CUDA {version}",
        "{done} of {total}"}


def test_every_string_in_the_code_is_translated_and_compiled():
    assert translations.problems("zh_CN") == []


def english_sources() -> set[str]:
    root = ET.parse(translations.ts_path("zh_CN")).getroot()
    return {m.findtext("source") for m in root.iter("message")} - SAME


def visible_texts(widget) -> list[str]:
    texts = []
    for child in widget.findChildren(QLabel) + widget.findChildren(QAbstractButton):
        if child.isVisibleTo(widget) and child.text():
            texts.append(child.text())
    for child in widget.findChildren(QLineEdit) + widget.findChildren(QPlainTextEdit):
        if child.isVisibleTo(widget) and child.placeholderText():
            texts.append(child.placeholderText())
    texts.append(widget.windowTitle())
    return texts


def test_switching_the_language_shows_chinese_at_once(make_window, qtbot):
    window = make_window()
    english = english_sources()
    assert window.model_button.text() == "Choose a model"
    window.show_settings()
    dialog = window._dialogs["settings"]
    dialog.language_combo.setCurrentIndex(dialog.language_combo.findData("zh_CN"))
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert i18n.current() == "zh_CN"
    assert window.settings.get("app.language") == "zh_CN"
    assert window.model_button.text() == "选择模型"
    assert window.sidebar.new_button.text() == "新对话"
    assert window.status.model_label.text() == "未加载模型"
    assert window.composer.disabled_reason == "还没有加载模型。请选择或下载一个模型，然后开始聊天。"
    assert window.chat_view._empty_title.text() == "有什么可以帮你？"
    left_in_english = [t for t in visible_texts(window) if t in english]
    assert left_in_english == []
    # The settings dialog, opened again, is Chinese too.
    window.show_settings()
    again = window._dialogs["settings"]
    assert again.windowTitle() == "设置"
    assert [t for t in visible_texts(again) if t in english] == []
    again.reject()
    # And back.
    i18n.install("en")
    assert window.model_button.text() == "Choose a model"

