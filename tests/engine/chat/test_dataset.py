"""Conversations exported as a fine-tuning dataset: what trainers read, finished replies only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from r1desk.cli import cli
from r1desk.engine.chat.dataset import write_dataset
from r1desk.engine.chat.history import History
from r1desk.engine.errors import NotFound, R1deskError
from r1desk.engine.inference.templates import ChatTemplate

SMOL_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def reply(h: History, cid: int, content: str, reasoning: str = "", status: str = "complete") -> None:
    mid = h.start_reply(cid, "m", {})
    h.finish_reply(mid, content, reasoning, status)


@pytest.fixture
def history() -> History:
    h = History()
    a = h.create_conversation("maths")
    h.set_system_prompt(a, "Answer briefly.")
    h.add_message(a, "user", "What is 6 × 7?")
    reply(h, a, "42.", reasoning="Six sevens are forty-two.")
    h.add_message(a, "user", "再说一遍？")
    reply(h, a, "", status="error")  # failed: left out, with its question
    h.add_message(a, "user", "And 2 + 2?")
    reply(h, a, "4.", reasoning="Easy.")
    b = h.create_conversation("unanswered")
    h.add_message(b, "user", "hello?")
    reply(h, b, "hel", status="cancelled")
    h.ids = (a, b)
    return h


def test_finished_turns_become_chat_messages_with_reasoning_as_r1_writes_it(history: History, tmp_path: Path) -> None:
    a, b = history.ids
    out = tmp_path / "data.jsonl"
    summary = write_dataset(history, [a, b], out)
    assert (summary.conversations, summary.replies, summary.skipped) == (1, 2, 1)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == [{"messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 6 × 7?"},
        {"role": "assistant", "content": "<think>\nSix sevens are forty-two.\n</think>\n\n42."},
        {"role": "user", "content": "And 2 + 2?"},
        {"role": "assistant", "content": "<think>\nEasy.\n</think>\n\n4."},
    ]}]
    # The messages render with a model's own chat template, as a trainer would do.
    prompt = ChatTemplate(SMOL_TEMPLATE).render(rows[0]["messages"], add_generation_prompt=False)
    assert prompt.count("<|im_start|>assistant") == 2 and "再说一遍" not in prompt


def test_reasoning_can_be_left_out(history: History, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    write_dataset(history, [history.ids[0]], out, reasoning=False)
    messages = json.loads(out.read_text(encoding="utf-8"))["messages"]
    assert [m["content"] for m in messages if m["role"] == "assistant"] == ["42.", "4."]


def test_bad_targets_and_ids_write_nothing(history: History, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(NotFound):
        write_dataset(history, [history.ids[0], 999], folder / "x.jsonl")
    assert list(folder.iterdir()) == []
    with pytest.raises(R1deskError, match="is a folder"):
        write_dataset(history, [history.ids[0]], folder)
    with pytest.raises(R1deskError, match="no such folder"):
        write_dataset(history, [history.ids[0]], folder / "missing" / "x.jsonl")
    assert list(folder.iterdir()) == []


def test_the_command_line_exports_all_or_chosen_conversations(history: History, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    result = CliRunner().invoke(cli, ["history", "dataset", "--all", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Wrote 1 conversation(s), 2 repl(ies)" in result.output and "1 without a finished reply" in result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1
    result = CliRunner().invoke(cli, ["history", "dataset", "-o", str(out)])
    assert result.exit_code != 0 and "--all" in result.output
