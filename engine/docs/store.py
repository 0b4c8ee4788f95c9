"""The document index in the database: collections, their files, chunks, full-text rows and vectors.

Everything that writes these tables is here, so three rules hold in one place:

- a file's document row, chunks, full-text rows and vectors are written in one transaction,
  so after a crash or a kill a file is either indexed whole or not at all;
- deleting a file or a collection deletes its rows from the full-text and vector tables too
  (virtual tables have no foreign keys: triggers and this module do it);
- a collection's vectors all come from one embedding model, whose name is kept with them;
  vectors from another model are never mixed in (a new model means embedding again).

Vectors are in one sqlite-vec ``vec0`` table per collection, ``chunk_vectors_<id>``, as wide
as its embedding model's vectors, keyed by chunk id.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from r1desk.engine.db.database import Database, transaction
from r1desk.engine.docs.chunking import heading_line
from r1desk.engine.errors import CollectionError, NotFound

MAX_NAME_CHARS = 100

# Runs of characters written without spaces between words: Chinese (and Japanese kanji and
# kana), and Hangul, which is spaced but inflected; they are indexed as overlapping pairs.
_CJK_RUN = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ebef]+"
)


def words_text(text: str) -> str:
    """``text`` as ``chunks_words`` indexes it: each CJK run as its overlapping character pairs
    and its single characters; other text is left to the tokenizer (words, Porter-stemmed).

    "电池续航" -> "电池 池续 续航 电 池 续 航". Most Chinese words are two characters, so pairs
    match words without a dictionary; single characters match what a paraphrase keeps of a
    word ("带薪" and "薪水" share 薪). Unigrams and bigrams together are the usual way to search
    Chinese without segmenting it. Queries go through the same function.
    """

    def grams(m: re.Match) -> str:
        run = m.group()
        pairs = [run[i:i + 2] for i in range(len(run) - 1)]
        return " " + " ".join([*pairs, *run]) + " "

    return _CJK_RUN.sub(grams, text)


# ---------------------------------------------------------------------------------------
# What the tables hold.


@dataclass
class Root:
    """A folder or file the user added to a collection; ``watched``: changes are picked up as they happen."""

    path: str
    kind: str  # "folder" | "file"
    watched: bool = False


@dataclass
class Collection:
    id: int
    name: str
    embedding_model: str | None  # the model that made its vectors; None: full-text only so far
    embedding_dim: int | None
    vectors_version: int  # changes whenever any of its vectors do (for caches of them)
    created_at: float
    updated_at: float
    roots: list[Root] = field(default_factory=list)

    @property
    def vector_table(self) -> str:
        return vector_table(self.id)


@dataclass
class Document:
    """One file of a collection as the index last saw it.

    ``status``: "indexed" (its chunks are searchable; ``embedding_model`` None means full-text
    only) or "problem" (``problem`` is the code, ``reason`` one line saying why). ``note``:
    something the user should know about a file that was indexed (only part of it was read).
    """

    id: int
    collection_id: int
    path: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    status: str
    problem: str | None
    reason: str | None
    note: str | None
    format: str | None
    title: str | None
    pages: int | None
    chunks: int
    embedding_model: str | None
    indexed_at: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class NewChunk:
    """A chunk to store: ``text`` is shown and found by full-text search; ``embedding_text``
    (the text with its heading path) is what the embedding model reads and ``chunks_words``
    ranks. ``page``/``page_end``: PDF pages; ``line_start``/``line_end``: the file's lines;
    ``char_start``/``char_end``: offsets in the extracted text (to highlight the passage)."""

    text: str
    embedding_text: str | None = None
    page: int | None = None
    page_end: int | None = None
    line_start: int | None = None
    line_end: int | None = None
    headings: Sequence[str] = ()
    char_start: int | None = None
    char_end: int | None = None
    tokens: int | None = None

    @property
    def for_embedding(self) -> str:
        if self.embedding_text is not None:
            return self.embedding_text
        return f"{heading_line(tuple(self.headings))}\n{self.text}" if self.headings else self.text


@dataclass
class CollectionStats:
    documents: int = 0
    indexed: int = 0
    problems: int = 0
    chunks: int = 0
    vectors: int = 0
    without_vectors: int = 0  # indexed documents with chunks but no vectors from the collection's model
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------------------
# Collections.


def check_name(name: str) -> str:
    """A collection name as stored (trimmed); refused when empty, too long or holding control characters."""
    clean = (name or "").strip()
    if not clean:
        raise CollectionError("a collection needs a name", facts={"code": "bad-collection-name", "name": name})
    if len(clean) > MAX_NAME_CHARS:
        raise CollectionError(f"a collection name may have at most {MAX_NAME_CHARS} characters",
                              facts={"code": "bad-collection-name", "name": name})
    if any(unicodedata.category(ch).startswith("C") for ch in clean):
        raise CollectionError(f"{clean!r}: a collection name may not hold control characters",
                              facts={"code": "bad-collection-name", "name": name})
    return clean


def vector_table(collection_id: int) -> str:
    return f"chunk_vectors_{int(collection_id)}"


def _collection(db: Database, row: Any) -> Collection:
    cid, name, model, dim, version, created, updated = row
    roots = [Root(p, k, bool(w)) for p, k, w in db.execute(
        "SELECT path, kind, watched FROM collection_roots WHERE collection_id = ? ORDER BY id", [cid]).fetchall()]
    return Collection(cid, name, model, dim, version, created, updated, roots)


_COLLECTION_COLUMNS = "id, name, embedding_model, embedding_dim, vectors_version, created_at, updated_at"


def find_collection(db: Database, name: str) -> Collection | None:
    row = db.execute(f"SELECT {_COLLECTION_COLUMNS} FROM collections WHERE name = ?", [name.strip()]).fetchone()
    return _collection(db, row) if row else None


def get_collection(db: Database, name: str) -> Collection:
    found = find_collection(db, name)
    if found is None:
        names = [r[0] for r in db.execute("SELECT name FROM collections ORDER BY name").fetchall()]
        known = f" (there are: {', '.join(names)})" if names else " (there are none yet)"
        raise NotFound(f"no collection named {name!r}{known}",
                       hint="'r1desk index PATH --collection NAME' makes one",
                       facts={"code": "no-such-collection", "name": name})
    return found


def collection_by_id(db: Database, collection_id: int) -> Collection:
    row = db.execute(f"SELECT {_COLLECTION_COLUMNS} FROM collections WHERE id = ?", [collection_id]).fetchone()
    if row is None:
        raise NotFound(f"no collection with id {collection_id}", facts={"code": "no-such-collection"})
    return _collection(db, row)


def create_collection(db: Database, name: str) -> Collection:
    """The collection named ``name``, made if it does not exist yet."""
    clean = check_name(name)
    now = time.time()
    with transaction(db):
        db.execute("INSERT INTO collections (name, created_at, updated_at) VALUES (?, ?, ?) "
                   "ON CONFLICT(name) DO NOTHING", [clean, now, now])
    return get_collection(db, clean)


def list_collections(db: Database) -> list[Collection]:
    rows = db.execute(f"SELECT {_COLLECTION_COLUMNS} FROM collections ORDER BY name COLLATE NOCASE").fetchall()
    return [_collection(db, r) for r in rows]


def stats(db: Database, collection: Collection) -> CollectionStats:
    cid = collection.id
    docs = db.execute(
        "SELECT count(*), coalesce(sum(status = 'indexed'), 0), coalesce(sum(status = 'problem'), 0), "
        "coalesce(sum(chunks), 0), coalesce(sum(size), 0), "
        "coalesce(sum(status = 'indexed' AND chunks > 0 AND embedding_model IS NOT ?), 0) "
        "FROM documents WHERE collection_id = ?", [collection.embedding_model, cid]).fetchone()
    out = CollectionStats(documents=docs[0], indexed=docs[1], problems=docs[2], chunks=docs[3], bytes=docs[4],
                          without_vectors=docs[5] if collection.embedding_model else docs[1])
    if _has_vector_table(db, cid):
        out.vectors = db.execute(f"SELECT count(*) FROM {vector_table(cid)}").fetchone()[0]
    return out


def delete_collection(db: Database, name: str) -> CollectionStats:
    """Delete the collection and every row of it (documents, chunks, full-text rows, vectors)."""
    collection = get_collection(db, name)
    before = stats(db, collection)
    with transaction(db):
        _drop_vectors(db, collection.id)
        db.execute("DELETE FROM collections WHERE id = ?", [collection.id])
    return before


def add_root(db: Database, collection: Collection, path: str, kind: str, *, watched: bool = False) -> None:
    """Add a folder or file to the collection (or change whether it is watched)."""
    if kind not in ("folder", "file"):
        raise ValueError(kind)
    with transaction(db):
        db.execute(
            "INSERT INTO collection_roots (collection_id, path, kind, watched, added_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(collection_id, path) DO UPDATE SET kind = excluded.kind, "
            "watched = max(collection_roots.watched, excluded.watched)",
            [collection.id, path, kind, int(watched), time.time()])
    collection.roots = _collection(db, db.execute(
        f"SELECT {_COLLECTION_COLUMNS} FROM collections WHERE id = ?", [collection.id]).fetchone()).roots


def set_watched(db: Database, collection: Collection, path: str, watched: bool) -> None:
    with transaction(db):
        db.execute("UPDATE collection_roots SET watched = ? WHERE collection_id = ? AND path = ?",
                   [int(watched), collection.id, path])
    for root in collection.roots:
        if root.path == path:
            root.watched = watched


def remove_root(db: Database, collection: Collection, path: str) -> int:
    """Take a folder or file out of the collection, with its documents; returns how many went."""
    with transaction(db):
        db.execute("DELETE FROM collection_roots WHERE collection_id = ? AND path = ?", [collection.id, path])
        remaining = [r.path for r in collection.roots if r.path != path]
        gone = [d.path for d in documents(db, collection) if not any(_under(d.path, r) for r in remaining)]
        removed = remove_documents(db, collection, gone)
    collection.roots = [r for r in collection.roots if r.path != path]
    return removed


def _under(path: str, root: str) -> bool:
    if path == root:
        return True
    prefix = root if root.endswith(("/", "\\")) else root + ("\\" if "\\" in root and "/" not in root else "/")
    return path.startswith(prefix)


# ---------------------------------------------------------------------------------------
# Documents.


_DOCUMENT_COLUMNS = ("id, collection_id, path, size, mtime_ns, sha256, status, problem, reason, note, format, "
                     "title, pages, chunks, embedding_model, indexed_at")


def documents(db: Database, collection: Collection, *, status: str | None = None) -> list[Document]:
    sql = f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ?"
    params: list[Any] = [collection.id]
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    return [Document(*r) for r in db.execute(sql + " ORDER BY path", params).fetchall()]


def document_by_path(db: Database, collection: Collection, path: str) -> Document | None:
    row = db.execute(f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ? AND path = ?",
                     [collection.id, path]).fetchone()
    return Document(*row) if row else None


def write_document(db: Database, collection: Collection, *, path: str, size: int | None, mtime_ns: int | None,
                   sha256: str | None, chunks: Sequence[NewChunk], vectors: np.ndarray | None = None,
                   model: str | None = None, format: str | None = None, title: str | None = None,
                   pages: int | None = None, note: str | None = None) -> int:
    """Store one file, replacing what the index held for it, all in one transaction.

    ``vectors`` (one row per chunk, L2-normalised) must come from ``model``, the collection's
    embedding model (``use_embedding_model`` first); without them the file is full-text only.
    Returns the document id.
    """
    if vectors is not None:
        if model is None or model != collection.embedding_model:
            raise ValueError(f"vectors from {model!r}, but the collection's model is {collection.embedding_model!r}")
        if len(vectors) != len(chunks):
            raise ValueError(f"{len(vectors)} vectors for {len(chunks)} chunks")
    now = time.time()
    with transaction(db):
        db.execute("DELETE FROM documents WHERE collection_id = ? AND path = ?", [collection.id, path])
        doc_id = db.execute(
            "INSERT INTO documents (collection_id, path, size, mtime_ns, sha256, status, note, format, title, pages, "
            "chunks, embedding_model, indexed_at) VALUES (?, ?, ?, ?, ?, 'indexed', ?, ?, ?, ?, ?, ?, ?)",
            [collection.id, path, size, mtime_ns, sha256, note, format, title, pages, len(chunks),
             model if vectors is not None else None, now]).lastrowid
        chunk_ids = _insert_chunks(db, collection.id, doc_id, chunks)
        if vectors is not None and len(chunk_ids):
            _insert_vectors(db, collection.id, chunk_ids, vectors)
        _touch(db, collection, vectors_changed=True, now=now)
    return doc_id


def _insert_chunks(db: Database, collection_id: int, doc_id: int, chunks: Sequence[NewChunk]) -> list[int]:
    ids = []
    conn = db.conn
    with db.lock:
        for ordinal, c in enumerate(chunks):
            cur = conn.execute(
                "INSERT INTO chunks (document_id, collection_id, ordinal, text, page, page_end, line_start, line_end, "
                "heading_path, char_start, char_end, tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [doc_id, collection_id, ordinal, c.text, c.page, c.page_end, c.line_start, c.line_end,
                 json.dumps(list(c.headings), ensure_ascii=False), c.char_start, c.char_end, c.tokens])
            ids.append(cur.lastrowid)
        conn.executemany("INSERT INTO chunks_words (rowid, text) VALUES (?, ?)",
                         [(i, words_text(c.for_embedding)) for i, c in zip(ids, chunks)])
    return ids


def _insert_vectors(db: Database, collection_id: int, chunk_ids: Sequence[int], vectors: np.ndarray) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    with db.lock:
        db.conn.executemany(f"INSERT INTO {vector_table(collection_id)} (rowid, embedding) VALUES (?, ?)",
                            [(int(i), v.tobytes()) for i, v in zip(chunk_ids, vectors)])


def write_problem(db: Database, collection: Collection, *, path: str, size: int | None, mtime_ns: int | None,
                  code: str, reason: str) -> int:
    """Record that a file could not be indexed, and why (its earlier chunks, if any, go)."""
    now = time.time()
    with transaction(db):
        db.execute("DELETE FROM documents WHERE collection_id = ? AND path = ?", [collection.id, path])
        doc_id = db.execute(
            "INSERT INTO documents (collection_id, path, size, mtime_ns, status, problem, reason, indexed_at) "
            "VALUES (?, ?, ?, ?, 'problem', ?, ?, ?)", [collection.id, path, size, mtime_ns, code, reason, now]).lastrowid
        _touch(db, collection, vectors_changed=True, now=now)
    return doc_id


def touch_document(db: Database, document: Document, *, size: int, mtime_ns: int) -> None:
    """The file's size or time changed but not its content: remember the new ones, keep the rest."""
    with transaction(db):
        db.execute("UPDATE documents SET size = ?, mtime_ns = ? WHERE id = ?", [size, mtime_ns, document.id])


def remove_documents(db: Database, collection: Collection, paths: Iterable[str]) -> int:
    """Delete these files' rows (chunks, full-text rows and vectors go with them)."""
    removed = 0
    with transaction(db):
        for path in paths:
            removed += db.execute("DELETE FROM documents WHERE collection_id = ? AND path = ?",
                                  [collection.id, path]).rowcount
        if removed:
            _touch(db, collection, vectors_changed=True)
    return removed


def _touch(db: Database, collection: Collection, *, vectors_changed: bool, now: float | None = None) -> None:
    now = time.time() if now is None else now
    if vectors_changed:
        db.execute("UPDATE collections SET vectors_version = vectors_version + 1, updated_at = ? WHERE id = ?",
                   [now, collection.id])
        collection.vectors_version += 1
    else:
        db.execute("UPDATE collections SET updated_at = ? WHERE id = ?", [now, collection.id])
    collection.updated_at = now


# ---------------------------------------------------------------------------------------
# Vectors.


def _has_vector_table(db: Database, collection_id: int) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                      [vector_table(collection_id)]).fetchone() is not None


def _drop_vectors(db: Database, collection_id: int) -> None:
    table = vector_table(collection_id)
    db.execute(f"DROP TRIGGER IF EXISTS {table}_ad")
    db.execute(f"DROP TABLE IF EXISTS {table}")


def use_embedding_model(db: Database, collection: Collection, model: str, dim: int) -> int:
    """Make ``model`` the collection's embedding model; returns how many chunks lost their vectors.

    Vectors of two models cannot be compared, so a different model drops every vector of the
    collection (its documents stay full-text searchable until embedded again).
    """
    if dim <= 0:
        raise ValueError(dim)
    if collection.embedding_model == model and collection.embedding_dim == dim and _has_vector_table(db, collection.id):
        return 0
    table = vector_table(collection.id)
    with transaction(db):
        dropped = 0
        if _has_vector_table(db, collection.id):
            dropped = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        _drop_vectors(db, collection.id)
        db.execute(f"CREATE VIRTUAL TABLE {table} USING vec0(embedding float[{int(dim)}] distance_metric=cosine)")
        db.execute(
            f"CREATE TRIGGER {table}_ad AFTER DELETE ON chunks WHEN old.collection_id = {int(collection.id)} BEGIN "
            f"DELETE FROM {table} WHERE rowid = old.id; END")
        db.execute("UPDATE documents SET embedding_model = NULL WHERE collection_id = ?", [collection.id])
        db.execute("UPDATE collections SET embedding_model = ?, embedding_dim = ? WHERE id = ?",
                   [model, int(dim), collection.id])
        collection.embedding_model, collection.embedding_dim = model, int(dim)
        _touch(db, collection, vectors_changed=True)
    return dropped


def documents_without_vectors(db: Database, collection: Collection) -> list[Document]:
    """Indexed documents whose chunks have no vectors from the collection's embedding model yet."""
    rows = db.execute(
        f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ? AND status = 'indexed' AND chunks > 0 "
        "AND embedding_model IS NOT ? ORDER BY path", [collection.id, collection.embedding_model]).fetchall()
    return [Document(*r) for r in rows]


@dataclass
class StoredChunk:
    id: int
    document_id: int
    ordinal: int
    text: str
    page: int | None
    page_end: int | None
    line_start: int | None
    line_end: int | None
    headings: list[str]
    char_start: int | None
    char_end: int | None
    tokens: int | None

    def embedding_text(self) -> str:
        return f"{heading_line(tuple(self.headings))}\n{self.text}" if self.headings else self.text


_CHUNK_COLUMNS = ("id, document_id, ordinal, text, page, page_end, line_start, line_end, heading_path, "
                  "char_start, char_end, tokens")


def _stored_chunk(row: Sequence[Any]) -> StoredChunk:
    values = list(row)
    values[8] = json.loads(values[8] or "[]")
    return StoredChunk(*values)


def chunks_of(db: Database, document_id: int) -> list[StoredChunk]:
    rows = db.execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE document_id = ? ORDER BY ordinal",
                      [document_id]).fetchall()
    return [_stored_chunk(r) for r in rows]


def chunks_by_id(db: Database, ids: Sequence[int]) -> dict[int, StoredChunk]:
    out: dict[int, StoredChunk] = {}
    ids = list(dict.fromkeys(int(i) for i in ids))
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        marks = ",".join("?" * len(part))
        for row in db.execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE id IN ({marks})", part).fetchall():
            out[row[0]] = _stored_chunk(row)
    return out


def add_vectors(db: Database, collection: Collection, document: Document, chunk_ids: Sequence[int],
                vectors: np.ndarray, model: str) -> None:
    """Vectors for an indexed document's chunks (all of them, in one transaction)."""
    if model != collection.embedding_model:
        raise ValueError(f"vectors from {model!r}, but the collection's model is {collection.embedding_model!r}")
    if len(chunk_ids) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors for {len(chunk_ids)} chunks")
    table = vector_table(collection.id)
    with transaction(db):
        current = db.execute("SELECT chunks FROM documents WHERE id = ?", [document.id]).fetchone()
        if current is None:
            return  # deleted meanwhile (the watcher, another window)
        with db.lock:
            db.conn.executemany(f"DELETE FROM {table} WHERE rowid = ?", [(int(i),) for i in chunk_ids])
        _insert_vectors(db, collection.id, chunk_ids, vectors)
        db.execute("UPDATE documents SET embedding_model = ? WHERE id = ?", [model, document.id])
        _touch(db, collection, vectors_changed=True)


def all_vectors(db: Database, collection: Collection) -> tuple[np.ndarray, np.ndarray]:
    """Every vector of the collection: (chunk ids, matrix of rows), for an in-memory search."""
    dim = collection.embedding_dim or 0
    if not _has_vector_table(db, collection.id):
        return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
    rows = db.execute(f"SELECT rowid, embedding FROM {vector_table(collection.id)}").fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim) \
        if rows else np.zeros((0, dim), dtype=np.float32)
    return ids, matrix


def nearest(db: Database, collection: Collection, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` chunks whose vectors are nearest ``query``: (chunk id, cosine similarity), best first."""
    if not _has_vector_table(db, collection.id) or k <= 0:
        return []
    q = np.ascontiguousarray(query, dtype=np.float32).tobytes()
    rows = db.execute(f"SELECT rowid, distance FROM {vector_table(collection.id)} WHERE embedding MATCH ? AND k = ? "
                      "ORDER BY distance", [q, int(k)]).fetchall()
    return [(int(r[0]), 1.0 - float(r[1])) for r in rows]


# ---------------------------------------------------------------------------------------
# Conversations and the sources of their replies.


def set_conversation_collections(db: Database, conversation_id: int, names: Sequence[str]) -> list[str]:
    """The collections this conversation answers from (replacing its earlier choice)."""
    chosen = [get_collection(db, n) for n in names]
    now = time.time()
    with transaction(db):
        db.execute("DELETE FROM conversation_collections WHERE conversation_id = ?", [conversation_id])
        for c in chosen:
            db.execute("INSERT OR IGNORE INTO conversation_collections (conversation_id, collection_id, added_at) "
                       "VALUES (?, ?, ?)", [conversation_id, c.id, now])
    return [c.name for c in chosen]


def conversation_collections(db: Database, conversation_id: int) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT c.name FROM conversation_collections cc JOIN collections c ON c.id = cc.collection_id "
        "WHERE cc.conversation_id = ? ORDER BY cc.added_at, c.name", [conversation_id]).fetchall()]


@dataclass
class SavedSource:
    """A source as kept with a reply: what it was when the reply was written."""

    n: int
    path: str
    excerpt: str
    collection: str | None = None
    document_id: int | None = None
    chunk_id: int | None = None
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None
    headings: list[str] = field(default_factory=list)
    char_start: int | None = None
    char_end: int | None = None
    score: float | None = None
    page_end: int | None = None
    similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def save_sources(db: Database, message_id: int, sources: Sequence[Any]) -> None:
    """Keep a reply's sources (``retrieval.Source`` or ``SavedSource``), replacing earlier ones."""
    with transaction(db):
        db.execute("DELETE FROM message_sources WHERE message_id = ?", [message_id])
        for s in sources:
            db.execute(
                "INSERT INTO message_sources (message_id, n, collection, document_id, chunk_id, path, page, line_start, "
                "line_end, heading_path, excerpt, char_start, char_end, score, page_end, similarity) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [message_id, s.n, s.collection, s.document_id, s.chunk_id, s.path, s.page, s.line_start, s.line_end,
                 json.dumps(list(s.headings), ensure_ascii=False), getattr(s, "excerpt", None) or getattr(s, "text", ""),
                 s.char_start, s.char_end, s.score, getattr(s, "page_end", None), getattr(s, "similarity", None)])


def message_sources(db: Database, message_id: int) -> list[SavedSource]:
    rows = db.execute(
        "SELECT n, path, excerpt, collection, document_id, chunk_id, page, line_start, line_end, heading_path, "
        "char_start, char_end, score, page_end, similarity FROM message_sources WHERE message_id = ? ORDER BY n",
        [message_id]).fetchall()
    out = []
    for r in rows:
        values = list(r)
        values[9] = json.loads(values[9] or "[]")
        out.append(SavedSource(*values))
    return out


def row_counts(db: Database, collection: Collection | None = None) -> dict[str, int]:
    """Rows in each table of the index (all collections, or one): what tests and ``status`` check."""
    out = {}
    if collection is None:
        for table in ("collections", "collection_roots", "documents", "chunks", "chunks_trigram", "chunks_words",
                      "message_sources", "conversation_collections"):
            out[table] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        out["vectors"] = sum(db.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in _vector_tables(db))
        return out
    cid = collection.id
    out["documents"] = db.execute("SELECT count(*) FROM documents WHERE collection_id = ?", [cid]).fetchone()[0]
    out["chunks"] = db.execute("SELECT count(*) FROM chunks WHERE collection_id = ?", [cid]).fetchone()[0]
    out["vectors"] = db.execute(f"SELECT count(*) FROM {vector_table(cid)}").fetchone()[0] \
        if _has_vector_table(db, cid) else 0
    return out


def _vector_tables(db: Database) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'chunk_vectors_[0-9]*' "
        "AND sql LIKE 'CREATE VIRTUAL TABLE%'").fetchall()]


def iter_chunk_texts(db: Database, collection: Collection) -> Iterator[tuple[int, str]]:
    for row in db.execute("SELECT id, text FROM chunks WHERE collection_id = ? ORDER BY id", [collection.id]).fetchall():
        yield row[0], row[1]
