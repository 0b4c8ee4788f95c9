"""Chat speed through r1desk's engine against llama.cpp's own llama-bench and raw llama-cpp-python,
same model, same build, same run.

    .venv/bin/python bench/bench_chat.py [--model PATH] [--tokens 256] [--reps 5]

Measures, with SmolLM2-135M-Instruct (fetched by the test support) unless --model is given:
1. generation tokens/s: the engine (model in its own process, streaming over a pipe, the reply
   saved to SQLite as it streams), seen where the app sees it, against ``llama-bench`` tg (built
   from the installed bindings' own llama.cpp source by bench/llama_tools.py, run before and
   after the engine, averaged) and against raw ``Llama.create_completion``;
2. prompt tokens/s: a fresh prompt of about 512 tokens through the engine (its tokens over the
   time to the first token) against ``llama-bench`` pp512;
3. time to first token: the engine vs raw ``create_completion`` on the same prompt. Runs
   alternate A/B to cancel out drift; medians are reported;
4. time to first token at turn 10 of a conversation vs turn 1 with the same number of new
   tokens (KV prefix reuse), and the same turn-10 prompt with the cache cleared for contrast;
5. cancel latency: from ``cancel()`` to the end of the stream.
Writes bench/results/chat.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = (
    "Here are my notes from a meeting about moving our team's build system. We talked about "
    "caching, remote execution, how long clean builds take today, the cost of the new machines, "
    "who owns the migration, and which projects go first. Some people worried about flaky tests "
    "and about learning a new tool while shipping a release. Please write a long, detailed story "
    "about a dragon who has to organise the same migration in a mountain kingdom, with many "
    "characters and plenty of dialogue."
)

RAW_WORKER = r"""
import json, sys, time
from llama_cpp import Llama
args = json.loads(sys.argv[1])
llm = Llama(args["model"], n_ctx=args["n_ctx"], n_threads=args["threads"], n_threads_batch=args["threads"],
            n_batch=512, n_ubatch=512, verbose=False)
for line in sys.stdin:
    prompt = json.loads(line)
    t0 = time.perf_counter(); first = None; n = 0
    for chunk in llm.create_completion(prompt, max_tokens=args["tokens"], temperature=0.0, top_k=40,
                                       top_p=0.95, min_p=0.05, repeat_penalty=1.0, stream=True):
        now = time.perf_counter()
        if first is None:
            first = now
        n += 1
        last = now
    print(json.dumps({"ttft_ms": (first - t0) * 1000, "tokens": n,
                      "tps": (n - 1) / (last - first)}), flush=True)
"""


def raw_runs(model: str, n_ctx: int, threads: int, tokens: int):
    proc = subprocess.Popen(
        [sys.executable, "-c", RAW_WORKER, json.dumps({"model": model, "n_ctx": n_ctx, "threads": threads,
                                                       "tokens": tokens})],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )

    def run(prompt: str) -> dict:
        proc.stdin.write(json.dumps(prompt) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    return proc, run


def engine_once(service, prompt_text: str, tokens: int) -> dict:
    from r1desk.engine.chat.service import SamplingParams
    from r1desk.engine.events import ContentDelta, ReasoningDelta, Stats

    params = SamplingParams(temperature=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0, max_tokens=tokens)
    t0 = time.perf_counter()
    first = last = None
    stats = None
    for ev in service.send(None, prompt_text, params):
        if isinstance(ev, (ContentDelta, ReasoningDelta)):
            now = time.perf_counter()
            if first is None:
                first = now
            last = now
        elif isinstance(ev, Stats):
            stats = ev
    # Tokens as the app receives them: the first arrives alone, the rest in pieces, the last
    # piece when the last token is out.
    n = stats.completion_tokens
    return {"ttft_ms": (first - t0) * 1000, "tokens": n, "tps": (n - 1) / (last - first) if n > 1 else None,
            "engine_tps": stats.tokens_per_second, "prompt_read": stats.prompt_tokens_read}


def llama_bench_runs(model: str, threads: int, tokens: int, reps: int, depth: int) -> dict:
    """llama-bench's own figures (tokens/s) on the same model, threads and settings as the engine:
    pp512 from an empty cache, and tg generating after ``depth`` tokens, as the engine does after
    its prompt (attention costs more as the context fills). Flash attention off, the engine's default."""
    sys.path.insert(0, str(ROOT / "bench"))
    from llama_tools import llama_bench

    exe, facts = llama_bench(log=lambda m: print(m, file=sys.stderr))
    common = [str(exe), "-m", model, "-t", str(threads), "-fa", "0", "-r", str(reps), "-o", "json"]
    pp = json.loads(subprocess.run(common + ["-p", "512", "-n", "0"], capture_output=True, text=True,
                                   check=True).stdout)
    tg = json.loads(subprocess.run(common + ["-p", "0", "-n", str(tokens), "-d", str(depth)], capture_output=True,
                                   text=True, check=True).stdout)
    return {"build": facts, "pp512": pp[0]["avg_ts"], f"tg{tokens}": tg[0]["avg_ts"], "depth": depth}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="r1desk-bench-")
    os.environ["R1DESK_HOME"] = home
    from r1desk.engine.chat.service import ChatService, SamplingParams
    from r1desk.engine.events import ContentDelta, Stats
    from r1desk.engine.inference.host import LoadOptions, default_threads

    if args.model:
        model = args.model
    else:
        from tests.support.models import smollm2_path

        model = str(smollm2_path())
    threads = args.threads or default_threads()

    service = ChatService()
    info = service.load_model(model, LoadOptions(n_ctx=args.ctx, n_threads=threads))
    # The exact prompt the engine sends, so raw llama.cpp gets the same tokens.
    rendered = service.host.count_tokens([{"role": "user", "content": PROMPT}])
    # Render the same template text for the raw run (the engine renders in its own process).
    from r1desk.engine.gguf.header import read_header
    from r1desk.engine.inference.templates import ChatTemplate

    header = read_header(model)
    tokens_md = read_header(model, keep=("tokenizer.ggml.tokens",)).metadata["tokenizer.ggml.tokens"]
    bos_id = header.get("tokenizer.ggml.bos_token_id")
    eos_id = header.get("tokenizer.ggml.eos_token_id")
    tmpl = ChatTemplate(header.chat_template or "", bos_token=tokens_md[bos_id] if bos_id is not None else "",
                        eos_token=tokens_md[eos_id] if eos_id is not None else "")

    def prompt_for(rep: int) -> str:
        # A different first word each time: neither side can reuse the previous user text.
        return f"[{rep}] {PROMPT}"

    bench_before = llama_bench_runs(model, threads, args.tokens, args.reps, rendered)
    proc, raw = raw_runs(model, info.n_ctx, threads, args.tokens)
    raw(tmpl.render([{"role": "user", "content": prompt_for(-1)}]))
    engine_once(service, prompt_for(-1), 16)  # warm-up both
    raw_results, engine_results = [], []
    for rep in range(args.reps):
        raw_results.append(raw(tmpl.render([{"role": "user", "content": prompt_for(rep)}])))
        engine_results.append(engine_once(service, prompt_for(rep), args.tokens))
    proc.stdin.close()
    proc.wait()

    # Prompt reading: a fresh prompt of about 512 tokens, new each time, one token of reply.
    notes = "\n".join(f"Note {i}: the {['red', 'blue', 'green'][i % 3]} fox went to the market on day {i}."
                      for i in range(26))
    pp_rates = []
    for rep in range(args.reps):
        r = engine_once(service, f"[{rep}] Here are my notes.\n{notes}\nSummarise them.", 1)
        pp_rates.append(r["prompt_read"] / (r["ttft_ms"] / 1000))
        pp_read = r["prompt_read"]
    bench_after = llama_bench_runs(model, threads, args.tokens, args.reps, rendered)
    tg_key = f"tg{args.tokens}"
    bench_tg = (bench_before[tg_key] + bench_after[tg_key]) / 2
    bench_pp = (bench_before["pp512"] + bench_after["pp512"]) / 2

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    tps_ratio = med(engine_results, "tps") / med(raw_results, "tps")
    ttft_ratio = med(engine_results, "ttft_ms") / med(raw_results, "ttft_ms")

    # Turn 10 vs turn 1 of one conversation, each starting from a cold cache (fresh load).
    # Turn 1's prompt is all new tokens (system prompt + question); at turn 10 only the end of
    # the previous reply and the new question are new, padded so both turns add the same count.
    def conversation(pad: int, cold_last: bool = False) -> tuple[list[float], list[Stats]]:
        service.load_model(model, LoadOptions(n_ctx=args.ctx, n_threads=threads))
        cid = None
        ttfts, all_stats = [], []
        for i in range(10):
            if cold_last and i == 9:
                service.clear_snapshots()  # a new model process, nothing saved: the prompt is read in full
                service.load_model(model, LoadOptions(n_ctx=args.ctx, n_threads=threads))
            text = f"Question {i}: tell me one more fact about dragons, please."
            if i == 9:
                text += " dragon" * pad
            t0 = time.perf_counter()
            first = None
            for ev in service.send(cid, text, SamplingParams(temperature=0.0, max_tokens=48)):
                if first is None and isinstance(ev, ContentDelta):
                    first = time.perf_counter()
                if hasattr(ev, "conversation_id"):
                    cid = ev.conversation_id
                if isinstance(ev, Stats):
                    all_stats.append(ev)
            ttfts.append(((first or time.perf_counter()) - t0) * 1000)
        return ttfts, all_stats

    _, probe = conversation(0)
    new1 = probe[0].prompt_tokens - probe[0].cached_tokens
    new10 = probe[9].prompt_tokens - probe[9].cached_tokens
    pad = max(0, new1 - new10)
    runs = [conversation(pad) for _ in range(3)]
    turn1 = statistics.median(r[0][0] for r in runs)
    turn10 = statistics.median(r[0][9] for r in runs)
    last = runs[-1][1]
    new_tokens = (last[0].prompt_tokens - last[0].cached_tokens, last[9].prompt_tokens - last[9].cached_tokens)
    turn10_prompt = last[9].prompt_tokens
    cold = conversation(pad, cold_last=True)[0][9]

    # Cancel latency.
    cancel_ms = []
    for _ in range(5):
        events = service.send(None, PROMPT, SamplingParams(temperature=0.0, max_tokens=2000))
        count = 0
        t_cancel = None
        for ev in events:
            count += 1
            if count == 30:
                t_cancel = time.perf_counter()
                threading.Thread(target=events.cancel).start()
            if isinstance(ev, Stats):
                cancel_ms.append((time.perf_counter() - t_cancel) * 1000)
    service.close()

    result = {
        "model": Path(model).name,
        "threads": threads,
        "n_ctx": info.n_ctx,
        "prompt_tokens": rendered,
        "generated_tokens": args.tokens,
        "reps": args.reps,
        "llama_bench": {"build": bench_before["build"], "tg_before": bench_before[tg_key],
                        "tg_after": bench_after[tg_key], "pp512_before": bench_before["pp512"],
                        "pp512_after": bench_after["pp512"]},
        "engine_vs_llama_bench_tg": med(engine_results, "tps") / bench_tg,
        "engine_prompt_tokens_per_second": statistics.median(pp_rates),
        "engine_prompt_tokens": pp_read,
        "engine_vs_llama_bench_pp512": statistics.median(pp_rates) / bench_pp,
        "raw_tokens_per_second": med(raw_results, "tps"),
        "engine_tokens_per_second": med(engine_results, "tps"),
        "tokens_per_second_ratio": tps_ratio,
        "raw_ttft_ms": med(raw_results, "ttft_ms"),
        "engine_ttft_ms": med(engine_results, "ttft_ms"),
        "ttft_ratio": ttft_ratio,
        "turn1_ttft_ms": turn1,
        "turn10_ttft_ms": turn10,
        "turn10_vs_turn1_ratio": turn10 / turn1,
        "turn10_prompt_tokens": turn10_prompt,
        "new_tokens_turn1_turn10": new_tokens,
        "turn10_ttft_ms_without_cache": cold,
        "cancel_ms_median": statistics.median(cancel_ms),
        "cancel_ms_max": max(cancel_ms),
        "load_average": os.getloadavg(),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "chat.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"model {result['model']}, {threads} threads, prompt {rendered} tokens, {args.tokens} generated, "
          f"median of {args.reps}")
    build = bench_before["build"]
    print(f"llama-bench           llama.cpp {build.get('llama_cpp_commit', '?')} via llama-cpp-python "
          f"{build['llama_cpp_python']} ({build['cmake_args']}): {tg_key} {bench_before[tg_key]:.1f} / "
          f"{bench_after[tg_key]:.1f} (after {rendered} tokens), pp512 {bench_before['pp512']:.1f} / {bench_after['pp512']:.1f} (before / after)")
    print(f"generation tokens/s   engine {result['engine_tokens_per_second']:.1f} vs llama-bench {bench_tg:.1f}: "
          f"ratio {result['engine_vs_llama_bench_tg']:.3f} (target >= 0.95); raw bindings "
          f"{result['raw_tokens_per_second']:.1f}, engine/raw {tps_ratio:.3f}")
    print(f"prompt tokens/s       engine {result['engine_prompt_tokens_per_second']:.1f} ({pp_read} tokens) vs "
          f"llama-bench pp512 {bench_pp:.1f}: ratio {result['engine_vs_llama_bench_pp512']:.3f} (target >= 0.95)")
    print(f"time to first token   raw {result['raw_ttft_ms']:.1f} ms  engine {result['engine_ttft_ms']:.1f} ms  "
          f"ratio {ttft_ratio:.3f}  (target <= 1.05)")
    print(f"turn 10 vs turn 1     {turn10:.1f} ms vs {turn1:.1f} ms  ratio {turn10 / turn1:.2f}  (target <= 1.5); "
          f"new tokens {new_tokens[1]} vs {new_tokens[0]}; turn 10 prompt {turn10_prompt} tokens takes "
          f"{cold:.1f} ms without the cache")
    print(f"cancel                median {result['cancel_ms_median']:.1f} ms, max {result['cancel_ms_max']:.1f} ms "
          "(target < 200 ms)")


if __name__ == "__main__":
    main()
