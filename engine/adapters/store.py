"""LoRA adapters kept in the SQLite database, bytes and facts, and the files llama.cpp loads.

An adapter is imported once into the database (its GGUF bytes in chunks, with what it is), so
it travels with the history and cannot be changed or lost under a conversation that uses it.
llama.cpp needs a file: it is written from the database into the adapters folder under its
sha256, and written again whenever it is missing or its bytes no longer hash to that name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from r1desk.engine import paths
from r1desk.engine.adapters.check import AdapterFacts, describe
from r1desk.engine.db.database import open_db, transaction
from r1desk.engine.errors import AdapterError, DiskFull

CHUNK_BYTES = 8 * 1024 * 1024  # one BLOB row: large adapters never need one huge bytes object
MAX_NAME = 100
_NAME = re.compile(r"^[^\s:/\\][^:/\\]*$")  # ':' separates a scale on the command line (NAME:0.5)

# Files in the adapters folder whose bytes were hashed in this process: (size, mtime_ns) by path.
_verified: dict[str, tuple[int, int]] = {}
_verified_lock = threading.Lock()


@dataclass
class Adapter:
    """One adapter as the database keeps it."""

    id: int
    name: str
    architecture: str
    n_embd: int | None
    n_layer: int | None
    rank: int
    alpha: float
    target_modules: list[str]
    base_model: str
    size: int
    sha256: str
    created_at: float
    notes: str = ""
    source: str = ""
    tensors: dict[str, list[int]] = field(default_factory=dict)

    @property
    def facts(self) -> AdapterFacts:
        blocks = 0
        for name in self.tensors:
            if name.startswith("blk."):
                blocks = max(blocks, int(name.split(".")[1]) + 1)
        return AdapterFacts(architecture=self.architecture, alpha=self.alpha, rank=self.rank, n_embd=self.n_embd,
                            n_layer=self.n_layer, blocks=blocks, tensors=self.tensors,
                            target_modules=self.target_modules, base_model=self.base_model)

    def to_dict(self, with_tensors: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_tensors:
            out.pop("tensors")
            out["n_tensors"] = len(self.tensors)
        return out

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Adapter":
        return cls(id=row["id"], name=row["name"], architecture=row["architecture"], n_embd=row["n_embd"],
                   n_layer=row["n_layer"], rank=row["rank"], alpha=row["alpha"],
                   target_modules=json.loads(row["target_modules"] or "[]"), base_model=row["base_model"] or "",
                   size=row["size"], sha256=row["sha256"], created_at=row["created_at"], notes=row["notes"] or "",
                   source=row["source"] or "", tensors=json.loads(row["tensors"] or "{}"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not _NAME.match(name):
        raise AdapterError(f"{name!r} cannot name an adapter: use up to {MAX_NAME} characters, without ':', "
                           "'/' or '\\'", facts={"code": "bad-name", "name": name})
    return name


def default_name(path: Path) -> str:
    stem = path.name[:-5] if path.name.lower().endswith(".gguf") else path.name
    return re.sub(r"[:/\\]", "-", stem).strip() or "adapter"


class Adapters:
    """The adapters table: import, list, show, export, remove, and the file llama.cpp loads."""

    def __init__(self, db: sqlite_utils.Database | None = None):
        self.db = db if db is not None else open_db()

    # Reading ------------------------------------------------------------------------------
    def list(self) -> list[Adapter]:
        return [Adapter.from_row(r) for r in self.db.query("SELECT * FROM adapters ORDER BY name COLLATE NOCASE")]

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM adapters").fetchone()[0]

    def get(self, name: str) -> Adapter:
        rows = list(self.db.query("SELECT * FROM adapters WHERE name = ?", [name]))
        if not rows:
            known = [a.name for a in self.list()]
            hint = f" (imported: {', '.join(known)})" if known else " (none are imported yet)"
            raise AdapterError(f"no adapter named {name!r}{hint}", facts={"code": "no-such-adapter", "name": name})
        return Adapter.from_row(rows[0])

    def by_sha256(self, sha256: str) -> Adapter | None:
        rows = list(self.db.query("SELECT * FROM adapters WHERE sha256 = ?", [sha256]))
        return Adapter.from_row(rows[0]) if rows else None

    def _chunks(self, adapter: Adapter) -> Iterator[bytes]:
        # One chunk per query: a large adapter is never read into memory whole.
        seq = 0
        while True:
            row = self.db.execute("SELECT data FROM adapter_chunks WHERE adapter_id = ? AND seq = ?",
                                  [adapter.id, seq]).fetchone()
            if row is None:
                return
            yield row[0]
            seq += 1

    # Writing ------------------------------------------------------------------------------
    def add(self, path: str | os.PathLike, *, name: str | None = None, notes: str = "", base_model: str | None = None,
            facts: AdapterFacts | None = None, source: str | None = None) -> Adapter:
        """Import a GGUF LoRA file (checked first); all of it lands in the database, or none of it."""
        path = Path(path)
        facts = facts if facts is not None else describe(path)
        name = check_name(name if name is not None else default_name(path))
        size = path.stat().st_size
        digest = sha256_of(path)
        now = time.time()
        with transaction(self.db):
            if self.db.execute("SELECT 1 FROM adapters WHERE name = ?", [name]).fetchone():
                raise AdapterError(f"an adapter named {name!r} is already imported; choose another --name or "
                                   f"remove it first (r1desk adapters rm {name})",
                                   facts={"code": "duplicate", "name": name})
            same = self.by_sha256(digest)
            if same is not None:
                raise AdapterError(f"this adapter is already imported, as {same.name!r}",
                                   facts={"code": "duplicate", "name": same.name})
            cur = self.db.execute(
                "INSERT INTO adapters (name, architecture, n_embd, n_layer, rank, alpha, target_modules, base_model, "
                "tensors, size, sha256, source, notes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [name, facts.architecture, facts.n_embd, facts.n_layer, facts.rank, facts.alpha,
                 json.dumps(facts.target_modules), base_model if base_model is not None else facts.base_model,
                 json.dumps(facts.tensors), size, digest, source if source is not None else str(path), notes, now],
            )
            adapter_id = cur.lastrowid
            check = hashlib.sha256()
            with open(path, "rb") as fh:
                seq = 0
                while chunk := fh.read(CHUNK_BYTES):
                    check.update(chunk)
                    self.db.execute("INSERT INTO adapter_chunks (adapter_id, seq, data) VALUES (?, ?, ?)",
                                    [adapter_id, seq, chunk])
                    seq += 1
            if check.hexdigest() != digest:
                raise AdapterError(f"{path}: the file changed while it was imported; nothing was kept",
                                   facts={"code": "changed", "file": str(path)})
        return self.get(name)

    def set_notes(self, name: str, notes: str) -> Adapter:
        with transaction(self.db):
            self.get(name)
            self.db.execute("UPDATE adapters SET notes = ? WHERE name = ?", [notes, name])
        return self.get(name)

    def remove(self, name: str) -> Adapter:
        """Delete the adapter and its file in the adapters folder; replies keep saying they used it."""
        with transaction(self.db):
            adapter = self.get(name)
            self.db.execute("DELETE FROM adapter_chunks WHERE adapter_id = ?", [adapter.id])
            self.db.execute("DELETE FROM adapters WHERE id = ?", [adapter.id])
        cached = self.cache_path(adapter)
        try:
            cached.unlink(missing_ok=True)
        except OSError:
            pass
        return adapter

    # Files --------------------------------------------------------------------------------
    def export(self, name: str, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the adapter's GGUF file to ``out`` (whole, or not at all)."""
        adapter = self.get(name)
        out = Path(out).expanduser()
        if out.exists() and not overwrite:
            raise AdapterError(f"{out} already exists; choose another file or delete it first",
                               facts={"code": "exists", "file": str(out)})
        self._write(adapter, out)
        return out

    def cache_path(self, adapter: Adapter) -> Path:
        return paths.adapters_dir() / f"{adapter.sha256}.gguf"

    def file_for(self, adapter: Adapter | str) -> Path:
        """The file llama.cpp loads: written from the database if missing or not what it should be."""
        if isinstance(adapter, str):
            adapter = self.get(adapter)
        out = self.cache_path(adapter)
        try:
            st = out.stat()
        except FileNotFoundError:
            st = None
        key = str(out)
        if st is not None and st.st_size == adapter.size:
            with _verified_lock:
                known = _verified.get(key)
            if known == (st.st_size, st.st_mtime_ns) or sha256_of(out) == adapter.sha256:
                with _verified_lock:
                    _verified[key] = (st.st_size, st.st_mtime_ns)
                return out
        self._write(adapter, out)
        st = out.stat()
        with _verified_lock:
            _verified[key] = (st.st_size, st.st_mtime_ns)
        return out

    def _write(self, adapter: Adapter, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.partial")
        h = hashlib.sha256()
        try:
            with open(tmp, "wb") as fh:
                for chunk in self._chunks(adapter):
                    h.update(chunk)
                    fh.write(chunk)
            if h.hexdigest() != adapter.sha256:
                raise AdapterError(f"adapter {adapter.name} is damaged in the database (its bytes do not match "
                                   "their sha256); import it again", facts={"code": "damaged", "name": adapter.name})
            os.replace(tmp, out)
        except OSError as exc:
            if exc.errno == 28:
                raise DiskFull(f"not enough disk space to write {out}", facts={"code": "disk-full",
                                                                              "file": str(out)}) from exc
            raise
        finally:
            tmp.unlink(missing_ok=True)
