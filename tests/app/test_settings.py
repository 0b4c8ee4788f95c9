"""Settings: stored in the database, a live memory estimate, a reload when the context changes."""

from __future__ import annotations

import pytest

from r1desk.app.qt import QDialogButtonBox, Qt

from tests.app.conftest import described_machine, load


@pytest.mark.slow
def test_context_and_gpu_layers_show_a_live_estimate_and_reload_the_model(make_window, tiny_r1, qtbot):
    described_machine()
    window = make_window(**{"chat.n_ctx": 512})
    load(qtbot, window, tiny_r1)
    assert window.status.context_label.text() == "Context 0 / 512"
    window.show_settings()
    dialog = window._dialogs["settings"]
    qtbot.waitUntil(lambda: "512 tokens of context" in dialog.estimate_label.text(), timeout=10_000)
    assert "On the processor, in RAM" in dialog.estimate_label.text()
    dialog.ctx_spin.setValue(2048)
    qtbot.waitUntil(lambda: "2,048 tokens of context" in dialog.estimate_label.text(), timeout=10_000)
    dialog.gpu_manual.setChecked(True)
    dialog.gpu_spin.setValue(10)
    dialog.sampling["temperature"].spin.setValue(0.3)
    dialog.sampling["reasoning_budget"].spin.setValue(512)
    with qtbot.waitSignal(window.model_loaded, timeout=60_000) as reloaded:
        qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert reloaded.args[0].n_ctx == 2048
    assert window.status.context_label.text() == "Context 0 / 2,048"
    settings = window.settings
    assert settings.get("chat.n_ctx") == 2048 and settings.get("chat.n_gpu_layers") == 10
    params = settings.sampling()
    assert params.temperature == 0.3 and params.reasoning_budget == 512 and params.top_p is None
    options = settings.load_options()
    assert options.n_ctx == 2048 and options.n_gpu_layers == 10


def test_defaults_mean_automatic(make_window):
    window = make_window()
    params = window.settings.sampling()
    assert all(getattr(params, k) is None for k in ("temperature", "top_p", "max_tokens", "reasoning_budget"))
    options = window.settings.load_options()
    assert options.n_ctx is None and options.n_gpu_layers == "auto"
    window.show_settings()
    dialog = window._dialogs["settings"]
    assert dialog.ctx_spin.text() == "Automatic" and dialog.gpu_auto.isChecked()
    assert dialog.sampling["temperature"].spin.text() == "Model default"
    assert dialog.values()["chat.temperature"] is None
    assert "Load a model" in dialog.estimate_label.text() or dialog.estimate_label.text() == ""
    dialog.reject()


def test_a_download_server_that_is_not_an_address_is_refused(make_window, qtbot):
    window = make_window()
    window.show_settings()
    dialog = window._dialogs["settings"]
    dialog.endpoint_combo.setCurrentText("hf-mirror dot com")
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and dialog.hub_error.isVisibleTo(dialog)
    assert "not an http(s) address" in dialog.hub_error.text()
    assert window.settings.get("hub.endpoint") is None
    dialog.endpoint_combo.setCurrentText("https://hf-mirror.com/")
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    assert window.settings.get("hub.endpoint") == "https://hf-mirror.com"
    from r1desk.engine.models.download import hub_endpoint

    assert hub_endpoint(db=window.history.db) == "https://hf-mirror.com"


def _profile(name: str) -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).resolve().parents[1] / "data" / "profiles" / f"{name}.json").read_text())


def test_gpu_layers_are_disabled_with_the_reason_without_a_usable_gpu(make_window):
    described_machine()  # 16 GB, no GPU
    window = make_window()
    window.show_settings()
    dialog = window._dialogs["settings"]
    assert not dialog.gpu_auto.isEnabled() and not dialog.gpu_manual.isEnabled()
    assert not dialog.gpu_spin.isEnabled()
    assert dialog.gpu_reason.isVisible()
    assert dialog.gpu_reason.text().startswith("This computer has no graphics card r1desk can use")
    assert dialog.values()["chat.n_gpu_layers"] == "auto"  # what was stored stays
    dialog.reject()


def test_gpu_layers_can_be_chosen_with_a_usable_gpu(make_window):
    described_machine(_profile("nvidia-8gb"))
    window = make_window()
    window.show_settings()
    dialog = window._dialogs["settings"]
    assert dialog.gpu_auto.isEnabled() and dialog.gpu_manual.isEnabled() and not dialog.gpu_reason.isVisible()
    dialog.gpu_manual.setChecked(True)
    assert dialog.gpu_spin.isEnabled()
    dialog.reject()


def test_the_reply_limit_shows_its_default_and_can_be_lifted(make_window, qtbot):
    from r1desk.engine.chat.service import DEFAULT_MAX_TOKENS

    window = make_window()
    window.show_settings()
    dialog = window._dialogs["settings"]
    spin = dialog.sampling["max_tokens"].spin
    assert spin.text() == f"{DEFAULT_MAX_TOKENS:,} tokens"  # the default, shown as its number
    assert dialog.values()["chat.max_tokens"] is None  # ... and kept as "the default"
    assert "thinking is not counted" in spin.toolTip()
    assert "\"No limit\" (0) lets a reply run until the context is full" in dialog.sampling_note.text()
    spin.setValue(0)
    assert spin.text() == "No limit"
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert window.settings.get("chat.max_tokens") == 0 and window.settings.sampling().max_tokens == 0
    window.show_settings()
    dialog = window._dialogs["settings"]
    dialog.load()
    assert dialog.sampling["max_tokens"].spin.text() == "No limit"
    dialog.sampling["max_tokens"].spin.setValue(4096)
    assert dialog.values()["chat.max_tokens"] == 4096
    dialog.reject()
