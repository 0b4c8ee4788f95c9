"""The app as a whole: the entry point, one instance, errors in words, looks, keys, the hardware panel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1desk.app import theme
from r1desk.app.hardware import HardwarePanel, plain_words, probe
from r1desk.app.qt import QApplication, QLabel, QPalette, Qt
from r1desk.engine.hardware.probe import Hardware

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_r1desk_opens_the_window_and_a_second_launch_hands_over(r1desk_home, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", R1DESK_HOME=str(r1desk_home))
    first = subprocess.Popen([sys.executable, "-m", "r1desk.app.entry"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        log = r1desk_home / "logs" / "r1desk.log"
        deadline = time.time() + 60
        while not (log.exists() and "r1desk started" in log.read_text()):
            assert first.poll() is None, first.stdout.read().decode()
            assert time.time() < deadline, "the app did not start"
            time.sleep(0.2)
        second = subprocess.run([sys.executable, "-m", "r1desk.app.entry"], cwd=ROOT, env=env,
                                capture_output=True, timeout=60)
        assert second.returncode == 0
        assert "already running" in log.read_text()
        assert first.poll() is None  # the first one is still there
    finally:
        first.terminate()
        first.wait(10)


def test_a_file_that_is_not_a_model_gets_a_clear_message(make_window, qtbot, tmp_path):
    bad = tmp_path / "holiday-photos.gguf"
    bad.write_bytes(b"JFIF" + os.urandom(4096))
    window = make_window()
    with qtbot.waitSignal(window.model_load_failed, timeout=30_000) as failed:
        window.load_model(str(bad))
    assert "holiday-photos.gguf" in failed.args[0]
    assert window.notice.isVisible() and window.notice.label.text().startswith("The model could not be loaded:")
    assert window.notice.action.text() == "Choose another model"
    assert window.chat.loaded is None and window.composer.disabled_reason.startswith("No model is loaded")


def test_keyboard_shortcuts(make_window, qtbot):
    window = make_window()
    conversation = window.history.create_conversation("Earlier")
    window.history.add_message(conversation, "user", "hello")
    window.sidebar.refresh()
    window.open_conversation(conversation)
    assert window.chat_view.messages
    with qtbot.waitActive(window):
        window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.current_id is None and not window.chat_view.messages
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.sidebar.search.hasFocus()
    qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    assert window._dialogs["settings"].isVisible()
    window._dialogs["settings"].reject()


def test_dark_and_light_themes(make_window):
    window = make_window()
    window.settings.set("app.theme", "dark")
    window.settings_changed(["app.theme"])
    assert theme.is_dark()
    assert QApplication.palette().color(QPalette.ColorRole.Window).name() == theme.DARK["window"]
    assert "#1f2024" in QApplication.instance().styleSheet()
    window.settings.set("app.theme", "light")
    window.settings_changed(["app.theme"])
    assert not theme.is_dark()
    assert QApplication.palette().color(QPalette.ColorRole.Window).name() == theme.LIGHT["window"]


def test_hardware_panel_says_what_the_build_can_use(qtbot):
    cuda_but_cpu_build = Hardware.from_dict({
        "ram_total": "32 GiB", "ram_available": "20 GiB",
        "cpu": {"name": "Ryzen 7", "physical_cores": 8, "logical_cores": 16, "flags": ["avx2"]},
        "gpus": [{"name": "NVIDIA GeForce RTX 3060", "vendor": "nvidia", "backend": "cuda",
                  "total": "12 GiB", "free": "11 GiB", "driver": "550.1", "cuda_version": "12.4"}],
        "build": {"gpu_offload": False, "backends": ["CPU"]},
        "notes": ["CUDA GPU found (NVIDIA GeForce RTX 3060), but this llama.cpp build is CPU-only"],
    })
    words = dict(plain_words(cuda_but_cpu_build))
    assert "Ryzen 7, 8 cores (16 threads)" in words["Processor"]
    assert words["Memory (RAM)"] == ("32.0 GB in all, 20.0 GB free right now; a model may use up to 24.0 GB "
                                     "(the rest stays with the system and other programs)")
    assert "RTX 3060" in words["Graphics card"] and "cannot use it" in words["Graphics card"]
    assert words["llama.cpp"].startswith("This build runs on the processor only")
    assert "CPU-only" in words["Note"]
    probe().set(cuda_but_cpu_build)
    panel = HardwarePanel()
    qtbot.addWidget(panel)
    texts = [label.text() for label in panel.body.findChildren(QLabel)]
    assert "Graphics card" in texts and any("CUDA 12.4" in t for t in texts)


def test_engine_errors_get_a_chinese_headline(make_window, qtbot, tmp_path):
    from r1desk.app import i18n

    bad = tmp_path / "cut.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + os.urandom(64))
    window = make_window()
    i18n.install("zh_CN")
    try:
        with qtbot.waitSignal(window.model_load_failed, timeout=30_000) as failed:
            window.load_model(str(bad))
        message = failed.args[0]
        assert message.startswith("模型文件已损坏或不完整。") and "重新下载" not in message  # not a download
        assert "cut.gguf" in message  # the engine's precise detail follows
    finally:
        i18n.install("en")


def test_a_renamed_text_file_is_not_called_a_damaged_download(make_window, qtbot, tmp_path):
    notes = tmp_path / "notes.gguf"
    notes.write_text("# Notes\nThis is a README that was renamed by mistake.\n" * 5)
    window = make_window()
    with qtbot.waitSignal(window.model_load_failed, timeout=30_000):
        window.load_model(str(notes))
    text = window.notice.label.text()
    assert "notes.gguf is not a GGUF model: it is a text file." in text
    assert "download" not in text.lower() and "b'" not in text


@pytest.mark.slow
def test_a_damaged_download_is_advised_to_be_downloaded_again(make_window, qtbot, tmp_path, smollm2):
    from r1desk.engine.models.library import Library

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2.read_bytes())
    window = make_window()
    Library(window.history.db).register(cut, origin="hub", source_repo="someone/some-GGUF", source_file="cut.gguf")
    with open(cut, "r+b") as fh:  # damaged after the download
        fh.truncate(2_000_000)
    with qtbot.waitSignal(window.model_load_failed, timeout=30_000):
        window.load_model(str(cut))
    text = window.notice.label.text()
    assert "cut.gguf is incomplete" in text and "Download it again from the model picker." in text
