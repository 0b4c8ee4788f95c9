"""Saving a long streaming reply: the m002 search-index trigger against m003's, same text, same run.

    .venv/bin/python bench/bench_history.py [--chars 80000] [--delta 40] [--every 2] [--reps 3]

Streams a synthetic DeepSeek-R1 reply of about 20,000 tokens (80,000 characters: three quarters
reasoning, then the answer, in 40-character deltas) into a real database file through History,
saving the whole text so far every ``--every`` deltas as ChatService does (it saves every half
second: at 20-40 tokens/s, one or two such deltas), then finishing the reply. Done once on
a database at the m002 schema (which re-indexes the whole reply at every save) and once on one
at m003 (which indexes it when it ends), alternating, ``--reps`` times; medians are reported.
Prints the figures and writes bench/results/history.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r1desk.engine.chat.history import History
from r1desk.engine.db import database as storage

WORDS = (
    "the user wants a proof that the sum converges so first check the terms bound by a geometric "
    "series wait maybe a comparison test works better let me recompute the ratio of consecutive "
    "terms which tends to one half hence absolutely convergent but the question also asks about "
    "the rate 上下文 推理 答案 因此 所以 and whether the constant can be improved hmm"
).split()
EDGE = 10  # saves averaged at the start and at the end


def synthetic(chars: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:chars]


def stream_once(schema: list, folder: Path, text: str, delta: int, every: int) -> dict:
    storage.MIGRATIONS[:] = schema
    db = storage.open_db(folder / f"{schema[-1].__name__}-{time.monotonic_ns()}.db")
    history = History(db)
    cid = history.create_conversation(title="bench")
    history.add_message(cid, "user", "Prove that the series converges, and how fast.")
    mid = history.start_reply(cid, "bench-model")
    split = len(text) * 3 // 4  # reasoning first, then the answer, as R1 writes them
    reasoning, content = text[:split], text[split:]
    deltas = [("r", reasoning[i:i + delta]) for i in range(0, len(reasoning), delta)]
    deltas += [("c", content[i:i + delta]) for i in range(0, len(content), delta)]
    got = {"r": [], "c": []}
    saves: list[float] = []
    for n, (kind, piece) in enumerate(deltas, start=1):
        got[kind].append(piece)
        if n % every == 0:
            t0 = time.perf_counter()
            history.save_partial(mid, "".join(got["c"]), "".join(got["r"]))
            saves.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    history.finish_reply(mid, "".join(got["c"]), "".join(got["r"]), "complete", {"completion_tokens": len(text) // 4})
    finish = time.perf_counter() - t0
    assert [r["id"] for r in history.search("converges, and how fast")] != []
    found = history.search(text[-60:-30].strip())
    assert any(r["id"] == mid for r in found), "the finished reply is searchable"
    db.close()
    return {
        "saves": len(saves),
        "total_save_s": sum(saves),
        "first_saves_ms": statistics.mean(saves[:EDGE]) * 1000,
        "last_saves_ms": statistics.mean(saves[-EDGE:]) * 1000,
        "finish_ms": finish * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chars", type=int, default=80_000)
    parser.add_argument("--delta", type=int, default=40)
    parser.add_argument("--every", type=int, default=2, help="deltas between saves")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    full = list(storage.MIGRATIONS)
    m002 = full[: [m.__name__ for m in full].index("m002_file_hashes") + 1]
    schemas = {"m002_trigger": m002, "m003_trigger": full}
    text = synthetic(args.chars)
    runs: dict[str, list[dict]] = {name: [] for name in schemas}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for _ in range(args.reps):
                for name, schema in schemas.items():  # alternating, so drift hits both alike
                    runs[name].append(stream_once(schema, Path(tmp), text, args.delta, args.every))
        finally:
            storage.MIGRATIONS[:] = full
    results: dict = {
        "reply_chars": len(text), "delta_chars": args.delta, "deltas_per_save": args.every,
        "reps": args.reps, "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
        "machine": platform.platform(), "note": "medians over reps; per-save figures are the mean of the "
                                                f"first and last {EDGE} saves",
    }
    for name, done in runs.items():
        results[name] = {key: round(statistics.median(r[key] for r in done), 3) for key in done[0]}
    old, new = results["m002_trigger"], results["m003_trigger"]
    results["total_save_speedup"] = round(old["total_save_s"] / new["total_save_s"], 1)
    for name in schemas:
        r = results[name]
        print(f"{name}: {r['saves']} saves, total {r['total_save_s']:.3f} s; per save {r['first_saves_ms']:.2f} ms "
              f"at the start, {r['last_saves_ms']:.2f} ms at the end; finish {r['finish_ms']:.2f} ms")
    print(f"total save time, m002 / m003: {results['total_save_speedup']}x")
    out = ROOT / "bench" / "results" / "history.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
