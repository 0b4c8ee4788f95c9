"""The document index: indexing speed against raw llama.cpp embeddings, retrieval latency at 10k and
100k chunks, and recall@5 of full-text, vector and hybrid search.

    .venv/bin/python bench/bench_docs.py [--copies 3] [--reps 2] [--sizes 10000,100000] [--queries 3]

1. Indexing throughput: the generated test corpus (tests/support/corpus.py: 17 English and
   Chinese files, PDF, DOCX, Markdown, HTML, text, CSV, code), ``--copies`` times in separate
   folders, indexed by ``index_collection`` with the converted all-MiniLM-L6-v2 in its model
   process (extraction worker, chunking, embedding, SQLite writes and full-text indexes all
   counted; the models already loaded), against the same chunk texts given to
   ``llama_cpp.Llama(embedding=True).embed`` in this process, same build, same threads.
   Runs alternate (raw, index, raw, index...); medians. The same indexing with an embedder that
   costs nothing says what the rest of the pipeline takes.
2. Retrieval latency: a database of synthetic chunks (generated English and Chinese text with a
   long-tailed vocabulary, random clustered 384-wide vectors), searched at each size with
   the corpus's questions and short Chinese and English queries, each ``--queries`` times:
   full-text, vector (sqlite-vec, and the in-memory ``VectorCache``), hybrid, and ``retrieve``
   with a 3,000-token budget and neighbours. The question's embedding is not included (given
   separately: MiniLM embedding one question).
3. recall@5 of the chunk holding each of the corpus's 27 facts, asked in other words, for the
   three modes, in English and in Chinese.

Prints the figures and writes bench/results/docs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r1desk.engine.db.database import open_db  # noqa: E402
from r1desk.engine.docs import index, retrieval, store  # noqa: E402
from r1desk.engine.docs.embedder import HostEmbedder  # noqa: E402
from r1desk.engine.docs.store import NewChunk  # noqa: E402
from tests.support.corpus import Filler, build_corpus  # noqa: E402
from tests.support.models import minilm_gguf_path  # noqa: E402

THREADS = 2
DIM = 384


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- 1. indexing against raw embeddings --------------------------------------------------------

def index_once(folder: Path, copies: Path, embedder) -> tuple[float, int, list[str]]:
    db = open_db(folder / f"index-{time.monotonic_ns()}.db")
    t0 = time.perf_counter()
    *_, last = index.index_collection(db, "bench", [copies], embedder=embedder)
    seconds = time.perf_counter() - t0
    c = store.get_collection(db, "bench")
    texts = [ch.embedding_text() for d in store.documents(db, c) for ch in store.chunks_of(db, d.id)]
    db.close()
    assert last.summary.embedded == len(texts) and last.summary.problems == 0
    return seconds, len(texts), texts


def raw_once(llm, texts: list[str]) -> float:
    t0 = time.perf_counter()
    out = llm.embed(texts, normalize=True)
    seconds = time.perf_counter() - t0
    assert len(out) == len(texts)
    return seconds


def bench_indexing(work: Path, copies: int, reps: int, model: Path) -> dict:
    import llama_cpp

    folder = work / "copies"
    first = build_corpus(work / "corpus")
    for i in range(copies):
        shutil.copytree(first.folder, folder / f"copy-{i}")
    embedder = HostEmbedder.load(model, n_threads=THREADS)
    llm = llama_cpp.Llama(str(model), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=THREADS,
                          verbose=False)
    try:
        _, chunks, texts = index_once(work, folder, embedder)  # warm up both, and learn the texts
        raw_once(llm, texts[:16])
        ours, raw = [], []
        for _ in range(reps):
            raw.append(chunks / raw_once(llm, texts))
            seconds, n, _ = index_once(work, folder, embedder)
            ours.append(n / seconds)
        raw.append(chunks / raw_once(llm, texts))
    finally:
        llm.close()
        embedder.close()
    return {"files": len(first.files) * copies, "chunks": chunks, "index_chunks_per_s": ours,
            "raw_chunks_per_s": raw, "ratio": statistics.median(ours) / statistics.median(raw)}


class _FreeEmbedder:
    """Vectors at no cost: what indexing takes besides the embedding model."""

    model_id, dim, max_tokens, reserve_tokens = "free", DIM, 512, 0

    def embed_documents(self, texts: list[str], token=None) -> np.ndarray:
        v = np.random.default_rng(0).standard_normal((len(texts), DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def count_tokens(self, texts: list[str]) -> list[int]:
        from r1desk.engine.docs.chunking import approx_tokens

        return approx_tokens(texts)


def bench_pipeline(work: Path, copies: int) -> dict:
    """The same indexing with an embedder that costs nothing: extraction, chunking, hashing, SQLite."""
    folder = work / "pipeline"
    first = build_corpus(work / "pipeline-corpus")
    for i in range(copies):
        shutil.copytree(first.folder, folder / f"copy-{i}")
    runs = []
    for _ in range(3):
        seconds, chunks, _ = index_once(work, folder, _FreeEmbedder())
        runs.append(seconds)
    return {"files": len(first.files) * copies, "chunks": chunks, "seconds": runs, "median_s": statistics.median(runs)}


# --- 2. retrieval latency -----------------------------------------------------------------------

class _Vocabulary:
    """Made-up words with a long tail (Zipf), as real text has: most words rare, a few everywhere."""

    def __init__(self, rng: random.Random, size: int = 40_000):
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.words = ["".join(rng.choice(letters) for _ in range(rng.randint(4, 10))) for _ in range(size)]
        self.hanzi = [chr(c) for c in range(0x4E00, 0x4E00 + 3500)]
        weights = 1.0 / np.arange(1, size + 1) ** 1.07
        self.cdf = np.cumsum(weights) / weights.sum()
        self.np_rng = np.random.default_rng(rng.randint(0, 1 << 30))

    def english(self, n: int) -> str:
        idx = np.searchsorted(self.cdf, self.np_rng.random(n))
        return " ".join(self.words[i] for i in idx)

    def chinese(self, n: int) -> str:
        idx = np.searchsorted(self.cdf, self.np_rng.random(n)) % len(self.hanzi)
        return "".join(self.hanzi[i] for i in idx)


def grow(db, collection, target: int, have: int, fill: Filler, vocab: _Vocabulary, centres: np.ndarray,
         rng: np.random.Generator) -> int:
    per_doc = 100
    while have < target:
        chunks, vectors = [], []
        for j in range(per_doc):
            if (have + j) % 3 == 2:
                text = fill.zh_paragraph(3) + vocab.chinese(40)
            else:
                text = fill.en_paragraph(2) + " " + vocab.english(50)
            chunks.append(NewChunk(text, line_start=1 + 5 * j, line_end=5 + 5 * j))
            v = centres[rng.integers(len(centres))] + 0.5 * rng.standard_normal(DIM)
            vectors.append(v / np.linalg.norm(v))
        store.write_document(db, collection, path=f"/synthetic/doc-{have // per_doc:06d}.txt", size=1, mtime_ns=1,
                             sha256="0" * 64, chunks=chunks, vectors=np.array(vectors, dtype=np.float32),
                             model="synthetic")
        have += per_doc
    return have


class _FixedEmbedder:
    """Gives the vector prepared for each question: the search is timed, not the embedding model."""

    model_id, dim = "synthetic", DIM

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def embed_query(self, text: str) -> np.ndarray:
        return self.vectors[text]


def bench_latency(work: Path, sizes: list[int], reps: int, queries: list[str], model: Path) -> dict:
    db = open_db(work / "latency.db")
    c = store.create_collection(db, "synthetic")
    store.use_embedding_model(db, c, "synthetic", DIM)
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((64, DIM))
    fill, vocab = Filler(3), _Vocabulary(random.Random(5))
    qvecs = {}
    for q in queries:
        v = centres[rng.integers(len(centres))] + 0.5 * rng.standard_normal(DIM)
        qvecs[q] = (v / np.linalg.norm(v)).astype(np.float32)
    embedder = _FixedEmbedder(qvecs)
    out: dict[str, dict] = {}
    have = 0
    for size in sizes:
        t0 = time.perf_counter()
        have = grow(db, c, size, have, fill, vocab, centres, rng)
        built = time.perf_counter() - t0
        c = store.get_collection(db, "synthetic")
        cache = retrieval.VectorCache(load_after=0, background=False)
        t0 = time.perf_counter()
        cache.nearest(db, c, qvecs[queries[0]], 5)
        cache_load = time.perf_counter() - t0
        cases = {
            "fts": dict(mode="fts"),
            "vector (sqlite-vec)": dict(mode="vector", embedder=embedder, cache=False),
            "vector (in memory)": dict(mode="vector", embedder=embedder, cache=cache),
            "hybrid (sqlite-vec)": dict(mode="hybrid", embedder=embedder, cache=False),
            "hybrid (in memory)": dict(mode="hybrid", embedder=embedder, cache=cache),
        }
        figures: dict[str, dict] = {"chunks": have, "build_s": built, "cache_load_s": cache_load}
        for name, kw in cases.items():
            times = []
            for _ in range(reps):
                for q in queries:
                    t0 = time.perf_counter()
                    retrieval.search(db, [c], q, k=8, **kw)
                    times.append((time.perf_counter() - t0) * 1000)
            figures[name] = {"p50_ms": statistics.median(times), "p95_ms": pct(times, 0.95), "max_ms": max(times)}
        times = []
        for _ in range(reps):
            for q in queries:
                t0 = time.perf_counter()
                retrieval.retrieve(db, [c], q, 3000, embedder, cache=cache)
                times.append((time.perf_counter() - t0) * 1000)
        figures["retrieve, 3,000 tokens (in memory)"] = {"p50_ms": statistics.median(times), "p95_ms": pct(times, 0.95),
                                                        "max_ms": max(times)}
        out[str(size)] = figures
        print(f"  {have:,} chunks: " + ", ".join(f"{k} p50 {v['p50_ms']:.1f} / p95 {v['p95_ms']:.1f} ms"
                                                 for k, v in figures.items() if isinstance(v, dict)), flush=True)
    db.close()
    # What embedding the question adds, with the real model.
    real = HostEmbedder.load(model, n_threads=THREADS)
    try:
        real.embed_query("warm up")
        times = []
        for q in queries:
            t0 = time.perf_counter()
            real.embed_query(q)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        real.close()
    out["question_embedding_ms"] = {"p50_ms": statistics.median(times), "p95_ms": pct(times, 0.95)}
    return out


# --- 3. recall ---------------------------------------------------------------------------------

def bench_recall(work: Path, model: Path) -> dict:
    corpus = build_corpus(work / "recall-corpus")
    db = open_db(work / "recall.db")
    embedder = HostEmbedder.load(model, n_threads=THREADS)
    try:
        list(index.index_collection(db, "corpus", [corpus.folder], embedder=embedder))
        paths = dict(db.execute("SELECT id, path FROM documents").fetchall())
        out: dict[str, dict] = {}
        for mode in retrieval.MODES:
            found = {"en": [], "zh": []}
            for fact in corpus.facts:
                hits = retrieval.search(db, ["corpus"], fact.question, mode=mode, k=5, embedder=embedder).hits
                chunks = store.chunks_by_id(db, [h.chunk_id for h in hits])
                ok = any(Path(paths[chunks[h.chunk_id].document_id]).name == fact.file
                         and fact.found_in(chunks[h.chunk_id].text) for h in hits)
                found[fact.lang].append(ok)
            both = found["en"] + found["zh"]
            out[mode] = {"all": sum(both) / len(both), "en": sum(found["en"]) / len(found["en"]),
                         "zh": sum(found["zh"]) / len(found["zh"]), "facts": len(both)}
    finally:
        embedder.close()
        db.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=3, help="copies of the corpus to index")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--sizes", default="10000,100000", help="chunk counts for the latency runs")
    ap.add_argument("--queries", type=int, default=3, help="times each query is timed")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: recall,indexing,pipeline,latency")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    model = minilm_gguf_path()
    work = Path(tempfile.mkdtemp(prefix="r1desk-bench-docs-"))
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform()},
                     "model": model.name, "threads": THREADS}
    try:
        if "recall" not in skip:
            print("recall@5 on the generated corpus...", flush=True)
            results["recall_at_5"] = bench_recall(work, model)
            for mode, r in results["recall_at_5"].items():
                print(f"  {mode:7s} all {r['all']:.3f}  English {r['en']:.3f}  Chinese {r['zh']:.3f}")
        if "indexing" not in skip:
            print("indexing vs raw llama.cpp embeddings...", flush=True)
            r = results["indexing"] = bench_indexing(work, args.copies, args.reps, model)
            print(f"  {r['chunks']} chunks from {r['files']} files: index {statistics.median(r['index_chunks_per_s']):.1f}"
                  f" chunks/s, raw {statistics.median(r['raw_chunks_per_s']):.1f} chunks/s, ratio {r['ratio']:.2f}")
        if "pipeline" not in skip:
            print("indexing with the embedding left out...", flush=True)
            r = results["pipeline"] = bench_pipeline(work, args.copies)
            print(f"  {r['chunks']} chunks from {r['files']} files in {r['median_s']:.2f} s")
        if "latency" not in skip:
            print("retrieval latency...", flush=True)
            corpus_questions = [f.question for f in build_corpus(work / "q").facts]
            queries = corpus_questions + ["电池", "年假", "端口", "coolant pump", "budget", "Lisbon office closing"]
            sizes = [int(s) for s in args.sizes.split(",") if s]
            results["latency"] = bench_latency(work, sizes, args.queries, queries, model)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "bench" / "results" / "docs.json"
    if skip and out.exists():  # the parts not run this time keep their last figures
        earlier = json.loads(out.read_text(encoding="utf-8"))
        results = {**{k: v for k, v in earlier.items() if k in ("recall_at_5", "indexing", "pipeline", "latency")},
                   **results}
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
