"""The API server on a thread of its own, over a ChatService someone else owns: real model, real HTTP on loopback."""

from __future__ import annotations

import socket
import threading
import time

import httpx2 as httpx
import pytest

from r1desk.engine.chat.service import ChatService, SamplingParams
from r1desk.engine.inference.host import LoadOptions
from r1desk.server.background import GRACE_SECONDS, BackgroundServer, ServerError, lan_address

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PARIS = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
STORY = [{"role": "user", "content": "Write a very long story about a dragon who learns to cook."}]


@pytest.fixture
def chat(smollm2):
    service = ChatService()
    service.load_model(smollm2, LoadOptions(n_ctx=1024))
    yield service
    service.close()


def client(server: BackgroundServer, key: str = "none"):
    from openai import OpenAI

    return OpenAI(base_url=server.address, api_key=key, max_retries=0, timeout=120)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether another server could listen there now (as servers do, past connections in TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError:
            return False
    return True


def test_start_serves_the_official_client_and_stop_frees_the_port(chat) -> None:
    server = BackgroundServer(chat, port=0)
    assert not server.running and server.requests_in_flight == 0
    t0 = time.monotonic()
    address = server.start()
    started = time.monotonic() - t0
    try:
        assert server.running and address == f"http://127.0.0.1:{server.port}/v1" == server.address
        assert started < 5, f"took {started:.1f} s to listen"
        out = client(server).chat.completions.create(model="any", temperature=0, max_tokens=12, messages=PARIS)
        assert "Paris" in out.choices[0].message.content
        assert [m.id for m in client(server).models.list().data] == [chat.loaded.name]
        assert server.requests_total == 2
        assert chat.history.list_conversations() == [], "an API conversation was written to the history"
    finally:
        t0 = time.monotonic()
        server.stop()
    assert time.monotonic() - t0 < 2, "an idle server took long to stop"
    assert not server.running and port_is_free(server.port)
    # Again on the same port at once: nothing of the first run holds it.
    server.start()
    try:
        assert server.running
        assert "Paris" in client(server).chat.completions.create(
            model="any", temperature=0, max_tokens=12, messages=PARIS).choices[0].message.content
        assert server.requests_total == 3  # counted over both runs
    finally:
        server.stop()


def test_the_live_count_rises_during_a_stream_and_falls_back_to_zero(chat) -> None:
    with BackgroundServer(chat, port=0) as server:
        seen: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                seen.append(server.requests_in_flight)
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        pieces = []
        counts_while_streaming = []
        for chunk in client(server).chat.completions.create(model="any", max_tokens=40, stream=True, messages=STORY):
            pieces.append(chunk.choices[0].delta.content or "")
            counts_while_streaming.append(server.requests_in_flight)
        deadline = time.monotonic() + 60  # until the watcher too has seen the count fall
        while (server.requests_in_flight or seen[-1]) and time.monotonic() < deadline:
            time.sleep(0.01)
        done.set()
        watcher.join()
        assert "".join(pieces).strip()
        assert max(counts_while_streaming) == 1 and max(seen) == 1
        assert server.requests_in_flight == 0 and seen[-1] == 0
        # Two streams at once: both counted while both are open.
        streams = [client(server).chat.completions.create(model="any", max_tokens=20, stream=True, messages=STORY)
                   for _ in range(2)]
        firsts = [next(iter(s)) for s in streams]
        assert all(f.choices for f in firsts)
        assert server.requests_in_flight == 2
        for s in streams:
            for _ in s:
                pass
        deadline = time.monotonic() + 5
        while server.requests_in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.requests_in_flight == 0


def test_a_port_another_program_holds_is_a_clear_error(chat) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        server = BackgroundServer(chat, port=port)
        with pytest.raises(ServerError) as caught:
            server.start()
        assert str(caught.value) == f"port {port} is in use by another program; choose another in Settings"
        assert caught.value.facts == {"code": "port-in-use", "port": port}
        assert not server.running and server.requests_in_flight == 0
        server.stop()  # nothing to stop: no error


def test_listening_beyond_this_computer_needs_a_key(chat) -> None:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    server = BackgroundServer(chat, host="0.0.0.0", port=port)
    with pytest.raises(ServerError) as caught:
        server.start()
    assert caught.value.facts["code"] == "needs-key" and "API key is required" in str(caught.value)
    assert port_is_free(port, "0.0.0.0"), "it listened before refusing"
    with BackgroundServer(chat, host="0.0.0.0", port=port, api_key="s3cret-key") as served:
        lan = lan_address()
        assert served.address == f"http://{lan or socket.gethostname()}:{port}/v1"
        url = f"http://127.0.0.1:{port}/v1/models"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        if lan:
            # Clients on the network call it by this machine's address: that Host is served.
            reply = httpx.get(f"http://{lan}:{port}/v1/models", headers={"Authorization": "Bearer s3cret-key"})
            assert reply.status_code == 200 and reply.json()["data"][0]["id"] == chat.loaded.name
        # A name that is not this machine's is still refused (DNS rebinding).
        assert httpx.get(url, headers={"Authorization": "Bearer s3cret-key",
                                       "Host": "evil.example"}).status_code == 403


def test_stop_ends_a_stream_under_way_within_seconds_and_frees_the_model(chat) -> None:
    server = BackgroundServer(chat, port=0)
    server.start()
    stream = client(server).chat.completions.create(model="any", max_tokens=900, stream=True, messages=STORY)
    got = []
    reader_done = threading.Event()

    def read() -> None:
        try:
            for chunk in stream:
                got.append(chunk)
        except Exception:  # the server went away mid-stream: what a client sees then
            pass
        finally:
            reader_done.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while len(got) < 3:
        assert time.monotonic() < deadline, "the stream did not start"
        time.sleep(0.01)
    t0 = time.monotonic()
    server.stop()
    took = time.monotonic() - t0
    assert took < GRACE_SECONDS + 3, f"stop took {took:.1f} s"
    assert reader_done.wait(10), "the client was left hanging"
    assert port_is_free(server.port)
    deadline = time.monotonic() + 10
    while chat.host.busy:
        assert time.monotonic() < deadline, "the cancelled stream kept the model busy"
        time.sleep(0.05)
    # The model answers the next caller at once.
    events = list(chat.send(None, "Say hello.", SamplingParams(max_tokens=8)))
    assert any(type(e).__name__ == "Stats" for e in events)


def test_the_server_serves_whichever_model_the_chat_service_loads(chat, tiny_r1) -> None:
    with BackgroundServer(chat, port=0) as server:
        first = [m.id for m in client(server).models.list().data]
        chat.load_model(tiny_r1, LoadOptions(n_ctx=512))
        assert [m.id for m in client(server).models.list().data] == [chat.loaded.name] != first
        out = client(server).chat.completions.create(model="r1", messages=[{"role": "user", "content": "hi"}])
        assert out.model == chat.loaded.name and out.choices[0].message.model_extra.get("reasoning_content")
        chat.unload()
        refused = httpx.post(server.address + "/chat/completions", json={"messages": PARIS})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_unavailable"
