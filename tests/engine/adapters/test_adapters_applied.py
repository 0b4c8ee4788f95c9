"""Adapters applied per conversation in the model process, with real llama.cpp and the tiny qwen2
model: the KV cache never outlives the adapter set it was computed with, a scale change needs no
reload, each reply records its adapters, and a bad adapter is refused while the model keeps working."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1desk.engine.chat.service import ChatService, SamplingParams
from r1desk.engine.errors import AdapterError
from r1desk.engine.events import ChatError, ContentDelta, Started, Stats
from r1desk.engine.inference.host import LoadOptions
from tests.engine.adapters.lora_files import write_lora

GREEDY = SamplingParams(temperature=0.0, max_tokens=24)
# Long enough that restoring a saved state is worth it (at least 16 tokens spared).
LONG = ("Please tell me, in a few words, what the answer is to the question that everyone keeps "
        "asking about life, the universe and everything else that matters today.")


def reply(service: ChatService, cid: int | None, text: str) -> tuple[int, str, Stats | None, ChatError | None]:
    answer, stats, error = "", None, None
    for ev in service.send(cid, text, GREEDY):
        if isinstance(ev, Started):
            cid = ev.conversation_id
        elif isinstance(ev, ContentDelta):
            answer += ev.text
        elif isinstance(ev, Stats):
            stats = ev
        elif isinstance(ev, ChatError):
            error = ev
    return cid, answer, stats, error


@pytest.fixture
def service(tiny_r1: Path, tmp_path: Path):
    s = ChatService()
    s.adapter_store.add(write_lora(tmp_path / "style.gguf", seed=1), name="style")
    s.adapter_store.add(write_lora(tmp_path / "tone.gguf", seed=2, kinds=("ffn_up", "attn_k")), name="tone")
    s.load_model(tiny_r1, LoadOptions(n_ctx=1024))
    yield s
    s.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_kv_cache_is_never_reused_across_adapter_sets(service: ChatService) -> None:
    cid, base, _, _ = reply(service, None, LONG)
    _, _, stats, _ = reply(service, cid, "And again?")
    assert stats.cached_tokens > 0 and stats.reused_from == "context"  # the same set: the prefix is reused
    service.set_adapters(cid, [("style", 1.0)])
    _, styled, stats, _ = reply(service, cid, "And with the adapter?")
    assert stats.cached_tokens == 0  # computed without the adapter: read again
    _, _, stats, _ = reply(service, cid, "Once more?")
    assert stats.cached_tokens > 0  # the same adapter, the same scale: reused
    service.set_adapters(cid, [("style", 0.5)])
    _, _, stats, _ = reply(service, cid, "At half?")
    assert stats.cached_tokens == 0
    service.set_adapters(cid, [])
    _, _, stats, _ = reply(service, cid, "Off?")
    assert stats.cached_tokens == 0
    # Each reply says which adapters made it.
    replies = [m for m in service.history.messages(cid) if m.role == "assistant"]
    assert [[(a["name"], a["scale"]) for a in m.adapters] for m in replies] == [
        [], [], [("style", 1.0)], [("style", 1.0)], [("style", 0.5)], []]
    assert replies[2].adapters[0]["sha256"] == service.adapter_store.get("style").sha256
    assert "*Adapters: `style` at 0.5*" in service.history.export_markdown(cid)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_saved_state_is_restored_only_under_the_adapters_it_was_made_with(service: ChatService) -> None:
    a, _, _, _ = reply(service, None, LONG)
    service.set_adapters(a, [("style", 1.0)])
    reply(service, a, LONG)
    b, _, _, _ = reply(service, None, "Something else entirely, with no adapter at all?")
    # Back to A, same adapters: its state comes back from memory.
    _, _, stats, _ = reply(service, a, "Back again?")
    assert stats.reused_from == "memory" and stats.cached_tokens > 16
    reply(service, b, "And B?")
    # Back to A with its adapters off: the state saved under the adapter must not be used.
    service.set_adapters(a, [])
    _, _, stats, _ = reply(service, a, "Without it?")
    # (B's KV, made without adapters, may lend the template's first tokens: that is still right.)
    assert stats.reused_from not in ("memory", "disk") and stats.cached_tokens < 16


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_adapters_change_the_reply_at_their_scale_without_reloading(service: ChatService) -> None:
    pid, loaded = service.host.pid, service.loaded.load_seconds
    _, base, _, _ = reply(service, None, LONG)
    answers = {}
    for scales in ([("style", 0.0)], [("style", 1.0)], [("style", 0.5)], [("style", 1.0), ("tone", 2.0)]):
        cid = service.history.create_conversation()  # a fresh conversation each time, the same prompt
        service.set_adapters(cid, scales)
        _, answers[str(scales)], stats, error = reply(service, cid, LONG)
        assert error is None and stats is not None
    assert answers[str([("style", 0.0)])] == base  # scale 0 is the base model
    assert answers[str([("style", 1.0)])] != base
    assert len(set(answers.values())) >= 3
    assert service.host.pid == pid and service.loaded.load_seconds == loaded  # no reload


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_mismatched_adapter_is_refused_in_words_and_the_model_keeps_working(service: ChatService,
                                                                              tmp_path: Path) -> None:
    service.adapter_store.add(write_lora(tmp_path / "llama.gguf", arch="llama", seed=5), name="for-llama")
    cid, _, _, _ = reply(service, None, "Hi")
    service.set_adapters(cid, [("for-llama", 1.0)])
    _, answer, stats, error = reply(service, cid, "With an adapter for another model?")
    assert error is not None and error.kind == "AdapterError" and error.facts["code"] == "wrong-architecture"
    assert "for-llama" in error.message and "qwen2" in error.message and answer == ""
    last = service.history.messages(cid)[-1]
    assert last.status == "error" and "for-llama" in last.error
    service.set_adapters(cid, [])
    _, answer, stats, error = reply(service, cid, "And now?")
    assert error is None and answer.strip()
    with pytest.raises(AdapterError, match="from 0 to 2"):
        service.set_adapters(cid, [("style", 2.5)])
    with pytest.raises(AdapterError, match="no adapter named 'nope'"):
        service.set_adapters(cid, [("nope", 1.0)])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_llama_cpp_refusing_an_adapter_is_an_error_not_a_crash(service: ChatService, tmp_path: Path) -> None:
    # Past the checks, straight to the model process: llama.cpp's NULL pointer must be caught.
    bad = write_lora(tmp_path / "wide.gguf", shapes={"attn_q": (64, 96), "attn_v": (32, 96),
                                                     "attn_output": (64, 96), "ffn_down": (64, 96)})
    pid = service.host.pid
    stream = service.host.chat([{"role": "user", "content": "Hi"}], dict(GREEDY.resolved(service.loaded)),
                               adapters=[[str(bad), 1.0, "f" * 64, "wide"]])
    with pytest.raises(AdapterError) as err:
        list(stream)
    assert err.value.facts["code"] == "rejected" and "wide" in str(err.value)
    assert "incorrect shape" in str(err.value)  # llama.cpp's own reason, from its log
    _, answer, stats, error = reply(service, None, "Still there?")
    assert error is None and answer.strip() and service.host.pid == pid
