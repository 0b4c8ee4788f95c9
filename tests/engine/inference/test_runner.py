"""The model process's chat loop with real llama.cpp: long prompts read in batches, the reply limit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from r1desk.engine.chat.service import ChatService, SamplingParams
from r1desk.engine.events import ContentDelta, PromptProgress, PromptRead, ReasoningDelta, Started, Stats
from r1desk.engine.inference.host import LoadOptions, default_threads

from tests.support.models import tiny_r1_expected

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

N_CTX = 4096
N_BATCH = 512  # LoadOptions' default
GREEDY = dict(temperature=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)


def long_prompt(notes: int = 120) -> str:
    """About 20 tokens a note with SmolLM2's tokenizer: 120 notes is some 2,400 tokens, five batches."""
    colours = ["red", "blue", "green", "amber", "violet", "silver"]
    animals = ["fox", "heron", "otter", "badger", "lynx", "crane", "newt"]
    places = ["river", "market", "old mill", "bridge", "orchard"]
    lines = [f"Note {i}: the {colours[i % 6]} {animals[i % 7]} went to the {places[i % 5]} on day {i * 7 % 31}."
             for i in range(notes)]
    return "Here are my notes.\n" + "\n".join(lines) + "\nWhich animal went to the bridge in note 3? One sentence."


@pytest.fixture
def service():
    s = ChatService()
    yield s
    s.close()


def answer_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, ContentDelta))


def raw_greedy(model: Path, text: str, n: int) -> tuple[int, str]:
    """(prompt tokens, reply) from llama-cpp-python alone: the same prompt, evaluated in one generate() call."""
    import llama_cpp

    from r1desk.engine.gguf.header import read_header
    from r1desk.engine.inference.templates import ChatTemplate

    header = read_header(model)
    vocab = read_header(model, keep=("tokenizer.ggml.tokens",)).metadata["tokenizer.ggml.tokens"]
    bos, eos = header.get("tokenizer.ggml.bos_token_id"), header.get("tokenizer.ggml.eos_token_id")
    template = ChatTemplate(header.chat_template or "", bos_token=vocab[bos] if bos is not None else "",
                            eos_token=vocab[eos] if eos is not None else "")
    prompt = template.render([{"role": "user", "content": text}])
    threads = default_threads()
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, n_batch=N_BATCH, n_ubatch=N_BATCH,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    try:
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        out: list[int] = []
        for tok in llm.generate(tokens, temp=GREEDY["temperature"], top_k=GREEDY["top_k"], top_p=GREEDY["top_p"],
                                min_p=GREEDY["min_p"], repeat_penalty=GREEDY["repeat_penalty"]):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok) or len(out) >= n:
                break
            out.append(tok)
        return len(tokens), llm.detokenize(out).decode("utf-8", errors="replace")
    finally:
        llm.close()


def test_a_long_prompt_is_read_with_progress_and_the_same_reply(service: ChatService, smollm2: Path) -> None:
    service.load_model(smollm2, LoadOptions(n_ctx=N_CTX))
    text = long_prompt()
    events = list(service.send(None, text, SamplingParams(**GREEDY, max_tokens=24)))
    stats = events[-1]
    assert isinstance(stats, Stats) and stats.finish_reason in ("stop", "length")
    total = stats.prompt_tokens
    assert 2 * N_BATCH < total <= N_CTX - 1024
    progress = [e for e in events if isinstance(e, PromptProgress)]
    done = [p.done for p in progress]
    assert len(progress) >= 2 and done == sorted(set(done)), done  # it moves forward
    assert done[-1] == total and all(p.total == total for p in progress)
    assert all(d % N_BATCH == 0 for d in done[:-1])  # batch by batch
    kinds = [type(e) for e in events]
    assert kinds.index(PromptRead) < kinds.index(PromptProgress)
    assert max(i for i, k in enumerate(kinds) if k is PromptProgress) < kinds.index(ContentDelta)
    # Greedy, the reply is the one llama-cpp-python gives reading the whole prompt in one call.
    raw_tokens, raw_reply = raw_greedy(smollm2, text, stats.completion_tokens)
    assert raw_tokens == total
    assert answer_of(events) == raw_reply and raw_reply.strip()

    # The next turn finds the long prompt and the reply in the KV cache and reads only what is new.
    cid = next(e for e in events if isinstance(e, Started)).conversation_id
    again = list(service.send(cid, "And which went to the river in note 0?", SamplingParams(**GREEDY, max_tokens=8)))
    st = again[-1]
    assert isinstance(st, Stats) and st.finish_reason != "cancelled"
    assert st.cached_tokens >= total
    assert not any(isinstance(e, PromptProgress) for e in again)  # one batch: nothing to show


def test_a_short_prompt_sends_no_progress(service: ChatService, smollm2: Path) -> None:
    service.load_model(smollm2, LoadOptions(n_ctx=1024))
    events = list(service.send(None, "What is the capital of France?", SamplingParams(**GREEDY, max_tokens=4)))
    assert not any(isinstance(e, PromptProgress) for e in events)
    assert isinstance(events[-1], Stats)


def test_cancel_while_the_prompt_is_read_stops_at_once_and_leaves_a_usable_cache(
        service: ChatService, smollm2: Path) -> None:
    service.load_model(smollm2, LoadOptions(n_ctx=N_CTX))
    text = long_prompt(60)  # some 1,200 tokens: two batches read here, the last one by generate()
    events = service.send(None, text, SamplingParams(**GREEDY, max_tokens=24))
    cancelled_at = ended_at = None
    stats = None
    for ev in events:
        if isinstance(ev, PromptProgress) and cancelled_at is None:
            assert ev.done < ev.total
            cancelled_at = time.monotonic()
            events.cancel()
        elif isinstance(ev, (ContentDelta, ReasoningDelta)):
            pytest.fail("the reply started after the cancel")
        elif isinstance(ev, Stats):
            stats, ended_at = ev, time.monotonic()
    assert cancelled_at is not None and stats is not None
    assert stats.finish_reason == "cancelled" and stats.completion_tokens == 0
    assert ended_at - cancelled_at < 0.5, f"{ended_at - cancelled_at:.3f} s from cancel to the end"
    # What was read before the cancel stays in the cache, and the model answers the next message.
    after = list(service.send(None, text + " Please.", SamplingParams(**GREEDY, max_tokens=8)))
    st = after[-1]
    assert isinstance(st, Stats) and st.finish_reason != "cancelled"
    assert st.cached_tokens >= N_BATCH and st.completion_tokens > 0


def test_the_reply_limit_counts_the_answer_and_lets_r1_finish_thinking(service: ChatService, tiny_r1: Path) -> None:
    service.load_model(tiny_r1, LoadOptions(n_ctx=512))
    reasoning, answer = tiny_r1_expected()
    out = list(service.send(None, "hi", SamplingParams(max_tokens=3)))
    st = out[-1]
    assert isinstance(st, Stats)
    got = "".join(e.text for e in out if isinstance(e, ReasoningDelta))
    assert got == reasoning  # the whole reasoning, more tokens than the limit
    assert st.reasoning_tokens > 3 and st.completion_tokens - st.reasoning_tokens == 3
    assert answer.startswith(answer_of(out)) and len(answer_of(out)) < len(answer)
    assert st.finish_reason == "length"
    assert any("reply limit of 3 tokens was reached" in n and "--max-tokens" in n for n in st.notes), st.notes
    assert not any("context is full" in n for n in st.notes)
    # 0 is no limit at all: the scripted answer ends by itself.
    full = list(service.send(None, "hi", SamplingParams(max_tokens=0)))
    assert answer_of(full) == answer and full[-1].finish_reason == "stop"


def test_every_sampling_option_reaches_the_native_sampler_chain(service: ChatService, smollm2: Path) -> None:
    service.load_model(smollm2, LoadOptions(n_ctx=1024))
    text = "Write a short poem about the sea, the sea, the sea."

    def answer(**params) -> str:
        return answer_of(list(service.send(None, text, SamplingParams(max_tokens=32, **params))))

    # Every call after the first finds the prompt cached and reads its last token again, so all
    # are computed alike (a prompt read whole gives slightly other logits than one token read).
    answer(temperature=0.0)
    greedy = answer(temperature=0.0)
    # Top-k runs before the draw: keeping one candidate is greedy at any temperature and seed.
    assert answer(temperature=0.9, top_k=1, top_p=1.0, min_p=0.0, seed=7) == greedy
    # A seed makes a sampled reply repeatable; another seed gives another reply.
    sampled = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    one = answer(seed=1, **sampled)
    assert answer(seed=1, **sampled) == one
    assert answer(seed=2, **sampled) != one
    # min-p near 1 keeps only the likeliest token: greedy again.
    assert answer(temperature=1.0, top_k=0, top_p=1.0, min_p=0.999, seed=3) == greedy
    # A repeat penalty changes what greedy decoding picks.
    assert answer(temperature=0.0, repeat_penalty=1.8) != greedy
