"""Choosing and downloading a model: fit badges, memory pictures, a download from the loopback hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1desk.app.modelpicker import MemoryPicture, fit_kind
from r1desk.app.qt import Qt

from tests.app.conftest import described_machine, load, send
from tests.support.hub import fake_hub  # noqa: F401 (fixture)
from tests.support.models import tiny_r1_expected

R1_SMALL = "deepseek-r1-distill-qwen-1.5b"


def open_picker(qtbot, window):
    window.show_model_picker()
    picker = window._dialogs["models"]
    qtbot.waitUntil(lambda: bool(picker.cards), timeout=30_000)
    return picker


def test_offers_carry_fit_badges_and_a_memory_picture_per_device(make_window, qtbot):
    hardware = described_machine()
    window = make_window()
    picker = open_picker(qtbot, window)
    kinds = {card.offer.model_id: card.badge.kind for card in picker.cards}
    # A 16 GB machine without a GPU runs the small models on the CPU and cannot hold the 70B.
    assert kinds[R1_SMALL] == "cpu"
    assert kinds["deepseek-r1-distill-llama-70b"] == "too_large"
    assert picker.cards[0].recommended and picker.cards[0].badge.kind != "too_large"
    for card in picker.cards:
        assert card.badge.kind == fit_kind(card.offer.plan)
        assert card.download_button.isEnabled() == (card.badge.kind != "too_large")
        bars = card.memory.bars
        assert [b.name for b in bars] == ["CPU"]
        assert bars[0].capacity == hardware.ram_total
        assert bars[0].weights > 0 and bars[0].kv > 0
        assert card.why.text()
    big = next(c for c in picker.cards if c.offer.model_id == "deepseek-r1-distill-llama-70b")
    assert big.memory.bars[0].need > big.memory.bars[0].budget  # drawn red: it does not fit
    assert isinstance(big.memory, MemoryPicture) and "70B" in big.title.text()


@pytest.mark.slow
def test_one_click_download_from_the_loopback_hub_shows_progress_and_loads(
        make_window, fake_hub, tiny_r1, qtbot):  # noqa: F811
    described_machine()
    window = make_window(**{"hub.endpoint": fake_hub.endpoint, "chat.n_ctx": 512, "chat.temperature": 0.0})
    picker = open_picker(qtbot, window)
    card = next(c for c in picker.cards if c.offer.model_id == R1_SMALL)
    qtbot.waitUntil(lambda: picker.show_offer(card) or not card.download_button.visibleRegion().isEmpty(),
                    timeout=5000)
    name = card.offer.files[0]
    # The hub serves the tiny R1 model under the catalog's file name, slowly enough to watch.
    fake_hub.add_repo(card.offer.repo, {name: tiny_r1})
    fake_hub.fault(card.offer.repo, name, throttle=tiny_r1.stat().st_size / 3, times=None)
    seen = []
    with qtbot.waitSignal(window.model_loaded, timeout=120_000) as loaded:
        qtbot.mouseClick(card.download_button, Qt.MouseButton.LeftButton)
        assert card.job is not None and card.progress.isVisible()
        card.job.progress.connect(lambda e: seen.append(
            (e.done, e.total, card.progress.bar.value(), card.progress.figures.text())))
    middle = [s for s in seen if s[1] and 0 < s[0] < s[1]]
    assert middle, seen
    done, total, bar, figures = middle[len(middle) // 2]
    assert 0 < bar < 1000
    assert " of " in figures and "/s" in figures and "left" in figures
    info = loaded.args[0]
    assert card.job.state == "done" and card.job.model.origin == "hub"
    assert card.job.model.source_file == name
    assert Path(info.path).resolve() == Path(card.job.model.path).resolve()
    assert card.job.model.sha256 == fake_hub.file(card.offer.repo, name).sha256
    assert window.chat.loaded.path == info.path
    # Downloaded, verified, loaded: it answers, with its reasoning shown.
    picker.close()
    send(qtbot, window, "hi")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    answer = window.chat_view.messages[-1]
    assert (answer.reasoning, answer.text) == tiny_r1_expected()
    # The library tab lists it as loaded.
    window.show_model_picker()
    rows = [picker.local_list.itemAt(i).widget() for i in range(picker.local_list.count())]
    assert any(r.model.source_file == name and r.load_button.text() == "Loaded" for r in rows)


@pytest.mark.slow
def test_cancelled_download_says_so_and_resumes(make_window, fake_hub, tiny_r1, qtbot):  # noqa: F811
    described_machine()
    window = make_window(**{"hub.endpoint": fake_hub.endpoint, "chat.n_ctx": 512})
    picker = open_picker(qtbot, window)
    card = next(c for c in picker.cards if c.offer.model_id == R1_SMALL)
    qtbot.waitUntil(lambda: picker.show_offer(card) or not card.download_button.visibleRegion().isEmpty(),
                    timeout=5000)
    name = card.offer.files[0]
    size = tiny_r1.stat().st_size
    fake_hub.add_repo(card.offer.repo, {name: tiny_r1})
    fake_hub.fault(card.offer.repo, name, throttle=size / 4, times=1)
    qtbot.mouseClick(card.download_button, Qt.MouseButton.LeftButton)
    first = card.job
    qtbot.waitUntil(lambda: first.last is not None and (first.last.done or 0) > size * 0.2, timeout=30_000)
    with qtbot.waitSignal(first.cancelled, timeout=10_000):
        qtbot.mouseClick(card.progress.cancel_button, Qt.MouseButton.LeftButton)
    assert card.download_button.isVisible() and "continue" in card.status.text()
    with qtbot.waitSignal(window.model_loaded, timeout=120_000):
        qtbot.mouseClick(card.download_button, Qt.MouseButton.LeftButton)
    # The second run fetched only what was missing.
    assert fake_hub.bytes_served(name) < size * 1.1


@pytest.mark.slow
def test_the_picker_closes_on_load_and_shows_the_new_model_when_reopened(make_window, qtbot, smollm2, tiny_r1):
    from r1desk.engine.models.library import Library

    window = make_window()
    library = Library(window.history.db)
    for path in (smollm2, tiny_r1):
        library.register(path)
    load(qtbot, window, smollm2)
    window.show_model_picker()
    picker = window._dialogs["models"]
    rows = {Path(r.model.path).name: r for r in _rows(picker)}
    assert rows[smollm2.name].loaded and not rows[tiny_r1.name].loaded
    with qtbot.waitSignal(window.model_loaded, timeout=60_000):
        rows[tiny_r1.name].load_button.click()
        assert not picker.isVisible()  # closed at once: the main window shows the loading
    window.show_model_picker()
    rows = {Path(r.model.path).name: r for r in _rows(picker)}
    assert rows[tiny_r1.name].loaded and not rows[smollm2.name].loaded


def test_a_load_error_shows_where_the_user_is_looking(make_window, qtbot, tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model\n" * 10)
    window = make_window()
    window.show_model_picker()
    picker = window._dialogs["models"]
    with qtbot.waitSignal(window.model_load_failed, timeout=30_000):
        picker._load(str(bad))
    assert not picker.isVisible() and window.notice.isVisible()
    assert "notes.gguf is not a GGUF model" in window.notice.label.text()
    # A load started elsewhere while the picker is open (a finished download, say) reports in the picker.
    window.show_model_picker()
    with qtbot.waitSignal(window.model_load_failed, timeout=30_000):
        window.load_model(str(bad))
    assert picker.isVisible() and "notes.gguf is not a GGUF model" in picker.local_note.text()
    assert picker.local_note.objectName() == "MessageNotice"


def _rows(picker):
    from r1desk.app.modelpicker import LocalModelRow

    layout = picker.local_list
    return [layout.itemAt(i).widget() for i in range(layout.count())
            if isinstance(layout.itemAt(i).widget(), LocalModelRow)]


def _profile(name: str) -> dict:
    import json

    return json.loads((Path(__file__).resolve().parents[1] / "data" / "profiles" / f"{name}.json").read_text())


def test_cards_say_the_budget_a_capped_context_and_an_estimated_speed(make_window, qtbot):
    from r1desk.engine.hardware import fit
    from r1desk.engine.units import human_bytes

    hardware = described_machine(_profile("cpu-24gb-2cores"))
    window = make_window(**{"chat.n_ctx": 131072})
    picker = open_picker(qtbot, window)
    usable = human_bytes(fit.ram_budget(hardware, planning=True))
    assert f"A model may use up to {usable} of the RAM" in picker.machine.text()
    fitting = [c for c in picker.cards if c.badge.kind != "too_large"]
    assert fitting and all(f"of {usable} usable" in c.why.text() and "tokens/s, estimated" in c.why.text()
                           for c in fitting)
    capped = [c for c in picker.cards if c.offer.ctx_capped]
    assert capped
    for card in picker.cards:
        said = f"Context capped at {card.offer.n_ctx:,} tokens, the most this model was trained for." in card.why.text()
        assert said == (card.offer.ctx_capped and card.offer.tier is not None), card.offer.label
    # Sizes one way: the figures beside each bar are human_bytes, as everywhere else.
    bar = fitting[0].memory.bars[0]
    assert MemoryPicture._figures(bar) == f"{human_bytes(bar.need)} / {human_bytes(bar.capacity)}"


def test_plan_words_say_which_budget_and_that_the_speed_is_estimated():
    from r1desk.app.modelpicker import plan_text
    from r1desk.engine.hardware import fit
    from r1desk.engine.hardware.probe import Hardware
    from r1desk.engine.models import catalog as C

    hardware = Hardware.from_dict(_profile("cpu-24gb-2cores"))
    small = C.synthesize(C.Arch("qwen2", 28, 1536, 8960, 12, 2, 151936, 131072), "Q4_K_M")
    text = plan_text(fit.estimate(small, n_ctx=4096, hardware=hardware))
    assert text.startswith("On the processor, in RAM") and text.endswith("tokens/s, estimated.")
    big = C.synthesize(C.Arch("qwen2", 64, 5120, 27648, 40, 8, 152064, 131072), "Q8_0")
    assert plan_text(fit.estimate(big, n_ctx=4096, hardware=hardware, planning=True)).startswith(
        "Does not fit: it needs")
    # The settings dialog's estimate is about loading now: it says so.
    now = plan_text(fit.estimate(big, n_ctx=4096, hardware=hardware))
    assert now.startswith("Does not fit right now") and now.endswith("can be used right now.")


def test_finding_models_says_where_it_looked_and_takes_a_folder(make_window, qtbot, tmp_path, tiny_r1):
    import shutil

    window = make_window()
    window.show_model_picker()
    picker = window._dialogs["models"]
    picker.scan()
    qtbot.waitUntil(lambda: picker._scan_worker is None, timeout=30_000)
    note = picker.local_note.text()
    assert note.startswith("No new models found. Looked in: r1desk's models folder (")
    folder = tmp_path / "my models"
    folder.mkdir()
    shutil.copy(tiny_r1, folder / "tiny.gguf")
    picker.scan(str(folder))
    qtbot.waitUntil(lambda: picker._scan_worker is None, timeout=30_000)
    note = picker.local_note.text()
    assert note.startswith("1 new model found.") and f"the folder you chose ({folder})" in note
    assert any(Path(r.model.path).name == "tiny.gguf" for r in _rows(picker))
