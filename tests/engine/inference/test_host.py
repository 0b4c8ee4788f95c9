"""The model host and ChatService with real llama.cpp and real models, including the failure paths."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from r1desk.engine.chat.service import ChatService, SamplingParams
from r1desk.engine.errors import CorruptModel, ModelLoadFailed
from r1desk.engine.events import ChatError, ContentDelta, ReasoningDelta, Started, Stats
from r1desk.engine.inference import host as host_module
from r1desk.engine.inference.host import LoadOptions

from tests.support.models import rewrite_gguf, tiny_r1_expected

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def collect(events) -> dict:
    out = {"reasoning": "", "answer": "", "stats": None, "error": None, "started": None}
    for ev in events:
        if isinstance(ev, Started):
            out["started"] = ev
        elif isinstance(ev, ReasoningDelta):
            out["reasoning"] += ev.text
        elif isinstance(ev, ContentDelta):
            out["answer"] += ev.text
        elif isinstance(ev, Stats):
            out["stats"] = ev
        elif isinstance(ev, ChatError):
            out["error"] = ev
    return out


def with_template(src: Path, out: Path, template: str) -> Path:
    """A copy of ``src`` whose GGUF carries another chat template."""
    return rewrite_gguf(src, out, metadata={"tokenizer.chat_template": template})[0]


@pytest.fixture
def service():
    s = ChatService()
    yield s
    s.close()


def test_tiny_r1_reasoning_and_answer(service: ChatService, tiny_r1: Path) -> None:
    info = service.load_model(tiny_r1, LoadOptions(n_ctx=512))
    assert info.is_reasoning and info.is_r1
    out = collect(service.send(None, "hi"))
    reasoning, answer = tiny_r1_expected()
    assert out["error"] is None
    assert out["reasoning"] == reasoning
    assert out["answer"] == answer
    st = out["stats"]
    assert st.finish_reason == "stop" and st.completion_tokens > 20 and st.reasoning_tokens > 10
    assert st.ttft_ms > 0 and st.reasoning_seconds is not None
    saved = service.history.get_message(out["started"].message_id)
    assert (saved.reasoning, saved.content, saved.status) == (reasoning, answer, "complete")
    # R1's recommended sampling applies to an R1 distill.
    assert saved.params["temperature"] == 0.6 and saved.params["top_p"] == 0.95


def test_second_turn_reuses_kv_cache_and_drops_reasoning(service: ChatService, tiny_r1: Path) -> None:
    service.load_model(tiny_r1, LoadOptions(n_ctx=512))
    first = collect(service.send(None, "hi"))
    cid = first["started"].conversation_id
    second = collect(service.send(cid, "again"))
    st = second["stats"]
    # The earlier reply goes back as its answer only: <bos><User>hi<Assistant>answer<eos><User>again<Assistant>
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": first["answer"]},
               {"role": "user", "content": "again"}]
    # ... then "<think>\n" (2 tokens) opens the reasoning, as DeepSeek advises for R1.
    assert st.prompt_tokens == service.host.count_tokens(history) + 2
    assert st.cached_tokens >= 4  # everything up to the first reply was already evaluated


@pytest.mark.parametrize("opens", [False, True])
def test_r1_thinks_visibly_whether_or_not_its_template_opens_the_thinking(
        service: ChatService, tiny_r1: Path, tmp_path: Path, opens: bool) -> None:
    """The real R1-Distill template ends at <｜Assistant｜>; newer ones add "<think>\n" themselves.

    Either way the reply starts inside the reasoning, "<think>" is never doubled, and reasoning
    and answer are split exactly.
    """
    from r1desk.engine.gguf.header import read_header

    template = read_header(tiny_r1).chat_template
    assert template.endswith("{{'<｜Assistant｜>'}}{% endif %}")  # the real template, as shipped
    model = tiny_r1
    if opens:
        opened = template.replace("{{'<｜Assistant｜>'}}", "{{'<｜Assistant｜><think>\\n'}}")
        assert opened != template
        model = with_template(tiny_r1, tmp_path / "opens-think.gguf", opened)
    service.load_model(model, LoadOptions(n_ctx=512))
    out = collect(service.send(None, "hi"))
    reasoning, answer = tiny_r1_expected()
    assert (out["reasoning"], out["answer"]) == (reasoning, answer)
    plain = service.host.count_tokens([{"role": "user", "content": "hi"}])
    # The prompt ends in "<think>\n" exactly once: added by r1desk, or already there.
    assert out["stats"].prompt_tokens == plain + (0 if opens else 2)
    # The model never emitted "<think>\n" itself: the reasoning, "</think>", "\n\n" and the answer.
    from tests.support.models import R1_ANSWER, R1_REASONING

    assert out["stats"].completion_tokens == len(R1_REASONING) + 2 + len(R1_ANSWER)


def test_reasoning_budget_closes_thinking(service: ChatService, tiny_r1: Path) -> None:
    service.load_model(tiny_r1, LoadOptions(n_ctx=512))
    reasoning, answer = tiny_r1_expected()
    out = collect(service.send(None, "hi", SamplingParams(reasoning_budget=4)))
    assert reasoning.startswith(out["reasoning"]) and len(out["reasoning"]) < len(reasoning) / 2
    assert out["answer"] == answer
    assert any("reasoning budget" in n for n in out["stats"].notes)
    none = collect(service.send(None, "hi", SamplingParams(reasoning_budget=0)))
    assert none["reasoning"] == "" and none["answer"] == answer


def test_smollm2_answers_paris(service: ChatService, smollm2: Path) -> None:
    info = service.load_model(smollm2, LoadOptions(n_ctx=1024))
    assert not info.is_reasoning
    out = collect(service.send(None, "What is the capital of France? Answer in one word.", SamplingParams(temperature=0, max_tokens=40)))
    assert "Paris" in out["answer"]
    assert out["reasoning"] == ""


def test_cancel_stops_and_keeps_partial_reply(service: ChatService, smollm2: Path) -> None:
    service.load_model(smollm2, LoadOptions(n_ctx=2048))
    events = service.send(None, "Write a very long story about a dragon.", SamplingParams(temperature=0, max_tokens=1500))
    got = []
    for ev in events:
        got.append(ev)
        if len(got) == 20:
            threading.Timer(0.0, events.cancel).start()
    stats = got[-1]
    assert isinstance(stats, Stats) and stats.finish_reason == "cancelled"
    assert stats.completion_tokens < 1500
    msg = service.history.get_message(got[0].message_id)
    assert msg.status == "cancelled" and msg.content
    # The host is still usable afterwards.
    again = collect(service.send(None, "What is the capital of France? Answer in one word.", SamplingParams(temperature=0, max_tokens=30)))
    assert "Paris" in again["answer"]


def test_killed_host_is_reported_and_restarted(service: ChatService, smollm2: Path) -> None:
    service.load_model(smollm2, LoadOptions(n_ctx=2048))
    first_pid = service.host.pid
    events = service.send(None, "Write a very long story about a dragon.", SamplingParams(temperature=0, max_tokens=1500))
    got = []
    for ev in events:
        got.append(ev)
        if len(got) == 10:
            os.kill(first_pid, signal.SIGKILL)
    err = got[-1]
    assert isinstance(err, ChatError) and err.kind == "HostCrashed" and "SIGKILL" in err.message
    assert "memory" not in err.message  # a kill from outside with plenty of RAM is not called out of memory
    msg = service.history.get_message(got[0].message_id)
    assert msg.status == "error" and msg.content  # what arrived is kept
    again = collect(service.send(msg.conversation_id, "What is the capital of France? Answer in one word.",
                                 SamplingParams(temperature=0, max_tokens=30)))
    assert again["error"] is None and "Paris" in again["answer"]
    assert service.host.pid != first_pid


def test_switching_models_ends_the_old_process(service: ChatService, smollm2: Path, tiny_r1: Path) -> None:
    service.load_model(smollm2, LoadOptions(n_ctx=512))
    old = service.host.pid
    service.load_model(tiny_r1, LoadOptions(n_ctx=512))
    assert service.host.pid != old
    assert not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE
    service.unload()
    assert service.host.pid is None and service.loaded is None


def test_corrupt_model_is_refused_before_loading(service: ChatService, tmp_path: Path, smollm2: Path) -> None:
    bad = tmp_path / "half.gguf"
    bad.write_bytes(smollm2.read_bytes()[: smollm2.stat().st_size // 2])
    with pytest.raises(CorruptModel, match="truncated"):
        service.load_model(bad)
    assert service.host.pid is None


def test_no_model_loaded_is_a_clear_error(service: ChatService) -> None:
    with pytest.raises(ModelLoadFailed, match="no model is loaded"):
        list(service.send(None, "hi"))


def test_hostile_template_in_gguf_runs_no_code(service: ChatService, tiny_r1: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = (
        "{% for x in ().__class__.__base__.__subclasses__() %}{% if \"warning\" in x.__name__ %}"
        "{{ x()._module.__builtins__['__import__']('os').popen(\"touch " + str(marker) + "\").read() }}"
        "{% endif %}{% endfor %}"
    )
    model = with_template(tiny_r1, tmp_path / "cve-2024-34359-template.gguf", payload)
    service.load_model(model, LoadOptions(n_ctx=256))
    out = collect(service.send(None, "hi"))
    assert out["error"] is not None and out["error"].kind == "TemplateError"
    assert not marker.exists()


def test_broken_template_falls_back_and_still_chats(service: ChatService, tiny_r1: Path, tmp_path: Path) -> None:
    model = with_template(tiny_r1, tmp_path / "broken.gguf", "{% for m in messages %}{{ m.content ")
    info = service.load_model(model, LoadOptions(n_ctx=256))
    assert any("ChatML" in w for w in info.warnings)
    out = collect(service.send(None, "hi", SamplingParams(max_tokens=8)))
    assert out["error"] is None and out["stats"].completion_tokens > 0


def test_endless_template_is_stopped(service: ChatService, tiny_r1: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_module, "RENDER_TIMEOUT_SECONDS", 3.0)
    slow = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}hi"
    model = with_template(tiny_r1, tmp_path / "slow.gguf", slow)
    service.load_model(model, LoadOptions(n_ctx=256))
    t0 = time.monotonic()
    out = collect(service.send(None, "hi"))
    assert out["error"] is not None and "too long to render" in out["error"].message
    assert time.monotonic() - t0 < 60


def test_context_overflow_drops_oldest_turns(service: ChatService, tiny_r1: Path) -> None:
    service.load_model(tiny_r1, LoadOptions(n_ctx=160))
    cid = None
    dropped = []
    for i in range(6):
        out = collect(service.send(cid, f"question number {i} " + "word " * 30))
        assert out["error"] is None
        cid = out["started"].conversation_id
        dropped.append(out["stats"].dropped_turns)
    assert dropped[0] == 0 and dropped[-1] > 0
    assert any("left out" in n for n in out["stats"].notes)
    # Every message is still in the history, only the prompt was shortened.
    assert len(service.history.messages(cid)) == 12
    huge = collect(service.send(cid, "word " * 400))
    assert huge["error"] is not None and huge["error"].kind == "ContextOverflow"


def test_regenerate_and_edit(service: ChatService, tiny_r1: Path) -> None:
    service.load_model(tiny_r1, LoadOptions(n_ctx=512))
    first = collect(service.send(None, "hi"))
    cid = first["started"].conversation_id
    again = collect(service.regenerate(cid))
    assert again["answer"] == first["answer"]
    msgs = service.history.messages(cid)
    assert [m.role for m in msgs] == ["user", "assistant"]
    edited = collect(service.edit_and_resend(msgs[0].id, "hello there"))
    msgs = service.history.messages(cid)
    assert [m.content for m in msgs][0] == "hello there" and len(msgs) == 2
    assert edited["stats"].finish_reason == "stop"


def test_too_large_context_is_refused_up_front(service: ChatService, smollm2: Path) -> None:
    from r1desk.engine.errors import NotEnoughMemory

    total = psutil.virtual_memory().total
    # SmolLM2's f16 KV cache takes 23,040 bytes per token: ask for twice the machine's RAM.
    n_ctx = int(2 * total / 23_040)
    with pytest.raises(NotEnoughMemory, match="does not fit"):
        service.load_model(smollm2, LoadOptions(n_ctx=n_ctx))
    assert service.host.pid is None
    # A default context is chosen to fit, and the model loads.
    info = service.load_model(smollm2)
    assert info.n_ctx == 8192


def test_unresponsive_host_is_killed_after_grace(service: ChatService, smollm2: Path) -> None:
    """A model process that does not react to cancel (here: stopped) is killed and replaced."""
    service.load_model(smollm2, LoadOptions(n_ctx=2048, use_mmap=False))
    pid = service.host.pid
    got = []
    events = service.send(None, "Write a very long story about a dragon.", SamplingParams(temperature=0, max_tokens=1500))
    for ev in events:
        got.append(ev)
        if len(got) == 5:
            os.kill(pid, signal.SIGSTOP)
            t0 = time.monotonic()
            events.cancel()
    waited = time.monotonic() - t0
    stats = got[-1]
    assert isinstance(stats, Stats) and stats.finish_reason == "cancelled"
    assert any("restarted" in n for n in stats.notes)
    assert waited >= host_module.CANCEL_GRACE_SECONDS
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    again = collect(service.send(None, "What is the capital of France? Answer in one word.",
                                 SamplingParams(temperature=0, max_tokens=20)))
    assert "Paris" in again["answer"] and service.host.pid != pid


def test_flash_attention_with_quantised_kv(service: ChatService, smollm2: Path) -> None:
    info = service.load_model(smollm2, LoadOptions(n_ctx=1024, flash_attn=True, kv_type="q8_0"))
    assert info.options["kv_type"] == "q8_0"
    out = collect(service.send(None, "What is the capital of France? Answer in one word.",
                               SamplingParams(temperature=0, max_tokens=20)))
    assert out["error"] is None and out["stats"].completion_tokens > 0
    with pytest.raises(ModelLoadFailed, match="flash attention"):
        service.load_model(smollm2, LoadOptions(n_ctx=1024, kv_type="q8_0"))


def test_stop_pressed_before_the_reply_starts_is_not_lost(service: ChatService, smollm2: Path) -> None:
    service.load_model(smollm2, LoadOptions(n_ctx=1024))
    events = service.send(None, "Write a very long story about a dragon.", SamplingParams(temperature=0, max_tokens=500))
    events.cancel()  # before the stream is read at all
    out = collect(events)
    assert out["stats"].finish_reason == "cancelled" and out["stats"].completion_tokens <= 1
    # The next reply is not affected by the earlier stop.
    again = collect(service.send(None, "What is the capital of France? Answer in one word.",
                                 SamplingParams(temperature=0, max_tokens=20)))
    assert again["stats"].finish_reason == "stop" and "Paris" in again["answer"]
