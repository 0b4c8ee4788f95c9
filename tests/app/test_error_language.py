"""Error messages in one language, the current one: worded from the engine's facts, re-worded on a
language switch, with advice that names the app's own settings rather than command-line flags."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from r1desk.app import i18n

from tests.app.conftest import load, send
from tests.support.hub import fake_hub  # noqa: F401 (fixture)


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


def english_left(text: str, *names: str) -> list[str]:
    """Words in Latin letters that are not names (files, repos, servers, HTTP, r1desk)."""
    import re

    for name in sorted(names, key=len, reverse=True):
        text = text.replace(str(name), "")
    for known in ("https://hf-mirror.com", "huggingface.co", "Hugging Face", "HTTP", "r1desk", "DeepSeek-R1"):
        text = text.replace(known, "")
    return re.findall(r"[A-Za-z]{2,}", text)


def worded_in_both(exc: BaseException, *names: str) -> tuple[str, str]:
    """The app's message for an engine error in English and in Chinese; the Chinese one has no English."""
    from r1desk.app.errors import user_message

    english = user_message(exc)
    i18n.install("zh_CN")
    try:
        chinese = user_message(exc)
    finally:
        i18n.install("en")
    assert exc.facts.get("code"), exc
    assert has_chinese(chinese) and not english_left(chinese, *names), chinese
    assert not has_chinese(english) and str(exc) not in english, english
    return english, chinese


def test_database_failures_are_worded_whole_in_both_languages(qtbot, tmp_path):
    """A real damaged file, a read-only one, one in use, a full one, one from a newer r1desk."""
    from r1desk.app.main import startup_failure
    from r1desk.engine.chat.history import History
    from r1desk.engine.db import database as storage
    from r1desk.engine.errors import DatabaseError, DiskFull

    p = tmp_path / "r1.db"
    history = History(storage.open_db(p))
    for i in range(20):
        history.add_message(history.create_conversation(title=f"chat {i}"), "user", "hello " * 500)
    history.db.close()
    caught = {}

    conn = storage.sqlite.connect(f"file:{p}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    with pytest.raises(DatabaseError) as info:
        storage.set_setting(storage.Database(conn, p), "k", 1)
    conn.close()
    caught["read-only"] = info.value
    db = storage.open_db(p)
    other = storage.sqlite.connect(p, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    db.execute("PRAGMA busy_timeout = 50")
    with pytest.raises(DatabaseError) as info:
        storage.set_setting(db, "k", 1)
    other.execute("ROLLBACK")
    other.close()
    caught["locked"] = info.value
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(DiskFull) as info:
        storage.set_setting(db, "big", "x" * 200_000)
    caught["full"] = info.value
    db.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_future', 0)")
    db.close()
    with pytest.raises(DatabaseError) as info:
        storage.open_db(p)
    caught["newer"] = info.value

    english = {kind: worded_in_both(exc, str(p))[0] for kind, exc in caught.items()}
    assert english["read-only"] == (f"The chat history database {p} is read-only: conversations can be read, but "
                                    "changes are not saved. Check the permissions of the file and its folder.")
    assert english["locked"].startswith(f"The chat history database {p} is in use by another program")
    assert english["full"].startswith(f"The disk that holds {p} is full, so the last change was not saved.")
    assert english["newer"] == (f"The chat history database {p} was written by a newer version of r1desk: "
                                "update r1desk to open it.")

    # A damaged database where the app keeps its own: the window cannot open, and says why.
    from r1desk.app.main import application, build_window
    from r1desk.engine import paths

    own = paths.database_path()
    history = History(storage.open_db(own))
    for i in range(20):
        history.add_message(history.create_conversation(title=f"chat {i}"), "user", "hello " * 500)
    history.db.close()
    data = bytearray(own.read_bytes())
    data[2 * 4096:] = b"Z" * (len(data) - 2 * 4096)
    own.write_bytes(bytes(data))
    storage._checked.clear()
    application()

    with pytest.raises(DatabaseError) as info:
        build_window()
    assert worded_in_both(info.value, str(own))[0].startswith(f"The chat history database {own} is damaged.")
    box = startup_failure(info.value)
    assert box.text().startswith(f"The chat history database {own} is damaged. Restore it from a backup")
    assert "malformed" not in box.text()


@pytest.mark.slow
def test_hub_refusals_are_worded_whole_in_both_languages(make_window, qtbot, fake_hub, tiny_r1):  # noqa: F811
    """The loopback hub answers 401 (gated, or no such repo), 404, 429 and 500, as the real one does."""
    from r1desk.app.modelpicker import DownloadJob
    from r1desk.engine.models.download import set_hub_endpoint, set_hub_token

    window = make_window()
    db = window.history.db
    server = fake_hub.endpoint
    set_hub_endpoint(server, db=db)
    fake_hub.add_repo("org/gated-GGUF", {"gated-Q8_0.gguf": tiny_r1}, token="hf_secret")
    fake_hub.add_repo("org/open-GGUF", {"open-Q8_0.gguf": tiny_r1})

    def failure(repo, filename=None):
        job = DownloadJob(repo, filename, repo)
        with qtbot.waitSignal(job.failed, timeout=60_000):
            job.start()
        return job.exc

    gated = failure("org/gated-GGUF")
    english, _ = worded_in_both(gated, "org/gated-GGUF", server)
    assert english == ("org/gated-GGUF is gated: accept the model's terms on its page on the hub, then enter your "
                       "access token in Settings › Downloads.")
    set_hub_token("hf_wrong", db=db)
    english, _ = worded_in_both(failure("org/gated-GGUF"), "org/gated-GGUF", server)
    assert "the access token in Settings › Downloads does not give access to it" in english
    set_hub_token(None, db=db)
    english, _ = worded_in_both(failure("org/nothing-GGUF"), "org/nothing-GGUF", server)
    assert english.startswith(f"There is no model org/nothing-GGUF on {server}, or it is private")

    fake_hub.fault("org/open-GGUF", "open-Q8_0.gguf", status=404, times=None)
    english, _ = worded_in_both(failure("org/open-GGUF"), "org/open-GGUF", "open-Q8_0.gguf", server)
    assert english.startswith(f"org/open-GGUF on {server} has no file open-Q8_0.gguf")
    fake_hub.clear_faults()
    # The hub's own rate-limit header; a reset of 0 s keeps the client's retries short.
    fake_hub.fault("org/open-GGUF", "open-Q8_0.gguf", status=429, times=None,
                   headers={"RateLimit": '"api";r=0;t=0', "RateLimit-Policy": '"fixed window";"api";q=500;w=300'})
    limited = failure("org/open-GGUF")
    english, _ = worded_in_both(limited, server)
    assert english == f"{server} is limiting how often it is asked (HTTP 429). Try again in a few minutes."
    waiting = type(limited)("x", facts={**limited.facts, "wait": 55})
    assert worded_in_both(waiting, server)[0].endswith("Try again in 55 seconds.")
    fake_hub.clear_faults()
    fake_hub.fault("org/open-GGUF", "open-Q8_0.gguf", status=500, times=None, headers={"Retry-After": "0"})
    english, chinese = worded_in_both(failure("org/open-GGUF"), server)
    assert english == (f"The download server {server} is not working right now (HTTP 500). Try again later, or "
                       "clear the server in Settings › Downloads to use huggingface.co.")
    assert "500" in chinese


# Like the templates of models that accept no system prompt (Gemma, early Mistral).
NO_SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.mark.slow
def test_a_template_that_refuses_the_system_prompt_says_so_in_both_languages(make_window, qtbot, tmp_path, tiny_r1):
    from r1desk.engine.errors import TemplateError
    from r1desk.engine.inference.templates import ChatTemplate

    from tests.support.models import rewrite_gguf

    metadata = {"tokenizer.chat_template": NO_SYSTEM_TEMPLATE, "general.name": "no-system test model"}
    [model] = rewrite_gguf(tiny_r1, tmp_path / "no-system.gguf", metadata=metadata)
    window = make_window(**{"chat.temperature": 0.0, "chat.n_ctx": 512, "chat.max_tokens": 8,
                            "chat.system_prompt": "Be brief."})
    load(qtbot, window, model)
    assert not window.chat.loaded.is_r1  # so the system prompt goes to the template as it is
    reply = send(qtbot, window, "hi")
    qtbot.waitUntil(lambda: window.reply is None, timeout=60_000)
    shown = reply.widget.error
    assert shown.startswith("The model's chat template refused this conversation. Some models accept no system "
                            "prompt"), shown
    assert "Settings › Chat" in shown and "System role not supported" not in shown
    i18n.install("zh_CN")
    try:
        assert has_chinese(reply.widget.error) and not english_left(reply.widget.error), reply.widget.error
    finally:
        i18n.install("en")
    # The other ways a template fails, raised for real.
    for source, messages in [
        ("{{ ().__class__.__base__.__subclasses__() }}", []),  # reaching Python internals
        ("{{ messages[5]['content'] }}", []),  # a template's own bug
        ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", []),  # an endless prompt
    ]:
        with pytest.raises(TemplateError) as info:
            ChatTemplate(source).render(messages)
        worded_in_both(info.value)
