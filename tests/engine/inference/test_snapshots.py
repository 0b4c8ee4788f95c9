"""Conversations' saved KV state: the file format, its bounds, and going back to a conversation
with real llama.cpp (after another one, after a restart, after a crash), reading only new tokens."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import psutil
import pytest

from r1desk.engine.chat.service import ChatService, SamplingParams
from r1desk.engine.events import ChatError, ContentDelta, Started, Stats
from r1desk.engine.inference.host import LoadOptions, ModelHost
from r1desk.engine.inference.snapshots import RamSnapshots, Snapshot, SnapshotStore, default_dir, session_key

GREEDY = SamplingParams(temperature=0.0, max_tokens=24)
IDENTITY = {"model": "/m.gguf", "size": 1, "kv_type": "f16"}


def snap(n: int = 10, state: bytes = b"\x01\x02" * 500, text: str = "héllo 世界") -> Snapshot:
    return Snapshot(identity=dict(IDENTITY), text=text, tokens=list(range(n)), kv_tokens=n - 1, state=state,
                    marks=[(3, 2), (len(text), n)])


# The file format and the store ---------------------------------------------------------------


def test_a_snapshot_round_trips_through_its_file(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, budget=10**6)
    key = session_key("db", 1, 2.0)
    s = snap()
    assert store.save(key, s) == store.path(key).stat().st_size
    back = store.load(key, IDENTITY)
    assert back is not None
    assert (back.text, back.tokens, back.kv_tokens, back.state, back.marks) == (s.text, s.tokens, s.kv_tokens,
                                                                                  s.state, s.marks)
    assert store.usage() == (store.path(key).stat().st_size, 1)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_a_damaged_snapshot_is_detected_ignored_and_removed(tmp_path: Path, damage: str) -> None:
    store = SnapshotStore(tmp_path, budget=10**6)
    key = session_key("db", 1, 2.0)
    store.save(key, snap())
    path = store.path(key)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"R1KV" + os.urandom(200))
    path.write_bytes(bytes(data))
    assert store.load(key, IDENTITY) is None
    assert not path.exists()


def test_a_snapshot_from_another_model_or_build_is_not_used_but_kept(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, budget=10**6)
    key = session_key("db", 1, 2.0)
    store.save(key, snap())
    assert store.load(key, dict(IDENTITY, size=2)) is None
    assert store.load(key, dict(IDENTITY, kv_type="q8_0")) is None
    assert store.path(key).exists()
    assert store.load(key, IDENTITY) is not None


def test_disk_use_stays_within_the_budget_least_recently_used_first(tmp_path: Path) -> None:
    one = len(snap().to_bytes())
    store = SnapshotStore(tmp_path, budget=3 * one + 10)
    keys = [session_key("db", i, 0.0) for i in range(5)]
    for i, key in enumerate(keys):
        store.save(key, snap())
        os.utime(store.path(key), (1000 + i, 1000 + i))
        if i == 2:
            store.load(keys[0], IDENTITY)  # used again: now the most recent
            os.utime(store.path(keys[0]), (1002.5, 1002.5))
    left = {p.stem for p in store.files()}
    assert left == {keys[0], keys[3], keys[4]}
    total, count = store.usage()
    assert total <= store.budget and count == 3
    assert store.clear() == total and store.usage() == (0, 0)


def test_a_budget_of_zero_saves_nothing_and_keys_are_checked(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, budget=0)
    key = session_key("db", 1, 0.0)
    assert store.save(key, snap()) == 0 and store.usage() == (0, 0)
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_ram_snapshots_keep_the_most_recent_within_their_budget() -> None:
    one = snap().nbytes
    ram = RamSnapshots(budget=2 * one)
    for key in "abc":
        ram.put(key, snap())
    assert ram.get("a") is None and ram.get("b") is not None and ram.get("c") is not None
    ram.put("d", snap())  # "b" was used before "c": it goes
    assert ram.get("b") is None and ram.get("c") is not None and len(ram) == 2
    assert RamSnapshots(budget=one - 1).get("x") is None


# With the real model --------------------------------------------------------------------------


def reply(service: ChatService, cid: int | None, text: str, params: SamplingParams = GREEDY):
    answer, stats, started = [], None, None
    for ev in service.send(cid, text, params):
        if isinstance(ev, Started):
            started = ev
        elif isinstance(ev, ContentDelta):
            answer.append(ev.text)
        elif isinstance(ev, Stats):
            stats = ev
        elif isinstance(ev, ChatError):
            pytest.fail(ev.message)
    return started.conversation_id, "".join(answer), stats


LONG = "Tell me about the dragons of the northern mountains, their caves and their old songs. " * 12


def two_turns(service: ChatService) -> int:
    cid, _, _ = reply(service, None, LONG)
    cid, _, _ = reply(service, cid, "And what do they eat in winter?")
    return cid


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_going_back_to_a_conversation_reads_only_its_new_tokens(smollm2: Path, tmp_path: Path) -> None:
    # The reference: the same turns with nothing in between.
    ref = ChatService(host=ModelHost(snapshot_ram_budget=0))
    try:
        ref.load_model(smollm2, LoadOptions(n_ctx=2048))
        cid = two_turns(ref)
        _, expected, ref_stats = reply(ref, cid, "Which song is the oldest?")
    finally:
        ref.close()
    assert ref_stats.reused_from == "context" and ref_stats.prompt_tokens_read < 40

    service = ChatService()
    try:
        service.load_model(smollm2, LoadOptions(n_ctx=2048))
        a = two_turns(service)
        b, _, b_stats = reply(service, None, "What is the capital of France? Answer in one word.")
        assert b_stats.cached_tokens < 40  # only the shared start of the template, at most
        _, answer, stats = reply(service, a, "Which song is the oldest?")
        # Back to the first conversation: its state came back from memory, the answer is the same.
        assert stats.reused_from == "memory"
        assert stats.prompt_tokens == ref_stats.prompt_tokens
        assert stats.prompt_tokens_read == ref_stats.prompt_tokens_read
        assert stats.cached_tokens == stats.prompt_tokens - stats.prompt_tokens_read > 250
        assert answer == expected
        # And the other conversation's too.
        _, _, again = reply(service, b, "And of Italy?")
        assert again.reused_from == "memory" and again.prompt_tokens_read < 40
        # Both are on disk, one file each, inside the disk budget.
        assert service.snapshot_usage()[1] == 2
    finally:
        service.close()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_after_a_restart_or_a_crash_the_state_comes_back_from_disk(smollm2: Path) -> None:
    def regenerate(service: ChatService, cid: int) -> tuple[str, Stats]:
        answer, stats = "", None
        for ev in service.regenerate(cid, GREEDY):
            if isinstance(ev, ContentDelta):
                answer += ev.text
            elif isinstance(ev, Stats):
                stats = ev
        return answer, stats

    service = ChatService()
    try:
        service.load_model(smollm2, LoadOptions(n_ctx=2048))
        cid = two_turns(service)
        # Regenerating reads only the prompt's last token again (for its logits); the reference.
        expected, first = regenerate(service, cid)
        assert first.reused_from == "context" and first.prompt_tokens_read == 1
    finally:
        service.close()
    # The same after a restart: everything before the reply comes from disk.
    service = ChatService()
    try:
        service.load_model(smollm2, LoadOptions(n_ctx=2048))
        answer, stats = regenerate(service, cid)
        assert stats.reused_from == "disk"
        assert stats.prompt_tokens_read == 1  # the last token is read again for its logits
        assert answer == expected
        # The model process dies between turns; after the reload the state comes back from disk.
        pid = service.host.pid
        os.kill(pid, signal.SIGKILL)
        psutil.Process(pid).wait(10)
        _, _, after = reply(service, cid, "Tell me one more thing.")
        assert after.reused_from == "disk" and after.prompt_tokens_read < 40
    finally:
        service.close()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_damaged_or_stale_snapshot_is_never_used(smollm2: Path, tmp_path: Path) -> None:
    service = ChatService()
    try:
        service.load_model(smollm2, LoadOptions(n_ctx=2048))
        cid = two_turns(service)
    finally:
        service.close()
    key = service.history.session_key(cid)
    path = default_dir() / f"{key}.kv"
    assert path.exists()
    data = path.read_bytes()

    # Damaged: cut short. The turn reads its whole prompt and answers; the file is gone.
    path.write_bytes(data[: len(data) - 1000])
    service = ChatService()
    try:
        service.load_model(smollm2, LoadOptions(n_ctx=2048))
        _, answer, stats = reply(service, cid, "Which song is the oldest?")
        assert stats.reused_from is None and stats.cached_tokens == 0 and answer.strip()
    finally:
        service.close()

    # Stale: the same conversation with another model file (a copy is another file).
    other = tmp_path / "other.gguf"
    shutil.copy(smollm2, other)
    path.write_bytes(data)
    service = ChatService()
    try:
        service.load_model(other, LoadOptions(n_ctx=2048))
        _, _, stats = reply(service, cid, "Which song is the oldest?")
        assert stats.reused_from is None and stats.cached_tokens == 0
    finally:
        service.close()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_edit_and_resend_reuses_everything_before_the_edit(smollm2: Path) -> None:
    service = ChatService()
    try:
        service.load_model(smollm2, LoadOptions(n_ctx=2048))
        cid = two_turns(service)
        second_user = [m for m in service.history.messages(cid) if m.role == "user"][-1]
        first_turn = service.history.messages(cid)[:2]
        before = service.host.count_tokens([{"role": m.role, "content": m.content} for m in first_turn])
        stats = None
        for ev in service.edit_and_resend(second_user.id, "And in summer?", GREEDY):
            if isinstance(ev, Stats):
                stats = ev
        assert stats.cached_tokens >= before - 2 and stats.prompt_tokens_read < 40
    finally:
        service.close()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_deleting_a_conversation_deletes_its_snapshot_and_clear_empties_the_folder(smollm2: Path) -> None:
    service = ChatService()
    try:
        service.load_model(smollm2, LoadOptions(n_ctx=2048))
        a, _, _ = reply(service, None, LONG)
        b, _, _ = reply(service, None, "What is the capital of France?")
        service.host.unload()  # the model process writes what it still has before it ends
        assert service.snapshot_usage()[1] == 2
        key = service.history.session_key(a)
        service.history.delete(a)
        assert not (default_dir() / f"{key}.kv").exists()
        assert service.snapshot_usage()[1] == 1
        size = service.snapshot_usage()[0]
        assert service.clear_snapshots() == size and service.snapshot_usage() == (0, 0)
        # A budget of 0 turns saving off.
        service.set_snapshot_budget(0)
        service.load_model(smollm2, LoadOptions(n_ctx=2048))
        reply(service, b, "And of Spain?")
        service.host.unload()
        assert service.snapshot_usage() == (0, 0)
        assert service.snapshot_budget() == 0
    finally:
        service.close()
