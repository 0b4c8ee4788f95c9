"""One model host as the app uses it: loaded from threads that end, shared by many callers at once.

Real llama.cpp, real models. Each test bounds its threads with a join timeout, so a deadlock
fails the test instead of hanging it.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from r1desk.engine.chat.service import ChatService, SamplingParams
from r1desk.engine.events import ContentDelta, Queued, Stats
from r1desk.engine.inference import host as host_module
from r1desk.engine.inference.host import LoadOptions, ModelHost

from tests.support.models import tiny_r1_expected

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HI = [{"role": "user", "content": "hi"}]
STORY = [{"role": "user", "content": "Write a very long story about a dragon."}]
PARIS = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
JOIN = 120  # seconds: far beyond any of these replies; reaching it means a deadlock


def params(host: ModelHost, **kw) -> dict:
    return SamplingParams(temperature=0, **kw).resolved(host.info)


def text_of(events: list[tuple]) -> str:
    return "".join(e[1] for e in events if e[0] in ("r", "c"))


def parts(events: list[tuple]) -> tuple[str, str]:
    """(reasoning, answer) of a raw event stream."""
    return ("".join(e[1] for e in events if e[0] == "r"), "".join(e[1] for e in events if e[0] == "c"))


def finish(events: list[tuple]) -> str:
    assert events and events[-1][0] == "done", events[-3:]
    return events[-1][1]["finish_reason"]


def run_threads(targets) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN)
    assert not any(t.is_alive() for t in threads), "a caller did not finish: deadlock"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def tiny_host(tiny_r1: Path):
    host = ModelHost()
    host.load(tiny_r1, LoadOptions(n_ctx=512))
    yield host
    host.close()


@pytest.fixture
def smol_host(smollm2: Path):
    host = ModelHost()
    host.load(smollm2, LoadOptions(n_ctx=1024))
    yield host
    host.close()


# Lifetime ------------------------------------------------------------------------------------
def test_the_model_process_outlives_the_thread_that_loaded_it(tiny_r1: Path) -> None:
    host = ModelHost()
    try:
        loader = threading.Thread(target=host.load, args=(tiny_r1, LoadOptions(n_ctx=512)))
        loader.start()
        loader.join(JOIN)
        pid = host.pid
        assert pid is not None and not loader.is_alive()
        time.sleep(1.5)  # the loading thread is long gone
        assert host.pid == pid and not gone(pid)
        events = list(host.chat(HI, params(host)))
        assert not [e for e in events if e[0] == "loading"], "the model was reloaded"
        assert host.pid == pid and finish(events) == "stop"
        assert parts(events) == tiny_r1_expected()
    finally:
        host.close()
    assert gone(pid)  # close() ends it


PARENT = textwrap.dedent("""
    import sys, threading, time
    from r1desk.engine.inference.host import LoadOptions, ModelHost
    host = ModelHost()
    t = threading.Thread(target=host.load, args=(sys.argv[1], LoadOptions(n_ctx=512)))
    t.start(); t.join()
    print(host.pid, flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_model_process_ends_with_the_app_however_it_dies(tiny_r1: Path, how: signal.Signals) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tiny_r1)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert not gone(child)
        os.kill(parent.pid, how)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(child), "the model process was left behind as an orphan"
    finally:
        parent.kill()


def test_a_host_dropped_without_close_ends_its_process(tiny_r1: Path) -> None:
    host = ModelHost()
    host.load(tiny_r1, LoadOptions(n_ctx=512))
    pid = host.pid
    del host
    gc.collect()
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)


def test_a_reload_after_a_crash_says_why(tiny_host: ModelHost) -> None:
    pid = tiny_host.pid
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    events = list(tiny_host.chat(HI, params(tiny_host)))
    loading = [e for e in events if e[0] == "loading"]
    assert loading and loading[0][1] == "crashed" and "SIGKILL" in loading[0][2]
    assert finish(events) == "stop" and tiny_host.pid not in (None, pid)


# Many callers ---------------------------------------------------------------------------------
def test_many_threads_many_requests_one_model(tiny_host: ModelHost) -> None:
    results: list[list[tuple]] = []
    lock = threading.Lock()
    p = params(tiny_host)

    def caller() -> None:
        for _ in range(3):
            events = list(tiny_host.chat(HI, p))
            with lock:
                results.append(events)

    run_threads([caller] * 4)
    assert len(results) == 12
    for events in results:
        assert finish(events) == "stop"
        assert parts(events) == tiny_r1_expected()  # every caller gets its whole reply, nothing mixed in
    assert any(e[0] == "queued" for events in results for e in events), "nobody ever waited"
    assert tiny_host.busy == 0


def test_requests_are_served_first_come_first_served(tiny_host: ModelHost) -> None:
    p = params(tiny_host)
    gens = [tiny_host.chat(HI, p) for _ in range(4)]
    positions = [g.position for g in gens]
    assert positions == [0, 1, 2, 3] or positions == [None, 1, 2, 3]
    finished: list[int] = []

    def read(i: int) -> None:
        events = list(gens[i])
        finished.append(i)
        assert finish(events) == "stop"
        if i:
            assert ("queued", i) in events

    run_threads([lambda i=i: read(i) for i in reversed(range(4))])
    assert finished == [0, 1, 2, 3]


def test_cancel_stops_only_its_own_request(smol_host: ModelHost) -> None:
    long = smol_host.chat(STORY, params(smol_host, max_tokens=600))
    short = smol_host.chat(PARIS, params(smol_host, max_tokens=20))
    waiting = smol_host.chat(PARIS, params(smol_host, max_tokens=20))
    assert (short.position, waiting.position) == (1, 2)
    waiting.cancel()  # still waiting: it leaves the queue at once
    got_waiting = list(waiting)
    assert finish(got_waiting) == "cancelled" and text_of(got_waiting) == ""
    assert short.position == 1

    out: dict[str, list[tuple]] = {}

    def read_long() -> None:
        events = []
        for e in long:
            events.append(e)
            if len(events) == 10:
                threading.Thread(target=long.cancel).start()
        out["long"] = events

    def read_short() -> None:
        out["short"] = list(short)

    run_threads([read_long, read_short])
    assert finish(out["long"]) == "cancelled" and out["long"][-1][1]["completion_tokens"] < 600
    assert finish(out["short"]) == "stop" and "Paris" in text_of(out["short"])
    assert ("queued", 1) in out["short"]


def _long_then_short(host: ModelHost, abandon) -> tuple[int, list[tuple]]:
    """Start a long reply, let ``abandon`` drop it, and read a short reply queued behind it."""
    pid = host.pid
    long = host.chat(STORY, params(host, max_tokens=800))
    short = host.chat(PARIS, params(host, max_tokens=20))
    first = next(long)
    assert first[0] in ("rendered", "r", "c")
    abandon(long)
    del long
    events: list[tuple] = []
    run_threads([lambda: events.extend(short)])
    return pid, events


def test_a_stream_closed_from_another_thread_frees_the_model(smol_host: ModelHost) -> None:
    def close_elsewhere(gen) -> None:
        t = threading.Thread(target=gen.close)
        t.start()
        t.join(JOIN)

    pid, events = _long_then_short(smol_host, close_elsewhere)
    assert finish(events) == "stop" and "Paris" in text_of(events)
    assert smol_host.pid == pid  # stopped by cancel, not killed


def test_a_stream_dropped_unread_frees_the_model(smol_host: ModelHost) -> None:
    pid, events = _long_then_short(smol_host, lambda gen: None)  # the last reference goes: garbage
    gc.collect()
    assert finish(events) == "stop" and "Paris" in text_of(events)
    assert smol_host.pid == pid


def test_a_reader_whose_thread_ended_frees_the_model(smol_host: ModelHost) -> None:
    kept = []  # the stream stays referenced: only its reader thread is gone

    def reader() -> None:
        gen = smol_host.chat(STORY, params(smol_host, max_tokens=800))
        kept.append(gen)
        next(gen)
        next(gen)

    run_threads([reader])
    short = smol_host.chat(PARIS, params(smol_host, max_tokens=20))
    t0 = time.monotonic()
    events = list(short)
    waited = time.monotonic() - t0
    assert finish(events) == "stop" and "Paris" in text_of(events)
    # Freed by the abandonment check (grace period), not by the long reply running to its end.
    assert waited < host_module.CANCEL_GRACE_SECONDS + 30
    leftovers = []
    while not kept[0]._job.events.empty():
        leftovers.append(kept[0]._job.events.get())
    assert leftovers[-1][0] == "done" and leftovers[-1][1]["finish_reason"] == "cancelled"


def test_one_stream_read_from_many_threads(tiny_host: ModelHost) -> None:
    """An ASGI server calls next() on a sync generator from whichever pool thread is free."""
    gen = tiny_host.chat(HI, params(tiny_host))
    events: list[tuple] = []
    readers = set()
    while True:
        box: list = []

        def step() -> None:
            readers.add(threading.get_ident())
            box.append(next(gen, None))

        run_threads([step])  # a new thread for every item
        if box[0] is None:
            break
        events.append(box[0])
    assert finish(events) == "stop" and parts(events) == tiny_r1_expected()
    # rendered, reasoning, answer (pieces gathered while they come fast), done: each read by a new thread
    assert len(events) >= 4 and {e[0] for e in events} >= {"rendered", "r", "c", "done"}


# Through ChatService, as the GUI and the API server use it --------------------------------------
def test_two_conversations_at_once_through_one_chat_service(tiny_r1: Path) -> None:
    service = ChatService()
    try:
        service.load_model(tiny_r1, LoadOptions(n_ctx=512))
        replies = {}

        def converse(name: str) -> None:
            events = list(service.send(None, f"hello from {name}"))
            replies[name] = events

        run_threads([lambda n=n: converse(n) for n in ("a", "b", "c")])
        reasoning, answer = tiny_r1_expected()
        for name, events in replies.items():
            stats = events[-1]
            assert isinstance(stats, Stats) and stats.finish_reason == "stop"
            cid = events[0].conversation_id
            msgs = service.history.messages(cid)
            assert [m.role for m in msgs] == ["user", "assistant"]
            assert msgs[0].content == f"hello from {name}"
            assert (msgs[1].reasoning, msgs[1].content, msgs[1].status) == (reasoning, answer, "complete")
        assert len({events[0].conversation_id for events in replies.values()}) == 3
        assert any(isinstance(e, Queued) for events in replies.values() for e in events)
    finally:
        service.close()


def test_cancelling_one_reply_leaves_the_other(smollm2: Path) -> None:
    service = ChatService()
    try:
        service.load_model(smollm2, LoadOptions(n_ctx=1024))
        long = service.send(None, "Write a very long story about a dragon.", SamplingParams(temperature=0, max_tokens=600))
        short = service.send(None, "What is the capital of France? Answer in one word.",
                             SamplingParams(temperature=0, max_tokens=20))
        out = {}

        def read_long() -> None:
            events = []
            for e in long:
                events.append(e)
                if len([x for x in events if isinstance(x, ContentDelta)]) == 5:
                    long.cancel()
            out["long"] = events

        def read_short() -> None:
            time.sleep(0.5)  # queue behind the long one
            out["short"] = list(short)

        run_threads([read_long, read_short])
        assert out["long"][-1].finish_reason == "cancelled"
        assert out["short"][-1].finish_reason == "stop"
        answer = "".join(e.text for e in out["short"] if isinstance(e, ContentDelta))
        assert "Paris" in answer
        saved = service.history.get_message(out["short"][0].message_id)
        assert saved.status == "complete" and "Paris" in saved.content
        assert service.history.get_message(out["long"][0].message_id).status == "cancelled"
    finally:
        service.close()
