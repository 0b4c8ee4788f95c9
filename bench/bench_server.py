"""Generation through ``r1desk serve`` (the official openai client, streaming over loopback HTTP)
against the engine called directly, same model, same process, same run; and latency under a
few concurrent clients.

    .venv/bin/python bench/bench_server.py [--model PATH] [--tokens 256] [--reps 5] [--clients 4]

Runs alternate A/B; medians are reported. Writes bench/results/server.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "Write a long, detailed story about a dragon who organises a library in a mountain kingdom."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    os.environ["R1DESK_HOME"] = tempfile.mkdtemp(prefix="r1desk-bench-")

    import uvicorn
    from openai import OpenAI

    from r1desk.engine.chat.service import ChatService, SamplingParams, build_messages
    from r1desk.engine.inference.host import LoadOptions
    from r1desk.server.api import create_app

    if args.model:
        model = args.model
    else:
        from tests.support.models import smollm2_path

        model = str(smollm2_path())
    chat = ChatService()
    info = chat.load_model(model, LoadOptions(n_ctx=4096))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(chat), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=600)

    def via_server(rep: int) -> dict:
        t0 = time.perf_counter()
        first = last = None
        usage = None
        for chunk in client.chat.completions.create(
                model="x", temperature=0, max_tokens=args.tokens, stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": f"[{rep}] {PROMPT}"}]):
            if chunk.choices and (chunk.choices[0].delta.content or (chunk.choices[0].delta.model_extra or {}).get(
                    "reasoning_content")):
                now = time.perf_counter()
                first = first or now
                last = now
            if chunk.usage is not None:
                usage = chunk.usage
        n = usage.completion_tokens
        return {"ttft_ms": (first - t0) * 1000, "tps": (n - 1) / (last - first), "total_s": time.perf_counter() - t0}

    def direct(rep: int) -> dict:
        from types import SimpleNamespace

        params = SamplingParams(temperature=0.0, max_tokens=args.tokens).resolved(info)
        msgs = build_messages([SimpleNamespace(role="user", content=f"[{rep}] {PROMPT}", status="complete")],
                              r1=info.is_r1)
        t0 = time.perf_counter()
        first = last = None
        stats = {}
        for ev in chat.host.chat(msgs, dict(params, open_thinking=info.is_r1)):
            if ev[0] in ("c", "r"):
                now = time.perf_counter()
                first = first or now
                last = now
            elif ev[0] == "done":
                stats = ev[1]
        n = stats["completion_tokens"]
        return {"ttft_ms": (first - t0) * 1000, "tps": (n - 1) / (last - first), "total_s": time.perf_counter() - t0}

    via_server(-1)
    direct(-2)  # warm-up
    server_rows, direct_rows = [], []
    for rep in range(args.reps):
        server_rows.append(via_server(2 * rep))
        direct_rows.append(direct(2 * rep + 1))

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    # Latency with several clients at once (each request waits its turn on the one model).
    latencies: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        t0 = time.perf_counter()
        client.chat.completions.create(model="x", temperature=0, max_tokens=32,
                                       messages=[{"role": "user", "content": f"Client {i}: name a colour."}])
        with lock:
            latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.clients * 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(round(p * (len(latencies) - 1))))]

    result = {
        "model": Path(model).name, "tokens": args.tokens, "reps": args.reps,
        "server_tokens_per_second": med(server_rows, "tps"), "engine_tokens_per_second": med(direct_rows, "tps"),
        "tokens_per_second_ratio": med(server_rows, "tps") / med(direct_rows, "tps"),
        "server_ttft_ms": med(server_rows, "ttft_ms"), "engine_ttft_ms": med(direct_rows, "ttft_ms"),
        "concurrent_requests": len(latencies), "latency_p50_s": pct(0.5), "latency_p95_s": pct(0.95),
        "load_average": os.getloadavg(),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "server.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"generation tokens/s   server {result['server_tokens_per_second']:.1f} vs engine "
          f"{result['engine_tokens_per_second']:.1f}: ratio {result['tokens_per_second_ratio']:.3f} (target >= 0.95)")
    print(f"time to first token   server {result['server_ttft_ms']:.0f} ms vs engine {result['engine_ttft_ms']:.0f} ms")
    print(f"{len(latencies)} requests from {len(threads)} threads at once (32 tokens each): p50 "
          f"{result['latency_p50_s']:.2f} s, p95 {result['latency_p95_s']:.2f} s")
    server.should_exit = True
    chat.close()


if __name__ == "__main__":
    main()
