"""The database: created and migrated from blank, refused when newer, atomic migrations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1desk.engine.db import database as storage
from r1desk.engine.errors import DatabaseError, DiskFull


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
    conn = storage.sqlite.connect(tmp_path / "r1.db")
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


# ---------------------------------------------------------------------------------------
# SQLite's failures, in r1desk's words, and the first error never hidden.


def _one_line_naming(exc: BaseException, path: Path) -> str:
    text = str(exc)
    assert "\n" not in text and str(path) in text, text
    return text


def test_read_only_database_is_a_clear_error_and_reading_still_works(tmp_path: Path) -> None:
    p = tmp_path / "r1.db"
    db = storage.open_db(p)
    storage.set_setting(db, "kept", "yes")
    db.close()
    conn = storage.sqlite.connect(f"file:{p}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    ro = storage.Database(conn, p)
    assert storage.get_setting(ro, "kept") == "yes"
    with pytest.raises(DatabaseError) as info:
        storage.set_setting(ro, "new", 1)
    assert "read-only" in _one_line_naming(info.value, p)
    with pytest.raises(DatabaseError, match="read-only"):
        ro.execute("DELETE FROM settings")  # a statement outside a transaction, too
    assert storage.get_setting(ro, "kept") == "yes"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_read_only_file_and_folder(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    p = folder / "r1.db"
    db = storage.open_db(p)
    storage.set_setting(db, "kept", "yes")
    db.close()
    assert not (folder / "r1.db-wal").exists(), "closed cleanly: no WAL left beside it"
    p.chmod(0o444)
    try:
        folder.chmod(0o555)  # WAL cannot even read without creating its -shm file beside the database
        with pytest.raises(DatabaseError) as info:
            storage.open_db(p)
        assert "read-only" in _one_line_naming(info.value, p)
        folder.chmod(0o755)
        db = storage.open_db(p)  # a read-only file in a folder r1desk may write still opens for reading
        assert storage.get_setting(db, "kept") == "yes"
        with pytest.raises(DatabaseError) as info:
            storage.set_setting(db, "new", 1)
        assert "read-only" in _one_line_naming(info.value, p)
        db.close()
    finally:
        folder.chmod(0o755)
        p.chmod(0o644)


def test_full_disk_is_disk_full_and_what_was_saved_stays(tmp_path: Path) -> None:
    p = tmp_path / "r1.db"
    db = storage.open_db(p)
    storage.set_setting(db, "before", "saved")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # the database may not grow: SQLite reports SQLITE_FULL
    with pytest.raises(DiskFull) as info:
        storage.set_setting(db, "big", "x" * 200_000)
    assert "disk is full" in _one_line_naming(info.value, p)
    assert storage.get_setting(db, "big") is None
    db.close()
    db = storage.open_db(p)
    assert storage.get_setting(db, "before") == "saved" and storage.get_setting(db, "big") is None
    storage.set_setting(db, "after", "works")  # room again: the database is fine
    assert storage.get_setting(db, "after") == "works"


FILE_SIZE_LIMIT = r"""
import json, resource, signal, sys
from r1desk.engine.chat.history import History
from r1desk.engine.db.database import open_db
h = History(open_db(sys.argv[1]))
cid = int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    h.add_message(cid, "user", "y" * 1_000_000)
except Exception as exc:
    print(json.dumps([type(exc).__name__, str(exc)]))
"""


def test_a_write_the_disk_refuses_keeps_the_first_error_and_the_data(tmp_path: Path) -> None:
    """SQLite rolls the transaction back itself on an I/O error; the ROLLBACK after it must not hide it."""
    from r1desk.engine.chat.history import History

    p = tmp_path / "r1.db"
    h = History(storage.open_db(p))
    cid = h.create_conversation(title="kept")
    h.add_message(cid, "user", "written before the disk filled")
    h.db.close()
    out = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(p), str(cid)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    kind, message = json.loads(out.stdout.strip().splitlines()[-1])
    assert kind in ("DatabaseError", "DiskFull"), message
    assert "\n" not in message and str(p) in message and "rollback" not in message.lower(), message
    h = History(storage.open_db(p))
    assert [m.content for m in h.messages(cid)] == ["written before the disk filled"]


def test_a_failing_rollback_never_hides_the_first_error(tmp_path: Path) -> None:
    db = storage.open_db(tmp_path / "r1.db")

    def no_rollback(action, arg1, arg2, dbname, source):
        denied = action == storage.sqlite.SQLITE_TRANSACTION and arg1 == "ROLLBACK"
        return storage.sqlite.SQLITE_DENY if denied else storage.sqlite.SQLITE_OK

    with pytest.raises(ValueError, match="the first error"), storage.transaction(db):
        storage.set_setting(db, "half", "done")
        db.conn.set_authorizer(no_rollback)  # SQLite itself now refuses the ROLLBACK
        raise ValueError("the first error")
    db.conn.set_authorizer(None)
    storage.set_setting(db, "next", "works")  # the transaction left open is abandoned, not committed
    assert storage.get_setting(db, "half") is None and storage.get_setting(db, "next") == "works"


def test_a_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "r1.db"
    db = storage.open_db(p)
    # Through r1desk's own SQLite library: a second copy of SQLite in the same process would not
    # see its locks (POSIX locks belong to the process), so it could not stand for another program.
    other = storage.sqlite.connect(p, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        db.execute("PRAGMA busy_timeout = 50")
        with pytest.raises(DatabaseError) as info:
            storage.set_setting(db, "k", 1)
        assert "locked" in _one_line_naming(info.value, p)
    finally:
        other.execute("ROLLBACK")
        other.close()
    storage.set_setting(db, "k", 1)
    assert storage.get_setting(db, "k") == 1


def test_bugs_stay_bugs(tmp_path: Path) -> None:
    db = storage.open_db(tmp_path / "r1.db")
    with pytest.raises(storage.sqlite.OperationalError, match="syntax error"):
        db.execute("SELEKT 1")
    with pytest.raises(storage.sqlite.IntegrityError), storage.transaction(db):
        db.execute("INSERT INTO settings (key, value, updated_at) VALUES ('k', NULL, 0)")


# ---------------------------------------------------------------------------------------
# The integrity check: once per database file per process, and a damaged file still refused.


def _damage(path: Path) -> None:
    """Overwrite a page in the middle of a table with garbage, as a failing disk might."""
    conn = storage.sqlite.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with open(path, "r+b") as fh:
        fh.seek(page_size * (pages // 2))
        fh.write(b"\xff" * page_size)


FILL = r"""
import sys
from r1desk.engine.db.database import open_db, set_setting, transaction
db = open_db(sys.argv[1])
with transaction(db):
    for i in range(400):
        set_setting(db, f"key{i}", "v" * 200)
"""


def _filled(path: Path) -> None:
    """An r1desk database written by another process (in this one it would count as checked)."""
    subprocess.run([sys.executable, "-c", FILL, str(path)], check=True, timeout=120)


def test_quick_check_runs_once_per_file_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    statements: list[str] = []
    connect = storage._connect_raw

    def traced(path):
        conn = connect(path)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(storage, "_connect_raw", traced)
    for _ in range(3):
        storage.open_db(tmp_path / "r1.db").close()
    storage.open_db(tmp_path / "other.db").close()
    assert sum("quick_check" in s for s in statements) == 2


def test_a_damaged_database_is_refused_on_first_open(tmp_path: Path) -> None:
    p = tmp_path / "r1.db"
    _filled(p)
    _damage(p)
    for _ in range(2):  # and again: a refused file is not remembered as checked
        with pytest.raises(DatabaseError) as info:
            storage.open_db(p)
        assert "damaged" in _one_line_naming(info.value, p)


# ---------------------------------------------------------------------------------------
# Read-modify-write in one transaction.


CHANGER = r"""
import sys
from r1desk.engine.db.database import change_setting, open_db
db = open_db(sys.argv[1])
tag = sys.argv[2]
for i in range(int(sys.argv[3])):
    change_setting(db, "log", lambda items: [*items, f"{tag}{i}"], [])
    change_setting(db, "count", lambda n: n + 1, 0)
    change_setting(db, f"count.{tag}", lambda n: n + 1, 0)
"""


@pytest.mark.slow
def test_two_processes_changing_settings_lose_nothing(tmp_path: Path) -> None:
    p = tmp_path / "r1.db"
    storage.open_db(p).close()
    n = 200
    procs = [subprocess.Popen([sys.executable, "-c", CHANGER, str(p), tag, str(n)], stderr=subprocess.PIPE)
             for tag in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    db = storage.open_db(p)
    log = storage.get_setting(db, "log")
    assert sorted(log) == sorted([f"a{i}" for i in range(n)] + [f"b{i}" for i in range(n)])
    assert [x for x in log if x.startswith("a")] == [f"a{i}" for i in range(n)], "each process's order kept"
    assert storage.get_setting(db, "count") == 2 * n
    assert storage.get_setting(db, "count.a") == n and storage.get_setting(db, "count.b") == n


def test_update_settings_is_all_or_nothing(tmp_path: Path) -> None:
    db = storage.open_db(tmp_path / "r1.db")
    storage.set_setting(db, "a", 1)
    assert storage.update_settings(db, {"a": 1, "b": 2, "c": None}, {"c": None}) == ["b"]
    with pytest.raises(TypeError):
        storage.update_settings(db, {"a": 5, "d": object()})  # the second value cannot be stored
    assert storage.get_setting(db, "a") == 1 and storage.get_setting(db, "d") is None


# ---------------------------------------------------------------------------------------
# m003: a streaming reply is indexed once, when it ends.


def test_database_from_m002_is_migrated_and_its_index_kept_right(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from r1desk.engine.chat.history import History

    full = list(storage.MIGRATIONS)
    p = tmp_path / "r1.db"
    monkeypatch.setattr(storage, "MIGRATIONS", full[:2])
    h = History(storage.open_db(p))
    cid = h.create_conversation(title="old")
    h.add_message(cid, "user", "a question about zebras")
    done = h.start_reply(cid, "m")
    h.save_partial(done, "zebras are", "")
    h.finish_reply(done, "zebras are striped horses", "thinking of savannas", "complete")
    streaming = h.start_reply(cid, "m")  # this process is alive: it stays streaming across the upgrade
    h.save_partial(streaming, "giraffes partly", "")
    h.save_partial(streaming, "giraffes partly written", "")
    h.db.close()

    monkeypatch.setattr(storage, "MIGRATIONS", full)
    db = storage.open_db(p)
    assert [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY name")] == [m.__name__ for m in full]
    h = History(db)
    assert [r["id"] for r in h.search("striped horses")] == [done]
    assert [r["id"] for r in h.search("savannas")] == [done]
    assert [r["role"] for r in h.search("question about")] == ["user"]
    assert h.search("giraffes") == [], "a streaming reply is no longer in the index"
    h.save_partial(streaming, "giraffes partly written, longer now", "")
    h.finish_reply(streaming, "giraffes have long necks", "", "complete")
    assert [r["id"] for r in h.search("long necks")] == [streaming]
    assert h.search("partly") == []
    h.delete_from(done)
    assert h.search("zebras are") == [] and h.search("long necks") == []
    db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
    db.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")


def test_a_database_at_m003_gains_reply_alternatives(tmp_path: Path, monkeypatch) -> None:
    """A history written before m004 opens with every message shown and no alternatives."""
    from r1desk.engine.chat.history import History

    p = tmp_path / "old.db"
    monkeypatch.setattr(storage, "MIGRATIONS", storage.MIGRATIONS[:3])
    old = storage.open_db(p)
    h = History(old)
    cid = h.create_conversation("before")
    h.add_message(cid, "user", "hi")
    h.add_message(cid, "assistant", "hello")
    old.close()
    monkeypatch.undo()
    db = storage.open_db(p)
    assert "m004_reply_alternatives" in [r[0] for r in db.execute("SELECT name FROM _migrations")]
    h = History(db)
    msgs = h.messages(cid)
    assert [(m.role, m.content) for m in msgs] == [("user", "hi"), ("assistant", "hello")]
    assert h.alternatives(msgs[1].id) == [msgs[1].id]


def test_a_database_at_m004_gains_prompt_reuse_figures(tmp_path: Path, monkeypatch) -> None:
    """Replies saved before m005 keep their figures; new ones also keep what was read and reused."""
    from r1desk.engine.chat.history import History

    p = tmp_path / "old.db"
    monkeypatch.setattr(storage, "MIGRATIONS", storage.MIGRATIONS[:4])
    old = storage.open_db(p)
    h = History(old)
    cid = h.create_conversation("before")
    h.add_message(cid, "user", "hi")
    before = h.start_reply(cid, "m", {})
    h.finish_reply(before, "hello", "", "complete", {"prompt_tokens": 9, "completion_tokens": 2})
    old.close()
    monkeypatch.undo()
    h = History(storage.open_db(p))
    stats = h.get_message(before).stats
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (9, 2) and "reused_from" not in stats
    h.add_message(cid, "user", "again")
    after = h.start_reply(cid, "m", {})
    h.finish_reply(after, "hi again", "", "complete",
                   {"prompt_tokens": 30, "cached_tokens": 25, "prompt_tokens_read": 5, "reused_from": "disk"})
    stats = h.get_message(after).stats
    assert (stats["cached_tokens"], stats["prompt_tokens_read"], stats["reused_from"]) == (25, 5, "disk")


def test_many_threads_opening_a_new_database_at_once_all_get_it(tmp_path: Path) -> None:
    """Creating, switching to WAL and migrating race when several callers open a new file together."""
    import threading

    for round_ in range(5):
        path = tmp_path / f"new-{round_}.db"
        results: list[object] = []
        barrier = threading.Barrier(8)

        def opener() -> None:
            barrier.wait()
            try:
                db = storage.open_db(path)
                results.append(len(list(db.execute("SELECT name FROM _migrations"))))
                db.conn.close()
            except Exception as exc:  # noqa: BLE001 - reported below
                results.append(exc)

        threads = [threading.Thread(target=opener) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [len(storage.MIGRATIONS)] * 8, results
