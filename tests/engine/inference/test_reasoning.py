"""Splitting <think>...</think> from the answer while streaming, however the text is chunked."""

from __future__ import annotations

import random

import pytest

from r1desk.engine.inference.reasoning import ThinkSplitter


def run(pieces: list[str], **kw) -> tuple[str, str]:
    s = ThinkSplitter(**kw)
    parts = []
    for p in pieces:
        parts += s.feed(p)
    parts += s.flush()
    return ("".join(t for k, t in parts if k == "reasoning"), "".join(t for k, t in parts if k == "content"))


def chunkings(text: str, seed: int = 0):
    yield [text]
    yield list(text)  # one character at a time
    rng = random.Random(seed)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 6))))
        yield [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]


@pytest.mark.parametrize(
    "text, kw, expected",
    [
        ("<think>\nweigh options</think>\n\nThe answer.", {}, ("weigh options", "The answer.")),
        ("  <think>a<b</think>c", {}, ("a<b", "c")),
        # The template opened <think> already: only </think> comes.
        ("\nhmm </ no\n</think>\n\nok", {"in_reasoning": True}, ("hmm </ no\n", "ok")),
        # A model that never thinks.
        ("Paris is the capital.", {}, ("", "Paris is the capital.")),
        ("Use <think> tags like this", {}, ("", "Use <think> tags like this")),
        # Reasoning never closed (cut off): it stays reasoning.
        ("<think>still going", {}, ("still going", "")),
        # Not a reasoning model: tags are plain text.
        ("<think>x</think>y", {"detect_open": False}, ("", "<think>x</think>y")),
        ("<", {}, ("", "<")),
        ("你好<think>", {}, ("", "你好<think>")),
    ],
)
def test_split_is_independent_of_chunking(text, kw, expected) -> None:
    for pieces in chunkings(text):
        assert run(pieces, **kw) == expected, pieces


def test_close_reasoning_switches_to_answer() -> None:
    s = ThinkSplitter(in_reasoning=True)
    assert s.feed("thinking </thi") == [("reasoning", "thinking ")]
    s.close_reasoning()
    assert s.feed("\n\nanswer") == [("content", "answer")]
    assert s.closed and not s.in_reasoning
