"""Indexing a collection: files found, read, cut into chunks, embedded and stored, as a job with progress and cancel.

What users of other apps report most about indexing is that it is slow, hangs, or loses its
progress. Here:

- a run reads only files whose size or modification time changed, and re-chunks and
  re-embeds only those whose content (SHA-256) changed; files that are gone drop out;
- each file is stored in one transaction (document, chunks, full-text rows, vectors), so a run
  that is cancelled or killed leaves every file indexed whole or not at all, and the next run
  goes on from there without doing any finished file again;
- files are read (in the extraction worker, with its time and memory limits) by a thread of
  their own while the embedding model works on the chunks already read, and the chunks of
  several small files go to the model process together;
- a file that cannot be read gets a status and a reason the user can see, and the run goes on;
- without an embedding model the collection is indexed for full-text search, and its vectors
  can be added later without reading the files again.

``index_collection`` is a generator of ``IndexProgress`` events; the last one carries the
run's ``IndexSummary``. The GUI, the CLI and tests consume the same generator.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat as stat_mod
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from r1desk.engine.db.database import Database
from r1desk.engine.docs import store
from r1desk.engine.docs.chunking import TARGET_TOKENS, Chunk, approx_tokens, chunk_document
from r1desk.engine.docs.discover import discover
from r1desk.engine.docs.extract import Extracted, Limits, Problem
from r1desk.engine.docs.store import Collection, Document, NewChunk
from r1desk.engine.errors import Cancelled, CollectionError
from r1desk.engine.events import CancelToken, Progress

EMBED_BATCH = 64  # chunks of several files embedded together
EMBED_SLICE = 256  # a big file's chunks embedded this many at a time, with progress between
PREFETCH_FILES = 8  # files read ahead of the embedding model
HASH_BLOCK = 1 << 20
ETA_CAP_BYTES = 8 << 20  # a file counts at most this much towards the time left (the reader caps text)
# Problems worth another try at the next run even when the file did not change.
RETRY_PROBLEMS = frozenset({"timeout", "crashed", "too-much-memory", "unreadable", "vanished"})


@dataclass
class FileProblem:
    """A file the run could not index: ``code`` from ``extract.PROBLEMS``, ``reason`` one line."""

    path: str
    code: str
    reason: str


@dataclass
class IndexSummary:
    """What a run did. ``notes`` are sentences for the user (``facts`` the same as data)."""

    collection: str
    files: int = 0  # files found under the collection's folders and files
    added: int = 0
    updated: int = 0  # re-chunked because their content changed
    unchanged: int = 0  # not read again (same size and time), or read and found the same
    removed: int = 0
    problems: int = 0  # files with a problem after this run (new or kept)
    new_problems: list[FileProblem] = field(default_factory=list)
    chunks: int = 0  # chunks written this run
    embedded: int = 0  # chunks embedded this run
    embedding_model: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["new_problems"] = [p.__dict__ for p in self.new_problems]
        return d


@dataclass
class IndexProgress(Progress):
    """One step of indexing: ``done``/``total`` count files, ``speed`` is chunks per second.

    ``phase``: "scan" (finding files), "index" (reading, chunking, embedding, storing),
    "embed" (adding vectors to files already indexed), "done" (``summary`` is set).
    ``problem`` is set on the event of a file that could not be indexed.
    """

    phase: str = "index"
    chunks: int = 0
    current: str = ""
    problem: FileProblem | None = None
    summary: IndexSummary | None = None
    unit: str = "files"
    speed_unit: str = "chunks"


# ---------------------------------------------------------------------------------------
# Finding files.


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def discover_files(roots: Sequence[store.Root], token: CancelToken | None = None) -> Iterator[str | FileProblem]:
    """Every document the collection's roots hold, and the problems met finding them."""
    for found in discover([r.path for r in roots], token=token):
        if isinstance(found, Problem):
            yield FileProblem(found.path, found.code, found.reason)
        else:
            yield found.path


# ---------------------------------------------------------------------------------------
# The plan of a run.


@dataclass
class _Work:
    path: str
    size: int
    mtime_ns: int
    prior: Document | None


@dataclass
class _Read:
    """What the reading thread found for one file."""

    work: _Work
    sha256: str | None = None
    same: bool = False  # the content is what the index already holds
    extracted: Extracted | None = None
    chunks: list[Chunk] = field(default_factory=list)
    problem: FileProblem | None = None


def _sha256(path: str, token: CancelToken | None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            if token is not None and token.cancelled:
                raise Cancelled("indexing cancelled")
            h.update(block)
    return h.hexdigest()


def _os_problem(path: str, exc: OSError) -> FileProblem:
    import errno

    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return FileProblem(path, "vanished", "no longer exists (deleted or moved since it was found)")
    if exc.errno == errno.ELOOP:
        return FileProblem(path, "symlink-loop", "a symbolic link that leads back to itself")
    return FileProblem(path, "unreadable", f"the system refused to read it ({exc.strerror or exc})")


class _Reader(threading.Thread):
    """Reads and chunks the planned files ahead of the embedding model, in order."""

    def __init__(self, work: list[_Work], extractor: Any, count_tokens, chunk_options: dict[str, Any],
                 token: CancelToken):
        super().__init__(name="r1desk-index-reader", daemon=True)
        self.work = work
        self.extractor = extractor
        self.count_tokens = count_tokens
        self.chunk_options = chunk_options
        self.token = token
        self.out: queue.Queue[_Read | BaseException | None] = queue.Queue(maxsize=PREFETCH_FILES)

    def _put(self, item: Any) -> bool:
        while not self.token.cancelled:
            try:
                self.out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            for work in self.work:
                if self.token.cancelled:
                    return
                if not self._put(self._read(work)):
                    return
            self._put(None)
        except Cancelled:
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the indexing thread, raised there
            self._put(exc)

    def _read(self, work: _Work) -> _Read:
        try:
            sha = _sha256(work.path, self.token)
        except OSError as exc:
            return _Read(work, problem=_os_problem(work.path, exc))
        prior = work.prior
        if prior is not None and prior.status == "indexed" and prior.sha256 == sha:
            return _Read(work, sha256=sha, same=True)
        result = self.extractor.extract(work.path, token=self.token)
        if isinstance(result, Problem):
            return _Read(work, sha256=sha, problem=FileProblem(work.path, result.code, result.reason))
        chunks = chunk_document(result, count_tokens=self.count_tokens, **self.chunk_options)
        return _Read(work, sha256=sha, extracted=result, chunks=chunks)


def _new_chunks(chunks: Sequence[Chunk]) -> list[NewChunk]:
    return [NewChunk(text=c.text, embedding_text=c.embedding_text, page=c.page, page_end=c.page_end,
                     line_start=c.start_line, line_end=c.end_line, headings=tuple(c.headings),
                     char_start=c.start, char_end=c.end, tokens=c.tokens) for c in chunks]


# ---------------------------------------------------------------------------------------
# The run.


class _Clock:
    """Rate and time left: chunks per second, and the share of the planned bytes read so far."""

    def __init__(self, planned_bytes: int):
        self.started = time.monotonic()
        self.planned = max(1, planned_bytes)
        self.done_bytes = 0
        self.chunks = 0

    def add(self, size: int, chunks: int) -> None:
        self.done_bytes += min(size, ETA_CAP_BYTES)
        self.chunks += chunks

    def rate(self) -> float | None:
        elapsed = time.monotonic() - self.started
        return self.chunks / elapsed if elapsed > 0.5 and self.chunks else None

    def eta(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if self.done_bytes <= 0 or elapsed < 0.5:
            return None
        return elapsed * (self.planned - self.done_bytes) / self.done_bytes


def index_collection(db: Database, name: str, paths: Iterable[str | os.PathLike] = (), *, embedder: Any = None,
                     token: CancelToken | None = None, watch: bool | None = None, only: Iterable[str] | None = None,
                     extractor: Any = None, limits: Limits | None = None,
                     chunk_tokens: int | None = None) -> Iterator[IndexProgress]:
    """Index the collection ``name`` (made if needed), adding ``paths`` (folders or files) to it.

    ``embedder`` (``engine.docs.embedder.Embedder``): vectors for the chunks; without one the
    files are indexed for full-text search, and a later run with one embeds what lacks vectors.
    A different model than the one that made the collection's vectors embeds everything again
    (said in the summary's notes). ``watch``: mark the added paths as watched (or not).
    ``only``: look at these files alone (the watcher's changed files) instead of every file.
    ``extractor``: an ``engine.docs.worker.Extractor`` to read with (one is started otherwise).
    ``chunk_tokens``: the size chunks are filled to (``chunk_size_for(embedder)`` by default).
    Cancel through ``token``: the files stored so far stay, and ``Cancelled`` is raised.
    """
    token = token or CancelToken()
    started = time.monotonic()
    adding = [_checked_path(p) for p in paths]  # all of them exist, or nothing is made
    existing = store.find_collection(db, name)
    if not adding and (existing is None or not existing.roots):
        raise CollectionError(f"{name.strip()} has no folders or files yet: name some to index",
                              facts={"code": "no-such-path", "collection": name})
    collection = existing or store.create_collection(db, name)
    for path in adding:
        _add_path(db, collection, path, watch)
    summary = IndexSummary(collection=collection.name)
    model = None
    if embedder is not None:
        model = embedder.model_id
        previous = collection.embedding_model
        dropped = store.use_embedding_model(db, collection, model, embedder.dim)
        if previous is not None and previous != model:
            summary.notes.append(f"the embedding model changed from {previous} to {model}: "
                                 f"{dropped} chunks are embedded again")
            summary.facts.append({"code": "embedding-model-changed", "from": previous, "to": model,
                                  "chunks": dropped})
    elif collection.embedding_model is not None:
        summary.notes.append(f"no embedding model: files read now are full-text only (the collection's vectors "
                             f"come from {collection.embedding_model}; index again with it to add theirs)")
        summary.facts.append({"code": "no-embedding-model", "model": collection.embedding_model})
    else:
        summary.notes.append("no embedding model: full-text search only; index again with an embedding model "
                             "to add vectors (the files are not read again; 'r1desk pull qwen3-embedding-0.6b' "
                             "gets the one r1desk offers for Chinese and English)")
        summary.facts.append({"code": "no-embedding-model"})
    summary.embedding_model = collection.embedding_model

    for note in summary.notes:
        yield IndexProgress(done=0, total=None, phase="scan", message=f"{collection.name}: {note}")
    yield IndexProgress(done=0, total=None, phase="scan", message=f"{collection.name}: looking for files")
    states = {d.path: d for d in store.documents(db, collection)}
    plan: list[_Work] = []
    seen: set[str] = set()
    found_problems: list[FileProblem] = []
    last_event = time.monotonic()
    # A folder that is itself missing (a drive not plugged in) keeps its files' entries: they
    # come back when it does.
    missing_roots = [r.path for r in collection.roots if not os.path.exists(r.path)]
    candidates: Iterable[str | FileProblem]
    if only is not None:
        candidates = [os.path.abspath(os.fspath(p)) for p in only]
    else:
        candidates = discover_files(collection.roots, token)
    for found in candidates:
        if token.cancelled:
            raise Cancelled("indexing cancelled")
        if isinstance(found, FileProblem):
            if found.path in missing_roots:
                continue
            seen.add(found.path)
            found_problems.append(found)
            continue
        st = _stat(found)
        if only is not None and (st is None or not stat_mod.S_ISREG(st.st_mode)):
            continue  # gone (dropped below) or not a file
        if st is None:
            found_problems.append(FileProblem(found, "vanished", "no longer exists (deleted or moved since it was found)"))
            seen.add(found)
            continue
        seen.add(found)
        prior = states.get(found)
        if _unchanged(prior, st, model):
            summary.unchanged += 1
        else:
            plan.append(_Work(found, st.st_size, st.st_mtime_ns, prior))
        if time.monotonic() - last_event > 0.25:
            last_event = time.monotonic()
            yield IndexProgress(done=len(seen), total=None, phase="scan",
                                message=f"{collection.name}: {len(seen)} files found")

    # Files the index holds that are gone.
    for root in missing_roots:
        summary.notes.append(f"{root} is not there (moved, or on a drive not connected): its files are kept")
        summary.facts.append({"code": "root-missing", "path": root})
    if only is not None:
        gone = [p for p in (os.path.abspath(os.fspath(x)) for x in only) if p in states and p not in seen]
    else:
        gone = [p for p in states if p not in seen and not any(store._under(p, r) for r in missing_roots)]
    if gone:
        summary.removed = store.remove_documents(db, collection, gone)

    for problem in found_problems:
        prior = states.get(problem.path)
        if prior is None or prior.status != "problem" or prior.problem != problem.code:
            store.write_problem(db, collection, path=problem.path, size=None, mtime_ns=None,
                                code=problem.code, reason=problem.reason)
            summary.new_problems.append(problem)

    to_embed = store.documents_without_vectors(db, collection) if embedder is not None else []
    planned = {w.path for w in plan}
    to_embed = [d for d in to_embed if d.path not in planned]
    summary.files = len(seen)
    total = len(plan) + len(to_embed)
    clock = _Clock(sum(min(w.size, ETA_CAP_BYTES) for w in plan) + sum(d.chunks * 2000 for d in to_embed))
    done = 0

    def event(message: str, current: str = "", problem: FileProblem | None = None, phase: str = "index") -> IndexProgress:
        return IndexProgress(done=done, total=total, message=message, speed=clock.rate(), eta=clock.eta(),
                             phase=phase, chunks=summary.chunks, current=current, problem=problem)

    if plan:
        # Chunks are sized by the local estimate: asking the model process would queue each count
        # behind the embedding in progress and stall the reading. The real counts are taken, for
        # many chunks at once, just before they are embedded (see _fit_to_model).
        count_tokens = approx_tokens
        chunk_options: dict[str, Any] = {"target_tokens": chunk_tokens or chunk_size_for(embedder)}
        if embedder is not None:
            chunk_options |= {"max_tokens": embedder.max_tokens, "reserve_tokens": getattr(embedder, "reserve_tokens", 0)}
        own_extractor = extractor is None
        if own_extractor:
            from r1desk.engine.docs.worker import Extractor

            extractor = Extractor(limits)
        # The reader stops when the run does, however it ends (cancel, an error, the consumer
        # closing the generator); the caller's token is not touched.
        stop = CancelToken()
        unhook = token.on_cancel(stop.cancel)
        reader = _Reader(plan, extractor, count_tokens, chunk_options, stop)
        reader.start()
        pending: list[_Read] = []
        try:
            finished = False
            while not finished:
                try:
                    item = reader.out.get(timeout=0.1)
                except queue.Empty:
                    if stop.cancelled:
                        raise Cancelled("indexing cancelled") from None
                    if not reader.is_alive() and reader.out.empty():
                        raise RuntimeError("the reading thread ended without a word")
                    continue
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    if stop.cancelled:
                        raise Cancelled("indexing cancelled")
                    finished = True
                elif item.chunks and embedder is not None:
                    pending.append(item)
                else:
                    done += 1
                    problem = _store_one(db, collection, item, None, summary)
                    clock.add(item.work.size, len(item.chunks))
                    yield event(_said(item), item.work.path, problem)
                    continue
                if pending and (finished or sum(len(p.chunks) for p in pending) >= EMBED_BATCH
                                or reader.out.empty()):
                    if stop.cancelled:
                        raise Cancelled("indexing cancelled")
                    _fit_to_model(pending, embedder, chunk_options)
                    for _ in _embed_and_store(db, collection, pending, embedder, stop, summary, clock):
                        yield event(f"embedding {Path(pending[0].work.path).name}", pending[0].work.path)
                    for item in pending:
                        done += 1
                        yield event(_said(item), item.work.path)
                    pending = []
        finally:
            stop.cancel()
            unhook()
            reader.join(timeout=30)
            if own_extractor:
                extractor.close()

    for document in to_embed:
        if token.cancelled:
            raise Cancelled("indexing cancelled")
        chunks = store.chunks_of(db, document.id)
        texts = [c.embedding_text() for c in chunks]
        vectors = []
        for start in range(0, len(texts), EMBED_SLICE):
            vectors.append(embedder.embed_documents(texts[start:start + EMBED_SLICE], token=token))
            summary.embedded += len(texts[start:start + EMBED_SLICE])
            clock.add(0, len(texts[start:start + EMBED_SLICE]))
            yield event(f"embedding {Path(document.path).name}", document.path, phase="embed")
        store.add_vectors(db, collection, document, [c.id for c in chunks], np.concatenate(vectors), model)
        clock.done_bytes += document.chunks * 2000
        done += 1
        yield event(f"embedded {Path(document.path).name}", document.path, phase="embed")

    final = store.stats(db, collection)
    summary.problems = final.problems
    summary.seconds = time.monotonic() - started
    summary.embedding_model = collection.embedding_model
    yield IndexProgress(done=done, total=total, phase="done", chunks=summary.chunks, speed=clock.rate(), eta=0.0,
                        message=_summary_line(summary), summary=summary)


def chunk_size_for(embedder: Any) -> int:
    """Tokens a chunk is filled to: a quarter of the embedding model's context, 96 to 256.

    Models with BERT's 512 positions (MiniLM, bge-small) were trained on sentences and short
    passages, and a vector of 128 tokens says more about each of them than one of 256 (measured
    on the test corpus with MiniLM: recall@5 of vector search 0.94 against 0.82 in English).
    Neighbouring chunks are added to a source when there is room, so a short chunk still
    comes with its context. Without a model: 128.
    """
    if embedder is None:
        return 128
    return max(96, min(TARGET_TOKENS, int(embedder.max_tokens) // 4))


def _checked_path(p: str | os.PathLike) -> str:
    path = os.path.abspath(os.path.expanduser(os.fspath(p)))
    if not os.path.exists(path):
        raise CollectionError(f"{path}: no such file or folder", facts={"code": "no-such-path", "path": path})
    return path


def _add_path(db: Database, collection: Collection, path: str, watch: bool | None) -> None:
    kind = "folder" if os.path.isdir(path) else "file"
    existing = next((r for r in collection.roots if r.path == path), None)
    if existing is None:
        store.add_root(db, collection, path, kind, watched=bool(watch))
    elif watch is not None and existing.watched != watch:
        store.set_watched(db, collection, path, watch)


def _unchanged(prior: Document | None, st: os.stat_result, model: str | None) -> bool:
    if prior is None or prior.size != st.st_size or prior.mtime_ns != st.st_mtime_ns:
        return False
    if prior.status == "problem":
        return prior.problem not in RETRY_PROBLEMS
    return True  # a missing vector is added from the stored chunks, without reading the file


def _said(item: _Read) -> str:
    name = Path(item.work.path).name
    if item.problem is not None:
        return f"{name}: {item.problem.reason}"
    if item.same:
        return f"{name}: unchanged"
    return f"{name}: {len(item.chunks)} chunks"


def _store_one(db: Database, collection: Collection, item: _Read, vectors: np.ndarray | None,
               summary: IndexSummary) -> FileProblem | None:
    work = item.work
    if item.problem is not None:
        p = item.problem
        prior = work.prior
        store.write_problem(db, collection, path=work.path, size=work.size, mtime_ns=work.mtime_ns,
                            code=p.code, reason=p.reason)
        if prior is None or prior.problem != p.code:
            summary.new_problems.append(p)
        return p
    if item.same and work.prior is not None:
        store.touch_document(db, work.prior, size=work.size, mtime_ns=work.mtime_ns)
        summary.unchanged += 1
        return None
    ex = item.extracted
    note = "; ".join(ex.notes) if ex is not None and ex.notes else None
    store.write_document(
        db, collection, path=work.path, size=work.size, mtime_ns=work.mtime_ns, sha256=item.sha256,
        chunks=_new_chunks(item.chunks), vectors=vectors, model=collection.embedding_model if vectors is not None else None,
        format=ex.kind if ex else None, title=ex.title if ex else None, pages=ex.pages if ex else None, note=note)
    summary.chunks += len(item.chunks)
    if work.prior is None or work.prior.status == "problem":
        summary.added += 1
    else:
        summary.updated += 1
    return None


def _fit_to_model(pending: list[_Read], embedder: Any, chunk_options: dict[str, Any]) -> None:
    """Count the pending chunks with the embedding model's own tokenizer (one request for all);
    a file with a chunk the estimate got wrong, longer than the model takes, is cut again
    with the real counter (rare: chunks are filled to a quarter of the model's context)."""
    texts = [c.embedding_text for item in pending for c in item.chunks]
    counts = embedder.count_tokens(texts) if texts else []
    limit = int(chunk_options.get("max_tokens", embedder.max_tokens)) - int(chunk_options.get("reserve_tokens", 0))
    at = 0
    for item in pending:
        mine = counts[at:at + len(item.chunks)]
        at += len(item.chunks)
        if any(n > limit for n in mine) and item.extracted is not None:
            item.chunks = chunk_document(item.extracted, count_tokens=embedder.count_tokens, **chunk_options)
            continue
        for chunk, n in zip(item.chunks, mine):
            chunk.tokens = n


def _embed_and_store(db: Database, collection: Collection, pending: list[_Read], embedder: Any,
                     token: CancelToken, summary: IndexSummary, clock: _Clock) -> Iterator[None]:
    """Embed the pending files' chunks together (a big file in slices), then store each file."""
    texts = [c.embedding_text for item in pending for c in item.chunks]
    parts = []
    for start in range(0, len(texts), EMBED_SLICE):
        part = texts[start:start + EMBED_SLICE]
        parts.append(embedder.embed_documents(part, token=token))
        summary.embedded += len(part)
        if start + EMBED_SLICE < len(texts):
            yield None
    vectors = np.concatenate(parts)
    at = 0
    for item in pending:
        n = len(item.chunks)
        _store_one(db, collection, item, vectors[at:at + n], summary)
        clock.add(item.work.size, n)
        at += n


def _summary_line(s: IndexSummary) -> str:
    parts = [f"{s.collection}: {s.files} files"]
    for count, what in ((s.added, "added"), (s.updated, "updated"), (s.unchanged, "unchanged"),
                        (s.removed, "removed"), (s.problems, "with problems")):
        if count:
            parts.append(f"{count} {what}")
    line = ", ".join(parts) + f"; {s.chunks} chunks written, {s.embedded} embedded in {s.seconds:.1f} s"
    return line
