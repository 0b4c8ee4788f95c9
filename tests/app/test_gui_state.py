"""What a GUI test leaves for the next one (tests/app/conftest.py): English, the light theme, no Qt settings."""

from __future__ import annotations

from pathlib import Path

from r1desk.app import i18n, theme
from r1desk.app.qt import QApplication, QLabel, QPalette, QSettings


def window_colour() -> str:
    return QApplication.palette().color(QPalette.ColorRole.Window).name()


def test_a_test_may_switch_to_chinese_and_dark(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    i18n.install("zh_CN")
    theme.apply("dark")
    label.setText(i18n.translate("MainWindow", "Choose a model"))
    assert label.text() == "选择模型"
    assert window_colour() == theme.DARK["window"]
    # Left so: the next test (pytest runs a file's tests in order) must not see it.


def test_the_next_test_is_in_english_and_light(qapp):
    assert i18n.current() == "en"
    assert i18n.translate("MainWindow", "Choose a model") == "Choose a model"
    assert not theme.is_dark() and window_colour() == theme.LIGHT["window"]


def test_qt_settings_are_kept_in_the_tests_own_home(tmp_path: Path):
    settings = QSettings("r1desk", "r1desk")
    assert Path(settings.fileName()).resolve().is_relative_to(tmp_path.resolve()), settings.fileName()
