"""A model split over llama.cpp RPC: a worker (``r1desk rpc-server``) on loopback, the model on it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import psutil
import pytest

from r1desk.engine.errors import ModelLoadFailed
from r1desk.engine.inference.host import LoadOptions, ModelHost
from r1desk.engine.inference.rpc import parse_endpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PROMPT = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
PARAMS = {"temperature": 0, "top_k": 40, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0, "max_tokens": 24}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def worker():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "r1desk.cli", "rpc-server", "--port", str(port), "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the RPC worker did not start"
            time.sleep(0.2)
    yield proc, port
    proc.kill()
    proc.wait(10)


def _answer(host: ModelHost) -> str:
    return "".join(ev[1] for ev in host.chat(PROMPT, dict(PARAMS)) if ev[0] in ("c", "r"))


def test_a_model_split_over_an_rpc_worker_answers_as_it_does_alone(worker, smollm2) -> None:
    proc, port = worker
    alone = ModelHost()
    try:
        alone.load(smollm2, LoadOptions(n_ctx=512, n_threads=1))
        want = _answer(alone)
    finally:
        alone.close()
    rss_before = psutil.Process(proc.pid).memory_info().rss
    host = ModelHost()
    try:
        info = host.load(smollm2, LoadOptions(n_ctx=512, n_threads=1, rpc_servers=[f"127.0.0.1:{port}"]))
        assert info.remote_devices and info.remote_devices[0]["endpoint"] == f"127.0.0.1:{port}"
        assert info.remote_devices[0]["total"] > 0  # the worker's memory, counted by the fit estimate
        assert info.n_gpu_layers > 0  # layers went to the remote device
        assert any("RPC" in w and str(port) in w for w in info.warnings)
        # The weights now live in the worker.
        assert psutil.Process(proc.pid).memory_info().rss - rss_before > 40 * 1024 * 1024
        assert _answer(host) == want and "Paris" in want
    finally:
        host.close()


def test_an_unreachable_worker_is_refused_in_words(smollm2) -> None:
    host = ModelHost()
    try:
        with pytest.raises(ModelLoadFailed) as err:
            host.load(smollm2, LoadOptions(n_ctx=512, rpc_servers=[f"127.0.0.1:{_free_port()}"]))
        assert err.value.facts["code"] == "rpc-unreachable" and "cannot reach the RPC server" in str(err.value)
    finally:
        host.close()


def test_addresses_are_checked() -> None:
    assert parse_endpoint("10.0.0.2:50052") == ("10.0.0.2", 50052)
    assert parse_endpoint("gpu-box") == ("gpu-box", 50052)
    assert parse_endpoint("[::1]:6000") == ("::1", 6000)
    for bad in ("", "host:notaport", "host:70000", ":5"):
        with pytest.raises(ModelLoadFailed):
            parse_endpoint(bad)


def test_the_worker_refuses_to_listen_beyond_loopback_unless_told() -> None:
    proc = subprocess.run([sys.executable, "-m", "r1desk.cli", "rpc-server", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "--trust-network" in proc.stderr
