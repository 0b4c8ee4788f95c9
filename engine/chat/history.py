"""Conversations and messages: saved as they stream, searchable, exportable."""

from __future__ import annotations

import json
import os
import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

import psutil
import sqlite_utils

from r1desk.engine.db.database import open_db, transaction
from r1desk.engine.errors import NotFound, R1deskError
from r1desk.engine.inference.snapshots import SnapshotStore, session_key

STATS_COLUMNS = (
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "ttft_ms", "tokens_per_second",
    "reasoning_seconds", "total_seconds", "dropped_turns", "cached_tokens", "prompt_tokens_read", "reused_from",
)


@dataclass
class Message:
    id: int
    conversation_id: int
    role: str
    content: str
    reasoning: str = ""
    status: str = "complete"
    error: str | None = None
    model: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    # The LoRA adapters that produced a reply: [{"name", "sha256", "scale"}], [] for the base model.
    adapters: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "role": self.role, "content": self.content, "reasoning": self.reasoning,
            "status": self.status, "error": self.error, "model": self.model, "stats": self.stats,
            "params": self.params, "created_at": self.created_at, "updated_at": self.updated_at,
            "adapters": self.adapters,
        }


@dataclass
class Conversation:
    id: int
    title: str
    model: str | None
    settings: dict[str, Any]
    created_at: float
    updated_at: float
    messages: list[Message] = field(default_factory=list)
    message_count: int = 0

    def to_dict(self, with_messages: bool = True) -> dict[str, Any]:
        out = {
            "id": self.id, "title": self.title, "model": self.model, "settings": self.settings,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "message_count": self.message_count or len(self.messages),
        }
        if with_messages:
            out["messages"] = [m.to_dict() for m in self.messages]
        return out


def _message(row: dict[str, Any]) -> Message:
    stats = {k: row[k] for k in STATS_COLUMNS if row.get(k) is not None}
    return Message(
        id=row["id"], conversation_id=row["conversation_id"], role=row["role"],
        content=row["content"], reasoning=row["reasoning"], status=row["status"],
        error=row["error"], model=row["model"], stats=stats, params=json.loads(row["params"] or "{}"),
        created_at=row["created_at"], updated_at=row["updated_at"], adapters=json.loads(row.get("adapters") or "[]"),
    )


class History:
    """All reads and writes of conversations; one instance per database connection."""

    def __init__(self, db: sqlite_utils.Database | None = None):
        self.db = db if db is not None else open_db()
        # Told the session key of each conversation deleted, so its saved KV state goes too.
        self.forgotten: list[Callable[[str], None]] = [SnapshotStore().forget]
        self.recover_interrupted()

    def session_key(self, conversation_id: int) -> str:
        """The conversation's name for its saved KV state: unique to this database and this
        conversation, even if a later one gets the same id."""
        row = self._conversation_row(conversation_id, include_deleted=True)
        return session_key(getattr(self.db, "path", ""), conversation_id, repr(row["created_at"]))

    def _forget(self, keys: list[str]) -> None:
        for key in keys:
            for hook in self.forgotten:
                try:
                    hook(key)
                except Exception:  # noqa: BLE001 - the conversation is deleted; its cache is a detail
                    pass

    # Conversations -----------------------------------------------------------------------
    def create_conversation(self, title: str = "", model: str | None = None,
                            settings: dict[str, Any] | None = None) -> int:
        now = time.time()
        with transaction(self.db):
            cur = self.db.execute(
                "INSERT INTO conversations (title, model, settings, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [title, model, json.dumps(settings or {}, ensure_ascii=False), now, now],
            )
        return cur.lastrowid

    def _conversation_row(self, conversation_id: int, include_deleted: bool = False) -> dict:
        rows = list(self.db.query(
            "SELECT * FROM conversations WHERE id = ?" + ("" if include_deleted else " AND deleted_at IS NULL"),
            [conversation_id],
        ))
        if not rows:
            raise NotFound(f"conversation {conversation_id} does not exist")
        return rows[0]

    def get_conversation(self, conversation_id: int) -> Conversation:
        row = self._conversation_row(conversation_id)
        messages = self.messages(conversation_id)
        return Conversation(
            id=row["id"], title=row["title"], model=row["model"],
            settings=json.loads(row["settings"] or "{}"), created_at=row["created_at"],
            updated_at=row["updated_at"], messages=messages, message_count=len(messages),
        )

    def list_conversations(self, limit: int = 200, offset: int = 0) -> list[Conversation]:
        rows = self.db.query(
            "SELECT c.*, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS n "
            "FROM conversations c WHERE deleted_at IS NULL ORDER BY updated_at DESC, id DESC "
            "LIMIT ? OFFSET ?",
            [limit, offset],
        )
        return [
            Conversation(
                id=r["id"], title=r["title"], model=r["model"], settings=json.loads(r["settings"] or "{}"),
                created_at=r["created_at"], updated_at=r["updated_at"], message_count=r["n"],
            )
            for r in rows
        ]

    def rename(self, conversation_id: int, title: str) -> None:
        with transaction(self.db):
            self._conversation_row(conversation_id)
            self.db.execute("UPDATE conversations SET title = ? WHERE id = ?", [title.strip(), conversation_id])

    def update_settings(self, conversation_id: int, **changes: Any) -> None:
        with transaction(self.db):  # read and write at once: another window's change is kept
            row = self._conversation_row(conversation_id)
            settings = json.loads(row["settings"] or "{}")
            settings.update(changes)
            self.db.execute(
                "UPDATE conversations SET settings = ? WHERE id = ?",
                [json.dumps(settings, ensure_ascii=False), conversation_id],
            )

    def delete(self, conversation_id: int, *, permanent: bool = False) -> None:
        """Move to the bin (``restore`` undoes it, ``purge_deleted`` empties it), or delete now."""
        key = None
        with transaction(self.db):
            self._conversation_row(conversation_id, include_deleted=permanent)
            key = self.session_key(conversation_id)
            if permanent:
                self.db.execute("DELETE FROM conversations WHERE id = ?", [conversation_id])
            else:
                self.db.execute("UPDATE conversations SET deleted_at = ? WHERE id = ?", [time.time(), conversation_id])
        self._forget([key])

    def restore(self, conversation_id: int) -> None:
        with transaction(self.db):
            self._conversation_row(conversation_id, include_deleted=True)
            self.db.execute("UPDATE conversations SET deleted_at = NULL WHERE id = ?", [conversation_id])

    def purge_deleted(self, older_than: float = 0.0) -> int:
        cutoff = time.time() - older_than
        with transaction(self.db):
            ids = [r["id"] for r in self.db.query(
                "SELECT id FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at <= ?", [cutoff])]
            keys = [self.session_key(i) for i in ids]
            cur = self.db.execute(
                "DELETE FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at <= ?", [cutoff])
        self._forget(keys)
        return cur.rowcount

    # Messages ----------------------------------------------------------------------------
    def messages(self, conversation_id: int) -> list[Message]:
        """The conversation as shown: of a reply's alternatives, the one the user chose."""
        rows = self.db.query(
            "SELECT * FROM messages WHERE conversation_id = ? AND shown = 1 ORDER BY id", [conversation_id]
        )
        return [_message(r) for r in rows]

    def set_aside_from(self, message_id: int) -> int:
        """Regenerate: hide a reply (and anything after it) as an alternative; returns its group id."""
        with transaction(self.db):
            msg = self.get_message(message_id)
            group = self.db.execute("SELECT coalesce(alternative_of, id) FROM messages WHERE id = ?",
                                    [message_id]).fetchone()[0]
            self.db.execute("UPDATE messages SET shown = 0 WHERE conversation_id = ? AND id >= ?",
                            [msg.conversation_id, message_id])
            return group

    def alternatives(self, message_id: int) -> list[int]:
        """The ids of a reply and its alternatives, oldest first (just itself when it has none)."""
        row = self.db.execute("SELECT coalesce(alternative_of, id) FROM messages WHERE id = ?", [message_id]).fetchone()
        if row is None:
            raise NotFound(f"message {message_id} does not exist")
        return [r[0] for r in self.db.execute(
            "SELECT id FROM messages WHERE id = ? OR alternative_of = ? ORDER BY id", [row[0], row[0]]).fetchall()]

    def show_alternative(self, message_id: int) -> None:
        """Show this alternative of the conversation's last reply instead of the one shown."""
        with transaction(self.db):
            ids = self.alternatives(message_id)
            msg = self.get_message(message_id)
            later = self.db.execute("SELECT 1 FROM messages WHERE conversation_id = ? AND id > ? AND shown = 1 "
                                    "AND id NOT IN (%s)" % ",".join("?" * len(ids)),
                                    [msg.conversation_id, max(ids), *ids]).fetchone()
            if later:
                raise R1deskError("only the last reply's alternatives can be shown")
            marks = ",".join("?" * len(ids))
            self.db.execute(f"UPDATE messages SET shown = (id = ?) WHERE id IN ({marks})", [message_id, *ids])

    def get_message(self, message_id: int) -> Message:
        rows = list(self.db.query("SELECT * FROM messages WHERE id = ?", [message_id]))
        if not rows:
            raise NotFound(f"message {message_id} does not exist")
        return _message(rows[0])

    def add_message(self, conversation_id: int, role: str, content: str, *, reasoning: str = "",
                    status: str = "complete", model: str | None = None,
                    params: dict[str, Any] | None = None) -> int:
        now = time.time()
        with transaction(self.db):
            self._conversation_row(conversation_id)
            cur = self.db.execute(
                "INSERT INTO messages (conversation_id, role, content, reasoning, status, model, params, "
                "writer_pid, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [conversation_id, role, content, reasoning, status, model,
                 json.dumps(params or {}, ensure_ascii=False),
                 os.getpid() if status == "streaming" else None, now, now],
            )
            self._touch(conversation_id, now, first_user_text=content if role == "user" else None)
        return cur.lastrowid

    def _touch(self, conversation_id: int, now: float, first_user_text: str | None = None) -> None:
        self.db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", [now, conversation_id])
        if first_user_text:
            title = " ".join(first_user_text.split())
            if len(title) > 60:
                title = title[:57].rstrip() + "..."
            self.db.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND title = ''", [title, conversation_id]
            )

    def start_reply(self, conversation_id: int, model: str | None, params: dict[str, Any] | None = None, *,
                    alternative_of: int | None = None, adapters: list[dict[str, Any]] | None = None) -> int:
        """A new reply row, 'streaming'; ``alternative_of``: the group of earlier replies it joins;
        ``adapters``: the LoRA adapters applied to produce it (name, sha256, scale)."""
        with transaction(self.db):
            message_id = self.add_message(conversation_id, "assistant", "", status="streaming", model=model,
                                          params=params)
            if alternative_of is not None:
                self.db.execute("UPDATE messages SET alternative_of = ? WHERE id = ?", [alternative_of, message_id])
            if adapters:
                self.db.execute("UPDATE messages SET adapters = ? WHERE id = ?",
                                [json.dumps(adapters, ensure_ascii=False), message_id])
            return message_id

    def save_partial(self, message_id: int, content: str, reasoning: str) -> None:
        with transaction(self.db):
            self.db.execute(
                "UPDATE messages SET content = ?, reasoning = ?, updated_at = ? WHERE id = ?",
                [content, reasoning, time.time(), message_id],
            )

    def finish_reply(self, message_id: int, content: str, reasoning: str, status: str,
                     stats: dict[str, Any] | None = None, error: str | None = None) -> None:
        stats = stats or {}
        now = time.time()
        cols = [c for c in STATS_COLUMNS if stats.get(c) is not None]
        sets = "".join(f", {c} = ?" for c in cols)
        with transaction(self.db):
            self.db.execute(
                f"UPDATE messages SET content = ?, reasoning = ?, status = ?, error = ?, writer_pid = NULL, "
                f"updated_at = ?{sets} WHERE id = ?",
                [content, reasoning, status, error, now, *[stats[c] for c in cols], message_id],
            )
            row = self.db.execute("SELECT conversation_id FROM messages WHERE id = ?", [message_id]).fetchone()
            if row:
                self._touch(row[0], now)

    def edit_message(self, message_id: int, content: str) -> None:
        with transaction(self.db):
            self.get_message(message_id)
            self.db.execute(
                "UPDATE messages SET content = ?, updated_at = ? WHERE id = ?", [content, time.time(), message_id]
            )

    def delete_from(self, message_id: int) -> int:
        """Delete a message and every later one in its conversation (regenerate, edit-and-resend)."""
        with transaction(self.db):
            msg = self.get_message(message_id)
            cur = self.db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND id >= ?", [msg.conversation_id, message_id]
            )
        return cur.rowcount

    def replace_from(self, message_id: int, content: str) -> int:
        """Edit-and-resend: delete a message and every later one, and add ``content`` in its place.

        Both happen or neither: a failure (a full disk, say) leaves the conversation as it was.
        Returns the new message's id; it has the replaced message's role.
        """
        with transaction(self.db):
            msg = self.get_message(message_id)
            self.delete_from(message_id)
            return self.add_message(msg.conversation_id, msg.role, content)

    def recover_interrupted(self) -> int:
        """Replies left 'streaming' by a process that no longer runs become 'interrupted'."""
        # Read first, outside a write transaction: a read-only database still opens for reading.
        rows = self.db.execute("SELECT id, writer_pid FROM messages WHERE status = 'streaming'").fetchall()
        dead = [(mid, pid) for mid, pid in rows if pid is None or not _alive(pid)]
        recovered = 0
        if dead:
            with transaction(self.db):
                for mid, pid in dead:
                    # Only if still that writer's streaming row (another process may have recovered
                    # it meanwhile). Leaving 'streaming' puts the text in the search index.
                    cur = self.db.execute(
                        "UPDATE messages SET status = 'interrupted', writer_pid = NULL "
                        "WHERE id = ? AND status = 'streaming' AND writer_pid IS ?", [mid, pid]
                    )
                    recovered += cur.rowcount
        return recovered

    # Search and export -------------------------------------------------------------------
    def search(self, text: str, limit: int = 50) -> list[dict[str, Any]]:
        """Messages containing ``text`` (any language, case-insensitive), newest first.

        Each hit: ``id`` (the message), ``conversation_id``, ``role``, ``title``, ``created_at``;
        ``snippet``, about SNIPPET_COLUMNS columns of plain text around the first match (in the
        answer, else in the reasoning: ``field``), with … where it was cut; ``matches``, the
        ``[start, end)`` offsets of the matches inside ``snippet`` (the edge marks them, the text
        has no markup); ``count``, how many times the message contains ``text``.
        """
        text = text.strip()
        if not text:
            return []
        columns = "m.id, m.conversation_id, m.role, c.title, m.created_at, m.content, m.reasoning"
        if len(text) >= 3:
            phrase = '"' + text.replace('"', '""') + '"'
            sql = (
                f"SELECT {columns} FROM messages_fts f JOIN messages m ON m.id = f.rowid "
                "JOIN conversations c ON c.id = m.conversation_id "
                "WHERE messages_fts MATCH ? AND m.shown = 1 AND c.deleted_at IS NULL ORDER BY m.id DESC LIMIT ?"
            )
            params: list[Any] = [phrase, limit]
        else:
            # Trigrams need three characters; short (often Chinese) queries scan instead. Like the
            # index, the scan leaves out replies still being written.
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            sql = (
                f"SELECT {columns} FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                "WHERE (m.content LIKE ? ESCAPE '\\' OR m.reasoning LIKE ? ESCAPE '\\') "
                "AND m.status != 'streaming' AND m.shown = 1 AND c.deleted_at IS NULL ORDER BY m.id DESC LIMIT ?"
            )
            params = [like, like, limit]
        pattern = re.compile(re.escape(text), re.IGNORECASE)
        hits = []
        for row in self.db.query(sql, params):
            content, reasoning = row.pop("content") or "", row.pop("reasoning") or ""
            in_content = [m.span() for m in pattern.finditer(content)]
            in_reasoning = [m.span() for m in pattern.finditer(reasoning)]
            field_name, source, spans = (
                ("reasoning", reasoning, in_reasoning) if in_reasoning and not in_content
                else ("content", content, in_content)
            )
            snippet, matches = make_snippet(source, spans)
            hits.append({**row, "snippet": snippet, "matches": matches, "field": field_name,
                         "count": len(in_content) + len(in_reasoning)})
        return hits

    def system_prompt(self, conversation_id: int) -> str:
        """The conversation's system prompt ("" when it has none)."""
        row = self.db.execute(
            "SELECT content FROM messages WHERE conversation_id = ? AND role = 'system' ORDER BY id LIMIT 1",
            [conversation_id],
        ).fetchone()
        return row[0] if row else ""

    def set_system_prompt(self, conversation_id: int, text: str) -> None:
        """Set, change or (with "") remove the conversation's system prompt, in one transaction."""
        text = text.strip()
        with transaction(self.db):
            self.get_conversation(conversation_id)  # NotFound for a conversation that is gone
            rows = self.db.execute(
                "SELECT id FROM messages WHERE conversation_id = ? AND role = 'system' ORDER BY id",
                [conversation_id],
            ).fetchall()
            for (extra,) in rows[1:] if text else rows:
                self.db.execute("DELETE FROM messages WHERE id = ?", [extra])
            if text and rows:
                self.db.execute("UPDATE messages SET content = ?, updated_at = ? WHERE id = ?",
                                [text, time.time(), rows[0][0]])
            elif text:
                self.add_message(conversation_id, "system", text)

    def export_json(self, conversation_id: int) -> str:
        conv = self.get_conversation(conversation_id)
        return json.dumps({"format": "r1desk.conversation.v1", **conv.to_dict()}, ensure_ascii=False, indent=2)

    def export_markdown(self, conversation_id: int) -> str:
        conv = self.get_conversation(conversation_id)
        lines = [f"# {conv.title or 'Conversation ' + str(conv.id)}", ""]
        if conv.model:
            lines += [f"Model: `{conv.model}`", ""]
        for m in conv.messages:
            who = {"user": "User", "assistant": "Assistant", "system": "System"}[m.role]
            lines.append(f"## {who}")
            lines.append("")
            if m.adapters:
                used = ", ".join(f"`{a['name']}` at {a['scale']:g}" for a in m.adapters)
                lines += [f"*Adapters: {used}*", ""]
            if m.reasoning.strip():
                lines.append("<details><summary>Thinking</summary>")
                lines.append("")
                lines.extend("> " + line if line else ">" for line in m.reasoning.strip().splitlines())
                lines.append("")
                lines.append("</details>")
                lines.append("")
            lines.append(m.content.strip())
            if m.status != "complete":
                lines.append("")
                lines.append(f"*({m.status}{': ' + m.error if m.error else ''})*")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


# Snippets ------------------------------------------------------------------------------
SNIPPET_COLUMNS = 80  # a terminal line; three lines of the sidebar. A Chinese character is two.
_WORD_SLACK = 12  # how far a cut may move to fall between two words
_END_SLACK = 6  # how little left at an end is taken rather than cut off


def make_snippet(text: str, spans: list[tuple[int, int]],
                 width: int = SNIPPET_COLUMNS) -> tuple[str, list[list[int]]]:
    """About ``width`` columns of ``text`` around the first of ``spans``, on one line.

    Columns, not characters, so that a snippet takes the same room in any language (about 80
    characters of English, 40 of Chinese). A third of the room goes before the match, the rest
    after it, and what one side cannot use goes to the other. Cuts fall between words where
    words are spaced, anywhere in Chinese or Japanese, never between a character and its
    combining marks; a cut end shows "…". Returns the snippet and the spans that lie in it, as
    offsets into the snippet.
    """
    first_start, first_end = spans[0] if spans else (0, 0)
    room = max(width - sum(_columns(text, i) for i in range(first_start, first_end)), 0)
    start, end = first_start, first_end
    left = room // 3
    while start > 0 and _columns(text, start - 1) <= left:
        start -= 1
        left -= _columns(text, start)
    right = room - room // 3 + left
    while end < len(text) and _columns(text, end) <= right:
        right -= _columns(text, end)
        end += 1
    while start > 0 and _columns(text, start - 1) <= right:
        start -= 1
        right -= _columns(text, start)
    # Rather than cut off a last short word (or three Chinese characters), take it.
    if sum(_columns(text, i) for i in range(start)) <= _END_SLACK:
        start = 0
    if sum(_columns(text, i) for i in range(end, min(len(text), end + _END_SLACK + 1))) <= _END_SLACK:
        end = len(text)
    start = _cut_before(text, start, first_start)
    end = _cut_after(text, end, first_end)
    while start < first_start and text[start].isspace():
        start += 1
    while end > first_end and text[end - 1].isspace():
        end -= 1
    prefix = "…" if text[:start].strip() else ""
    out: list[str] = [prefix] if prefix else []
    length = len(prefix)
    where = {}  # offset in text -> offset in the snippet (runs of white space become one space)
    for i in range(start, end):
        where[i] = length
        ch = text[i]
        if ch.isspace():
            if i > start and text[i - 1].isspace():
                continue
            ch = " "
        out.append(ch)
        length += 1
    where[end] = length
    if text[end:].strip():
        out.append("…")
    matches = [[where[a], where[b]] for a, b in spans if start <= a and b <= end and a < b]
    return "".join(out), matches


def _columns(text: str, i: int) -> int:
    """The room ``text[i]`` takes in a snippet: two for a wide (CJK) character, none for the
    second space of a run (runs of white space become one space)."""
    ch = text[i]
    if ch.isspace():
        return 0 if i > 0 and text[i - 1].isspace() else 1
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _spaced_letter(ch: str) -> bool:
    """A letter or digit of a script that puts spaces between words (not Chinese, Japanese)."""
    return (ch.isalnum() or ch in "_'’") and unicodedata.east_asian_width(ch) not in ("W", "F")


def _inside(text: str, i: int) -> bool:
    """Would cutting before ``text[i]`` split a word, or a character from its marks?"""
    if i <= 0 or i >= len(text):
        return False
    before, after = text[i - 1], text[i]
    if unicodedata.category(after).startswith("M") or after in "\u200d\ufe0e\ufe0f" or before == "\u200d":
        return True
    return _spaced_letter(before) and _spaced_letter(after)


def _cut_before(text: str, start: int, limit: int) -> int:
    """Move a left cut out of a word: back to the word's start if near, else forward (to ``limit``)."""
    if not _inside(text, start):
        return start
    for i in range(start - 1, max(start - _WORD_SLACK, 0) - 1, -1):
        if not _inside(text, i):
            return i
    for i in range(start + 1, limit + 1):
        if not _inside(text, i):
            return i
    return start


def _cut_after(text: str, end: int, limit: int) -> int:
    """Move a right cut out of a word: on to the word's end if near, else back (to ``limit``)."""
    if not _inside(text, end):
        return end
    for i in range(end + 1, min(end + _WORD_SLACK, len(text)) + 1):
        if not _inside(text, i):
            return i
    for i in range(end - 1, limit - 1, -1):
        if not _inside(text, i):
            return i
    return end


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
