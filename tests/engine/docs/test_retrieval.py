"""Retrieval on the generated English and Chinese corpus, indexed for real with MiniLM: recall of each mode, budgets, sources."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest

from r1desk.engine.chat.history import History
from r1desk.engine.db import database as storage
from r1desk.engine.docs import index, retrieval, store
from r1desk.engine.docs.chunking import approx_tokens
from r1desk.engine.docs.embedder import HostEmbedder
from r1desk.engine.errors import CollectionError

from tests.support.corpus import build_corpus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm(minilm_gguf):
    embedder = HostEmbedder.load(minilm_gguf, n_threads=2)
    yield embedder
    embedder.close()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, minilm):
    folder = tmp_path_factory.mktemp("retrieval")
    corpus = build_corpus(folder / "corpus")
    db = storage.open_db(folder / "r1.db")
    *_, last = index.index_collection(db, "corpus", [corpus.folder], embedder=minilm)
    assert last.summary.problems == 0 and last.summary.added == len(corpus.files)
    return db, corpus


def rank_of(db, fact, hits) -> int | None:
    """Where the chunk holding ``fact`` came in ``hits`` (1 = first), None if it did not."""
    chunks = store.chunks_by_id(db, [h.chunk_id for h in hits])
    paths = dict(db.execute("SELECT id, path FROM documents").fetchall())
    for rank, hit in enumerate(hits, 1):
        chunk = chunks[hit.chunk_id]
        if Path(paths[chunk.document_id]).name == fact.file and fact.found_in(chunk.text):
            return rank
    return None


def recall_at_5(db, corpus, mode, embedder, lang=None) -> float:
    facts = [f for f in corpus.facts if lang is None or f.lang == lang]
    found = 0
    for fact in facts:
        result = retrieval.search(db, ["corpus"], fact.question, mode=mode, k=5, embedder=embedder)
        found += rank_of(db, fact, result.hits) is not None
    return found / len(facts)


def test_hybrid_recall_beats_full_text_and_vectors_alone(indexed, minilm, record_property) -> None:
    db, corpus = indexed
    recall = {(mode, lang): recall_at_5(db, corpus, mode, minilm, lang)
              for mode in retrieval.MODES for lang in (None, "en", "zh")}
    for key, value in recall.items():
        record_property(f"recall@5 {key[0]} {key[1] or 'all'}", round(value, 3))
    print({f"{m}/{lang or 'all'}": round(v, 3) for (m, lang), v in recall.items()})
    hybrid, fts, vector = recall["hybrid", None], recall["fts", None], recall["vector", None]
    assert hybrid > fts and hybrid > vector, recall
    assert hybrid >= 0.9 and fts >= 0.85
    # MiniLM was trained on English only: its Chinese vectors are close to noise, and the
    # fusion must not let them push out what full-text search found.
    assert recall["vector", "zh"] < 0.5 and recall["hybrid", "zh"] >= recall["fts", "zh"] >= 0.9
    assert recall["hybrid", "en"] >= recall["vector", "en"] > recall["fts", "en"]


def test_chinese_queries_of_two_characters_and_of_one(indexed, minilm) -> None:
    db, corpus = indexed
    for query, needle in (("电池", "电池"), ("端口", "八四四三端口"), ("年假", "带薪年假")):
        hits = retrieval.search(db, ["corpus"], query, mode="fts", k=5).hits
        texts = store.chunks_by_id(db, [h.chunk_id for h in hits])
        assert hits and needle in texts[hits[0].chunk_id].text, query
    one = retrieval.search(db, ["corpus"], "洗", mode="fts", k=3).hits  # one character: neither index takes it
    assert one and all("洗" in c.text for c in store.chunks_by_id(db, [h.chunk_id for h in one]).values())
    assert set(one[0].ranks) <= {"words", "substring"}
    # A longer phrase goes through trigram search too.
    hits = retrieval.search(db, ["corpus"], "宁德新能源", mode="fts", k=1).hits
    assert hits[0].ranks.get("trigram") == 1


def test_sources_say_where_and_carry_the_excerpt(indexed, minilm) -> None:
    db, corpus = indexed
    fact = corpus.fact("aurora-pump")
    (first, *_) = retrieval.retrieve(db, ["corpus"], fact.question, None, minilm, k=3)
    assert Path(first.path).name == "reactor_maintenance.pdf" and first.page == fact.page and first.place == f"page {fact.page}"
    assert fact.found_in(first.text) and first.n == 1 and first.score > 0 and first.similarity is not None
    assert first.char_start is not None and first.char_end > first.char_start
    lines = corpus.fact("lisbon-closing")
    sources = retrieval.retrieve(db, ["corpus"], "Lisbon office close permanently", None, minilm, k=3)
    hit = next(s for s in sources if Path(s.path).name == lines.file)
    assert hit.line_start <= lines.line <= hit.line_end and hit.place.startswith("line")


def test_the_budget_decides_how_many_sources_and_neighbours_fill_what_is_left(indexed, minilm) -> None:
    db, corpus = indexed
    question = corpus.fact("owl-pairs").question

    def cost(sources):
        return sum(approx_tokens([s.text])[0] + retrieval.SOURCE_OVERHEAD_TOKENS for s in sources)

    roomy = retrieval.retrieve(db, ["corpus"], question, 4000, minilm, k=5)
    tight = retrieval.retrieve(db, ["corpus"], question, 400, minilm, k=5)
    tiny = retrieval.retrieve(db, ["corpus"], question, 60, minilm, k=5)
    assert len(roomy) == 5 and cost(roomy) <= 4000
    assert 1 <= len(tight) < 5 and cost(tight) <= 400
    assert len(tiny) == 1 and cost(tiny) <= 60 and tiny[0].text  # the best passage, cut to fit
    assert [s.n for s in roomy] == [1, 2, 3, 4, 5]
    # With room, the best passage grows by its neighbours in the same section, in order.
    (alone,) = retrieval.retrieve(db, ["corpus"], question, 4000, minilm, k=1, neighbours=0)
    (best,) = retrieval.retrieve(db, ["corpus"], question, 4000, minilm, k=1)
    assert alone.chunk_ids == [alone.chunk_id] == [best.chunk_id] and len(best.chunk_ids) > 1
    chunks = store.chunks_by_id(db, best.chunk_ids)
    ordinals = [chunks[i].ordinal for i in best.chunk_ids]
    assert ordinals == list(range(ordinals[0], ordinals[0] + len(ordinals)))
    assert len({tuple(c.headings) for c in chunks.values()}) == 1
    assert alone.text in best.text and len(alone.text) < len(best.text)
    assert corpus.fact("owl-pairs").found_in(best.text) and corpus.fact("owl-pairs").found_in(roomy[0].text)
    # A chat model's own counter may be given (here: characters).
    by_chars = retrieval.retrieve(db, ["corpus"], question, 1500, minilm, k=5, count_tokens=lambda ts: [len(t) for t in ts])
    assert sum(len(s.text) + retrieval.SOURCE_OVERHEAD_TOKENS for s in by_chars) <= 1500


def test_modes_without_vectors_and_with_another_model(indexed, minilm) -> None:
    db, corpus = indexed
    question = corpus.fact("melting-point").question
    with pytest.raises(CollectionError) as info:
        retrieval.search(db, ["corpus"], question, mode="vector")
    assert info.value.facts["code"] == "no-embedding-model"
    notes: list[str] = []
    sources = retrieval.retrieve(db, ["corpus"], question, None, None, notes=notes)
    assert sources and "full-text search only" in notes[0]

    class Other:
        model_id, dim = "another-model.gguf (1 bytes, 384 dimensions)", 384

        def embed_query(self, text):
            raise AssertionError("vectors of another model are never compared")

    result = retrieval.search(db, ["corpus"], question, embedder=Other())
    assert result.hits and result.facts[0]["code"] == "other-embedding-model" and "vector" not in result.seconds
    with pytest.raises(CollectionError):
        retrieval.search(db, ["corpus"], question, mode="sideways")


def test_queries_with_full_text_syntax_are_taken_as_words(indexed, minilm) -> None:
    db, _ = indexed
    for query in ('"unbalanced', "NEAR(pump reactor)", "pump AND OR NOT", "* ^ : -", "MAX_UPLOAD_RETRIES",
                  "col:umn", "'); DROP TABLE chunks; --"):
        retrieval.search(db, ["corpus"], query, embedder=minilm)
    assert store.row_counts(db)["chunks"] > 0
    hit = retrieval.search(db, ["corpus"], "MAX_UPLOAD_RETRIES", mode="fts", k=1).hits[0]
    assert "MAX_UPLOAD_RETRIES" in store.chunks_by_id(db, [hit.chunk_id])[hit.chunk_id].text


def test_the_vector_cache_ranks_as_sqlite_vec_and_follows_changes(indexed, minilm, tmp_path: Path) -> None:
    db, corpus = indexed
    c = store.get_collection(db, "corpus")
    cache = retrieval.VectorCache()
    q = minilm.embed_query(corpus.fact("strudel-price").question)
    direct = store.nearest(db, c, q, 10)
    assert cache.nearest(db, c, q, 10) == direct and not cache._held  # a first search: sqlite-vec's own answer
    # Searched again: sqlite-vec answers while the vectors are read on a thread of their own.
    assert cache.nearest(db, c, q, 10) == direct
    assert cache.wait(60) and cache._held
    assert {t.name for t in threading.enumerate()}.isdisjoint({"r1desk-vectors"})
    cached = cache.nearest(db, c, q, 10)
    assert [i for i, _ in cached] == [i for i, _ in direct]
    assert np.allclose([s for _, s in cached], [s for _, s in direct], atol=1e-5)
    # A new file: the cache sees the collection's vectors changed and reads them again.
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "pastry.md").write_text("# Prices\n\nThe apple strudel in Zurich costs four francs fifty.\n", encoding="utf-8")
    list(index.index_collection(db, "corpus", [extra], embedder=minilm))
    c = store.get_collection(db, "corpus")
    new_id = store.chunks_of(db, store.document_by_path(db, c, str(extra / "pastry.md")).id)[0].id
    assert new_id in [i for i, _ in cache.nearest(db, c, q, 3)]
    store.remove_root(db, c, str(extra))
    assert new_id not in [i for i, _ in cache.nearest(db, store.get_collection(db, "corpus"), q, 3)]


def test_sources_are_kept_with_a_reply(indexed, minilm) -> None:
    db, corpus = indexed
    h = History(db)
    cid = h.create_conversation(title="docs")
    store.set_conversation_collections(db, cid, ["corpus"])
    mid = h.add_message(cid, "assistant", "The pump was replaced on 14 March 2019 [1].")
    sources = retrieval.retrieve(db, store.conversation_collections(db, cid), corpus.fact("aurora-pump").question,
                                 2000, minilm, k=3)
    store.save_sources(db, mid, sources)
    kept = store.message_sources(db, mid)
    assert [(k.n, k.path, k.page, k.excerpt, k.chunk_id) for k in kept] == \
        [(s.n, s.path, s.page, s.text, s.chunk_id) for s in sources]
    assert kept[0].score == pytest.approx(sources[0].score)


def test_in_a_large_collection_words_in_most_passages_are_left_out_of_the_query(indexed, minilm, monkeypatch) -> None:
    db, corpus = indexed
    c = store.get_collection(db, "corpus")
    terms = retrieval.query_terms("When did the Aurora reactor get a new coolant pump? 公司")
    small = retrieval._words_match(db, [c], terms)
    assert small.expression == " OR ".join(f'"{t}"' for t in terms) and small.window is None  # every term kept
    monkeypatch.setattr(retrieval, "COMMON_MIN_CHUNKS", 0)
    monkeypatch.setattr(retrieval, "COMMON_SHARE", 0.1)
    kept = re.findall(r'"([^"]+)"', retrieval._words_match(db, [c], terms).expression)
    total = store.row_counts(db, c)["chunks"]
    dropped = set(terms) - set(kept)
    assert dropped and "aurora" in kept and "coolant" in kept
    for term in dropped:
        found = db.execute("SELECT count(*) FROM chunks_words WHERE chunks_words MATCH ?", [f'"{term}"']).fetchone()[0]
        assert found == 0 or found > 0.1 * total
    fact = corpus.fact("aurora-pump")
    hits = retrieval.search(db, ["corpus"], fact.question, mode="fts", k=5).hits
    assert rank_of(db, fact, hits) == 1


def _common_words(db, share: float) -> list[tuple[str, int]]:
    """Words of the corpus found in more than ``share`` of its chunks, most common first."""
    total = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    counts: dict[str, int] = {}
    for (text,) in db.execute("SELECT text FROM chunks"):
        for word in set(re.findall(r"[a-z]{4,}", text.lower())) - retrieval.STOPWORDS:
            counts[word] = counts.get(word, 0) + 1
    return sorted(((w, n) for w, n in counts.items() if n > share * total), key=lambda p: -p[1])


def test_in_a_large_collection_common_words_count_where_they_appear_together(indexed, monkeypatch) -> None:
    db, _ = indexed
    c = store.get_collection(db, "corpus")
    monkeypatch.setattr(retrieval, "COMMON_MIN_CHUNKS", 0)
    monkeypatch.setattr(retrieval, "COMMON_SHARE", 0.03)
    (a, _), (b, _) = _common_words(db, 0.03)[:2]
    match = retrieval._words_match(db, [c], [a, b])
    assert match.expression in (f'("{a}" AND "{b}")', f'("{b}" AND "{a}")')
    both = {r[0] for r in db.execute("SELECT rowid FROM chunks_words WHERE chunks_words MATCH ?",
                                     [f'"{a}" AND "{b}"'])}
    found = retrieval.words_ranking(db, [c], f"{a} {b}")
    assert found and {i for i, _ in found} <= both


def test_a_lone_word_found_everywhere_is_scored_in_its_latest_matches_only(indexed, monkeypatch) -> None:
    db, _ = indexed
    c = store.get_collection(db, "corpus")
    word, holding = _common_words(db, 0.03)[0]
    exact = retrieval.words_ranking(db, [c], word, limit=holding)  # a small collection: all scored
    assert len(exact) == holding
    monkeypatch.setattr(retrieval, "COMMON_MIN_CHUNKS", 0)
    monkeypatch.setattr(retrieval, "RANKED_AT_MOST", 5)
    match = retrieval._words_match(db, [c], [word])
    assert match.window == 5
    windowed = retrieval.words_ranking(db, [c], word)
    latest = sorted((i for i, _ in exact), reverse=True)[:5]
    # The five most recent chunks holding it, best first, with the scores the full ranking gives them.
    assert {i for i, _ in windowed} == set(latest)
    scores = dict(exact)
    assert [s for _, s in windowed] == sorted((s for _, s in windowed), reverse=True)
    assert [s for _, s in windowed] == pytest.approx([scores[i] for i, _ in windowed])


def test_the_vector_cache_reads_in_the_search_itself_without_a_thread(indexed, minilm) -> None:
    db, corpus = indexed
    c = store.get_collection(db, "corpus")
    q = minilm.embed_query(corpus.fact("strudel-price").question)
    cache = retrieval.VectorCache(load_after=0, background=False)
    assert [i for i, _ in cache.nearest(db, c, q, 5)] == [i for i, _ in store.nearest(db, c, q, 5)]
    assert cache._held and not cache._loading


def test_a_search_keeps_to_its_collections(tmp_path: Path) -> None:
    db = storage.open_db(tmp_path / "r1.db")
    for name, text in (("plant", "The coolant pump of the Aurora reactor was replaced in March."),
                       ("kitchen", "The coolant pump of the ice cream machine hums all night.")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
        list(index.index_collection(db, name, [folder]))

    def files(names, query="coolant pump", **kw):
        hits = retrieval.search(db, names, query, mode="fts", **kw).hits
        chunks = store.chunks_by_id(db, [h.chunk_id for h in hits])
        paths = dict(db.execute("SELECT id, path FROM documents").fetchall())
        return sorted(Path(paths[chunks[h.chunk_id].document_id]).name for h in hits)

    assert files(["plant"]) == ["plant.txt"] and files(["kitchen"]) == ["kitchen.txt"]
    assert files(["plant", "kitchen"]) == ["kitchen.txt", "plant.txt"]
    assert files(["kitchen"], "Aurora") == []
    assert files(["plant"], "reactor", k=1) == ["plant.txt"]
    assert files(["kitchen"], "Aur") == []  # the trigram index: a piece of a word
    # As in a large collection, where a word found everywhere is scored in its latest matches only.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(retrieval, "COMMON_MIN_CHUNKS", 0)
        mp.setattr(retrieval, "RANKED_AT_MOST", 1)
        assert retrieval._words_match(db, [store.get_collection(db, "plant")], ["coolant"]).window == 1
        assert files(["plant"], "coolant") == ["plant.txt"] and files(["kitchen"], "coolant") == ["kitchen.txt"]
    store.delete_collection(db, "kitchen")
    assert files(["plant"]) == ["plant.txt"]
