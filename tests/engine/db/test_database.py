"""The database: created and migrated from blank, refused when newer, atomic migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from r1desk.engine.db import database as storage
from r1desk.engine.errors import DatabaseError


def test_blank_database_is_migrated(tmp_path: Path) -> None:
    db = storage.open_db(tmp_path / "r1.db")
    tables = set(db.table_names())
    assert {"conversations", "messages", "models", "settings", "_migrations"} <= tables
    names = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY name")]
    assert names == [m.__name__ for m in storage.MIGRATIONS]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_reopening_runs_nothing(tmp_path: Path) -> None:
    storage.open_db(tmp_path / "r1.db")
    db = storage.open_db(tmp_path / "r1.db", migrate_schema=False)
    assert storage.migrate(db) == []


def test_default_path_follows_r1desk_home(r1desk_home: Path) -> None:
    db = storage.open_db()
    assert Path(storage.db_path_of(db)) == r1desk_home / "r1desk.db"


def test_database_from_newer_version_is_refused(tmp_path: Path) -> None:
    db = storage.open_db(tmp_path / "r1.db")
    db.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_future', 0)")
    db.conn.close()
    with pytest.raises(DatabaseError, match="newer version of r1desk"):
        storage.open_db(tmp_path / "r1.db")


def test_failed_migration_leaves_old_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.open_db(tmp_path / "r1.db").conn.close()
    applied = [m.__name__ for m in storage.MIGRATIONS]

    def m002_broken(db):
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("power cut")

    monkeypatch.setattr(storage, "MIGRATIONS", [*storage.MIGRATIONS, m002_broken])
    with pytest.raises(RuntimeError):
        storage.open_db(tmp_path / "r1.db")
    conn = sqlite3.connect(tmp_path / "r1.db")
    assert "half_done" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")] == applied


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "r1.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="r1.db"):
        storage.open_db(p)


def test_settings_roundtrip(tmp_path: Path) -> None:
    db = storage.open_db(tmp_path / "r1.db")
    assert storage.get_setting(db, "lang", "system") == "system"
    storage.set_setting(db, "lang", "zh_CN")
    storage.set_setting(db, "budget", {"tokens": 512})
    assert storage.get_setting(db, "lang") == "zh_CN"
    assert storage.get_setting(db, "budget") == {"tokens": 512}


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    db = storage.open_db(tmp_path / "r1.db")
    with pytest.raises(ValueError):
        with storage.transaction(db):
            storage.set_setting(db, "a", 1)
            raise ValueError
    assert storage.get_setting(db, "a") is None


def test_migrations_applied_meanwhile_by_another_opener_are_skipped(tmp_path: Path, monkeypatch) -> None:
    """Two openers of a new database: the second read the applied list before the first committed."""
    storage.open_db(tmp_path / "r1.db").conn.close()
    monkeypatch.setattr(storage, "_applied", lambda db: [])  # a stale read, as in that race
    db = storage.open_db(tmp_path / "r1.db")
    names = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY name")]
    assert names == [m.__name__ for m in storage.MIGRATIONS]
