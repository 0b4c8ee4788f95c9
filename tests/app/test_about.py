"""The About box: version, the llama.cpp build and its CPU kernels, the data folder; opened from the top bar."""

from __future__ import annotations

from importlib import metadata

from r1desk.app import i18n
from r1desk.app.about import AboutDialog
from r1desk.app.hardware import HardwareProbe
from r1desk.app.qt import QGuiApplication
from r1desk.engine.hardware.probe import Hardware

from tests.app.conftest import CPU_16GB

# A machine running the bundle's llama.cpp, as 'r1desk hw --json' describes it.
BUNDLE_BUILD = {**CPU_16GB, "build": {
    "gpu_offload": True, "backends": ["RPC", "CPU"], "version": "0.3.36", "cpu_variant": "haswell",
    "cpu_features": ["SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2", "OPENMP", "REPACK"],
    "cpu_variants": ["alderlake", "haswell", "icelake", "sandybridge", "skylakex", "sse42", "x64"]}}


def test_the_box_shows_this_install_with_its_real_llama_cpp(make_window, qtbot, r1desk_home):
    window = make_window()
    dialog = window.about_button.show_about()
    qtbot.waitUntil(lambda: dialog.hardware is not None, timeout=60_000)  # the real probe, in a child process
    assert dialog.isVisible() and dialog.windowTitle() == "About r1desk"
    assert metadata.version("r1desk") in dialog.version.text()
    assert dialog.folder.text() == str(r1desk_home)
    assert "llama-cpp-python 0.3.36" in dialog.llama.text() and "AVX2" in dialog.llama.text()
    assert window.about_button.show_about() is dialog  # one box
    dialog.copy_details()
    copied = QGuiApplication.clipboard().text()
    assert copied.startswith(f"r1desk {metadata.version('r1desk')}")
    assert f"Data folder: {r1desk_home}" in copied and "llama-cpp-python 0.3.36" in copied


def test_a_bundle_names_the_variant_chosen_for_the_cpu_in_both_languages(qtbot):
    probe = HardwareProbe()
    probe.set(Hardware.from_dict(BUNDLE_BUILD))
    dialog = AboutDialog(hw_probe=probe)
    qtbot.addWidget(dialog)
    text = dialog.llama.text()
    assert "haswell (SSE3, SSSE3, AVX, AVX2, F16C, FMA, BMI2)" in text and "from 7 variants" in text
    assert "OPENMP" not in text and "Backends: RPC, CPU" in text and text.startswith("llama-cpp-python 0.3.36\n")
    i18n.install("zh_CN")
    assert dialog.windowTitle() == "关于 r1desk"
    assert "从 7 个版本中为这颗处理器选出" in dialog.llama.text()
    assert dialog.copy_button.text() == "复制详情"


def test_a_probe_that_fails_says_so(qtbot):
    probe = HardwareProbe()
    dialog = AboutDialog(hw_probe=probe)
    qtbot.addWidget(dialog)
    probe._fail("llama.cpp could not be asked (exit code 1)")
    assert dialog.llama.text() == "could not be asked: llama.cpp could not be asked (exit code 1)"
