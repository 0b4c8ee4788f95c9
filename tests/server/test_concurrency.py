"""Many clients at once on loopback, some hanging up mid-stream: no errors, every complete answer
whole and its own, and a hang-up cancels only its own request."""

from __future__ import annotations

import threading
import time

import httpx2 as httpx
import pytest

from tests.server.test_api import Served

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CLIENTS, REQUESTS = 4, 3


def _prompt(i: int) -> str:
    return f"Count from {i} to {i + 9}, separated by commas."


def _stream(served: Served, i: int, *, hang_up_after: int | None = None) -> tuple[str, str | None, int]:
    body = {"model": "m", "temperature": 0, "max_tokens": 32, "stream": True,
            "messages": [{"role": "user", "content": _prompt(i)}]}
    text, finish, chunks = "", None, 0
    import json

    with httpx.Client(timeout=300) as http:
        with http.stream("POST", served.url + "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                assert "error" not in chunk, chunk
                choice = chunk["choices"][0]
                text += choice["delta"].get("content") or ""
                finish = choice["finish_reason"] or finish
                chunks += 1
                if hang_up_after is not None and chunks >= hang_up_after:
                    break  # leaving the block closes the connection mid-stream
    return text, finish, chunks


def test_clients_times_requests_with_hang_ups(smollm2) -> None:
    served = Served(smollm2)
    try:
        want = {i: _stream(served, i)[0] for i in range(CLIENTS)}
        assert all(want.values())
        results: list[tuple[int, int, str, str | None]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def client(c: int) -> None:
            try:
                for r in range(REQUESTS):
                    hang_up = (c + r) % 3 == 0
                    text, finish, _ = _stream(served, c, hang_up_after=3 if hang_up else None)
                    with lock:
                        results.append((c, r, text, None if hang_up else finish))
            except BaseException as exc:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(exc)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(500)
        assert not errors, errors
        assert len(results) == CLIENTS * REQUESTS
        complete = [(c, text, finish) for c, r, text, finish in results if finish is not None]
        hung_up = [(c, text) for c, r, text, finish in results if finish is None]
        assert complete and hung_up
        for c, text, finish in complete:
            assert finish in ("stop", "length") and text == want[c], (c, text, want[c])
        for c, text in hung_up:
            assert want[c].startswith(text)  # what arrived before the hang-up was the right answer's start
        deadline = time.monotonic() + 30
        while served.chat.host.busy and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served.chat.host.busy == 0  # every hang-up freed the model
        metrics = httpx.get(served.url + "/metrics").text
        assert f'r1desk_requests_total{{endpoint="/v1/chat/completions",status="499"}} {float(len(hung_up))}' in metrics
        assert (f'r1desk_requests_total{{endpoint="/v1/chat/completions",status="200"}} '
                f'{float(len(complete) + CLIENTS)}') in metrics
    finally:
        served.close()
