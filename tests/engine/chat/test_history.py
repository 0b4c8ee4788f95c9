"""Conversations and messages in a real SQLite file: CRUD, search in English and Chinese, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from r1desk.engine.chat.history import History
from r1desk.engine.errors import NotFound


@pytest.fixture
def h() -> History:
    return History()


def test_conversation_lifecycle(h: History) -> None:
    cid = h.create_conversation(model="m")
    h.add_message(cid, "user", "What is the capital of France? Please answer briefly and clearly, thanks!")
    mid = h.start_reply(cid, "m", {"temperature": 0.6})
    h.save_partial(mid, "Par", "thinking")
    h.finish_reply(mid, "Paris.", "thinking about it", "complete", {"completion_tokens": 3, "ttft_ms": 12.5})
    conv = h.get_conversation(cid)
    assert conv.title.startswith("What is the capital of France?") and len(conv.title) <= 60
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    reply = conv.messages[1]
    assert (reply.content, reply.reasoning, reply.status) == ("Paris.", "thinking about it", "complete")
    assert reply.stats == {"completion_tokens": 3, "ttft_ms": 12.5, "dropped_turns": 0}
    assert reply.params == {"temperature": 0.6}
    h.rename(cid, "  Geography ")
    assert h.get_conversation(cid).title == "Geography"


def test_list_is_newest_first_and_delete_can_be_undone(h: History) -> None:
    a = h.create_conversation(title="a")
    b = h.create_conversation(title="b")
    h.add_message(a, "user", "later activity")
    assert [c.id for c in h.list_conversations()] == [a, b]
    h.delete(a)
    assert [c.id for c in h.list_conversations()] == [b]
    with pytest.raises(NotFound):
        h.get_conversation(a)
    h.restore(a)
    assert {c.id for c in h.list_conversations()} == {a, b}
    h.delete(a)
    assert h.purge_deleted() == 1
    with pytest.raises(NotFound):
        h.restore(a)


def test_delete_from_removes_later_messages(h: History) -> None:
    cid = h.create_conversation()
    ids = [h.add_message(cid, r, t) for r, t in [("user", "1"), ("assistant", "2"), ("user", "3"), ("assistant", "4")]]
    assert h.delete_from(ids[2]) == 2
    assert [m.content for m in h.messages(cid)] == ["1", "2"]


def test_search_english_chinese_and_short(h: History) -> None:
    cid = h.create_conversation(title="mixed")
    h.add_message(cid, "user", "打印前面 <数值> 行上下文")
    h.add_message(cid, "assistant", "Use grep with the context option", reasoning="the user wants grep -B")
    other = h.create_conversation(title="other")
    h.add_message(other, "user", "nothing relevant here")
    assert [r["conversation_id"] for r in h.search("上下文")] == [cid]
    assert [r["conversation_id"] for r in h.search("context option")] == [cid]
    assert [r["conversation_id"] for r in h.search("grep -B")] == [cid]  # reasoning is searchable
    assert [r["conversation_id"] for r in h.search("前面")] == [cid]  # two characters: no trigram
    assert h.search('quote " and * stars') == []
    assert h.search("   ") == []
    h.delete(cid)
    assert h.search("上下文") == []


def test_edits_keep_search_in_sync(h: History) -> None:
    cid = h.create_conversation()
    mid = h.add_message(cid, "user", "original words")
    h.edit_message(mid, "replacement text")
    assert h.search("original") == []
    assert len(h.search("replacement")) == 1


def test_exports(h: History) -> None:
    cid = h.create_conversation(title="Export me", model="tiny")
    h.add_message(cid, "user", "你好")
    mid = h.start_reply(cid, "tiny")
    h.finish_reply(mid, "Hello!", "step one\n\nstep two", "cancelled")
    md = h.export_markdown(cid)
    assert md.startswith("# Export me\n")
    assert "## User\n\n你好" in md
    assert "<details><summary>Thinking</summary>" in md and "> step one" in md
    assert "*(cancelled)*" in md
    data = json.loads(h.export_json(cid))
    assert data["format"] == "r1desk.conversation.v1"
    assert [m["content"] for m in data["messages"]] == ["你好", "Hello!"]
    assert data["messages"][1]["reasoning"] == "step one\n\nstep two"


def test_streaming_reply_of_dead_process_becomes_interrupted(h: History) -> None:
    cid = h.create_conversation()
    mid = h.start_reply(cid, "m")
    h.save_partial(mid, "half an ans", "")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    h.db.execute("UPDATE messages SET writer_pid = ? WHERE id = ?", [dead.pid, mid])
    alive = h.start_reply(cid, "m")  # this process: still streaming
    assert History(h.db).recover_interrupted() == 0  # already recovered by the constructor
    assert h.get_message(mid).status == "interrupted"
    assert h.get_message(mid).content == "half an ans"
    assert h.get_message(alive).status == "streaming"
    assert os.getpid() == h.db.execute("SELECT writer_pid FROM messages WHERE id = ?", [alive]).fetchone()[0]


def test_unknown_ids_are_not_found(h: History) -> None:
    with pytest.raises(NotFound):
        h.get_conversation(12345)
    with pytest.raises(NotFound):
        h.add_message(12345, "user", "x")
    with pytest.raises(NotFound):
        h.get_message(999)
