"""r1desk's OpenAI-compatible server on loopback, with the official client and with hostile requests."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from r1desk.engine.chat.service import ChatService
from r1desk.engine.inference.host import LoadOptions
from r1desk.server.api import create_app

from tests.support.models import tiny_r1_expected

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


class Served:
    def __init__(self, model: Path, **kwargs):
        import uvicorn

        self.chat = ChatService()
        self.chat.load_model(model, LoadOptions(n_ctx=1024))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.app = create_app(self.chat, **kwargs)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self, key: str = "none"):
        from openai import OpenAI

        return OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=120)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.chat.close()


@pytest.fixture
def tiny(tiny_r1):
    s = Served(tiny_r1)
    yield s
    s.close()


@pytest.fixture
def smol(smollm2):
    s = Served(smollm2)
    yield s
    s.close()


def test_models_and_a_chat_through_the_official_client(smol: Served) -> None:
    client = smol.client()
    assert [m.id for m in client.models.list().data] == [smol.chat.loaded.name]
    out = client.chat.completions.create(model="anything", temperature=0, max_tokens=12,
                                         messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}])
    assert out.object == "chat.completion" and out.choices[0].message.role == "assistant"
    assert "Paris" in out.choices[0].message.content
    assert out.usage.completion_tokens > 0 and out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    pieces, finish = [], None
    for chunk in client.chat.completions.create(model="x", temperature=0, max_tokens=12, stream=True,
                                                stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}]):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        else:
            usage = chunk.usage
    assert "Paris" in "".join(pieces) and finish in ("stop", "length") and usage.completion_tokens > 0


def test_r1_reasoning_comes_back_apart_from_the_answer(tiny: Served) -> None:
    reasoning, answer = tiny_r1_expected()
    client = tiny.client()
    out = client.chat.completions.create(model="r1", messages=[{"role": "user", "content": "hi"}])
    message = out.choices[0].message
    assert message.content == answer and message.model_extra["reasoning_content"] == reasoning
    assert out.usage.completion_tokens_details.reasoning_tokens > 0
    got = {"reasoning_content": "", "content": ""}
    for chunk in client.chat.completions.create(model="r1", stream=True, messages=[{"role": "user", "content": "hi"}]):
        delta = chunk.choices[0].delta
        got["content"] += delta.content or ""
        got["reasoning_content"] += (delta.model_extra or {}).get("reasoning_content") or ""
    assert got == {"reasoning_content": reasoning, "content": answer}
    # A stop string cuts the answer, streaming or not.
    cut = answer[: answer.index("42")]
    out = client.chat.completions.create(model="r1", stop=["42"], messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == cut and out.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="r1", stop="42", stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert streamed == cut


def raw(port: int, request: bytes) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body.strip() else {}


def test_hostile_requests_get_json_errors_and_the_server_stays_up(tiny: Served) -> None:
    url = tiny.url
    good = {"model": "r1", "messages": [{"role": "user", "content": "hi"}]}

    def post(body=None, *, content=None, headers=None):
        return httpx.post(url + "/v1/chat/completions", json=body, content=content, headers=headers, timeout=30)

    cases = {
        "foreign Host": (httpx.get(url + "/v1/models", headers={"Host": "evil.example:1337"}), 403, "host_not_allowed"),
        "foreign Origin": (post(good, headers={"Origin": "https://evil.example"}), 403, "origin_not_allowed"),
        "invalid JSON": (post(content=b"{not json", headers={"Content-Type": "application/json"}), 400, None),
        "not an object": (post([1, 2]), 400, None),
        "messages wrong type": (post({"messages": "hi"}), 400, None),
        "bad role": (post({"messages": [{"role": "wizard", "content": "hi"}]}), 400, None),
        "n = 2": (post(dict(good, n=2)), 400, None),
        "absurd max_tokens": (post(dict(good, max_tokens=10**9)), 400, None),
        "temperature 5": (post(dict(good, temperature=5)), 400, None),
        "temperature a string": (post(dict(good, temperature="hot")), 400, None),
        "tools": (post(dict(good, tools=[{"type": "function", "function": {"name": "f"}}])), 400, None),
        "oversized body": (post(content=b'{"messages": "' + b"x" * (5 * 1024 * 1024) + b'"}',
                                headers={"Content-Type": "application/json"}), 413, None),
        "no such endpoint": (httpx.get(url + "/v1/nothing"), 404, "not_found"),
        "wrong method": (httpx.get(url + "/v1/chat/completions"), 405, None),
    }
    for what, (response, status, code) in cases.items():
        assert response.status_code == status, (what, response.status_code, response.text)
        error = response.json()["error"]
        assert error["message"] and set(error) == {"message", "type", "param", "code"}, what
        if code:
            assert error["code"] == code, what
    status, body = raw(tiny.port, b"GET /v1/models HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n")
    assert status == 400 and body["error"]["code"] == "host_required"
    status, _ = raw(tiny.port, b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert status == 200
    assert post(good).status_code == 200  # still serving
    metrics = httpx.get(url + "/metrics").text
    assert 'r1desk_requests_total{endpoint="/v1/chat/completions",status="400"}' in metrics
    assert "r1desk_model_loaded 1.0" in metrics and "r1desk_generated_tokens_total" in metrics


def test_an_api_key_is_required_when_set(tiny_r1) -> None:
    served = Served(tiny_r1, api_key="s3cret")
    try:
        from openai import AuthenticationError

        with pytest.raises(AuthenticationError):
            served.client("wrong").models.list()
        assert httpx.get(served.url + "/v1/models").status_code == 401
        assert [m.id for m in served.client("s3cret").models.list().data]
        assert httpx.get(served.url + "/metrics").status_code == 200  # for a local scraper
    finally:
        served.close()


def test_a_client_that_goes_away_cancels_only_its_own_request(smol: Served) -> None:
    long = {"model": "x", "temperature": 0, "max_tokens": 300, "stream": True,
            "messages": [{"role": "user", "content": "Write a long story about a dragon."}]}
    results: dict[str, object] = {}

    def stay() -> None:
        text, finish = "", None
        for chunk in smol.client().chat.completions.create(**long):
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        results["stayed"] = (len(text), finish)

    with httpx.Client(timeout=60) as http:
        with http.stream("POST", smol.url + "/v1/chat/completions", json=long) as response:
            lines = response.iter_lines()
            for _ in range(6):
                next(lines)
            other = threading.Thread(target=stay)
            other.start()  # queued behind the first
            time.sleep(0.5)
        # The first client hung up: its request ends, the second is served in full.
    other.join(120)
    assert results["stayed"][1] == "length" and results["stayed"][0] > 200
    deadline = time.monotonic() + 10
    while smol.chat.host.busy and time.monotonic() < deadline:
        time.sleep(0.1)
    assert smol.chat.host.busy == 0
    metrics = httpx.get(smol.url + "/metrics").text
    assert 'status="499"' in metrics and 'status="200"' in metrics


def test_serving_beyond_this_machine_needs_a_key(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "r1desk.cli", "serve", str(tmp_path / "m.gguf"), "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--api-key" in proc.stderr


def test_serve_without_a_model_says_what_to_do_in_an_empty_library() -> None:
    proc = subprocess.run([sys.executable, "-m", "r1desk.cli", "serve"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "name the model to serve" in proc.stderr


def test_a_client_gone_while_sending_its_body_is_counted_not_logged_as_a_failure(tiny: Served, caplog) -> None:
    import logging

    with caplog.at_level(logging.ERROR, logger="r1desk.server"):
        with socket.create_connection(("127.0.0.1", tiny.port), timeout=10) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 5000\r\n\r\n{\"messages\": [")
        deadline = time.monotonic() + 10
        metrics = ""
        while time.monotonic() < deadline and 'status="499"' not in metrics:
            time.sleep(0.1)
            metrics = httpx.get(tiny.url + "/metrics").text
    assert 'r1desk_requests_total{endpoint="/v1/chat/completions",status="499"}' in metrics
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert httpx.get(tiny.url + "/v1/models").status_code == 200
