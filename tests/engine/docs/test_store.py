"""The document index's tables: one file per transaction, nothing left behind in the virtual tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from r1desk.engine.chat.history import History
from r1desk.engine.db import database as storage
from r1desk.engine.docs import store
from r1desk.engine.docs.store import NewChunk
from r1desk.engine.errors import CollectionError, NotFound


def unit(rows: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


CHUNKS = [
    NewChunk("The coolant pump of the Aurora reactor was replaced on 14 March 2019.", page=3, char_start=0, char_end=70),
    NewChunk("电池的续航时间是十二个小时。", page=4, headings=("规格", "电池")),
    NewChunk("def parse_header(fh):\n    return fh.read(8)", line_start=10, line_end=11),
]


@pytest.fixture
def db(tmp_path: Path) -> storage.Database:
    return storage.open_db(tmp_path / "r1.db")


def indexed(db, name="notes", path="/docs/a.pdf", chunks=CHUNKS, model="m", dim=8, seed=0):
    c = store.find_collection(db, name) or store.create_collection(db, name)
    if model is not None:
        store.use_embedding_model(db, c, model, dim)
    vectors = unit(len(chunks), dim, seed) if model is not None else None
    store.write_document(db, c, path=path, size=100, mtime_ns=1, sha256="x" * 64, chunks=chunks,
                         vectors=vectors, model=model)
    return c


def test_every_connection_has_sqlite_vec_and_no_sql_can_load_another_library(db) -> None:
    assert db.execute("SELECT vec_version()").fetchone()[0].startswith("v")
    with pytest.raises(storage.sqlite.OperationalError, match="not authorized"):
        db.execute("SELECT load_extension('/nonexistent/evil.so')")
    again = storage.open_db(storage.db_path_of(db))
    assert again.execute("SELECT vec_length(vec_f32('[1, 2, 3]'))").fetchone()[0] == 3


def test_a_database_of_the_schema_before_documents_is_migrated(tmp_path: Path, monkeypatch) -> None:
    p = tmp_path / "old.db"
    monkeypatch.setattr(storage, "MIGRATIONS", storage.MIGRATIONS[:6])
    old = storage.open_db(p)
    cid = History(old).create_conversation(title="kept")
    old.close()
    monkeypatch.undo()
    db = storage.open_db(p)
    assert {"collections", "documents", "chunks", "chunks_trigram", "chunks_words", "message_sources",
            "conversation_collections"} <= set(db.table_names())
    assert History(db).get_conversation(cid).title == "kept"


def test_a_file_is_stored_whole_and_found_by_each_index(db) -> None:
    c = indexed(db)
    counts = store.row_counts(db)
    assert counts["documents"] == 1 and counts["chunks"] == 3
    assert counts["chunks_trigram"] == 3 and counts["chunks_words"] == 3 and counts["vectors"] == 3
    assert db.execute("SELECT rowid FROM chunks_trigram WHERE chunks_trigram MATCH '续航时间'").fetchall()
    # Chinese pairs and English stems in chunks_words; headings are indexed with their passage.
    assert db.execute("SELECT rowid FROM chunks_words WHERE chunks_words MATCH '\"电池\"'").fetchall()
    assert db.execute("SELECT rowid FROM chunks_words WHERE chunks_words MATCH 'replacing'").fetchall()
    assert db.execute("SELECT rowid FROM chunks_words WHERE chunks_words MATCH '\"规格\"'").fetchall()
    stored = store.chunks_of(db, store.documents(db, c)[0].id)
    assert [s.page for s in stored] == [3, 4, None] and stored[1].headings == ["规格", "电池"]
    assert (stored[2].line_start, stored[2].line_end) == (10, 11) and (stored[0].char_start, stored[0].char_end) == (0, 70)


def test_writing_a_file_again_replaces_it_without_duplicates(db) -> None:
    c = indexed(db)
    indexed(db, chunks=CHUNKS[:1], seed=1)
    counts = store.row_counts(db)
    assert (counts["documents"], counts["chunks"], counts["chunks_trigram"], counts["chunks_words"],
            counts["vectors"]) == (1, 1, 1, 1, 1)
    assert not db.execute("SELECT rowid FROM chunks_trigram WHERE chunks_trigram MATCH '续航时间'").fetchall()
    assert store.documents(db, c)[0].chunks == 1


def test_a_write_that_fails_midway_leaves_the_file_as_it_was(db) -> None:
    c = indexed(db)
    with pytest.raises(storage.sqlite.OperationalError):  # vectors of the wrong width: sqlite-vec refuses them
        store.write_document(db, c, path="/docs/a.pdf", size=5, mtime_ns=2, sha256="y" * 64, chunks=CHUNKS[:2],
                             vectors=unit(2, dim=4), model="m")
    doc = store.documents(db, c)[0]
    assert (doc.size, doc.sha256, doc.chunks) == (100, "x" * 64, 3)
    counts = store.row_counts(db)
    assert (counts["chunks"], counts["chunks_trigram"], counts["chunks_words"], counts["vectors"]) == (3, 3, 3, 3)


def test_removing_a_file_removes_its_rows_everywhere(db) -> None:
    c = indexed(db)
    indexed(db, path="/docs/b.md", chunks=CHUNKS[:2], seed=2)
    assert store.remove_documents(db, c, ["/docs/a.pdf"]) == 1
    counts = store.row_counts(db)
    assert (counts["chunks"], counts["chunks_trigram"], counts["chunks_words"], counts["vectors"]) == (2, 2, 2, 2)
    assert not db.execute("SELECT 1 FROM chunks_words WHERE chunks_words MATCH 'parse'").fetchall()


def test_deleting_a_collection_deletes_every_row_and_replies_keep_their_sources(db) -> None:
    h = History(db)
    cid = h.create_conversation(title="with docs")
    mid = h.add_message(cid, "assistant", "The pump was replaced in 2019 [1].")
    c = indexed(db)
    other = indexed(db, name="other", path="/else/x.txt", chunks=CHUNKS[:1], seed=3)
    store.set_conversation_collections(db, cid, ["notes", "other"])
    chunk = store.chunks_of(db, store.documents(db, c)[0].id)[0]
    store.save_sources(db, mid, [store.SavedSource(n=1, path="/docs/a.pdf", excerpt=chunk.text, collection="notes",
                                                   document_id=chunk.document_id, chunk_id=chunk.id, page=3, score=0.5,
                                                   page_end=4, similarity=0.71)])

    gone = store.delete_collection(db, "notes")
    assert (gone.documents, gone.chunks, gone.vectors) == (1, 3, 3)
    counts = store.row_counts(db)
    assert (counts["collections"], counts["documents"], counts["chunks"], counts["chunks_trigram"],
            counts["chunks_words"], counts["vectors"]) == (1, 1, 1, 1, 1, 1)
    assert not db.execute("SELECT name FROM sqlite_master WHERE name LIKE ?", [f"{c.vector_table}%"]).fetchall()
    assert store.conversation_collections(db, cid) == ["other"]
    (kept,) = store.message_sources(db, mid)
    assert (kept.path, kept.page, kept.excerpt, kept.document_id, kept.chunk_id) == ("/docs/a.pdf", 3, chunk.text, None, None)
    assert (kept.page_end, kept.similarity) == (4, pytest.approx(0.71))  # a passage across pages 3-4
    with pytest.raises(NotFound) as info:
        store.get_collection(db, "notes")
    assert info.value.facts["code"] == "no-such-collection"
    assert store.row_counts(db, other)["vectors"] == 1


def test_a_new_embedding_model_drops_the_old_vectors_and_says_how_many(db) -> None:
    c = indexed(db, dim=8)
    assert store.use_embedding_model(db, c, "m", 8) == 0  # the same model: nothing happens
    assert store.use_embedding_model(db, c, "bigger", 16) == 3
    assert c.embedding_model == "bigger" and c.embedding_dim == 16
    assert store.row_counts(db, c)["vectors"] == 0 and store.row_counts(db, c)["chunks"] == 3
    (doc,) = store.documents_without_vectors(db, c)
    chunks = store.chunks_of(db, doc.id)
    assert chunks[1].embedding_text().startswith("规格 > 电池\n")
    store.add_vectors(db, c, doc, [x.id for x in chunks], unit(3, 16), "bigger")
    assert store.documents_without_vectors(db, c) == [] and store.row_counts(db, c)["vectors"] == 3
    with pytest.raises(ValueError):
        store.add_vectors(db, c, doc, [x.id for x in chunks], unit(3, 8), "m")


def test_nearest_finds_the_chunk_a_vector_came_from(db) -> None:
    c = indexed(db)
    vectors = unit(3, 8, seed=0)
    ids = [x.id for x in store.chunks_of(db, store.documents(db, c)[0].id)]
    for i, v in zip(ids, vectors):
        best, similarity = store.nearest(db, c, v, 2)[0]
        assert best == i and similarity == pytest.approx(1.0, abs=1e-5)


def test_collection_names(db) -> None:
    store.create_collection(db, "  Notes ")
    assert store.create_collection(db, "notes").name == "Notes"  # names are case-insensitive, kept as first written
    for bad in ("", "   ", "x" * 101, "tab\there"):
        with pytest.raises(CollectionError) as info:
            store.create_collection(db, bad)
        assert info.value.facts["code"] == "bad-collection-name" and "\n" not in str(info.value)


def test_conversation_links_go_with_the_conversation(db) -> None:
    h = History(db)
    cid = h.create_conversation(title="t")
    indexed(db, model=None)
    assert store.set_conversation_collections(db, cid, ["NOTES"]) == ["notes"]
    with pytest.raises(NotFound):
        store.set_conversation_collections(db, cid, ["nope"])
    assert store.conversation_collections(db, cid) == ["notes"]  # a refused change changes nothing
    h.delete(cid, permanent=True)
    assert store.row_counts(db)["conversation_collections"] == 0


def test_words_text_indexes_chinese_as_pairs_and_characters() -> None:
    assert store.words_text("电池续航").split() == ["电池", "池续", "续航", "电", "池", "续", "航"]
    assert store.words_text("用MiniLM算向量").split() == ["用", "MiniLM", "算向", "向量", "算", "向", "量"]
    assert store.words_text("plain English stays") == "plain English stays"
