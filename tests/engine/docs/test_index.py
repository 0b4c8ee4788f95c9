"""Indexing with the real extraction worker and the real MiniLM embedding model: incremental, resumable, never twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from r1desk.engine.db import database as storage
from r1desk.engine.docs import index, store
from r1desk.engine.docs.embedder import HostEmbedder
from r1desk.engine.docs.worker import Extractor
from r1desk.engine.errors import Cancelled, CollectionError
from r1desk.engine.events import CancelToken

pytestmark = pytest.mark.slow

TOPICS = ["coolant pumps", "battery chemistry", "tax forms", "bread baking", "river ecology", "train timetables",
          "violin strings", "solar panels", "cat health", "chess openings"]


class Counting:
    """The real embedder, counting what it is asked to embed; ``model_id`` may be renamed."""

    def __init__(self, inner: HostEmbedder, model_id: str | None = None):
        self.inner = inner
        self.model_id = model_id or inner.model_id
        self.dim, self.max_tokens, self.reserve_tokens = inner.dim, inner.max_tokens, inner.reserve_tokens
        self.texts: list[str] = []
        self.calls = 0

    def embed_documents(self, texts, token=None):
        self.calls += 1
        self.texts += list(texts)
        return self.inner.embed_documents(texts, token=token)

    def embed_query(self, text):
        return self.inner.embed_query(text)

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)


class CountingExtractor(Extractor):
    def __init__(self):
        super().__init__()
        self.read: list[str] = []

    def extract(self, path, *, token=None):
        self.read.append(os.fspath(path))
        return super().extract(path, token=token)


@pytest.fixture(scope="module")
def minilm(minilm_gguf):
    embedder = HostEmbedder.load(minilm_gguf, n_threads=2)
    yield embedder
    embedder.close()


@pytest.fixture
def embedder(minilm):
    return Counting(minilm)


@pytest.fixture
def extractor():
    with CountingExtractor() as ex:
        yield ex


def write_corpus(folder: Path, files: int = 6, paragraphs: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(files):
        topic = TOPICS[i % len(TOPICS)]
        body = "\n\n".join(
            f"Paragraph {j} of note {i} is about {topic}. It has a few sentences so that it is a real passage. "
            f"The figure for {topic} in note {i} is {i * 100 + j}."
            for j in range(paragraphs))
        p = folder / f"note-{i:02d}.md"
        p.write_text(f"# Note {i}: {topic}\n\n{body}\n", encoding="utf-8")
        out.append(p)
    return out


def run(db, name, paths=(), **kw):
    events = list(index.index_collection(db, name, paths, **kw))
    assert events[-1].phase == "done"
    return events, events[-1].summary


def consistent(db) -> dict[str, int]:
    """Every chunk is in both full-text indexes and has one vector; no file is there twice."""
    counts = store.row_counts(db)
    assert counts["chunks"] == counts["chunks_trigram"] == counts["chunks_words"]
    per_doc = db.execute("SELECT coalesce(sum(chunks), 0) FROM documents").fetchone()[0]
    assert per_doc == counts["chunks"]
    assert db.execute("SELECT count(*) FROM (SELECT collection_id, path FROM documents GROUP BY 1, 2 HAVING count(*) > 1)").fetchone()[0] == 0
    return counts


def test_index_then_nothing_to_do(tmp_path: Path, embedder, extractor) -> None:
    files = write_corpus(tmp_path / "docs")
    db = storage.open_db(tmp_path / "r1.db")
    events, summary = run(db, "notes", [tmp_path / "docs"], embedder=embedder, extractor=extractor)
    assert (summary.files, summary.added, summary.problems) == (len(files), len(files), 0)
    counts = consistent(db)
    assert counts["vectors"] == counts["chunks"] == summary.chunks == summary.embedded > 0
    # Progress: files counted up to the total, a rate and a time left on the way.
    steps = [e for e in events if e.phase == "index"]
    assert [e.done for e in steps] == list(range(1, len(files) + 1)) and all(e.total == len(files) for e in steps)
    assert any(e.speed for e in events) and events[-1].summary.seconds > 0
    assert {e.current for e in steps} == {str(p) for p in files}

    embedder.texts.clear()
    extractor.read.clear()
    _, again = run(db, "notes", embedder=embedder, extractor=extractor)
    assert (again.unchanged, again.added, again.chunks, again.embedded) == (len(files), 0, 0, 0)
    assert extractor.read == [] and embedder.texts == []


def test_touched_file_is_read_again_but_only_a_changed_one_is_embedded_again(tmp_path: Path, embedder, extractor) -> None:
    files = write_corpus(tmp_path / "docs")
    db = storage.open_db(tmp_path / "r1.db")
    run(db, "notes", [tmp_path / "docs"], embedder=embedder, extractor=extractor)
    before = consistent(db)

    # Same content, new time: read (hashed) again, not extracted, chunked or embedded.
    os.utime(files[1], ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    embedder.texts.clear()
    extractor.read.clear()
    _, s = run(db, "notes", embedder=embedder, extractor=extractor)
    assert (s.unchanged, s.updated, s.embedded) == (len(files), 0, 0) and extractor.read == []
    doc = store.document_by_path(db, store.get_collection(db, "notes"), str(files[1]))
    assert doc.mtime_ns == files[1].stat().st_mtime_ns  # remembered: the next run does not hash it again

    # New content in one file: only it is extracted and embedded.
    was = store.document_by_path(db, store.get_collection(db, "notes"), str(files[2])).chunks
    files[2].write_text("# Changed\n\nThe violin now has gut strings instead of steel ones.\n", encoding="utf-8")
    embedder.texts.clear()
    _, s = run(db, "notes", embedder=embedder, extractor=extractor)
    assert (s.updated, s.unchanged) == (1, len(files) - 1)
    assert extractor.read == [str(files[2])]
    assert len(embedder.texts) == s.chunks == s.embedded == 1 and "gut strings" in embedder.texts[0]
    after = consistent(db)
    assert after["vectors"] == after["chunks"] == before["chunks"] - was + 1


def test_removed_files_drop_out_of_every_table(tmp_path: Path, embedder, extractor) -> None:
    files = write_corpus(tmp_path / "docs")
    db = storage.open_db(tmp_path / "r1.db")
    run(db, "notes", [tmp_path / "docs"], embedder=embedder, extractor=extractor)
    before = consistent(db)
    c = store.get_collection(db, "notes")
    gone = store.document_by_path(db, c, str(files[0]))
    files[0].unlink()
    _, s = run(db, "notes", embedder=embedder, extractor=extractor)
    assert s.removed == 1 and store.document_by_path(db, c, str(files[0])) is None
    after = consistent(db)
    assert after["chunks"] == before["chunks"] - gone.chunks == after["vectors"]
    assert not db.execute("SELECT 1 FROM chunks_words WHERE chunks_words MATCH '\"coolant\"'").fetchall()


def test_a_folder_that_is_not_there_keeps_its_files(tmp_path: Path, embedder, extractor) -> None:
    write_corpus(tmp_path / "usb")
    db = storage.open_db(tmp_path / "r1.db")
    run(db, "notes", [tmp_path / "usb"], embedder=embedder, extractor=extractor)
    (tmp_path / "usb").rename(tmp_path / "elsewhere")  # the drive is unplugged
    _, s = run(db, "notes", embedder=embedder, extractor=extractor)
    assert s.removed == 0 and any(f["code"] == "root-missing" for f in s.facts)
    assert store.row_counts(db)["documents"] == 6


def test_full_text_first_then_vectors_without_reading_again(tmp_path: Path, embedder, extractor) -> None:
    write_corpus(tmp_path / "docs")
    db = storage.open_db(tmp_path / "r1.db")
    _, s = run(db, "notes", [tmp_path / "docs"], extractor=extractor)
    assert s.embedded == 0 and any(f["code"] == "no-embedding-model" for f in s.facts)
    counts = consistent(db)
    assert counts["vectors"] == 0 and counts["chunks"] > 0
    assert store.stats(db, store.get_collection(db, "notes")).without_vectors == 6
    extractor.read.clear()
    events, s = run(db, "notes", embedder=embedder, extractor=extractor)
    assert extractor.read == [] and s.embedded == counts["chunks"] == len(embedder.texts)
    assert [e.done for e in events if e.phase == "embed"][-1] == 6
    assert consistent(db)["vectors"] == counts["chunks"]


def test_another_embedding_model_embeds_everything_again_and_says_so(tmp_path: Path, minilm, extractor) -> None:
    write_corpus(tmp_path / "docs")
    db = storage.open_db(tmp_path / "r1.db")
    run(db, "notes", [tmp_path / "docs"], embedder=Counting(minilm), extractor=extractor)
    chunks = consistent(db)["chunks"]
    other = Counting(minilm, model_id="another-model.gguf (1 bytes, 384 dimensions)")
    _, s = run(db, "notes", embedder=other, extractor=extractor)
    (fact,) = [f for f in s.facts if f["code"] == "embedding-model-changed"]
    assert fact["chunks"] == chunks and "embedded again" in s.notes[0]
    assert len(other.texts) == chunks and store.get_collection(db, "notes").embedding_model == other.model_id
    assert consistent(db)["vectors"] == chunks


def test_problem_files_say_why_and_the_rest_is_indexed(tmp_path: Path, embedder, extractor) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs, files=3)
    (docs / "program.txt").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(200))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n")  # truncated
    (docs / "loop.md").symlink_to(docs / "loop.md")
    db = storage.open_db(tmp_path / "r1.db")
    _, s = run(db, "mixed", [docs], embedder=embedder, extractor=extractor)
    c = store.get_collection(db, "mixed")
    problems = {Path(d.path).name: (d.problem, d.reason) for d in store.documents(db, c, status="problem")}
    assert problems.keys() == {"program.txt", "broken.pdf", "loop.md"}
    assert problems["program.txt"][0] == "binary" and problems["loop.md"][0] == "symlink-loop"
    assert problems["broken.pdf"][0] == "corrupt" and all(r and "\n" not in r for _, r in problems.values())
    assert s.added == 3 and s.problems == 3 and len(s.new_problems) == 3
    # A problem is not retried while the file stays the same, and is not reported as new again.
    extractor.read.clear()
    _, s = run(db, "mixed", embedder=embedder, extractor=extractor)
    assert extractor.read == [] and s.new_problems == [] and s.problems == 3


def test_cancel_keeps_what_was_stored_and_the_next_run_goes_on(tmp_path: Path, embedder, extractor, monkeypatch) -> None:
    monkeypatch.setattr(index, "EMBED_BATCH", 2)  # a few files per call to the model, as with bigger files
    write_corpus(tmp_path / "docs", files=8)
    db = storage.open_db(tmp_path / "r1.db")
    token = CancelToken()
    with pytest.raises(Cancelled):
        for event in index.index_collection(db, "notes", [tmp_path / "docs"], embedder=embedder, token=token,
                                            extractor=extractor):
            if event.phase == "index" and event.done >= 3:
                token.cancel()
    kept = consistent(db)
    stored = store.row_counts(db)["documents"]
    assert 3 <= stored < 8 and kept["vectors"] == kept["chunks"]
    embedder.texts.clear()
    _, s = run(db, "notes", embedder=embedder, extractor=extractor)
    assert s.added == 8 - stored and s.unchanged == stored
    final = consistent(db)
    assert len(embedder.texts) == final["chunks"] - kept["chunks"] == final["vectors"] - kept["vectors"]


def test_only_the_named_files_are_looked_at(tmp_path: Path, embedder, extractor) -> None:
    files = write_corpus(tmp_path / "docs")
    db = storage.open_db(tmp_path / "r1.db")
    run(db, "notes", [tmp_path / "docs"], embedder=embedder, extractor=extractor)
    files[0].write_text("# New\n\nBrand new words about zeppelins.\n", encoding="utf-8")
    files[1].unlink()
    files[3].write_text("# Also changed\n\nNot named, so not looked at.\n", encoding="utf-8")
    extractor.read.clear()
    _, s = run(db, "notes", embedder=embedder, extractor=extractor, only=[files[0], files[1]])
    assert extractor.read == [str(files[0])] and (s.updated, s.removed) == (1, 1)
    assert "Not named" not in " ".join(embedder.texts)


def test_a_path_that_does_not_exist_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    db = storage.open_db(tmp_path / "r1.db")
    with pytest.raises(CollectionError) as info:
        list(index.index_collection(db, "notes", [tmp_path / "nope"]))
    assert info.value.facts["code"] == "no-such-path" and str(tmp_path / "nope") in str(info.value)
    assert store.list_collections(db) == []
    with pytest.raises(CollectionError) as info:
        list(index.index_collection(db, "notes"))  # nothing to index
    assert info.value.facts["code"] == "no-such-path" and store.list_collections(db) == []


KILLED = textwrap.dedent(r"""
    import sys
    from r1desk.engine.db.database import open_db
    from r1desk.engine.docs import index
    from r1desk.engine.docs.embedder import HostEmbedder
    db = open_db(sys.argv[1])
    embedder = HostEmbedder.load(sys.argv[3], n_threads=1)
    for event in index.index_collection(db, "notes", [sys.argv[2]], embedder=embedder):
        print(event.phase, event.done, flush=True)
""")


def test_kill_9_mid_run_then_index_again(tmp_path: Path, minilm_gguf, embedder, extractor) -> None:
    """Nothing twice, nothing missing, no finished file embedded again."""
    write_corpus(tmp_path / "docs", files=40, paragraphs=4)
    p = tmp_path / "r1.db"
    storage.open_db(p).close()
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(p), str(tmp_path / "docs"), str(minilm_gguf)],
                            stdout=subprocess.PIPE, text=True)
    db = storage.open_db(p)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if db.execute("SELECT count(*) FROM documents").fetchone()[0] >= 6:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    kept = consistent(db)
    stored = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    assert 6 <= stored < 40 and kept["vectors"] == kept["chunks"]
    finished = {d.path for d in store.documents(db, store.get_collection(db, "notes"))}

    _, s = run(db, "notes", embedder=embedder, extractor=extractor)
    final = consistent(db)
    assert s.added == 40 - stored and s.unchanged == stored
    assert not finished & set(extractor.read)
    assert len(embedder.texts) == final["chunks"] - kept["chunks"] == final["vectors"] - kept["vectors"]
    assert final["documents"] == 40


# ---------------------------------------------------------------------------------------
# Watched folders, for real: inotify on a temporary folder.


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("not within the time allowed")


def test_a_watched_folder_picks_up_a_new_file_a_change_and_a_deletion(tmp_path: Path, embedder) -> None:
    from r1desk.engine.docs.watch import Watcher

    files = write_corpus(tmp_path / "docs", files=3)
    (tmp_path / "docs" / "sub").mkdir()
    db = storage.open_db(tmp_path / "r1.db")
    run(db, "notes", [tmp_path / "docs"], embedder=embedder, watch=True)
    c = store.get_collection(db, "notes")
    assert c.roots[0].watched
    seen: list[tuple[str, index.IndexProgress]] = []
    errors: list[BaseException] = []
    with Watcher(db, embedder=embedder, debounce=0.3, on_event=lambda n, e: seen.append((n, e)),
                 on_error=lambda n, e: errors.append(e)) as watcher:
        assert watcher.watching == {"notes": [str(tmp_path / "docs")]}
        embedder.texts.clear()
        new = tmp_path / "docs" / "sub" / "zeppelin.md"
        new.write_text("# Airships\n\nThe zeppelin LZ 129 had a hydrogen lift gas.\n", encoding="utf-8")
        (tmp_path / "docs" / ".hidden.md").write_text("never indexed\n", encoding="utf-8")
        (tmp_path / "docs" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0")
        wait_for(lambda: store.document_by_path(db, c, str(new)) is not None)
        assert any("zeppelin" in t for t in embedder.texts)
        files[0].unlink()
        wait_for(lambda: store.document_by_path(db, c, str(files[0])) is None)
        files[1].write_text("# Rewritten\n\nNow about lighthouses and their lenses.\n", encoding="utf-8")
        wait_for(lambda: "lighthouses" in " ".join(ch.text for d in store.documents(db, c) for ch in store.chunks_of(db, d.id)))
    assert errors == []
    names = {Path(d.path).name for d in store.documents(db, c)}
    assert names == {"zeppelin.md", "note-01.md", "note-02.md"}  # neither the hidden file nor the photo
    assert all(n == "notes" for n, _ in seen) and any(e.phase == "done" for _, e in seen)
    consistent(db)


def test_a_folder_moved_into_a_watched_folder_is_indexed_whole(tmp_path: Path) -> None:
    from r1desk.engine.docs.watch import Watcher

    write_corpus(tmp_path / "docs", files=1)
    outside = write_corpus(tmp_path / "outside" / "batch", files=4)
    db = storage.open_db(tmp_path / "r1.db")
    run(db, "notes", [tmp_path / "docs"], watch=True)
    c = store.get_collection(db, "notes")
    with Watcher(db, debounce=0.3):
        (tmp_path / "outside" / "batch").rename(tmp_path / "docs" / "batch")
        wait_for(lambda: store.row_counts(db, c)["documents"] == 1 + len(outside))
        (tmp_path / "docs" / "batch").rename(tmp_path / "gone")
        wait_for(lambda: store.row_counts(db, c)["documents"] == 1)


def test_a_messy_folder_gives_each_bad_file_its_problem_and_indexes_the_rest(tmp_path: Path) -> None:
    """The generated corpus with every hostile file mixed in, and a file that vanishes mid-run."""
    from tests.support.corpus import build_corpus, build_hostile

    corpus = build_corpus(tmp_path / "messy")
    expected = build_hostile(tmp_path / "messy" / "hostile")
    doomed = tmp_path / "messy" / "zz-gone-soon.md"
    doomed.write_text("# Soon gone\n\nThis file is deleted while the folder is indexed.\n", encoding="utf-8")

    class Vanishing(CountingExtractor):
        def extract(self, path, *, token=None):
            if doomed.exists():
                doomed.unlink()  # deleted after it was found, before it is read
            return super().extract(path, token=token)

    db = storage.open_db(tmp_path / "r1.db")
    started = time.monotonic()
    with Vanishing() as extractor:
        _, s = run(db, "messy", [tmp_path / "messy"], extractor=extractor)
    seconds = time.monotonic() - started
    c = store.get_collection(db, "messy")
    docs = {Path(d.path).relative_to(tmp_path / "messy").as_posix(): d for d in store.documents(db, c)}
    for name, code in expected.items():
        doc = docs.get(f"hostile/{name}")
        assert doc is not None, name
        if code is None:
            assert doc.status == "indexed" and doc.chunks > 0, (name, doc.reason)
        else:
            assert (doc.status, doc.problem) == ("problem", code), (name, doc.problem, doc.reason)
            assert doc.reason and "\n" not in doc.reason
    assert "hostile/pipe.txt" not in docs
    assert (docs["zz-gone-soon.md"].status, docs["zz-gone-soon.md"].problem) == ("problem", "vanished")
    huge = docs["hostile/huge.log"]
    assert huge.note and huge.size == 500 * 1024 * 1024  # read up to the text limit, and said so
    for f in corpus.files:
        doc = docs[f.name]
        assert doc.status == "indexed" and doc.chunks > 0, (f.name, doc.reason)
    assert s.problems == sum(1 for code in expected.values() if code) + 1
    assert seconds < 300
    consistent(db)


def test_chunks_the_estimate_sized_wrongly_are_cut_again_with_the_model_tokenizer(tmp_path: Path, minilm, extractor) -> None:
    import random

    rng = random.Random(3)
    docs = tmp_path / "docs"
    docs.mkdir()
    # Hex digests: the local estimate counts a long word as a token per four characters, MiniLM's
    # WordPiece cuts them into many more pieces.
    (docs / "hashes.txt").write_text(" ".join(rng.randbytes(24).hex() for _ in range(60)) + "\n", encoding="utf-8")
    write_corpus(docs, files=2)
    small = Counting(minilm)
    small.max_tokens = 160  # as a model with a short context would have
    db = storage.open_db(tmp_path / "r1.db")
    run(db, "notes", [docs], embedder=small, extractor=extractor)
    c = store.get_collection(db, "notes")
    for d in store.documents(db, c):
        chunks = store.chunks_of(db, d.id)
        real = minilm.count_tokens([ch.embedding_text() for ch in chunks])
        assert all(n <= 160 for n in real), (d.path, real)
        assert [ch.tokens for ch in chunks] == real  # the model's own counts are what is stored
    hashes = store.document_by_path(db, c, str(docs / "hashes.txt"))
    assert hashes.chunks >= 4
    consistent(db)
