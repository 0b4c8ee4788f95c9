"""The first start: hardware, the recommended R1 distill and one Download button; offline, local models."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from r1desk.app.qt import Qt

from tests.app.conftest import described_machine, send
from tests.support.hub import fake_hub  # noqa: F401 (fixture)
from tests.support.models import tiny_r1_expected


def first_run(qtbot, make_window, profile: dict | None = None, **settings):
    described_machine(*([profile] if profile else []))
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


PROFILE_24GB = Path(__file__).resolve().parents[1] / "data" / "profiles" / "cpu-24gb-2cores.json"


def _this_machine() -> dict:
    """The machine the first contact was seen on: 24 GB, two cores, no GPU."""
    return json.loads(PROFILE_24GB.read_text(encoding="utf-8"))


def _overlaps(card) -> list[str]:
    """Widgets of the card drawn over one another, or squeezed below what their text needs."""
    problems = []
    shown = [w for w in (card.facts, card.memory, card.why) if w.isVisible()]
    for upper, lower in itertools.pairwise(shown):
        if lower.geometry().top() < upper.geometry().bottom():
            problems.append(f"{type(lower).__name__} starts above the end of {type(upper).__name__}")
    for w in shown:
        if w.height() < w.heightForWidth(w.width()):
            problems.append(f"{type(w).__name__} is {w.height()} px high, its text needs {w.heightForWidth(w.width())}")
    return problems


def _nothing_overlaps(qtbot, card) -> None:
    try:
        qtbot.waitUntil(lambda: not _overlaps(card), timeout=3000)
    except qtbot.TimeoutError:
        pytest.fail("; ".join(_overlaps(card)))


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_the_card_keeps_its_reason_below_the_memory_picture(make_window, fake_hub, tiny_r1, qtbot,  # noqa: F811
                                                            language):
    """The legend row of the memory picture and the "Runs on the processor…" line do not overlap,
    also after the server's sentence under the card grows, and in Chinese."""
    from r1desk.app.firstrun import recommended_r1
    from r1desk.app.modelpicker import offers

    hardware = described_machine(_this_machine())
    best = recommended_r1(offers(hardware, 8192))
    fake_hub.add_repo(best.repo, {best.files[0]: tiny_r1})
    _window, dialog = first_run(qtbot, make_window, _this_machine(),
                                **{"hub.endpoint": fake_hub.endpoint, "app.language": language})
    assert dialog.hub_state == "ok"
    card = dialog.card
    _nothing_overlaps(qtbot, card)
    layout = dialog.layout()
    assert dialog.height() >= layout.totalHeightForWidth(dialog.width())
    assert card.memory.height() == card.memory.heightForWidth(card.memory.width())
    # Narrower: the legend wraps, the reason takes more lines, and still nothing overlaps.
    dialog.resize(dialog.minimumWidth(), dialog.height())
    _nothing_overlaps(qtbot, card)
    # A larger font (Windows' 125 % text, a user's choice) grows the rows instead of overlapping them.
    font = dialog.font()
    font.setPointSizeF(font.pointSizeF() * 1.5)
    dialog.setFont(font)
    _nothing_overlaps(qtbot, card)
    assert card.memory.height() >= 2 * card.memory.fontMetrics().height()


def test_the_card_and_the_machine_say_the_budget_recommend_says(make_window, fake_hub, tiny_r1, qtbot):  # noqa: F811
    """One budget: the first-run card's "usable" is what `r1desk recommend` prints for the machine."""
    from click.testing import CliRunner

    from r1desk.cli import cli
    from r1desk.cli.hardware import why
    from r1desk.engine.hardware import fit
    from r1desk.engine.units import human_bytes

    hardware = described_machine(_this_machine())
    _window, dialog = first_run(qtbot, make_window, _this_machine(), **{"hub.endpoint": fake_hub.endpoint})
    usable = human_bytes(fit.ram_budget(hardware, planning=True))
    assert usable == "17.7 GB"
    assert f"a model may use up to {usable}" in dialog.machine.text()
    card = dialog.card
    assert f"of {usable} usable" in card.why.text() and "tokens/s, estimated" in card.why.text()
    assert card.why.text().startswith("Runs on the processor in RAM")
    bar = card.memory.bars[0]
    assert bar.budget == fit.ram_budget(hardware, planning=True)
    # The command line says the same, for the same machine and choice.
    out = CliRunner().invoke(cli, ["recommend", "--profile", str(PROFILE_24GB), "--lang", "en"]).output
    assert f"Usable for a model: {usable} of RAM" in out
    assert why(dialog.offer, "en").replace("on the CPU", "on the processor") == card.why.text()
