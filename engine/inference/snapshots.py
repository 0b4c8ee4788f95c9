"""Saved KV state of conversations, so going back to one reads only its new tokens.

A prompt a model has read lives in its KV cache; switching to another conversation, restarting
the app or reloading the model throws it away, and reading it again costs minutes for a 7B model
on a CPU. The model process keeps the state of recent conversations in RAM and writes each one
to disk when a reply ends (``Snapshot``, one file per conversation), then restores it on that
conversation's next turn instead of reading the prompt again.

A snapshot is used only for the same model file, the same KV layout and chat template, the same
llama.cpp build, and only as far as its tokens are a prefix of the new prompt, so a stale one
can only be useless, never wrong. Each file ends with a CRC-32 of everything before it: a
truncated or damaged file is found and ignored. Disk use is bounded: the least recently used
files go first.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
import time
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1desk.engine import paths

MAGIC = b"R1KV"
VERSION = 1
SUFFIX = ".kv"
DEFAULT_DISK_BUDGET = 4 * 1024**3
DEFAULT_RAM_BUDGET = 1024**3
_HEAD = struct.Struct("<4sII")  # magic, version, length of the JSON header


def default_dir() -> Path:
    return paths.cache_dir() / "kv"


def session_key(*parts: Any) -> str:
    """A file-name-safe key for one conversation (database, conversation id, creation time)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()[:32]


@dataclass
class Snapshot:
    """One conversation's KV state: the tokens in the cache, the text they were read from, the bytes.

    ``tokens`` are the tokens the model saw, generated ones as generated; ``text`` is the prompt
    and reply they spell, so the next prompt, which starts with that text, can reuse them as they
    are (re-tokenising a reply often gives other tokens). ``kv_tokens`` is the prefix of
    ``tokens`` whose state ``state`` holds.
    """

    identity: dict[str, Any]
    text: str
    tokens: list[int]
    kv_tokens: int
    state: bytes | bytearray | memoryview
    marks: list[tuple[int, int]] = field(default_factory=list)  # (characters, tokens) where text and tokens line up
    saved_at: float = field(default_factory=time.time)

    @property
    def nbytes(self) -> int:
        return len(self.state) + 4 * len(self.tokens) + len(self.text)

    # File format: MAGIC, version, header length, JSON header, tokens (int32), text (UTF-8),
    # state, CRC-32 of everything before it. Written and read without copying the state, which
    # is most of it (tens to hundreds of MB).
    def _parts(self) -> list[bytes | bytearray | memoryview]:
        text = self.text.encode("utf-8")
        header = json.dumps({"identity": self.identity, "n_tokens": len(self.tokens), "kv_tokens": self.kv_tokens,
                             "text_bytes": len(text), "state_bytes": len(self.state),
                             "marks": self.marks, "saved_at": self.saved_at}).encode("utf-8")
        return [_HEAD.pack(MAGIC, VERSION, len(header)), header, array("i", self.tokens).tobytes(), text, self.state]

    def write(self, fh) -> int:
        crc = 0
        size = 0
        for part in self._parts():
            fh.write(part)
            crc = zlib.crc32(part, crc)
            size += len(part)
        fh.write(struct.pack("<I", crc))
        return size + 4

    def to_bytes(self) -> bytes:
        parts = self._parts()
        body = b"".join(parts)
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> "Snapshot":
        """Parse a snapshot file; ``ValueError`` for anything truncated, damaged or foreign.

        The state is a view into ``data``, not a copy.
        """
        data = memoryview(data)
        if len(data) < _HEAD.size + 4:
            raise ValueError("too short")
        magic, version, header_len = _HEAD.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise ValueError("not a snapshot of this version")
        (crc,) = struct.unpack_from("<I", data, len(data) - 4)
        if zlib.crc32(data[:-4]) != crc:
            raise ValueError("checksum mismatch")
        pos = _HEAD.size
        try:
            header = json.loads(bytes(data[pos:pos + header_len]))
            pos += header_len
            n_tokens, text_bytes, state_bytes = header["n_tokens"], header["text_bytes"], header["state_bytes"]
            if pos + 4 * n_tokens + text_bytes + state_bytes + 4 != len(data):
                raise ValueError("lengths do not add up")
            tokens = array("i")
            tokens.frombytes(data[pos:pos + 4 * n_tokens])
            pos += 4 * n_tokens
            text = bytes(data[pos:pos + text_bytes]).decode("utf-8")
            pos += text_bytes
            state = data[pos:pos + state_bytes]
            kv_tokens = int(header["kv_tokens"])
            if not 0 < kv_tokens <= n_tokens:
                raise ValueError("bad token count")
            marks = [(int(c), int(t)) for c, t in header.get("marks", []) if 0 < int(t) <= n_tokens]
            return cls(identity=header["identity"], text=text, tokens=tokens.tolist(), kv_tokens=kv_tokens,
                       state=state, marks=marks, saved_at=float(header.get("saved_at", 0.0)))
        except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"bad header ({exc})") from None


class SnapshotStore:
    """The snapshot files in one folder, with a size budget (least recently used go first)."""

    def __init__(self, folder: str | os.PathLike | None = None, budget: int = DEFAULT_DISK_BUDGET):
        self.folder = Path(folder) if folder is not None else default_dir()
        self.budget = int(budget)
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"bad snapshot key {key!r}")
        return self.folder / f"{key}{SUFFIX}"

    def save(self, key: str, snapshot: Snapshot) -> int:
        """Write atomically (a temporary file, then a rename); returns the bytes written.

        A budget of 0 turns saving off; a full disk leaves the older snapshot in place.
        """
        if self.budget <= 0 or snapshot.nbytes > self.budget:
            return 0
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as fh:
                    written = snapshot.write(fh)
                os.replace(tmp, self.path(key))
            except OSError:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                return 0
            self._trim(keep=key)
        return written

    def load(self, key: str, identity: dict[str, Any]) -> Snapshot | None:
        """The snapshot saved for ``key`` if it is whole and made under ``identity``; else None.

        A damaged file is deleted; one from another model or build is left for that one.
        """
        path = self.path(key)
        try:
            with open(path, "rb") as fh:
                data = bytearray(os.fstat(fh.fileno()).st_size)
                if fh.readinto(data) != len(data):
                    raise OSError("short read")
        except OSError:
            return None
        try:
            snap = Snapshot.from_bytes(data)
        except ValueError:
            self.forget(key)
            return None
        if snap.identity != identity:
            return None
        try:
            os.utime(path)  # recently used: kept longest
        except OSError:
            pass
        return snap

    def forget(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except (OSError, ValueError):
            pass

    def files(self) -> list[Path]:
        try:
            return [p for p in self.folder.iterdir() if p.suffix == SUFFIX and not p.name.startswith(".")]
        except OSError:
            return []

    def usage(self) -> tuple[int, int]:
        """(bytes on disk, number of snapshots)."""
        total = count = 0
        for p in self.files():
            try:
                total += p.stat().st_size
                count += 1
            except OSError:
                pass
        return total, count

    def clear(self) -> int:
        """Delete every snapshot; returns the bytes freed."""
        freed = 0
        with self._lock:
            for p in self.files():
                try:
                    size = p.stat().st_size
                    p.unlink()
                    freed += size
                except OSError:
                    pass
        return freed

    def trim(self) -> None:
        """Delete the least recently used snapshots until the rest fit the budget."""
        with self._lock:
            self._trim()

    def _trim(self, keep: str | None = None) -> None:
        entries = []
        for p in self.files():
            try:
                st = p.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
        total = sum(e[1] for e in entries)
        for _mtime, size, p in sorted(entries, key=lambda e: e[0]):
            if total <= self.budget:
                break
            if keep is not None and p.stem == keep:
                continue
            try:
                p.unlink()
                total -= size
            except OSError:
                pass


class RamSnapshots:
    """Recent conversations' snapshots in the model process's memory, least recently used out first."""

    def __init__(self, budget: int = DEFAULT_RAM_BUDGET):
        self.budget = int(budget)
        self._items: dict[str, Snapshot] = {}

    def put(self, key: str, snap: Snapshot) -> None:
        self._items.pop(key, None)
        if snap.nbytes > self.budget:
            return
        self._items[key] = snap
        total = sum(s.nbytes for s in self._items.values())
        for old in list(self._items):
            if total <= self.budget:
                break
            if old != key:
                total -= self._items.pop(old).nbytes

    def get(self, key: str) -> Snapshot | None:
        snap = self._items.pop(key, None)
        if snap is not None:
            self._items[key] = snap  # most recently used last
        return snap

    def forget(self, key: str) -> None:
        self._items.pop(key, None)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self._items.values())

    def __len__(self) -> int:
        return len(self._items)
