"""Finding the passages of the user's documents that answer a question, within the room the chat model has.

Three rankings of a collection's chunks, each good where the others are weak:

- ``chunks_words`` BM25: English words through the Porter stemmer, Chinese as characters and
  character pairs, so "电池" (two characters, too short for trigram search) and
  "replaced"/"replacement" match;
- ``chunks_trigram`` BM25: any substring of three or more characters (identifiers, part
  numbers, Chinese phrases), weak at ranking English, so it counts less;
- vector similarity (sqlite-vec, or a matrix in memory for a long-lived app): questions that
  share no word with the passage that answers them.

Modes: ``fts`` fuses the two full-text rankings, ``vector`` is similarity alone, ``hybrid``
fuses all three by weighted reciprocal rank fusion (RRF): a chunk scores the sum of
``weight / (60 + rank)`` over the rankings it appears in. RRF needs no calibration between
BM25 scores and cosine similarities, which have nothing in common, and a chunk that two
rankings agree on rises above one that only one ranking likes.

``retrieve`` turns the best chunks into ``Source``s for a prompt: as many as fit the token
budget the caller gives (the chat model's context left after the conversation), each grown
by its neighbouring chunks when room is left, numbered as the [n] markers of the answer.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from r1desk.engine.db.database import Database
from r1desk.engine.docs import store
from r1desk.engine.docs.store import Collection, StoredChunk, words_text
from r1desk.engine.errors import CollectionError

MODES = ("hybrid", "fts", "vector")
RRF_K = 60
CANDIDATES = 50  # chunks each ranking contributes to the fusion
# Weights of the rankings in the fusion. Trigram BM25 counts little in English (it scores
# letter triples, not words) but finds what the other two cannot.
WEIGHTS = {"words": 1.0, "trigram": 0.5, "vector": 1.0}
CONFIDENT_Z = (2.0, 4.0)  # vector rankings weigh 0.1 at z <= 2, fully at z >= 4 (see vector_confidence)
SOURCE_OVERHEAD_TOKENS = 24  # the line naming a source in the prompt: [n], file, page, headings
DEFAULT_K = 8

CountTokens = Callable[[list[str]], list[int]]

# Words a question is made of that say nothing about what it asks (their BM25 weight is near
# zero anyway, but each one matches nearly every chunk, which costs time on large collections).
STOPWORDS = frozenset("""
a an and are as at be been being but by can could did do does doing for from had has have having he her
his how i if in into is it its me my of on or our she should so than that the their them then there these
they this those to was we were what when where which while who whom why will with would you your
tell about please know find give much many any some
""".split())
# Question words and particles of Chinese, as the pairs and characters they index to: in a
# question they match nearly every Chinese passage and say nothing of what is asked.
CJK_STOP = frozenset("什么 怎么 怎样 多少 哪些 哪个 哪里 哪儿 为什 是否 如何 请问 是什 么时 时候 一下 告诉 我们 你们 "
                     "的 了 是 在 和 有 我 你 他 她 它 们 这 那 个 吗 呢 吧 啊 么 什 哪 谁 几 怎 为 与 及 或 也 都 "
                     "就 要 会 能 可 以 之 于 而 其 把 被 让 给 从 到 对 将 一 不 很 还 又 多 少 请 问".split())


@dataclass
class Hit:
    """A chunk one search found: its place in each ranking (1 = best) and its fused score."""

    chunk_id: int
    collection: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    similarity: float | None = None  # cosine similarity to the question, when vectors were searched
    bm25: float | None = None  # BM25 of chunks_words (higher is better)


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: str
    notes: list[str] = field(default_factory=list)  # what the user should know (no vectors yet...)
    facts: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Source:
    """A passage given to the chat model, as its answer cites it ([n]) and the app opens it.

    ``text`` is the excerpt: the chunk that matched (``chunk_id``), grown by its neighbours when
    there was room (``chunk_ids``, in order). ``page``/``page_end`` and ``line_start``/``line_end``
    are where the matched chunk is (where a citation opens); ``char_start``/``char_end`` span
    the whole excerpt in the document's extracted text (what to highlight).
    """

    n: int
    collection: str
    path: str
    text: str
    score: float
    document_id: int
    chunk_id: int
    chunk_ids: list[int]
    page: int | None = None
    page_end: int | None = None
    line_start: int | None = None
    line_end: int | None = None
    headings: list[str] = field(default_factory=list)
    char_start: int | None = None
    char_end: int | None = None
    similarity: float | None = None
    ranks: dict[str, int] = field(default_factory=dict)
    tokens: int = 0

    @property
    def excerpt(self) -> str:
        return self.text

    @property
    def place(self) -> str:
        """Where in the file, in words: "page 3", "pages 3-4", "lines 10-24"."""
        if self.page is not None:
            if self.page_end and self.page_end != self.page:
                return f"pages {self.page}-{self.page_end}"
            return f"page {self.page}"
        if self.line_start is not None:
            if self.line_end and self.line_end != self.line_start:
                return f"lines {self.line_start}-{self.line_end}"
            return f"line {self.line_start}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["place"] = self.place
        return d


# ---------------------------------------------------------------------------------------
# Full-text queries.


def query_terms(query: str) -> list[str]:
    """The terms of ``query`` for ``chunks_words``: words less stop words, Chinese as pairs and characters."""
    terms = []
    for token in re.findall(r"[^\W_]+", words_text(query)):
        low = token.lower()
        if low in STOPWORDS or low in CJK_STOP:
            continue
        if low not in terms:
            terms.append(low)
    if not terms:  # a question made only of stop words still means something
        terms = list(dict.fromkeys(t.lower() for t in re.findall(r"[^\W_]+", words_text(query))))
    return terms


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


# A word worth a substring search: it holds a digit, an underscore, a dot or a capital after its
# first letter (an identifier, a part number, a version), which word search splits or misses.
_CODE_LIKE = re.compile(r"[\w.]*(?:\d|_|\.\w|[a-z][A-Z])[\w.]*")


def _trigram_terms(query: str, *, words_too: bool = False) -> list[str]:
    """Pieces of ``query`` for trigram search: each three characters of a Chinese run (a whole
    Chinese question is never a substring of a passage), identifier-like words, and, when
    ``words_too``, every other word of three or more letters (word search found nothing)."""
    out: list[str] = []
    for run in store._CJK_RUN.findall(query):
        out += [g for g in (run[i:i + 3] for i in range(len(run) - 2)) if g not in out]
    for piece in re.findall(r"[^\W_](?:[\w.]*[^\W_])?", query):
        if store._CJK_RUN.search(piece) or len(piece) < 3:
            continue
        low = piece.lower()
        if (_CODE_LIKE.fullmatch(piece) or (words_too and low not in STOPWORDS)) and low not in out:
            out.append(low)
    return out


def _ids(collections: Sequence[Collection]) -> tuple[str, list[int]]:
    ids = [c.id for c in collections]
    return ",".join("?" * len(ids)), ids


# In a large collection, a term found in more than this share of its chunks is a weak clue
# that costs much: BM25 scores every chunk a query matches (a few microseconds each), and a
# common Chinese character is in a third of all passages. See ``_words_match``.
COMMON_SHARE = 0.05
COMMON_MIN_CHUNKS = 20_000  # below this every term is kept: the query is fast anyway
RANKED_AT_MOST = 2000  # matches a query over a large collection scores at most (see ``_words_match``)
_frequencies: dict[tuple, int] = {}  # (database, every collection's version, expression) -> chunks matching it


def _match_count(db: Database, generation: tuple, expression: str) -> int:
    """How many chunks match ``expression`` in ``chunks_words`` (counting is cheap: no scores)."""
    key = (db.path, generation, expression)
    found = _frequencies.get(key)
    if found is None:
        if len(_frequencies) > 50_000:
            _frequencies.clear()
        found = _frequencies[key] = db.execute(
            "SELECT count(*) FROM chunks_words WHERE chunks_words MATCH ?", [expression]).fetchone()[0]
    return found


@dataclass
class _Match:
    """A full-text query: the MATCH expression, and how many of its matches to score (None: all)."""

    expression: str
    window: int | None = None


def _any(terms: Sequence[str]) -> str:
    return " OR ".join(_quote(t) for t in terms)


def _words_match(db: Database, collections: Sequence[Collection], terms: list[str]) -> _Match | None:
    """The ``chunks_words`` query for ``terms``: any of them, except in a large collection.

    There a term found in more than ``COMMON_SHARE`` of the chunks is left out when two rarer
    terms are present; with fewer, the common terms count only where they appear together
    (the rarest first, as many as it takes to make them rare together) beside the rare one.
    If the query would still match more than ``RANKED_AT_MOST`` chunks (a question made of one
    word found everywhere), only the most recently indexed ``RANKED_AT_MOST`` of its matches are
    scored. None: no term is in any passage.
    """
    marks, ids = _ids(collections)
    total = db.execute(f"SELECT coalesce(sum(chunks), 0) FROM documents WHERE collection_id IN ({marks})",
                       ids).fetchone()[0]
    if total < COMMON_MIN_CHUNKS:
        return _Match(_any(terms))
    # Counts are of the whole table (every collection), so shares are of every chunk.
    everything = db.execute("SELECT coalesce(sum(chunks), 0) FROM documents").fetchone()[0]
    generation = tuple(db.execute("SELECT id, vectors_version FROM collections ORDER BY id").fetchall())
    df = {t: _match_count(db, generation, _quote(t)) for t in terms}
    present = sorted((t for t in terms if df[t] > 0), key=lambda t: df[t])
    if not present:
        return None
    common_above = COMMON_SHARE * everything
    rare = [t for t in present if df[t] <= common_above]
    common = [t for t in present if df[t] > common_above]
    pieces = [_quote(t) for t in rare]
    if len(rare) < 2 and common:
        group = [common[0]]
        for term in common[1:]:
            if _match_count(db, generation, " AND ".join(_quote(t) for t in group)) <= common_above:
                break
            group.append(term)
        if len(group) > 1:
            pieces.append("(" + " AND ".join(_quote(t) for t in group) + ")")
        elif not rare:
            pieces.append(_quote(group[0]))  # one word, found everywhere: the window below bounds it
    expression = " OR ".join(pieces)
    matches = _match_count(db, generation, expression)
    return _Match(expression, RANKED_AT_MOST if matches > RANKED_AT_MOST else None)


def words_ranking(db: Database, collections: Sequence[Collection], query: str, limit: int = CANDIDATES) -> list[tuple[int, float]]:
    """(chunk id, BM25 higher-is-better) from ``chunks_words``, best first."""
    terms = query_terms(query)
    if not terms or not collections:
        return []
    match = _words_match(db, collections, terms)
    if match is None:
        return []  # none of its words is in any passage
    return _fts_ranking(db, "chunks_words", collections, match, limit)


def trigram_ranking(db: Database, collections: Sequence[Collection], query: str, limit: int = CANDIDATES, *,
                    words_too: bool = False) -> list[tuple[int, float]]:
    terms = _trigram_terms(query, words_too=words_too)
    if not terms or not collections:
        return []
    return _fts_ranking(db, "chunks_trigram", collections, _Match(_any(terms)), limit)


def _holds_every_chunk(db: Database, collections: Sequence[Collection]) -> bool:
    """Whether no other collection has chunks (then the full-text tables need no filter by collection)."""
    marks, ids = _ids(collections)
    return db.execute(f"SELECT NOT EXISTS (SELECT 1 FROM documents WHERE collection_id NOT IN ({marks}) "
                      "AND chunks > 0)", ids).fetchone()[0] == 1


def _fts_ranking(db: Database, table: str, collections: Sequence[Collection], match: _Match,
                 limit: int) -> list[tuple[int, float]]:
    """(chunk id, BM25 higher-is-better) for ``match`` in the full-text ``table``, best first."""
    if _holds_every_chunk(db, collections):
        source, where, ids = f"{table} f", "", []
    else:
        marks, ids = _ids(collections)
        source, where = f"{table} f JOIN chunks c ON c.id = f.rowid", f" AND c.collection_id IN ({marks})"
    if match.window is None:
        rows = db.execute(f"SELECT f.rowid, f.rank FROM {source} WHERE {table} MATCH ?{where} "
                          "ORDER BY f.rank LIMIT ?", [match.expression, *ids, limit]).fetchall()
    else:
        rows = db.execute(f"SELECT f.rowid, bm25({table}) FROM {source} WHERE {table} MATCH ?{where} "
                          "ORDER BY f.rowid DESC LIMIT ?", [match.expression, *ids, match.window]).fetchall()
        rows = sorted(rows, key=lambda r: (r[1], -r[0]))[:limit]
    return [(int(r[0]), -float(r[1])) for r in rows]


def substring_ranking(db: Database, collections: Sequence[Collection], query: str, limit: int = CANDIDATES) -> list[tuple[int, float]]:
    """For a query of one or two characters that neither index can take: chunks holding it, most often first."""
    needle = query.strip()
    if not needle or not collections:
        return []
    marks, ids = _ids(collections)
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = db.execute(
        f"SELECT id, (length(text) - length(replace(text, ?, ''))) / length(?) AS n FROM chunks "
        f"WHERE collection_id IN ({marks}) AND text LIKE ? ESCAPE '\\' ORDER BY n DESC, id LIMIT ?",
        [needle, needle, *ids, f"%{escaped}%", limit]).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


# ---------------------------------------------------------------------------------------
# Vectors.


class VectorCache:
    """Collections' vectors held in memory as one matrix each, for a process that searches often.

    sqlite-vec scans its table from SQLite pages on every query (this build has no SIMD); a
    matrix product over the same vectors is several times faster. A collection is read into
    memory the second time it is searched (a one-off search, as ``r1desk search`` makes, is
    left to sqlite-vec rather than paying for the read), and read again when its
    ``vectors_version`` changed (any vector written or deleted since). The read (about two
    seconds at 100,000 chunks) happens on a thread of its own, through a connection of its
    own, while sqlite-vec goes on answering; searches use the matrix once it is there
    (``background=False``, or a database in memory: read at once, in the search). Collections
    whose vectors would take more than ``max_bytes`` in all are left to sqlite-vec.
    """

    def __init__(self, max_bytes: int = 512 << 20, *, load_after: int = 1, background: bool = True):
        self.max_bytes = max_bytes
        self.load_after = load_after  # searches of a collection that go to sqlite-vec first
        self.background = background
        self._held: dict[tuple[str, int], tuple[int, str, np.ndarray, np.ndarray]] = {}
        self._searched: dict[tuple[str, int], int] = {}
        self._loading: dict[tuple[str, int], threading.Thread] = {}
        self._lock = threading.Lock()

    def _matrix(self, db: Database, collection: Collection) -> tuple[np.ndarray, np.ndarray] | None:
        key = (db.path, collection.id)
        with self._lock:
            held = self._held.get(key)
            if held is not None and held[0] == collection.vectors_version and held[1] == collection.embedding_model:
                return held[2], held[3]
            self._searched[key] = self._searched.get(key, 0) + 1
            if self._searched[key] <= self.load_after:
                return None
            others = sum(m.nbytes for k, (_, _, _, m) in self._held.items() if k != key)
            if store.row_counts(db, collection)["vectors"] * (collection.embedding_dim or 0) * 4 + others > self.max_bytes:
                self._held.pop(key, None)
                return None
            if self.background and _on_disk(db):
                if key not in self._loading:
                    loader = threading.Thread(target=self._load, args=(key, collection), daemon=True,
                                              name="r1desk-vectors")
                    self._loading[key] = loader
                    loader.start()
                return None
        return self._read(db, key, collection)

    def _read(self, db: Database, key: tuple[str, int], collection: Collection) -> tuple[np.ndarray, np.ndarray]:
        """Read the collection's vectors from ``db`` and hold them, labelled with its version and model."""
        ids, matrix = store.all_vectors(db, collection)
        with self._lock:
            self._held[key] = (collection.vectors_version, collection.embedding_model or "", ids, matrix)
        return ids, matrix

    def _load(self, key: tuple[str, int], collection: Collection) -> None:
        from r1desk.engine.db.database import open_db

        try:
            own = open_db(key[0], migrate_schema=False)
            try:
                self._read(own, key, collection)
            finally:
                own.close()
        except Exception:  # noqa: BLE001 - sqlite-vec goes on answering; the next search tries again
            pass
        finally:
            with self._lock:
                self._loading.pop(key, None)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the reads under way; whether none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                loaders = list(self._loading.values())
            if not loaders:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            loaders[0].join(left)

    def nearest(self, db: Database, collection: Collection, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        held = self._matrix(db, collection)
        if held is None:
            return store.nearest(db, collection, query, k)
        ids, matrix = held
        if not len(ids):
            return []
        sims = matrix @ np.asarray(query, dtype=np.float32)
        k = min(k, len(ids))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(int(ids[i]), float(sims[i])) for i in top]

    def forget(self) -> None:
        self.wait()
        with self._lock:
            self._held.clear()
            self._searched.clear()


def _on_disk(db: Database) -> bool:
    """Whether another connection can open ``db`` (not a database in memory)."""
    path = str(db.path)
    return bool(path) and path != ":memory:" and not path.startswith("file::memory:") and os.path.isfile(path)


# The cache searches use unless given another (``cache=None``); ``cache=False`` asks sqlite-vec.
shared_cache = VectorCache()


def vector_confidence(similarities: Sequence[float]) -> float:
    """How much to trust a vector ranking for this question, from 0.1 to 1.

    When the embedding model understands the question, the best passage stands out from the
    other candidates; when it does not (a question in a language the model was not trained
    on), every passage is about as similar as the next. How far the best similarity lies above
    the others, in their standard deviations (z), says which: z of 4 or more is trusted fully,
    2 or less hardly at all. It needs no knowledge of the model's similarity scale.
    """
    s = np.asarray(similarities, dtype=np.float64)
    if len(s) < 8:
        return 1.0  # too few passages to tell; a small collection is searched by both anyway
    rest = s[1:]
    z = (s[0] - rest.mean()) / (rest.std() + 1e-9)
    return float(min(1.0, max(0.1, (z - CONFIDENT_Z[0]) / (CONFIDENT_Z[1] - CONFIDENT_Z[0]))))


def vector_ranking(db: Database, collections: Sequence[Collection], query_vector: np.ndarray,
                   limit: int = CANDIDATES, cache: VectorCache | None | bool = None) -> list[tuple[int, float]]:
    """(chunk id, cosine similarity) over the collections, best first."""
    if cache is None:
        cache = shared_cache
    found: list[tuple[int, float]] = []
    for collection in collections:
        if cache is False:
            found += store.nearest(db, collection, query_vector, limit)
        else:
            found += cache.nearest(db, collection, query_vector, limit)
    found.sort(key=lambda p: -p[1])
    return found[:limit]


# ---------------------------------------------------------------------------------------
# Search.


def _resolve(db: Database, collections: Sequence[Collection | str]) -> list[Collection]:
    out = []
    for c in collections:
        out.append(c if isinstance(c, Collection) else store.get_collection(db, c))
    return out


def _fuse(rankings: dict[str, list[tuple[int, float]]], weights: dict[str, float]) -> dict[int, tuple[float, dict[str, int]]]:
    fused: dict[int, tuple[float, dict[str, int]]] = {}
    for name, ranking in rankings.items():
        w = weights.get(name, 1.0)
        for rank, (chunk_id, _score) in enumerate(ranking, start=1):
            score, ranks = fused.get(chunk_id, (0.0, {}))
            ranks[name] = rank
            fused[chunk_id] = (score + w / (RRF_K + rank), ranks)
    return fused


def search(db: Database, collections: Sequence[Collection | str], query: str, *, mode: str = "hybrid",
           k: int = DEFAULT_K, embedder: Any = None, cache: VectorCache | None | bool = None,
           weights: dict[str, float] | None = None) -> SearchResult:
    """The ``k`` chunks of ``collections`` that best match ``query``, ranked by ``mode``.

    ``embedder`` (an ``engine.docs.embedder.Embedder``) embeds the question; vector search
    only covers collections whose vectors come from that same model, through ``cache``
    (``shared_cache`` by default; False: sqlite-vec alone). Without it, or where no
    collection has its vectors, ``hybrid`` is full-text only and says so in ``notes``;
    ``vector`` mode is refused.
    """
    if mode not in MODES:
        raise CollectionError(f"unknown search mode {mode!r} (choose {', '.join(MODES)})",
                              facts={"code": "bad-search-mode", "mode": mode})
    chosen = _resolve(db, collections)
    result = SearchResult(hits=[], mode=mode)
    query = query.strip()
    if not query or not chosen:
        return result
    explicit = set(weights or {})
    weights = {**WEIGHTS, **(weights or {})}
    rankings: dict[str, list[tuple[int, float]]] = {}
    t0 = time.perf_counter()

    # The question is embedded and the vectors searched on a thread of their own while the
    # full-text indexes are searched here: the model process, SQLite and the matrix product
    # all let go of the GIL, so a hybrid search takes about as long as the slower half.
    vector_part: _Part | None = None
    if mode in ("vector", "hybrid"):
        searchable = _vector_collections(chosen, embedder, result)
        if searchable:
            vector_part = _Part(_vector_search, db, searchable, embedder, query, cache)
            if mode == "hybrid":
                vector_part.start()
            else:
                vector_part.run()
        elif mode == "vector":
            reason = result.notes[0] if result.notes else "no collection has vectors"
            raise CollectionError(f"vector search is not possible: {reason}",
                                  facts={"code": "no-vectors", **(result.facts[0] if result.facts else {})})

    if mode in ("fts", "hybrid"):
        terms = query_terms(query)
        if terms:
            rankings["words"] = words_ranking(db, chosen, query)
        trigram = trigram_ranking(db, chosen, query, words_too=not rankings.get("words"))
        if trigram:
            rankings["trigram"] = trigram
        if not terms and not trigram and len(query) < 3:
            # One or two characters neither index holds (a stop word, a mark): look for them as they are.
            rankings["substring"] = substring_ranking(db, chosen, query)
        result.seconds["fts"] = time.perf_counter() - t0

    similarity: dict[int, float] = {}
    if vector_part is not None:
        ranking, embed_seconds, vector_seconds = vector_part.result()
        rankings["vector"] = ranking
        similarity = dict(ranking)
        result.seconds["embed"] = embed_seconds
        result.seconds["vector"] = vector_seconds

    if "vector" in rankings and "vector" not in explicit:
        weights["vector"] *= vector_confidence([s for _, s in rankings["vector"]])
    fused = _fuse(rankings, weights)
    words_score = dict(rankings.get("words", []))
    names = {c.id: c.name for c in chosen}
    owner = _owners(db, list(fused))
    ordered = sorted(fused.items(), key=lambda item: (-item[1][0], item[0]))[:k]
    for chunk_id, (score, ranks) in ordered:
        if mode == "vector":
            score = similarity.get(chunk_id, 0.0)
        elif mode == "fts" and "words" in ranks and len(rankings) == 1:
            score = words_score[chunk_id]
        result.hits.append(Hit(chunk_id, names.get(owner.get(chunk_id), ""), score, ranks,
                               similarity.get(chunk_id), words_score.get(chunk_id)))
    result.seconds["total"] = time.perf_counter() - t0
    return result


class _Part(threading.Thread):
    """One half of a search, run on a thread (``start``) or in place (``run``); ``result()`` gives
    what it returned or raises what it raised."""

    def __init__(self, fn: Callable[..., Any], *args: Any):
        super().__init__(name="r1desk-search", daemon=True)
        self.fn, self.args = fn, args
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = False

    def run(self) -> None:
        try:
            self.value = self.fn(*self.args)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            self.error = exc
        self.done = True

    def result(self) -> Any:
        if not self.done:
            self.join()
        if self.error is not None:
            raise self.error
        return self.value


def _vector_search(db: Database, collections: list[Collection], embedder: Any, query: str,
                   cache: VectorCache | None | bool) -> tuple[list[tuple[int, float]], float, float]:
    t0 = time.perf_counter()
    qv = embedder.embed_query(query)
    t1 = time.perf_counter()
    ranking = vector_ranking(db, collections, qv, cache=cache)
    return ranking, t1 - t0, time.perf_counter() - t1


def _owners(db: Database, chunk_ids: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for start in range(0, len(chunk_ids), 500):
        part = chunk_ids[start:start + 500]
        marks = ",".join("?" * len(part))
        out.update((int(a), int(b)) for a, b in db.execute(
            f"SELECT id, collection_id FROM chunks WHERE id IN ({marks})", part).fetchall())
    return out


def _vector_collections(collections: list[Collection], embedder: Any, result: SearchResult) -> list[Collection]:
    if embedder is None:
        if any(c.embedding_model for c in collections):
            result.notes.append("no embedding model is loaded: full-text search only")
            result.facts.append({"code": "no-embedding-model"})
        else:
            result.notes.append("the collection has no vectors (indexed without an embedding model): full-text search only")
            result.facts.append({"code": "no-vectors"})
        return []
    out = []
    for c in collections:
        if c.embedding_model is None:
            result.notes.append(f"{c.name} has no vectors yet: full-text search only there")
            result.facts.append({"code": "no-vectors", "collection": c.name})
        elif c.embedding_model != embedder.model_id:
            result.notes.append(f"{c.name} was embedded with {c.embedding_model}, not {embedder.model_id}: "
                                "full-text search only there until it is indexed again with this model")
            result.facts.append({"code": "other-embedding-model", "collection": c.name,
                                 "model": c.embedding_model, "query_model": embedder.model_id})
        else:
            out.append(c)
    return out


# ---------------------------------------------------------------------------------------
# Sources for a prompt.


def _stitch(first: str, second: str) -> str:
    """``first`` then ``second``, without the sentences the second repeats (chunks overlap)."""
    probe = second[: min(60, len(second))]
    if probe:
        at = first.rfind(probe, max(0, len(first) - 4 * len(second) - 200))
        if at >= 0 and second.startswith(first[at:]):
            return first[:at] + second
    return first.rstrip() + "\n" + second.lstrip()


@dataclass
class _Picked:
    hit: Hit
    doc_id: int
    chunks: list[StoredChunk]  # contiguous, in ordinal order

    @property
    def first(self) -> int:
        return self.chunks[0].ordinal

    @property
    def last(self) -> int:
        return self.chunks[-1].ordinal

    def text(self) -> str:
        out = self.chunks[0].text
        for c in self.chunks[1:]:
            out = _stitch(out, c.text)
        return out


def _default_counter() -> CountTokens:
    from r1desk.engine.docs.chunking import approx_tokens

    return approx_tokens


def retrieve(db: Database, collections: Sequence[Collection | str], query: str, budget: int | None,
             embedder: Any = None, *, mode: str = "hybrid", k: int = DEFAULT_K, neighbours: int = 1,
             count_tokens: CountTokens | None = None, cache: VectorCache | None | bool = None,
             notes: list[str] | None = None) -> list[Source]:
    """The sources to put in the prompt for ``query``: at most ``k``, fitting ``budget`` tokens.

    ``budget``: tokens of the chat model left for sources (None: no limit); ``count_tokens``
    counts them (the chat model's tokenizer; an estimate when not given). The best chunks are
    taken first, whole; then each, best first, grows by up to ``neighbours`` chunks on each
    side while room is left. A hit next to one already taken joins it instead of standing
    alone. Sources are numbered from 1 in rank order. ``notes``, when given, receives what the
    user should know about the search (full-text only, and why).
    """
    count = count_tokens or _default_counter()
    result = search(db, collections, query, mode=mode, k=max(3 * k, 20), embedder=embedder, cache=cache)
    if notes is not None:
        notes.extend(result.notes)
    if not result.hits:
        return []
    chunks = store.chunks_by_id(db, [h.chunk_id for h in result.hits])
    picked: list[_Picked] = []
    left = budget if budget is not None else None
    for hit in result.hits:
        if len(picked) >= k:
            break
        chunk = chunks.get(hit.chunk_id)
        if chunk is None:
            continue  # deleted since the search (a watched file changed)
        joined = _join_adjacent(db, picked, chunk, count, left)
        if joined is not None:
            if left is not None:
                left -= joined
            continue
        cost = count([chunk.text])[0] + SOURCE_OVERHEAD_TOKENS
        if left is not None and cost > left:
            if picked or left < SOURCE_OVERHEAD_TOKENS + 16:
                continue  # a shorter passage further down may still fit
            chunk = _cut_to(chunk, left - SOURCE_OVERHEAD_TOKENS, count)
            cost = left
        picked.append(_Picked(hit, chunk.document_id, [chunk]))
        if left is not None:
            left -= cost
    if neighbours > 0 and picked:
        left = _grow(db, picked, neighbours, count, left)
    return _sources(db, picked, count)


def _join_adjacent(db: Database, picked: list[_Picked], chunk: StoredChunk, count: CountTokens,
                   left: int | None) -> int | None:
    """If ``chunk`` touches or lies in a source already taken, add it there; returns the tokens it cost."""
    for p in picked:
        if p.doc_id != chunk.document_id:
            continue
        if p.first <= chunk.ordinal <= p.last:
            return 0
        if chunk.ordinal in (p.first - 1, p.last + 1):
            before = count([p.text()])[0]
            trial = [chunk, *p.chunks] if chunk.ordinal < p.first else [*p.chunks, chunk]
            after = count([_Picked(p.hit, p.doc_id, trial).text()])[0]
            if left is not None and after - before > left:
                return None
            p.chunks = trial
            _merge_touching(picked, p)
            return after - before
    return None


def _merge_touching(picked: list[_Picked], grown: _Picked) -> None:
    """A source that grew until it touches another of the same file becomes one with it (in the
    better one's place)."""
    for q in list(picked):
        if q is grown or q.doc_id != grown.doc_id:
            continue
        if q.first <= grown.last + 1 and grown.first <= q.last + 1:
            keep, drop = (q, grown) if picked.index(q) < picked.index(grown) else (grown, q)
            by_ordinal = {c.ordinal: c for c in [*keep.chunks, *drop.chunks]}
            keep.chunks = [by_ordinal[o] for o in sorted(by_ordinal)]
            picked.remove(drop)
            _merge_touching(picked, keep)
            return


def _grow(db: Database, picked: list[_Picked], neighbours: int, count: CountTokens, left: int | None) -> int | None:
    for p in picked:
        for _ in range(neighbours):
            for side in (-1, 1):
                ordinal = p.first - 1 if side < 0 else p.last + 1
                if any(q is not p and q.doc_id == p.doc_id and q.first <= ordinal <= q.last for q in picked):
                    continue
                row = db.execute(
                    "SELECT id, document_id, ordinal, text, page, page_end, line_start, line_end, heading_path, "
                    "char_start, char_end, tokens FROM chunks WHERE document_id = ? AND ordinal = ?",
                    [p.doc_id, ordinal]).fetchone()
                if row is None:
                    continue
                neighbour = store._stored_chunk(row)
                if neighbour.headings != p.chunks[0].headings:
                    continue  # another section: it is not the context of this passage
                before = count([p.text()])[0]
                trial = [neighbour, *p.chunks] if side < 0 else [*p.chunks, neighbour]
                after = count([_Picked(p.hit, p.doc_id, trial).text()])[0]
                if left is not None and after - before > left:
                    continue
                p.chunks = trial
                if left is not None:
                    left -= after - before
    return left


def _cut_to(chunk: StoredChunk, tokens: int, count: CountTokens) -> StoredChunk:
    """The chunk with its text cut to about ``tokens`` (the budget is smaller than one chunk)."""
    text = chunk.text
    have = max(1, count([text])[0])
    while have > tokens and len(text) > 1:
        text = text[: max(1, int(len(text) * tokens / have * 0.95))]
        have = count([text])[0]
    cut = StoredChunk(**{**chunk.__dict__, "text": text})
    if cut.char_start is not None:
        cut.char_end = cut.char_start + len(text)
    return cut


def _sources(db: Database, picked: list[_Picked], count: CountTokens) -> list[Source]:
    paths = {}
    doc_ids = list({p.doc_id for p in picked})
    marks = ",".join("?" * len(doc_ids))
    for doc_id, path in db.execute(f"SELECT id, path FROM documents WHERE id IN ({marks})", doc_ids).fetchall():
        paths[doc_id] = path
    out = []
    for n, p in enumerate(picked, start=1):
        first, last = p.chunks[0], p.chunks[-1]
        matched = next((c for c in p.chunks if c.id == p.hit.chunk_id), first)
        text = p.text()
        out.append(Source(
            n=n, collection=p.hit.collection, path=paths.get(p.doc_id, ""), text=text, score=p.hit.score,
            document_id=p.doc_id, chunk_id=matched.id, chunk_ids=[c.id for c in p.chunks],
            page=matched.page, page_end=matched.page_end if matched.page_end != matched.page else None,
            line_start=matched.line_start, line_end=matched.line_end,
            headings=list(matched.headings), char_start=first.char_start, char_end=last.char_end,
            similarity=p.hit.similarity, ranks=dict(p.hit.ranks), tokens=count([text])[0],
        ))
    return out
