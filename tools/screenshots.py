"""Screenshots of the real app under Xvfb, in English and Chinese, for docs/screenshots/ and the README.

    .venv/bin/python tools/screenshots.py [--out docs/screenshots] [--languages en zh_CN] [--only 8-documents ...]

Needs (Debian): xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 fonts-noto-cjk,
and openbox when dialogs should have window frames (without a window manager they have none).
Each language runs in a fresh process with an empty data folder, so the first screenshot is a
real first start. The app talks to the loopback hub of the test suite (tests/support/hub.py),
which serves the tiny R1 test model under the recommended file's name; the chat's last reply
is generated live by that model. The earlier turn of the chat is sample text (Markdown and
code), written into the history database. The model picker and settings are shown on a
described machine (tests/data/profiles/nvidia-8gb.json), since this machine has no GPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "tests" / "data" / "profiles" / "nvidia-8gb.json"
SIZE = (1280, 800)

SAMPLE = {
    "en": {
        "title": "Reversing a list in Python",
        "question": "How do I reverse a list in Python, and which way is fastest?",
        "reasoning": ("The user wants to reverse a list. There are three common ways: slicing with [::-1], "
                      "list.reverse() and reversed(). Slicing copies, reverse() works in place, reversed() "
                      "gives an iterator. For speed, reverse() avoids the copy."),
        "answer": ("There are three common ways:\n\n1. `items[::-1]` returns a **new** reversed list\n"
                   "2. `items.reverse()` reverses **in place** and returns `None`\n"
                   "3. `reversed(items)` gives an iterator, handy in loops\n\n"
                   "```python\nitems = [1, 2, 3, 4]\nitems.reverse()\nprint(items)  # [4, 3, 2, 1]\n```\n\n"
                   "`reverse()` is the fastest when you no longer need the original order, "
                   "because it does not copy the list."),
        "live": "What is 6 × 7?",
        "collection": "Work papers",
        "fact": "aurora-pump",
        "ask": "When did the Aurora reactor get a new coolant pump?",
        "cited": ("The Aurora reactor's coolant pump was replaced on **14 March 2019** [{n}], during the cooling "
                  "work described in section 2 of the maintenance report."),
    },
    "zh_CN": {
        "title": "在 Python 中反转列表",
        "question": "在 Python 里怎么反转一个列表？哪种方法最快？",
        "reasoning": ("用户想反转列表。常见方法有三种：切片 [::-1]、list.reverse() 和 reversed()。"
                      "切片会复制，reverse() 原地修改，reversed() 返回迭代器。论速度，reverse() 不需要复制。"),
        "answer": ("常见的方法有三种：\n\n1. `items[::-1]` 返回一个**新的**反转列表\n"
                   "2. `items.reverse()` **原地**反转，返回 `None`\n"
                   "3. `reversed(items)` 返回迭代器，适合在循环中使用\n\n"
                   "```python\nitems = [1, 2, 3, 4]\nitems.reverse()\nprint(items)  # [4, 3, 2, 1]\n```\n\n"
                   "如果不再需要原来的顺序，`reverse()` 最快，因为它不复制列表。"),
        "live": "6 乘以 7 等于多少？",
        "collection": "工作文件",
        "fact": "battery-supplier",
        "ask": "公司后来改由哪家企业提供电池？",
        "cited": "公司于二〇二二年把电池供应商换成了**宁德新能源** [{n}]，见年度报告的“供应链”一节。",
    },
}


# ---------------------------------------------------------------------------------------
# Outside: an X server for each language run.


def start_window_manager(display: str) -> subprocess.Popen | None:
    if not shutil.which("openbox"):
        print("openbox not found: dialogs will have no window frames")
        return None
    proc = subprocess.Popen(["openbox", "--sm-disable"], env=dict(os.environ, DISPLAY=display),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc


def start_xvfb() -> tuple[subprocess.Popen, str]:
    if not shutil.which("Xvfb"):
        raise SystemExit("Xvfb is missing: apt-get install xvfb libxcb-cursor0 libxcb-icccm4 "
                         "libxcb-keysyms1 libxkbcommon-x11-0 fonts-noto-cjk")
    for n in range(90, 200):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            break
    else:
        raise SystemExit("no free X display number")
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", f"{SIZE[0]}x{SIZE[1]}x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("Xvfb did not start")
        time.sleep(0.1)
    return proc, f":{n}"


def outer(out: Path, languages: list[str], only: list[str] | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for language in languages:
        xvfb, display = start_xvfb()
        manager = start_window_manager(display)
        try:
            env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
            code = subprocess.run([sys.executable, __file__, "--inner", language, "--out", str(out),
                                   *(["--only", *only] if only else [])], env=env, cwd=ROOT).returncode
        finally:
            for proc in (manager, xvfb):
                if proc is not None:
                    proc.terminate()
                    proc.wait(5)
        if code:
            return code
    return 0


# ---------------------------------------------------------------------------------------
# Inside: the real app, driven like a user would.


def inner(language: str, out: Path, only: list[str] | None = None) -> None:
    sys.path.insert(0, str(ROOT))
    home = Path(tempfile.mkdtemp(prefix="r1desk-shots-"))
    os.environ.update(R1DESK_HOME=str(home / "data"), HF_HUB_CACHE=str(home / "hf-cache"),
                      HF_HOME=str(home / "hf-home"), HF_HUB_OFFLINE="0")
    os.environ.pop("HF_ENDPOINT", None)

    from r1desk.app import workers
    from r1desk.app.hardware import probe
    from r1desk.app.main import application, build_window
    from r1desk.app.modelpicker import offers
    from r1desk.app.qt import QApplication, QEvent, QGuiApplication
    from r1desk.app.settings import AppSettings
    from r1desk.engine.chat.history import History
    from r1desk.engine.hardware.probe import Hardware, detect

    from tests.support.hub import FakeHub
    from tests.support.models import tiny_r1_path

    tag = "en" if language == "en" else "zh"
    app = application([sys.argv[0]])
    tiny = tiny_r1_path()
    hub = FakeHub().start()
    history = History()
    settings = AppSettings(history.db)
    settings.set("app.language", language)
    settings.set("app.theme", "light")
    settings.set("hub.endpoint", hub.endpoint)
    settings.set("chat.n_ctx", 2048)
    # The hub serves the tiny test model under the names of the files the app will offer.
    real = detect()
    profile = Hardware.load(PROFILE)
    for hardware in (real, profile):
        for offer in offers(hardware, 2048)[:3]:
            hub.add_repo(offer.repo, {offer.files[0]: tiny})

    def pump(seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            QApplication.processEvents()
            time.sleep(0.01)

    def wait(condition, timeout: float = 60) -> None:
        end = time.time() + timeout
        while not condition():
            if time.time() > end:
                raise SystemExit(f"timed out waiting in the {language} run")
            pump(0.05)

    def center(dialog) -> None:
        dialog.adjustSize()
        dialog.move((SIZE[0] - dialog.width()) // 2, max(0, (SIZE[1] - dialog.height()) // 2))

    def shot(name: str) -> None:
        if only and name not in only:
            return  # the run still goes through it: later shots start from its state
        pump(0.6)
        path = out / f"{tag}-{name}.png"
        QGuiApplication.primaryScreen().grabWindow(0).save(str(path))
        print(path)

    window = build_window(history=history)
    window.setGeometry(0, 0, *SIZE)
    window.show()
    window.start()

    # 1. First start: the machine, the recommended R1 distill, one Download button.
    wait(lambda: "first_run" in window._dialogs)
    first = window._dialogs["first_run"]
    wait(lambda: first.hub_state != "checking" and first.card is not None)
    center(first)
    shot("1-first-run")
    first.reject()

    # 2. A chat with reasoning: a sample earlier turn, then a live reply from the tiny R1 model.
    sample = SAMPLE[language]
    conversation = history.create_conversation(sample["title"], model="DeepSeek-R1-Distill-Qwen-7B")
    history.add_message(conversation, "user", sample["question"])
    reply = history.start_reply(conversation, "DeepSeek-R1-Distill-Qwen-7B")
    history.finish_reply(reply, sample["answer"], sample["reasoning"], "complete",
                         {"completion_tokens": 212, "tokens_per_second": 18.4, "ttft_ms": 310.0,
                          "reasoning_seconds": 4.2, "total_seconds": 11.5})
    window.sidebar.refresh()
    window.load_model(str(tiny))
    wait(lambda: window.chat.loaded is not None and window.loading is None)
    window.open_conversation(conversation)
    window.composer.set_text(sample["live"])
    window.composer._submit()
    wait(lambda: window.reply is None)
    live = window.chat_view.messages[-1]
    live.thinking.button.setChecked(True)
    window.chat_view.scroll_to_bottom()
    window.composer.set_text("")
    shot("2-chat-with-reasoning")

    # 3. The model picker on a machine with an 8 GB NVIDIA GPU: fit badges, memory pictures,
    #    and a download under way.
    probe().set(profile)
    window.show_model_picker()
    picker = window._dialogs["models"]
    picker.resize(900, 700)
    picker.move((SIZE[0] - 900) // 2, 50)
    wait(lambda: bool(picker.cards))
    picker.tabs.setCurrentIndex(1)
    top = picker.cards[0]
    hub.fault(top.offer.repo, top.offer.files[0], throttle=tiny.stat().st_size / 8, times=None)
    top.download_button.click()
    wait(lambda: top.job is not None and top.job.last is not None and top.job.last.total
         and top.job.last.done > 0.35 * top.job.last.total)
    shot("3-model-picker")
    top.job.cancel()
    wait(lambda: top.job.state != "running")
    picker.close()

    # 4. Settings, with the live memory estimate for the loaded model.
    window.show_settings()
    dialog = window._dialogs["settings"]
    wait(lambda: "2,048" in dialog.estimate_label.text())
    center(dialog)
    shot("4-settings")
    # 5. Settings › Chat: the default system prompt, and the disk the saved conversations take.
    dialog.tabs.setCurrentIndex(dialog.tabs.indexOf(dialog.system_prompt_edit.parentWidget()))
    shot("5-settings-chat")
    dialog.reject()

    # 6. Adapters: one imported (a small LoRA for the tiny model) and chosen for this conversation.
    from tests.engine.adapters.lora_files import write_lora

    window.show_adapters()
    panel = window._dialogs["adapters"]
    panel.resize(760, 560)
    center(panel)
    panel.import_path(write_lora(home / "support-tone.gguf"))
    wait(lambda: panel.worker is None)
    check, scale = panel.checks["support-tone"]
    check.setChecked(True)
    scale.setValue(0.8)
    panel.apply_to_conversation()
    shot("6-adapters")
    panel.close()

    # 8. Documents: a folder of English and Chinese files with unreadable ones among them,
    #    indexed; the files that could not be read, each with its reason.
    from r1desk.engine.docs import store
    from r1desk.engine.docs.retrieval import retrieve

    from tests.support.corpus import build_corpus, build_hostile

    folder = home / "Documents" / sample["collection"]
    corpus = build_corpus(folder)
    build_hostile(home / "hostile", big=False)
    for name in ("locked.pdf", "damaged.pdf", "scan.pdf", "program.txt", "mojibake.txt", "bomb.docx"):
        shutil.copy(home / "hostile" / name, folder / name)
    documents = window.documents.show_panel()
    documents.resize(980, 620)
    documents.move((SIZE[0] - 980) // 2, 70)
    documents.create(sample["collection"])
    documents.add_paths([str(folder)])
    wait(lambda: documents.worker is None, timeout=300)
    documents.tabs.setCurrentIndex(1)
    shot("8-documents")
    documents.close()

    # 9. An answer from the documents: its sources under it, the cited PDF open in the app at
    #    the page, the passage marked.
    fact = corpus.fact(sample["fact"])
    sources = retrieve(history.db, [sample["collection"]], sample["ask"], None, k=4)
    cited = next((s for s in sources if Path(s.path).name == fact.file and s.page == fact.page),
                 next(s for s in sources if s.path.endswith(".pdf")))
    conversation = history.create_conversation(sample["ask"][:40], model=window.chat.loaded.name)
    window.chat.set_collections(conversation, [sample["collection"]])
    history.add_message(conversation, "user", sample["ask"])
    reply = history.start_reply(conversation, window.chat.loaded.name)
    history.finish_reply(reply, sample["cited"].format(n=cited.n), "", "complete",
                         {"completion_tokens": 41, "tokens_per_second": 17.9, "ttft_ms": 420.0, "total_seconds": 2.7})
    store.save_sources(history.db, reply, sources)
    window.sidebar.refresh()
    window.open_conversation(conversation)
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # the earlier conversation's messages
    source = next(s for s in window.chat.sources(reply) if s.n == cited.n)
    viewer = window.documents.open_source(source)
    viewer.resize(620, 740)
    viewer.move(SIZE[0] - 640, 30)
    pump(0.3)
    window.documents.open_source(source)  # again, at the viewer's size: the page lands where it should
    wait(lambda: viewer.marked, timeout=20)
    shot("9-sources")
    viewer.close()

    # 7. Serve API: the loaded model to other programs, with a key; the top bar shows the address,
    #    the masked key and a request under way; Settings › API server below it.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.update({"server.port": port, "server.api_key": "shots-" + "k" * 26})
    server_panel = window.server_panel
    server_panel.set_on(True)
    wait(lambda: server_panel.running and not server_panel.busy)

    # A client in the middle of sending its request: the server counts it from its first line.
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Authorization: Bearer " + server_panel.server.api_key.encode() + b"\r\n"
                   b"Content-Length: 4096\r\n\r\n")
    wait(lambda: server_panel.server.requests_in_flight == 1)
    window.show_settings()
    dialog = window._dialogs["settings"]
    dialog.tabs.setCurrentWidget(dialog.server_page)
    center(dialog)
    shot("7-api-server")
    dialog.reject()
    body = b'{"messages": [{"role": "user", "content": "hi"}]}'
    client.sendall(body.ljust(4096))
    client.settimeout(60)
    client.recv(65536)  # the answer's first bytes: the request ends as a client's would
    client.close()

    window.close()
    workers.wait_for_all(10_000)
    window.chat.close()
    hub.stop()
    shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--languages", nargs="+", default=["en", "zh_CN"])
    parser.add_argument("--only", nargs="+", metavar="SHOT",
                        help="save only these shots (8-documents 9-sources...); the others are not rewritten")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.inner, args.out, args.only)
        return 0
    return outer(args.out, args.languages, args.only)


if __name__ == "__main__":
    sys.exit(main())
