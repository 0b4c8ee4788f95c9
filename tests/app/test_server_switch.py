"""The window's "Serve API" switch: the loaded model to the official client, live figures, errors, persistence."""

from __future__ import annotations

import socket
import threading

import pytest

from r1desk.app import i18n
from r1desk.app.qt import QDialogButtonBox, QGuiApplication, Qt

from tests.app.conftest import load, send

pytestmark = pytest.mark.timeout(300)

PARIS = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to cook."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(address: str, key: str = "none"):
    from openai import OpenAI

    return OpenAI(base_url=address, api_key=key, max_retries=0, timeout=120)


def switch_on(qtbot, window) -> None:
    panel = window.server_panel
    with qtbot.waitSignal(panel.started, timeout=15_000):
        qtbot.mouseClick(panel.switch, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.busy and panel.details.isVisible(), timeout=5000)


def in_thread(fn):
    """Run a blocking client call off the GUI thread, so the window keeps drawing; (thread, result)."""
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test to assert on
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.slow
def test_the_switch_serves_the_loaded_model_with_a_live_count(make_window, smollm2, qtbot):
    port = free_port()
    window = make_window(**{"chat.n_ctx": 1024, "server.port": port})
    panel = window.server_panel
    assert not panel.details.isVisible() and panel.switch.text() == "Serve API"
    load(qtbot, window, smollm2)
    switch_on(qtbot, window)
    address = f"http://127.0.0.1:{port}/v1"
    assert panel.switch.isChecked() and panel.running
    assert panel.address_label.text() == address
    assert panel.key_label.text() == "No key" and not panel.copy_key.isVisible()
    assert panel.count_label.text() == "Requests: 0"
    assert window.settings.get("server.enabled") is True
    qtbot.mouseClick(panel.copy_address, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == address

    # The official client, answered while the window is open and showing.
    thread, result = in_thread(lambda: client(address).chat.completions.create(
        model="any", temperature=0, max_tokens=12, messages=PARIS))
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=120_000)
    assert "Paris" in result["value"].choices[0].message.content, result
    assert result["value"].model == window.chat.loaded.name

    # A stream: the count the window shows goes to 1 while it runs, back to 0 after.
    chunks: list = []

    def stream():
        for chunk in client(address).chat.completions.create(model="any", max_tokens=60, stream=True,
                                                             messages=STORY):
            chunks.append(chunk)
        return len(chunks)

    thread, result = in_thread(stream)
    qtbot.waitUntil(lambda: panel.count_label.text() == "Requests: 1", timeout=60_000)
    assert thread.is_alive(), "the count showed only after the stream had ended"
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=120_000)
    assert "error" not in result and len(chunks) > 3
    qtbot.waitUntil(lambda: panel.count_label.text() == "Requests: 0", timeout=5000)
    assert "2 since the server started" in panel.count_label.toolTip()
    assert window.history.list_conversations() == [], "an API conversation was saved in the history"

    # Off: the port is free and the choice is remembered.
    with qtbot.waitSignal(panel.stopped, timeout=15_000):
        qtbot.mouseClick(panel.switch, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.busy, timeout=5000)
    assert not panel.running and not panel.details.isVisible() and not panel.switch.isChecked()
    assert window.settings.get("server.enabled") is False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)


@pytest.mark.slow
def test_the_windows_chat_and_an_api_request_at_the_same_time_both_complete(make_window, smollm2, qtbot):
    port = free_port()
    window = make_window(**{"chat.n_ctx": 1024, "chat.max_tokens": 60, "server.port": port})
    load(qtbot, window, smollm2)
    switch_on(qtbot, window)
    chunks: list = []

    def stream():
        for chunk in client(f"http://127.0.0.1:{port}/v1").chat.completions.create(
                model="any", max_tokens=60, stream=True, messages=STORY):
            chunks.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
        return "".join(chunks)

    thread, result = in_thread(stream)
    qtbot.waitUntil(lambda: window.server_panel.server.requests_in_flight == 1, timeout=30_000)
    reply = send(qtbot, window, "Name three colours.")
    widget = reply.widget
    # One model process, one queue: the window's reply waits its turn behind the API's.
    waits = []
    reply.worker.yielded.connect(lambda e: waits.append(e.position) if type(e).__name__ == "Queued" else None)
    qtbot.waitUntil(lambda: window.reply is None and not thread.is_alive(), timeout=180_000)
    assert "error" not in result and result["value"].strip(), result
    assert widget.status == "complete" and widget.text.strip(), (widget.status, widget.error)
    assert waits and waits[0] == 1, waits
    saved = window.history.list_conversations()
    assert len(saved) == 1, "only the window's conversation is saved"
    assert [m.role for m in window.history.messages(saved[0].id)] == ["user", "assistant"]


def test_a_port_in_use_is_said_in_the_message_bar_in_the_users_language(make_window, qtbot):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        window = make_window(**{"server.port": port})
        panel = window.server_panel
        with qtbot.waitSignal(panel.failed, timeout=15_000) as failed:
            qtbot.mouseClick(panel.switch, Qt.MouseButton.LeftButton)
        assert failed.args[0].facts == {"code": "port-in-use", "port": port}
        qtbot.waitUntil(lambda: not panel.busy, timeout=5000)
        assert window.notice.isVisible() and window.notice.property("kind") == "error"
        assert window.notice.label.text() == (f"The API server cannot start: port {port} is in use by another "
                                              "program. Choose another port in Settings › API server.")
        assert not panel.switch.isChecked() and not panel.running and not panel.details.isVisible()
        assert window.settings.get("server.enabled") is False
        i18n.install("zh_CN")
        text = window.notice.label.text()
        assert f"端口 {port}" in text and "API" in text, text
        assert window.notice.action.text() == "打开设置"
        # Its button opens Settings at the API server tab.
        qtbot.mouseClick(window.notice.action, Qt.MouseButton.LeftButton)
        dialog = window._dialogs["settings"]
        assert dialog.tabs.currentWidget() is dialog.server_page
        dialog.reject()


def test_listening_on_the_network_without_a_key_is_refused(make_window, qtbot):
    window = make_window(**{"server.port": free_port(), "server.host": "0.0.0.0", "server.api_key": None})
    panel = window.server_panel
    with qtbot.waitSignal(panel.failed, timeout=15_000) as failed:
        qtbot.mouseClick(panel.switch, Qt.MouseButton.LeftButton)
    assert failed.args[0].facts["code"] == "needs-key"
    qtbot.waitUntil(lambda: not panel.busy, timeout=5000)
    assert window.notice.label.text() == ("The API server cannot listen on the network without an API key. "
                                          "Create one in Settings › API server.")
    assert not panel.running and not panel.switch.isChecked()


def test_the_switch_is_on_again_in_a_new_window(make_window, qtbot):
    port = free_port()
    first = make_window(**{"server.port": port})
    switch_on(qtbot, first)
    assert first.server_panel.address_label.text() == f"http://127.0.0.1:{port}/v1"
    make_window.close(first)  # closing the window stops the server and frees the port
    second = make_window(start=True)
    panel = second.server_panel
    qtbot.waitUntil(lambda: panel.running and not panel.busy, timeout=15_000)
    assert panel.switch.isChecked() and panel.address_label.text() == f"http://127.0.0.1:{port}/v1"
    # No model is loaded yet: the server says so, in OpenAI's shape.
    import httpx2 as httpx

    reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"messages": PARIS})
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "model_unavailable"


def test_settings_choose_the_network_with_a_generated_key_and_the_server_restarts(make_window, qtbot):
    port = free_port()
    window = make_window(**{"server.port": port})
    switch_on(qtbot, window)
    window.show_settings()
    dialog = window._dialogs["settings"]
    dialog.tabs.setCurrentWidget(dialog.server_page)
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "API server"
    assert dialog.server_local.isChecked() and not dialog.server_key_required.isChecked()
    assert dialog.server_key.text() == "" and not dialog.server_key_copy.isEnabled()
    dialog.server_network.setChecked(True)
    key = dialog.server_key.text()
    assert len(key) >= 32, "no key was made for the network"
    assert dialog.server_key_required.isChecked() and not dialog.server_key_required.isEnabled()
    assert dialog.server_key.echoMode() == dialog.server_key.EchoMode.Password
    qtbot.mouseClick(dialog.server_key_copy, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == key
    new_port = free_port()
    dialog.server_port.setValue(new_port)
    dialog.server_origins.setText("not an origin")
    assert dialog.apply() is None and dialog.server_error.isVisible()
    assert window.settings.get("server.host") == "127.0.0.1"  # nothing stored
    dialog.server_origins.setText("http://localhost:3000, https://example.com/")
    panel = window.server_panel
    with qtbot.waitSignal(panel.started, timeout=20_000):
        qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.busy, timeout=5000)
    s = window.settings
    assert (s.get("server.host"), s.get("server.port"), s.get("server.api_key")) == ("0.0.0.0", new_port, key)
    assert s.get("server.cors_origins") == ["http://localhost:3000", "https://example.com"]
    assert panel.running and panel.server.port == new_port and panel.server.api_key == key
    assert f":{new_port}/v1" in panel.address_label.text()
    assert panel.key_label.text() == "Key ••••••••" and key not in panel.key_label.text()
    assert panel.copy_key.isVisible()
    qtbot.mouseClick(panel.copy_key, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == key
    import httpx2 as httpx

    url = f"http://127.0.0.1:{new_port}/v1/models"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    allowed = httpx.get(url, headers={"Authorization": f"Bearer {key}", "Origin": "http://localhost:3000"})
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert httpx.get(url, headers={"Authorization": f"Bearer {key}", "Origin": "http://other.test"}).status_code == 403
    # The old port is free: the server moved rather than doubled.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", port))
        other.listen(1)
