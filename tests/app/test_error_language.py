"""Error messages in one language, the current one: worded from the engine's facts, re-worded on a
language switch, with advice that names the app's own settings rather than command-line flags."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from r1desk.app import i18n

from tests.app.conftest import load, send


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


@pytest.mark.slow
def test_a_crash_message_follows_the_language(make_window, smollm2, qtbot):
    window = make_window(**{"chat.temperature": 0.0, "chat.n_ctx": 1024, "chat.max_tokens": 600})
    load(qtbot, window, smollm2)
    i18n.install("zh_CN")
    try:
        reply = send(qtbot, window, "Write a very long story about a dragon.")
        pieces = []

        def on_event(_event):
            pieces.append(1)
            if len(pieces) == 5:
                os.kill(window.chat.host.pid, signal.SIGKILL)

        reply.worker.yielded.connect(on_event)
        qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
        widget = reply.widget
        assert widget.status == "error"
        assert widget.error.startswith("模型意外停止：它被其他程序或用户结束")
        assert "SIGKILL" not in widget.error and "memory" not in widget.error
    finally:
        i18n.install("en")
    assert widget.error == ("The model stopped unexpectedly: another program or the user ended it. "
                            "It starts again with the next message.")
    assert not has_chinese(widget.notice.text())


def test_a_download_failure_names_the_apps_own_settings(make_window, qtbot):
    from r1desk.app.modelpicker import DownloadJob
    from r1desk.engine.models.download import set_hub_endpoint

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    window = make_window()
    set_hub_endpoint(f"http://127.0.0.1:{port}", db=window.history.db)
    job = DownloadJob("someone/model-GGUF", None, "model")
    with qtbot.waitSignal(job.failed, timeout=30_000):
        job.start()
    text = job.error
    assert text.startswith(f"The download server http://127.0.0.1:{port} cannot be reached: it refused the connection.")
    assert "Settings › Downloads" in text and "--endpoint" not in text and "HF_ENDPOINT" not in text
    assert "Errno" not in text and "hf-mirror.com" not in text  # a mirror is set already: check that one
    i18n.install("zh_CN")
    try:
        assert job.error.startswith(f"无法连接下载服务器 http://127.0.0.1:{port}：它拒绝了连接。")
    finally:
        i18n.install("en")


def test_a_notice_is_reworded_when_the_language_changes(make_window, qtbot, tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("just some notes\n" * 10)
    window = make_window()
    with qtbot.waitSignal(window.model_load_failed, timeout=30_000):
        window.load_model(str(bad))
    assert window.notice.label.text().startswith("The model could not be loaded: notes.gguf is not a GGUF model: it is a text file.")
    i18n.install("zh_CN")
    try:
        assert has_chinese(window.notice.label.text()) and "This file is not" not in window.notice.label.text()
        assert has_chinese(window.notice.action.text())
    finally:
        i18n.install("en")
    assert window.notice.label.text().startswith("The model could not be loaded:")


def test_common_errors_are_worded_whole_from_their_facts(make_window, qtbot, tmp_path, smollm2):
    """Each message is one sentence in the user's language, its numbers included, no English left."""
    from r1desk.app.errors import describe

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2.read_bytes()[: 20_000_000])
    window = make_window()
    cases = {}
    for name, path in [("cut", cut), ("missing", tmp_path / "nowhere.gguf"), ("page", tmp_path / "page.gguf")]:
        if name == "page":
            path.write_text("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>\n" * 3)
        with qtbot.waitSignal(window.model_load_failed, timeout=30_000) as failed:
            window.load_model(str(path))
        cases[name] = failed.args[0]
        qtbot.waitUntil(lambda: window.loading is None, timeout=10_000)
    assert cases["cut"] == "cut.gguf is incomplete: it has 19.1 MB of 93.8 MB (20%)."
    assert cases["page"].startswith("page.gguf is not a GGUF model: it is a web page")
    overflow = {"code": "too-long", "tokens": 50_000, "n_ctx": 8192, "n_ctx_train": 8192}
    too_long = describe("ContextOverflow", "", facts=overflow)
    assert too_long.endswith("this is the longest context the model was trained for.") and "50,000" in too_long
    i18n.install("zh_CN")
    try:
        for words in (describe("NotAModel", "x", facts={"code": "not-gguf", "what": "html", "file": "/a/page.gguf"}),
                      describe("CorruptModel", "x", facts={"code": "truncated", "file": "/a/cut.gguf", "size": 1,
                                                           "expected": 4}),
                      describe("NotEnoughMemory", "x", facts={"code": "too-big", "need": 2**34, "have": 2**33}),
                      describe("DiskFull", "x", facts={"code": "disk-full", "folder": "/d", "need": 2**31, "free": 1}),
                      describe("ModelNotFound", "x", facts={"code": "no-file", "file": "/a/b.gguf"}),
                      describe("ContextOverflow", "x", facts=overflow)):
            assert has_chinese(words), words
    finally:
        i18n.install("en")
