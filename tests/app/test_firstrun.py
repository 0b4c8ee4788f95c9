"""The first start: hardware, the recommended R1 distill and one Download button; offline, local models."""

from __future__ import annotations

import shutil

import pytest

from r1desk.app.qt import Qt

from tests.app.conftest import described_machine, send
from tests.support.hub import fake_hub  # noqa: F401 (fixture)
from tests.support.models import tiny_r1_expected


def first_run(qtbot, make_window, **settings):
    described_machine()
    window = make_window(start=True, **settings)
    qtbot.waitUntil(lambda: "first_run" in window._dialogs, timeout=5000)
    dialog = window._dialogs["first_run"]
    qtbot.waitUntil(lambda: dialog.hub_state != "checking", timeout=30_000)
    return window, dialog


@pytest.mark.slow
def test_unreachable_hub_offers_models_already_on_this_computer(make_window, tiny_r1, r1desk_home, qtbot):
    models = r1desk_home / "models"
    models.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_r1, models / "my-own-r1.gguf")
    window, dialog = first_run(qtbot, make_window, **{"hub.endpoint": "http://127.0.0.1:9", "chat.n_ctx": 512})
    assert dialog.hub_state == "offline"
    assert dialog.offer is not None and "DeepSeek-R1" in dialog.offer.name  # still shown: what would fit
    assert "cannot be reached" in dialog.hub_label.text()
    assert dialog.settings_button.isVisible()
    assert not dialog.card.download_button.isEnabled()
    qtbot.waitUntil(lambda: bool(dialog.local_rows), timeout=30_000)
    row = dialog.local_rows[0]
    assert row.model.path.endswith("my-own-r1.gguf")
    with qtbot.waitSignal(window.model_loaded, timeout=60_000):
        qtbot.mouseClick(row.load_button, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible() and window.settings.get("app.first_run_done")
    send(qtbot, window, "hi")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    assert window.chat_view.messages[-1].text == tiny_r1_expected()[1]


@pytest.mark.slow
def test_one_download_button_from_first_start_to_a_loaded_model(make_window, fake_hub, tiny_r1, qtbot):  # noqa: F811
    described_machine()
    from r1desk.app.firstrun import recommended_r1
    from r1desk.app.hardware import probe
    from r1desk.app.modelpicker import offers

    best = recommended_r1(offers(probe().hardware, 512))
    fake_hub.add_repo(best.repo, {best.files[0]: tiny_r1})
    window, dialog = first_run(qtbot, make_window, **{"hub.endpoint": fake_hub.endpoint, "chat.n_ctx": 512})
    assert dialog.hub_state == "ok" and dialog.offer.repo == best.repo
    assert dialog.card.badge.kind == "cpu" and dialog.card.memory.bars
    assert "Processor" in dialog.machine.text() and "16.0 GB" in dialog.machine.text()
    assert dialog.card.download_button.isEnabled()
    with qtbot.waitSignal(window.model_loaded, timeout=90_000):
        qtbot.mouseClick(dialog.card.download_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.card.job is not None and dialog.card.job.state != "running", timeout=60_000)
        assert dialog.card.job.state == "done", (dialog.card.job.state, dialog.card.job.error)
    assert not dialog.isVisible()
    assert window.settings.get("app.first_run_done")
    assert window.model_button.text() == window.chat.loaded.name
