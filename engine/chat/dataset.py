"""Conversations as a fine-tuning dataset: JSONL in the chat-messages format trainers read.

One line per conversation, ``{"messages": [{"role": ..., "content": ...}, ...]}``, the format
TRL's SFTTrainer, Unsloth and axolotl (``type: chat_template``, ``field_messages: messages``)
take as it is. A reply's reasoning goes into its content the way DeepSeek-R1 writes it
(``<think>\\n...\\n</think>\\n\\n`` before the answer), or is left out. Only finished replies
are examples: a failed, cancelled or interrupted reply is left out with the question it answered.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from r1desk.engine.chat.history import History
from r1desk.engine.errors import DiskFull, R1deskError


@dataclass
class DatasetSummary:
    path: str
    conversations: int  # lines written
    replies: int  # assistant turns in them
    skipped: int  # conversations with no finished reply


def conversation_messages(history: History, conversation_id: int, *, reasoning: bool = True) -> list[dict[str, str]]:
    """One conversation as training messages: system prompt, then user/assistant turns."""
    out: list[dict[str, str]] = []
    pending_user: list[dict[str, str]] = []
    for m in history.messages(conversation_id):
        if m.role == "system":
            if m.content.strip() and not any(x["role"] == "system" for x in out):
                out.insert(0, {"role": "system", "content": m.content.strip()})
        elif m.role == "user":
            pending_user.append({"role": "user", "content": m.content})
        elif m.role == "assistant":
            if m.status != "complete" or not m.content.strip():
                pending_user = []  # the question this failed to answer goes too
                continue
            if not pending_user:
                continue
            content = m.content.strip()
            if reasoning and m.reasoning.strip():
                content = f"<think>\n{m.reasoning.strip()}\n</think>\n\n{content}"
            user = "\n\n".join(u["content"] for u in pending_user)  # turns alternate, as templates want
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": content}]
            pending_user = []
    return out


def dataset_rows(history: History, conversation_ids: Iterable[int], *,
                 reasoning: bool = True) -> Iterator[tuple[int, dict[str, Any] | None]]:
    for cid in conversation_ids:
        messages = conversation_messages(history, cid, reasoning=reasoning)
        yield cid, ({"messages": messages} if any(m["role"] == "assistant" for m in messages) else None)


def write_dataset(history: History, conversation_ids: Iterable[int], out: str | os.PathLike, *,
                  reasoning: bool = True) -> DatasetSummary:
    """Write the JSONL file (whole or not at all: a temporary file renamed at the end)."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise R1deskError(f"{out}: is a folder; give a file name such as dataset.jsonl",
                          facts={"code": "is-folder", "path": str(out)})
    folder = out.parent if str(out.parent) else Path(".")
    conversation_ids = list(conversation_ids)
    for cid in conversation_ids:
        history.get_conversation(cid)  # NotFound, before anything is written, for one that does not exist
    lines = replies = skipped = 0
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dataset-", suffix=".jsonl", dir=folder)
    except FileNotFoundError:
        raise R1deskError(f"{folder}: no such folder", facts={"code": "no-folder", "path": str(folder)}) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for _cid, row in dataset_rows(history, conversation_ids, reasoning=reasoning):
                if row is None:
                    skipped += 1
                    continue
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                lines += 1
                replies += sum(m["role"] == "assistant" for m in row["messages"])
        os.replace(tmp, out)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if exc.errno == errno.ENOSPC:
            raise DiskFull(f"{out}: the disk is full; nothing was written",
                           facts={"code": "write-disk-full", "path": str(out)}) from None
        raise
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return DatasetSummary(path=str(out), conversations=lines, replies=replies, skipped=skipped)
