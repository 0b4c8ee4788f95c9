"""The one SQLite database: how it is opened, and its schema as numbered migrations.

Every part of r1desk (history, model library, settings, adapters, document index) gets its
connection from ``open_db``. Migrations are functions appended to ``MIGRATIONS`` and never
edited once released; each runs in its own transaction and is recorded in ``_migrations``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlite_utils

from r1desk.engine import paths
from r1desk.engine.errors import DatabaseError


def _connect_raw(path: Path) -> sqlite3.Connection:
    """The single place that decides which SQLite library r1desk uses."""
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
    return conn


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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [m001_initial, m002_file_hashes]


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
            "update r1desk to open it"
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


@contextmanager
def transaction(db: sqlite_utils.Database, *, immediate: bool = True) -> Iterator[None]:
    """An explicit transaction: all of the block or none of it."""
    conn = db.conn
    if conn.in_transaction:  # nested: join the outer transaction
        yield
        return
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def open_db(path: str | os.PathLike | None = None, *, migrate_schema: bool = True) -> sqlite_utils.Database:
    """Open (creating and migrating as needed) the r1desk database."""
    path = Path(path) if path is not None else paths.database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = _connect_raw(path)
        conn.execute("PRAGMA busy_timeout = 10000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        # WAL + NORMAL: every commit survives a crash or kill of the app; only an OS crash or
        # power cut may lose the last moments (see the README).
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path}: cannot open the database ({exc})") from None
    if integrity != "ok":
        conn.close()
        raise DatabaseError(f"{path}: the database is damaged ({integrity}); restore a backup")
    if str(mode).lower() != "wal":
        # Network filesystems refuse WAL; r1desk still works, with rollback journals.
        pass
    db = sqlite_utils.Database(conn)
    if migrate_schema:
        try:
            migrate(db)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{path}: cannot update the database ({exc})") from None
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
