"""The one SQLite database: how it is opened, and its schema as numbered migrations.

Every part of r1desk (history, model library, settings, adapters, document index) gets its
connection from ``open_db``. Migrations are functions appended to ``MIGRATIONS`` and never
edited once released; each runs in its own transaction and is recorded in ``_migrations``.

SQLite's own failures (busy, disk full, read-only, damaged) become r1desk's error kinds here
and nowhere else, whichever statement raised them. One connection may serve several threads:
each statement, and each transaction as a whole, holds the connection's lock.

The SQLite library is sqlean-py, not the standard library's ``sqlite3``: many Pythons are
built without loadable extensions, and the document index needs the sqlite-vec extension on
every connection. sqlean's exception classes are not ``sqlite3``'s; ``SQLITE_ERRORS`` and its
siblings name both, so a connection from either library is understood. Nothing may open
r1desk's database through ``sqlite3`` while r1desk has it open: two copies of SQLite in one
process do not see each other's POSIX locks, and closing one copy's file drops the other's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import sqlean
import sqlite_utils
import sqlite_vec

from r1desk.engine import paths
from r1desk.engine.errors import DatabaseError, DiskFull, R1deskError

BUSY_TIMEOUT_SECONDS = 10.0


# The SQLite library every r1desk connection comes from (its module has the DB-API names:
# ``sqlite.OperationalError``, ``sqlite.IntegrityError``...).
sqlite = sqlean

# Errors of either library: r1desk's own connections (sqlean) and a plain ``sqlite3`` one
# handed to ``Database`` (a read-only view, a test).
SQLITE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, sqlean.Error)
OPERATIONAL_ERRORS: tuple[type[Exception], ...] = (sqlite3.OperationalError, sqlean.OperationalError)
DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.DatabaseError, sqlean.DatabaseError)
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, sqlean.IntegrityError)


def _connect_raw(path: Path) -> Any:
    """The single place that decides which SQLite library r1desk uses, and what it loads.

    Every connection gets sqlite-vec (vector search for the document index); extension
    loading is switched off again at once, so no SQL statement can load another library.
    """
    conn = sqlean.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                          check_same_thread=False)
    try:
        conn.enable_load_extension(True)
        try:
            sqlite_vec.load(conn)
        finally:
            conn.enable_load_extension(False)
    except BaseException:
        conn.close()
        raise
    return conn


# ---------------------------------------------------------------------------------------
# SQLite's errors in r1desk's words.

# Primary result codes (https://sqlite.org/rescode.html); extended codes carry them in the low byte.
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 3, 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26
SQLITE_READONLY_DIRECTORY = SQLITE_READONLY | (6 << 8)

# Python before 3.11 gives no error code: the message SQLite wrote says which it was.
_CODE_BY_MESSAGE = (
    ("database is locked", SQLITE_BUSY),
    ("database table is locked", SQLITE_LOCKED),
    ("readonly database", SQLITE_READONLY),
    ("database or disk is full", SQLITE_FULL),
    ("disk image is malformed", SQLITE_CORRUPT),
    ("file is not a database", SQLITE_NOTADB),
    ("disk i/o error", SQLITE_IOERR),
    ("unable to open database file", SQLITE_CANTOPEN),
)


def _primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(exc).lower()
    return next((c for needle, c in _CODE_BY_MESSAGE if needle in text), None)


def translate(exc: BaseException, path: str | os.PathLike) -> R1deskError | None:
    """The r1desk error for a failure of the machine or the file; None for anything else (a bug)."""
    if not isinstance(exc, SQLITE_ERRORS):
        return None
    code = _primary_code(exc)
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return DatabaseError(f"{path}: the database is locked by another program",
                             hint="close other programs using it, or try again in a moment",
                             facts={"code": "db-locked", "file": str(path)})
    if code == SQLITE_FULL:
        return DiskFull(f"{path}: the disk is full; the last change was not saved",
                        hint="free some disk space and try again", facts={"code": "db-disk-full", "file": str(path)})
    if getattr(exc, "sqlite_errorcode", None) == SQLITE_READONLY_DIRECTORY:
        # WAL needs its -shm file next to the database, even to read it.
        return DatabaseError(f"{path}: the database's folder is read-only, so the database cannot be used",
                             hint="check the permissions of its folder",
                             facts={"code": "db-folder-read-only", "file": str(path)})
    if code in (SQLITE_READONLY, SQLITE_PERM):
        return DatabaseError(f"{path}: the database is read-only; changes cannot be saved",
                             hint="check the permissions of the file and of its folder",
                             facts={"code": "db-read-only", "file": str(path)})
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return DatabaseError(f"{path}: the database is damaged ({exc})", hint="restore a backup",
                             facts={"code": "db-damaged", "file": str(path)})
    if code == SQLITE_IOERR:
        return DatabaseError(f"{path}: the database file cannot be read or written ({exc})",
                             hint="check the disk", facts={"code": "db-io", "file": str(path)})
    if code == SQLITE_CANTOPEN:
        return DatabaseError(f"{path}: the database file cannot be opened ({exc})",
                             hint="check that its folder exists and can be written",
                             facts={"code": "db-cant-open", "file": str(path)})
    return None


@contextmanager
def sqlite_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn SQLite's failures of the disk or the file inside the block into r1desk's errors."""
    try:
        yield
    except SQLITE_ERRORS as exc:
        known = translate(exc, path)
        if known is None:
            raise
        raise known from exc


class _Rows:
    """What a statement returned, read in full while the connection was held (a cursor stand-in).

    A cursor left half-read would keep its statement running on the shared connection, where
    another thread's COMMIT or ROLLBACK would reach into it.
    """

    def __init__(self, cursor: Any):
        self.description = cursor.description
        self.lastrowid = cursor.lastrowid
        self.rowcount = cursor.rowcount
        self.arraysize = 1
        self._rows = cursor.fetchall() if cursor.description is not None else []
        self._next = 0

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int | None = None) -> list:
        size = self.arraysize if size is None else size
        out = self._rows[self._next:self._next + size]
        self._next += len(out)
        return out

    def fetchall(self) -> list:
        out = self._rows[self._next:]
        self._next = len(self._rows)
        return out

    def __iter__(self) -> Iterator[Any]:
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        self._rows, self._next = [], 0


class Database(sqlite_utils.Database):
    """A sqlite-utils database on one r1desk connection, safe to share between threads.

    ``lock`` (re-entrant) is held by every statement and by a ``transaction`` from its BEGIN to
    its COMMIT, so one thread's statements never land inside another thread's transaction.
    """

    def __init__(self, conn: Any, path: str | os.PathLike):
        self.path = str(path)
        self.lock = threading.RLock()
        self._depth = 0  # nesting of transaction() blocks of the thread holding the lock
        super().__init__(conn)

    def execute(self, sql: str, parameters: Sequence | dict[str, Any] | None = None) -> Any:
        with self.lock, sqlite_errors(self.path):
            return _Rows(super().execute(sql, parameters))

    def executescript(self, sql: str) -> Any:
        with self.lock, sqlite_errors(self.path):
            return _Rows(super().executescript(sql))

    def query(self, sql: str, params: Sequence | dict[str, Any] | None = None) -> Iterator[dict]:
        with self.lock, sqlite_errors(self.path):
            return iter(list(super().query(sql, params)))

    def close(self) -> None:
        with self.lock:
            super().close()


# ---------------------------------------------------------------------------------------
# Migrations: append only.


def m001_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            model TEXT,
            settings TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            deleted_at REAL
        )
        """
    )
    db.execute("CREATE INDEX conversations_updated ON conversations(updated_at DESC)")
    db.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            reasoning TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'complete'
                CHECK (status IN ('complete', 'streaming', 'interrupted', 'cancelled', 'error')),
            error TEXT,
            model TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            reasoning_tokens INTEGER,
            ttft_ms REAL,
            tokens_per_second REAL,
            reasoning_seconds REAL,
            total_seconds REAL,
            dropped_turns INTEGER NOT NULL DEFAULT 0,
            params TEXT NOT NULL DEFAULT '{}',
            writer_pid INTEGER,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX messages_conversation ON messages(conversation_id, id)")
    db.execute("CREATE INDEX messages_status ON messages(status) WHERE status = 'streaming'")
    # Trigram full-text search finds substrings in Chinese as well as in English.
    db.execute(
        """
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            content, reasoning, content='messages', content_rowid='id', tokenize='trigram'
        )
        """
    )
    db.execute(
        """
        CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, content, reasoning)
            VALUES (new.id, new.content, new.reasoning);
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content, reasoning)
            VALUES ('delete', old.id, old.content, old.reasoning);
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER messages_au AFTER UPDATE OF content, reasoning ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content, reasoning)
            VALUES ('delete', old.id, old.content, old.reasoning);
            INSERT INTO messages_fts(rowid, content, reasoning)
            VALUES (new.id, new.content, new.reasoning);
        END
        """
    )
    db.execute(
        """
        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            path TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'missing', 'corrupt')),
            origin TEXT NOT NULL DEFAULT 'local',
            architecture TEXT,
            parameters INTEGER,
            quant TEXT,
            size INTEGER,
            context_length INTEGER,
            template_sha256 TEXT,
            sha256 TEXT,
            source_repo TEXT,
            source_file TEXT,
            source_revision TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            added_at REAL NOT NULL,
            last_used_at REAL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )


def m002_file_hashes(db: sqlite_utils.Database) -> None:
    # Model files are gigabytes: a file hashed once (after a download, or when verified) is not
    # read again while its size and modification time stay the same.
    db.execute(
        """
        CREATE TABLE file_hashes (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            checked_at REAL NOT NULL
        )
        """
    )


def m003_index_replies_when_they_end(db: sqlite_utils.Database) -> None:
    # m001 re-indexed a streaming reply in full at every save (twice a second), so the cost of a
    # long R1 reasoning grew with the square of its length. A reply is now indexed once, when it
    # leaves 'streaming': finished, cancelled, failed, or marked interrupted after a crash. The
    # rule kept from here on: a message is in the index, with its current text, exactly when its
    # status is not 'streaming' (FTS5 'delete' must be given the text that was indexed).
    db.execute("DROP TRIGGER messages_ai")
    db.execute("DROP TRIGGER messages_ad")
    db.execute("DROP TRIGGER messages_au")
    # The old triggers kept streaming rows indexed with their current text: take them out.
    db.execute(
        """
        INSERT INTO messages_fts(messages_fts, rowid, content, reasoning)
        SELECT 'delete', id, content, reasoning FROM messages WHERE status = 'streaming'
        """
    )
    db.execute(
        """
        CREATE TRIGGER messages_ai AFTER INSERT ON messages WHEN new.status != 'streaming' BEGIN
            INSERT INTO messages_fts(rowid, content, reasoning)
            VALUES (new.id, new.content, new.reasoning);
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER messages_ad AFTER DELETE ON messages WHEN old.status != 'streaming' BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content, reasoning)
            VALUES ('delete', old.id, old.content, old.reasoning);
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER messages_au AFTER UPDATE OF content, reasoning, status ON messages
        WHEN old.status != 'streaming' OR new.status != 'streaming' BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content, reasoning)
            SELECT 'delete', old.id, old.content, old.reasoning WHERE old.status != 'streaming';
            INSERT INTO messages_fts(rowid, content, reasoning)
            SELECT new.id, new.content, new.reasoning WHERE new.status != 'streaming';
        END
        """
    )


def m004_reply_alternatives(db: sqlite_utils.Database) -> None:
    # Regenerate keeps the earlier reply as an alternative the user can flip back to. Replies to
    # the same question form a group named by the first one's id; one of them is shown.
    db.execute("ALTER TABLE messages ADD COLUMN alternative_of INTEGER")
    db.execute("ALTER TABLE messages ADD COLUMN shown INTEGER NOT NULL DEFAULT 1")
    db.execute("CREATE INDEX messages_alternatives ON messages(alternative_of) WHERE alternative_of IS NOT NULL")


def m005_prompt_reuse(db: sqlite_utils.Database) -> None:
    # How much of each reply's prompt was read and how much was reused from the KV cache (and
    # from where: the live context, a conversation's state kept in memory or saved on disk).
    db.execute("ALTER TABLE messages ADD COLUMN cached_tokens INTEGER")
    db.execute("ALTER TABLE messages ADD COLUMN prompt_tokens_read INTEGER")
    db.execute("ALTER TABLE messages ADD COLUMN reused_from TEXT")


def m006_adapters(db: sqlite_utils.Database) -> None:
    # LoRA adapters live in the database itself (their GGUF bytes in chunks), with what they are;
    # each reply records which adapters, at which scale, produced it (JSON, NULL for none). A
    # conversation's chosen adapters are in its settings ("adapters").
    db.execute(
        """
        CREATE TABLE adapters (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            architecture TEXT NOT NULL,
            n_embd INTEGER,
            n_layer INTEGER,
            rank INTEGER NOT NULL,
            alpha REAL NOT NULL,
            target_modules TEXT NOT NULL DEFAULT '[]',
            base_model TEXT NOT NULL DEFAULT '',
            tensors TEXT NOT NULL DEFAULT '{}',
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL DEFAULT '',
            notes TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE adapter_chunks (
            adapter_id INTEGER NOT NULL REFERENCES adapters(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (adapter_id, seq)
        )
        """
    )
    db.execute("ALTER TABLE messages ADD COLUMN adapters TEXT")


def m007_documents(db: sqlite_utils.Database) -> None:
    # Chat with local files: collections of folders and files, each file's state (so a rescan
    # reads only what changed, and a file that could not be read says why), its chunks, and two
    # full-text indexes over them. Vectors live in one sqlite-vec table per collection
    # (``chunk_vectors_<id>``, created by engine/docs/store.py with the embedding model's
    # width); ``embedding_model`` says which model made them.
    db.execute(
        """
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            embedding_model TEXT,
            embedding_dim INTEGER,
            vectors_version INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE collection_roots (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('folder', 'file')),
            watched INTEGER NOT NULL DEFAULT 0,
            added_at REAL NOT NULL,
            UNIQUE (collection_id, path)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            size INTEGER,
            mtime_ns INTEGER,
            sha256 TEXT,
            status TEXT NOT NULL CHECK (status IN ('indexed', 'problem')),
            problem TEXT,
            reason TEXT,
            note TEXT,
            format TEXT,
            title TEXT,
            pages INTEGER,
            chunks INTEGER NOT NULL DEFAULT 0,
            embedding_model TEXT,
            indexed_at REAL NOT NULL,
            UNIQUE (collection_id, path)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            text TEXT NOT NULL,
            page INTEGER,
            page_end INTEGER,
            line_start INTEGER,
            line_end INTEGER,
            heading_path TEXT NOT NULL DEFAULT '[]',
            char_start INTEGER,
            char_end INTEGER,
            tokens INTEGER,
            UNIQUE (document_id, ordinal)
        )
        """
    )
    db.execute("CREATE INDEX chunks_collection ON chunks(collection_id)")
    # Trigram finds any substring of three or more characters, Chinese included, and exact
    # identifiers; its BM25 ranks English words poorly. ``chunks_words`` ranks words: English
    # through the Porter stemmer, Chinese as its characters and overlapping character pairs
    # (most Chinese words are two characters, and neither needs a dictionary). Its text is
    # prepared in Python (engine/docs/store.py words_text), so it keeps no copy of its own
    # (contentless, deletable by rowid).
    db.execute(
        """
        CREATE VIRTUAL TABLE chunks_trigram USING fts5(
            text, content='chunks', content_rowid='id', tokenize='trigram'
        )
        """
    )
    db.execute(
        """
        CREATE VIRTUAL TABLE chunks_words USING fts5(
            text, content='', contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2'
        )
        """
    )
    db.execute(
        """
        CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_trigram(rowid, text) VALUES (new.id, new.text);
        END
        """
    )
    # Also fired by the cascades from documents and collections: virtual tables have no
    # foreign keys of their own.
    db.execute(
        """
        CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_trigram(chunks_trigram, rowid, text) VALUES ('delete', old.id, old.text);
            DELETE FROM chunks_words WHERE rowid = old.id;
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER chunks_au AFTER UPDATE OF text ON chunks BEGIN
            INSERT INTO chunks_trigram(chunks_trigram, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO chunks_trigram(rowid, text) VALUES (new.id, new.text);
        END
        """
    )
    # The collections a conversation answers from (zero or more), kept with it.
    db.execute(
        """
        CREATE TABLE conversation_collections (
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            added_at REAL NOT NULL,
            PRIMARY KEY (conversation_id, collection_id)
        )
        """
    )
    db.execute("CREATE INDEX conversation_collections_collection ON conversation_collections(collection_id)")
    # The sources a reply was given, numbered as its [n] markers. The path, place and excerpt
    # are copied: the reply keeps its sources when the file is re-indexed or its collection goes.
    db.execute(
        """
        CREATE TABLE message_sources (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            n INTEGER NOT NULL,
            collection TEXT,
            document_id INTEGER REFERENCES documents(id) ON DELETE SET NULL,
            chunk_id INTEGER REFERENCES chunks(id) ON DELETE SET NULL,
            path TEXT NOT NULL,
            page INTEGER,
            line_start INTEGER,
            line_end INTEGER,
            heading_path TEXT NOT NULL DEFAULT '[]',
            excerpt TEXT NOT NULL DEFAULT '',
            char_start INTEGER,
            char_end INTEGER,
            score REAL,
            UNIQUE (message_id, n)
        )
        """
    )
    db.execute("CREATE INDEX message_sources_document ON message_sources(document_id)")
    db.execute("CREATE INDEX message_sources_chunk ON message_sources(chunk_id)")


def m008_source_page_end(db: sqlite_utils.Database) -> None:
    """A reply's sources keep the page a passage ends on (a passage across two pages) and its
    similarity to the question."""
    db.execute("ALTER TABLE message_sources ADD COLUMN page_end INTEGER")
    db.execute("ALTER TABLE message_sources ADD COLUMN similarity REAL")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    m001_initial,
    m002_file_hashes,
    m003_index_replies_when_they_end,
    m004_reply_alternatives,
    m005_prompt_reuse,
    m006_adapters,
    m007_documents,
    m008_source_page_end,
]


def _applied(db: sqlite_utils.Database) -> list[str]:
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations, each atomically; refuse a database from a newer r1desk."""
    known = [m.__name__ for m in MIGRATIONS]
    done = _applied(db)
    unknown = sorted(set(done) - set(known))
    if unknown:
        raise DatabaseError(
            f"{db_path_of(db)} was written by a newer version of r1desk (schema {unknown[-1]}); "
            "update r1desk to open it",
            facts={"code": "db-newer", "file": db_path_of(db), "schema": unknown[-1]},
        )
    ran = []
    for migration in MIGRATIONS:
        if migration.__name__ in done:
            continue
        with transaction(db):
            # Another process or thread opening a new database at the same moment may have
            # applied it since ``done`` was read; the write lock is held from here on.
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", [migration.__name__]).fetchone():
                continue
            migration(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                [migration.__name__, time.time()],
            )
        ran.append(migration.__name__)
    return ran


def db_path_of(db: sqlite_utils.Database) -> str:
    row = db.execute("PRAGMA database_list").fetchone()
    return row[2] if row and row[2] else "database"


def _add_note(exc: BaseException, note: str) -> None:
    add = getattr(exc, "add_note", None)  # Python 3.11+
    if add is not None:
        add(note)


def _roll_back(db: Database, first: BaseException) -> None:
    """ROLLBACK after ``first``; a ROLLBACK that fails too is noted on ``first``, never raised over it."""
    try:
        if db.conn.in_transaction:  # SQLite itself may have rolled back already (disk full, I/O error)
            db.conn.execute("ROLLBACK")
    except Exception as exc:  # noqa: BLE001 - the first error is the one to report
        _add_note(first, f"and the rollback failed: {exc}")


@contextmanager
def transaction(db: sqlite_utils.Database, *, immediate: bool = True) -> Iterator[None]:
    """An explicit transaction: all of the block or none of it.

    It holds the connection's lock from BEGIN to COMMIT, so other threads sharing the
    connection wait for it; a ``transaction`` inside one (on the same thread) joins it.
    """
    if not isinstance(db, Database):
        raise TypeError("transaction() needs a database from open_db()")
    with db.lock:
        if db._depth:  # this thread's own transaction: join it
            db._depth += 1
            try:
                yield
            finally:
                db._depth -= 1
            return
        conn = db.conn
        with sqlite_errors(db.path):
            if conn.in_transaction:
                # Left open by a COMMIT or ROLLBACK that failed earlier: none of it was committed.
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        db._depth = 1
        try:
            yield
        except BaseException as exc:
            db._depth = 0
            _roll_back(db, exc)
            known = translate(exc, db.path)
            if known is None:
                raise
            raise known from exc
        db._depth = 0
        try:
            conn.execute("COMMIT")
        except SQLITE_ERRORS as exc:
            _roll_back(db, exc)
            known = translate(exc, db.path)
            if known is None:
                raise
            raise known from exc


# Databases that passed ``PRAGMA quick_check`` in this process, by real path: the check reads
# the whole file, and open_db is called often (each CLI command, worker, download).
_checked: set[str] = set()
_checked_lock = threading.Lock()


def _quick_check(conn: Any, path: Path) -> None:
    key = os.path.realpath(path)
    with _checked_lock:
        if key in _checked:
            return
    integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
    if integrity != "ok":
        raise DatabaseError(f"{path}: the database is damaged ({integrity})", hint="restore a backup",
                            facts={"code": "db-damaged", "file": str(path)})
    with _checked_lock:
        _checked.add(key)


def open_db(path: str | os.PathLike | None = None, *, migrate_schema: bool = True) -> Database:
    """Open (creating and migrating as needed) the r1desk database.

    Two threads or processes opening a new database at the same moment can find it busy in
    ways SQLite's busy timeout does not cover (switching it to WAL, say): the opening is tried
    again until the timeout, then refused as locked.
    """
    path = Path(path) if path is not None else paths.database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            return _open_once(path, migrate_schema)
        except OPERATIONAL_ERRORS as exc:
            if _primary_code(exc) not in (SQLITE_BUSY, SQLITE_LOCKED) or time.monotonic() > deadline:
                raise _opening_error(exc, path) from exc
        except DatabaseError as exc:
            cause = exc.__cause__
            busy = isinstance(cause, OPERATIONAL_ERRORS) and _primary_code(cause) in (SQLITE_BUSY, SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _opening_error(exc: BaseException, path: Path) -> BaseException:
    known = translate(exc, path)
    if known is not None:
        return known
    return DatabaseError(f"{path}: cannot open the database ({exc})", facts={"code": "db-cant-open", "file": str(path)})


def _open_once(path: Path, migrate_schema: bool) -> Database:
    conn = None
    try:
        conn = _connect_raw(path)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except OPERATIONAL_ERRORS as exc:
            if _primary_code(exc) != SQLITE_READONLY:
                raise
            # A read-only file still opens for reading (and exporting); each write says why it failed.
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        # WAL + NORMAL: every commit survives a crash or kill of the app; only an OS crash or
        # power cut may lose the last moments (see the README).
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        _quick_check(conn, path)
        if str(mode).lower() != "wal":
            # Network filesystems refuse WAL; r1desk still works, with rollback journals.
            pass
        db = Database(conn, path)
        if migrate_schema:
            migrate(db)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, R1deskError):
            raise
        if isinstance(exc, OPERATIONAL_ERRORS) and _primary_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED):
            raise  # open_db tries again
        known = translate(exc, path)
        if known is not None:
            raise known from exc
        if isinstance(exc, DATABASE_ERRORS):
            raise DatabaseError(f"{path}: cannot open the database ({exc})",
                                facts={"code": "db-cant-open", "file": str(path)}) from exc
        raise
    return db


def get_setting(db: sqlite_utils.Database, key: str, default: Any = None) -> Any:
    row = db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else default


def set_setting(db: sqlite_utils.Database, key: str, value: Any) -> None:
    with transaction(db):
        db.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [key, json.dumps(value, ensure_ascii=False), time.time()],
        )


def change_setting(db: sqlite_utils.Database, key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
    """Read a setting, compute its new value and store it, all in one write transaction.

    Another process (or window) changing the same setting meanwhile waits, so neither change
    is lost: ``change_setting(db, "recent", lambda v: [*v, item], [])``. Returns the new value.
    """
    with transaction(db):
        value = change(get_setting(db, key, default))
        set_setting(db, key, value)
    return value


def update_settings(db: sqlite_utils.Database, values: dict[str, Any],
                    defaults: dict[str, Any] | None = None) -> list[str]:
    """Store several settings at once (all or none); returns the keys whose value changed."""
    defaults = defaults or {}
    with transaction(db):
        changed = [k for k, v in values.items() if get_setting(db, k, defaults.get(k)) != v]
        for key in changed:
            set_setting(db, key, values[key])
    return changed
