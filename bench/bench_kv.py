"""Going back to a conversation: time to first token after a switch and after a restart, against
the warm next turn, on conversations of about 1k and 4k tokens; and what the saved state costs.

    .venv/bin/python bench/bench_kv.py [--model PATH] [--reps 3] [--sizes 1000,4000]

With SmolLM2-135M-Instruct (fetched by the test support) unless --model is given. For each size,
two conversations A and B of that length are built; then, each rep:
- warm: A's next turn right after A's previous one (its state is the model's live context);
- switch: a turn in B, then A's next turn (A's state comes back from the model process's RAM);
- restart: the app closed and started again (a new model process), then A's next turn (from disk);
- without saved state: the same switch with saving turned off, as before it existed.
Every measured turn adds the same number of new tokens. Times are the user's wait, from send()
to the first reply text, as the app sees it; medians over the reps. Also: the model process's
RSS with both conversations kept against the memory plan's figure, and the disk per conversation.
Writes bench/results/kv.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_CTX = 8192


def note_text(n_tokens: int, tag: str) -> str:
    """About ``n_tokens`` tokens of notes (SmolLM2's tokenizer: some 25 tokens a note)."""
    colours = ["red", "blue", "green", "amber", "violet", "silver"]
    animals = ["fox", "heron", "otter", "badger", "lynx", "crane", "newt"]
    lines = [f"Note {i} ({tag}): the {colours[i % 6]} {animals[i % 7]} crossed the river on day {i * 7 % 31}."
             for i in range(max(1, n_tokens // 25))]
    return "Here are my notes.\n" + "\n".join(lines) + "\nRemember them; I will ask about them."


def turn(service, cid, text: str, max_tokens: int = 8):
    from r1desk.engine.chat.service import SamplingParams
    from r1desk.engine.events import ChatError, ContentDelta, ReasoningDelta, Started, Stats

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    t0 = time.perf_counter()
    first = None
    stats = None
    for ev in service.send(cid, text, params):
        if isinstance(ev, Started):
            cid = ev.conversation_id
        elif isinstance(ev, (ContentDelta, ReasoningDelta)) and first is None:
            first = time.perf_counter()
        elif isinstance(ev, Stats):
            stats = ev
        elif isinstance(ev, ChatError):
            raise SystemExit(ev.message)
    return cid, ((first or time.perf_counter()) - t0) * 1000, stats


def question(i: int) -> str:
    return f"Question {i:03d}: which animal crossed on day {i % 31:02d}?"  # the same length every time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default="1000,4000")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    os.environ["R1DESK_HOME"] = tempfile.mkdtemp(prefix="r1desk-bench-")
    from r1desk.engine.chat.service import ChatService
    from r1desk.engine.gguf.header import read_header
    from r1desk.engine.hardware import fit, probe
    from r1desk.engine.inference.host import LoadOptions, ModelHost, default_threads

    if args.model:
        model = args.model
    else:
        from tests.support.models import smollm2_path

        model = str(smollm2_path())
    threads = args.threads or default_threads()
    options = LoadOptions(n_ctx=N_CTX, n_threads=threads)
    results = {"model": Path(model).name, "threads": threads, "n_ctx": N_CTX, "reps": args.reps, "sizes": {}}
    q = iter(range(1000))

    for size in [int(s) for s in args.sizes.split(",")]:
        service = ChatService()
        service.load_model(model, options)
        a, _, _ = turn(service, None, note_text(size - 120, "A"), 16)
        b, _, _ = turn(service, None, note_text(size - 120, "B"), 16)
        for cid in (a, b):
            turn(service, cid, question(next(q)), 16)
        warm, switch, restart, new_tokens = [], [], [], set()
        sources = {"warm": set(), "switch": set(), "restart": set()}
        a_tokens = 0
        for _ in range(args.reps):
            turn(service, a, question(next(q)))
            _, ms, st = turn(service, a, question(next(q)))
            warm.append(ms)
            sources["warm"].add(st.reused_from)
            new_tokens.add(st.prompt_tokens_read)
            turn(service, b, question(next(q)))
            _, ms, st = turn(service, a, question(next(q)))
            switch.append(ms)
            sources["switch"].add(st.reused_from)
            new_tokens.add(st.prompt_tokens_read)
            a_tokens = st.prompt_tokens
        # Memory: the model process with both conversations kept, against the plan.
        rss = psutil.Process(service.host.pid).memory_info().rss
        plan = fit.estimate(read_header(model), n_ctx=service.loaded.n_ctx, hardware=probe.detect(), n_gpu_layers=0)
        disk_bytes, disk_count = service.snapshot_usage()
        ram_budget = service.loaded.snapshot_ram_budget
        service.close()
        for _ in range(args.reps):
            service = ChatService()
            service.load_model(model, options)
            _, ms, st = turn(service, a, question(next(q)))
            restart.append(ms)
            sources["restart"].add(st.reused_from)
            new_tokens.add(st.prompt_tokens_read)
            service.close()
        # Without saved state: the same switch, the way it was before (the prompt read again).
        plain = ChatService(host=ModelHost(snapshots=None, snapshot_ram_budget=0))
        plain.load_model(model, options)
        turn(plain, a, question(next(q)))
        turn(plain, b, question(next(q)))
        _, without, st_without = turn(plain, a, question(next(q)))
        plain.close()

        w, s, r = statistics.median(warm), statistics.median(switch), statistics.median(restart)
        results["sizes"][str(size)] = {
            "conversation_tokens": a_tokens,
            "new_tokens_per_turn": sorted(new_tokens),
            "warm_ttft_ms": w, "switch_ttft_ms": s, "restart_ttft_ms": r,
            "switch_vs_warm": s / w, "restart_vs_warm": r / w,
            "switch_without_saved_state_ms": without,
            "without_vs_warm": without / w,
            "prompt_tokens_read_without": st_without.prompt_tokens_read,
            "reused_from": {k: sorted(map(str, v)) for k, v in sources.items()},
            "model_process_rss": rss, "plan_ram_bytes": plan.cpu.total,
            "snapshot_ram_budget": ram_budget,
            "disk_bytes": disk_bytes, "disk_snapshots": disk_count,
        }
        row = results["sizes"][str(size)]
        print(f"{a_tokens:,}-token conversation: warm {w:.0f} ms, switch {s:.0f} ms ({s / w:.2f}x, target <= 1.5), "
              f"restart {r:.0f} ms ({r / w:.2f}x, target <= 2); without saved state {without:.0f} ms "
              f"({without / w:.1f}x, {st_without.prompt_tokens_read:,} tokens read); new tokens per turn "
              f"{sorted(new_tokens)}; from {row['reused_from']}")
        print(f"  memory: model process {rss / 2**20:.0f} MiB with both conversations kept, plan says "
              f"{plan.cpu.total / 2**20:.0f} MiB + up to {ram_budget / 2**20:.0f} MiB for kept state; disk "
              f"{disk_bytes / 2**20:.1f} MiB for {disk_count} conversations")
    results["load_average"] = os.getloadavg()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "kv.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
