"""Conversations and messages in a real SQLite file: CRUD, search in English and Chinese, export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from r1desk.engine.chat.history import History
from r1desk.engine.errors import DiskFull, NotFound


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


# ---------------------------------------------------------------------------------------
# One History (one connection) shared by the chat service's threads.


def test_threads_sharing_one_history_lose_nothing(h: History) -> None:
    n_threads, turns = 8, 25
    failures: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def chat(t: int) -> None:
        try:
            start.wait()
            cid = h.create_conversation(title=f"thread {t}")
            for i in range(turns):
                h.add_message(cid, "user", f"question {t}.{i}")
                mid = h.start_reply(cid, "m")
                h.save_partial(mid, f"half of answer {t}.{i}", "")
                h.finish_reply(mid, f"answer {t}.{i}", f"thought {t}.{i}", "complete", {"completion_tokens": i})
                h.list_conversations()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=chat, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    conversations = {c.title: c for c in h.list_conversations()}
    assert len(conversations) == n_threads
    for t in range(n_threads):
        messages = h.messages(conversations[f"thread {t}"].id)
        expected = [x for i in range(turns) for x in (f"question {t}.{i}", f"answer {t}.{i}")]
        assert [m.content for m in messages] == expected
        assert all(m.status == "complete" for m in messages)
    assert not h.db.conn.in_transaction


# ---------------------------------------------------------------------------------------
# Edit-and-resend is one change.


def test_replace_from_deletes_and_adds_at_once(h: History) -> None:
    cid = h.create_conversation()
    first = h.add_message(cid, "user", "first question")
    h.add_message(cid, "assistant", "first answer")
    asked = h.add_message(cid, "user", "second question, with a typo")
    h.add_message(cid, "assistant", "second answer")
    new = h.replace_from(asked, "second question, fixed")
    assert [(m.role, m.content) for m in h.messages(cid)] == [
        ("user", "first question"), ("assistant", "first answer"), ("user", "second question, fixed")]
    assert h.get_message(new).content == "second question, fixed" and h.get_message(first).content == "first question"


def test_a_failed_edit_and_resend_leaves_the_conversation_unchanged(h: History) -> None:
    cid = h.create_conversation()
    for role, text in [("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]:
        h.add_message(cid, role, text)
    before = [(m.id, m.content) for m in h.messages(cid)]
    pages = h.db.execute("PRAGMA page_count").fetchone()[0]
    h.db.execute(f"PRAGMA max_page_count = {pages}")  # a full disk: the delete fits, the new text does not
    with pytest.raises(DiskFull):
        h.replace_from(before[2][0], "an edited question far longer than the space left " * 10_000)
    h.db.execute("PRAGMA max_page_count = 1073741823")
    assert [(m.id, m.content) for m in h.messages(cid)] == before


# ---------------------------------------------------------------------------------------
# The search index: a reply is indexed once, when it ends.


def _indexed(h: History, message_id: int) -> bool:
    return h.db.execute("SELECT 1 FROM messages_fts_docsize WHERE id = ?", [message_id]).fetchone() is not None


def test_a_reply_is_indexed_when_it_ends_not_at_every_save(h: History) -> None:
    cid = h.create_conversation()
    asked = h.add_message(cid, "user", "tell me about octopuses")
    assert _indexed(h, asked)
    mid = h.start_reply(cid, "m")
    for n in range(1, 6):
        h.save_partial(mid, "octopus " * n, "hmm " * n)
        assert not _indexed(h, mid)
    assert [r["id"] for r in h.search("octopus")] == [asked]
    h.finish_reply(mid, "Octopuses have three hearts.", "recall marine biology", "complete")
    assert _indexed(h, mid)
    assert [r["id"] for r in h.search("three hearts")] == [mid]
    assert [r["id"] for r in h.search("marine biology")] == [mid]
    assert h.search("hmm hmm") == []
    h.edit_message(mid, "Octopuses have blue blood.")
    assert h.search("three hearts") == [] and [r["id"] for r in h.search("blue blood")] == [mid]
    streaming = h.start_reply(cid, "m")
    h.save_partial(streaming, "never finished", "")
    h.delete_from(mid)  # deleting indexed and unindexed rows alike keeps the index whole
    h.db.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
    assert h.search("blue blood") == [] and h.search("tell me about") != []


WRITER = r"""
import sys, time
from r1desk.engine.chat.history import History
from r1desk.engine.db.database import open_db
h = History(open_db(sys.argv[1]))
cid = h.create_conversation(title="crash")
mid = h.start_reply(cid, "m")
h.save_partial(mid, "the reply said something about narwhals", "and thought of tusks")
print(mid, flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_a_reply_cut_off_by_kill_9_is_found_once_marked_interrupted(tmp_path) -> None:
    from r1desk.engine.db.database import open_db

    path = tmp_path / "r1.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        mid = int(writer.stdout.readline())
        h = History(open_db(path))
        assert h.get_message(mid).status == "streaming", "its writer is alive"
        assert h.search("narwhals") == []
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert h.recover_interrupted() == 1
    assert h.get_message(mid).status == "interrupted"
    assert [r["id"] for r in h.search("narwhals")] == [mid]
    assert [r["id"] for r in h.search("tusks")] == [mid]


# ---------------------------------------------------------------------------------------
# Search hits: a snippet around the first match, the match's place as data, the count.

STORY = ("Long ago, in the hills above the old town, the shepherds told of a dragon that slept under "
         "the mountain for a hundred years and woke only when the bells of the abbey rang at night. "
         "Nobody had seen that Dragon since the winter of the great flood.")


def _marked(hit: dict) -> list[str]:
    return [hit["snippet"][a:b] for a, b in hit["matches"]]


def test_a_hit_has_a_snippet_around_the_first_match_and_where_it_is(h: History) -> None:
    cid = h.create_conversation(title="tales")
    mid = h.add_message(cid, "assistant", STORY)
    [hit] = h.search("DRAGON")  # any case
    assert (hit["id"], hit["conversation_id"], hit["field"], hit["count"]) == (mid, cid, "content", 2)
    snippet = hit["snippet"]
    assert 60 <= len(snippet) <= 100 and "[" not in snippet
    assert snippet.startswith("…") and snippet.endswith("…")  # cut at both ends, and it says so
    assert _marked(hit) == ["dragon"]  # the first match; the second is too far to be in it
    assert snippet.index("dragon") < len(snippet) / 2  # more room after the match than before
    words = snippet.strip("…").split()
    assert words[0] in STORY.split() and words[-1] in STORY.split()  # cut between words


def test_a_match_at_the_very_start_or_end_is_not_cut_and_has_no_ellipsis_there(h: History) -> None:
    cid = h.create_conversation()
    first = h.add_message(cid, "user", "Wyverns are not dragons. " + STORY)
    last = h.add_message(cid, "user", STORY + " Wyvern")
    [at_end, at_start] = h.search("wyvern")
    assert (at_start["id"], at_end["id"]) == (first, last)
    assert at_start["snippet"].startswith("Wyverns are not dragons. ") and at_start["snippet"].endswith("…")
    assert at_start["matches"] == [[0, len("Wyvern")]]
    assert at_end["snippet"].startswith("…") and at_end["snippet"].endswith("great flood. Wyvern")
    assert at_end["matches"] == [[len(at_end["snippet"]) - len("Wyvern"), len(at_end["snippet"])]]
    assert 60 <= len(at_end["snippet"]) <= 100  # the room before the match is used instead


def test_a_one_character_chinese_query_gets_a_snippet_cut_between_characters(h: History) -> None:
    text = ("很久以前，在老城上面的山里，牧羊人说起一条睡在山下一百年的龙，只有修道院的钟在夜里响起时它才会醒来。"
            "自从大洪水那年冬天以后，再也没有人见过那条龙。")
    cid = h.create_conversation(title="传说")
    mid = h.add_message(cid, "assistant", text)
    [hit] = h.search("龙")  # one character: the scan, not the trigram index
    assert (hit["id"], hit["count"], _marked(hit)) == (mid, 2, ["龙"])
    snippet = hit["snippet"]
    assert snippet.startswith("…") and snippet.endswith("…") and " " not in snippet
    assert 30 <= len(snippet) <= 50  # the room of about 80 letters of English
    assert snippet.strip("…") in text
    [hit] = h.search("钟在")  # two characters
    assert _marked(hit) == ["钟在"] and hit["snippet"].strip("…") in text
    [hit] = h.search("修道院的钟")  # five: the trigram index
    assert _marked(hit) == ["修道院的钟"]


def test_a_hit_is_plain_text_on_one_line_and_says_when_it_is_in_the_reasoning(h: History) -> None:
    cid = h.create_conversation()
    h.add_message(cid, "user", "Is <b>bold</b> & <i>co</i>\n\n   markup?")
    mid = h.add_message(cid, "assistant", "Yes.", reasoning="The user asks about markup tags like <b>.")
    streaming = h.start_reply(cid, "m")
    h.save_partial(streaming, "markup being written", "")
    hits = h.search("markup")
    assert [hit["id"] for hit in hits] == [mid, mid - 1]  # not the reply still being written
    assert hits[0]["field"] == "reasoning" and _marked(hits[0]) == ["markup"]
    assert hits[1]["snippet"] == "Is <b>bold</b> & <i>co</i> markup?" and _marked(hits[1]) == ["markup"]
    assert [hit["id"] for hit in h.search("<b")] == [mid, mid - 1]  # short queries too
    assert [hit["id"] for hit in h.search("ma")] == [mid, mid - 1]


def test_regenerated_replies_stay_as_alternatives() -> None:
    from r1desk.engine.errors import R1deskError

    h = History()
    cid = h.create_conversation("x")
    h.add_message(cid, "user", "question")
    first = h.add_message(cid, "assistant", "answer one")
    group = h.set_aside_from(first)
    second = h.start_reply(cid, None, alternative_of=group)
    h.finish_reply(second, "answer two", "", "complete")
    assert [m.content for m in h.messages(cid)] == ["question", "answer two"]
    assert h.alternatives(second) == h.alternatives(first) == [first, second]
    assert [hit["id"] for hit in h.search("answer")] == [second]  # a set-aside reply is not a hit
    h.show_alternative(first)
    assert [m.content for m in h.messages(cid)] == ["question", "answer one"]
    h.add_message(cid, "user", "and then?")
    with pytest.raises(R1deskError, match="last reply"):
        h.show_alternative(second)  # the conversation went on from the first one
    assert [m.content for m in h.messages(cid)] == ["question", "answer one", "and then?"]
