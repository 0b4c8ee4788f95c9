"""How smoothly the chat view streams: event-loop stalls and the cost of one token update.

Streams a 2,000-token reply (300 tokens of reasoning, then Markdown with lists, tables and
code blocks) into the real chat view, the way the app does: tokens come from a generator in a
GeneratorWorker thread and arrive as Qt signals. Prints:

- the longest event-loop stall while streaming (a 5 ms timer measures how late it fires;
  target < 50 ms);
- the time one token update takes (append + layout + paint) around token 100 and around token
  2,000, and their ratio (target close to 1: the cost must not grow with the reply);
- for comparison, the same figures for re-rendering the whole reply on every token.

Run: .venv/bin/python bench/bench_gui.py [--tokens 2000] [--rate 200]
(offscreen by default; set QT_QPA_PLATFORM=xcb under a display to include real painting).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from r1desk.app import theme  # noqa: E402
from r1desk.app.chatview import ChatView  # noqa: E402
from r1desk.app.markdown import render_html, warm_up  # noqa: E402
from r1desk.app.qt import QApplication, QElapsedTimer, QTextBrowser, QTimer  # noqa: E402
from r1desk.app.workers import GeneratorWorker  # noqa: E402

REASONING = ("Okay, the user wants a summary of how to sort data in Python. Let me think about "
             "which functions matter: sorted returns a new list, list.sort works in place, and "
             "both take key and reverse. I should show an example and mention stability. ")
ANSWER_BLOCKS = [
    "## Sorting in Python\n\nPython has two ways to sort: **`sorted()`** returns a new list, while "
    "`list.sort()` sorts in place and returns `None`. Both are *stable*.\n\n",
    "1. Use `key=` to sort by a computed value\n2. Use `reverse=True` for descending order\n"
    "3. Combine keys with a tuple\n\n",
    "```python\npeople = [(\"Ann\", 31), (\"Bob\", 25), (\"Cid\", 31)]\n"
    "by_age = sorted(people, key=lambda p: p[1])\nprint(by_age)\n```\n\n",
    "| function | returns | in place |\n|---|---|---|\n| sorted | new list | no |\n| list.sort | None | yes |\n\n",
    "> Stability means equal keys keep their original order, so you can sort by one key and then "
    "another.\n\n",
]


def tokens(text: str) -> list[str]:
    """Cut text into pieces the size of real tokens (a word or a symbol, with its space)."""
    out, word = [], ""
    for ch in text:
        if ch.isalnum():
            word += ch
            continue
        if word:
            out.append(word)
            word = ""
        if out and ch == " ":
            out.append(" ")
        else:
            out.append(ch)
    if word:
        out.append(word)
    merged: list[str] = []
    for piece in out:  # a leading space belongs to the next word, as in BPE vocabularies
        if merged and merged[-1] == " ":
            merged[-1] = " " + piece
        else:
            merged.append(piece)
    return merged


def reply_tokens(n: int) -> tuple[list[str], list[str]]:
    reasoning = []
    while len(reasoning) < 300:
        reasoning += tokens(REASONING)
    answer: list[str] = []
    i = 0
    while len(answer) < n - 300:
        answer += tokens(ANSWER_BLOCKS[i % len(ANSWER_BLOCKS)])
        i += 1
    return reasoning[:300], answer[: n - 300]


def make_view() -> tuple[ChatView, object]:
    view = ChatView()
    view.resize(900, 800)
    view.show()
    view.add_user("How do I sort things in Python?")
    widget = view.add_assistant("bench model")
    QApplication.processEvents()
    return view, widget


def stream_through_worker(n: int, rate: float) -> dict:
    """Stream via a worker thread at ``rate`` tokens/s; measure how late a 5 ms timer fires."""
    reasoning, answer = reply_tokens(n)
    view, widget = make_view()
    delays: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    received = [0]
    at: list[int] = []

    def tick() -> None:
        now = clock.nsecsElapsed()
        delays.append((now - last[0]) / 1e6)
        at.append(received[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)

    def produce():
        pause = 1.0 / rate
        for piece in reasoning:
            yield ("r", piece)
            time.sleep(pause)
        for piece in answer:
            yield ("c", piece)
            time.sleep(pause)

    def on_event(event) -> None:
        received[0] += 1
        kind, text = event
        if kind == "r":
            widget.append_reasoning(text)
        else:
            widget.append_content(text)

    worker = GeneratorWorker(produce)
    worker.yielded.connect(on_event)
    done = []
    worker.finished.connect(lambda: done.append(True))
    timer.start()
    started = time.perf_counter()
    worker.start()
    while not done:
        QApplication.processEvents()
        time.sleep(0.0005)
    elapsed = time.perf_counter() - started
    timer.stop()
    widget.finish({})
    QApplication.processEvents()
    stall = max(delays) - 5 if delays else float("nan")
    worst_at = at[delays.index(max(delays))] if delays else 0
    view.close()
    return {"stall_ms": stall, "seconds": elapsed, "ticks": len(delays), "worst_at": worst_at,
            "p99_ms": statistics.quantiles(delays, n=100)[98] - 5 if len(delays) > 100 else float("nan")}


def per_token_cost(n: int, full_render: bool = False) -> dict:
    """Time each token update (append, then let Qt lay out and paint) in the GUI thread."""
    reasoning, answer = reply_tokens(n)
    view, widget = make_view()
    naive = None
    if full_render:
        naive = QTextBrowser()
        naive.resize(900, 800)
        naive.show()
    times: list[float] = []
    text_so_far: list[str] = []
    for i, piece in enumerate(reasoning + answer):
        start = time.perf_counter()
        if full_render:
            text_so_far.append(piece)
            if i >= len(reasoning):
                naive.setHtml(render_html("".join(text_so_far[len(reasoning):])))
        elif i < len(reasoning):
            widget.append_reasoning(piece)
        else:
            widget.append_content(piece)
        QApplication.processEvents()
        times.append((time.perf_counter() - start) * 1000)
    widget.finish({})
    view.close()
    if naive is not None:
        naive.close()

    def around(k: int) -> float:
        window = times[max(0, k - 50): k + 50]
        return statistics.median(window)

    early, late = around(100 + len(reasoning)), around(len(times) - 50)
    return {"early_ms": early, "late_ms": late, "ratio": late / early if early else float("nan"),
            "max_ms": max(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="tokens per second from the worker")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    theme.apply("light")
    warm_up()  # the app does this in a worker at start-up
    print(f"Qt platform: {app.platformName()}; reply: {args.tokens} tokens (300 reasoning)")
    streamed = stream_through_worker(args.tokens, args.rate)
    print(f"streaming through the worker at {args.rate:.0f} tokens/s ({streamed['seconds']:.1f} s):")
    print(f"  longest event-loop stall: {streamed['stall_ms']:.1f} ms (target < 50 ms); "
          f"(after token {streamed['worst_at']}); 99th percentile lateness {streamed['p99_ms']:.1f} ms")
    cost = per_token_cost(args.tokens)
    print("one token update (append + layout + paint), median of 100 tokens:")
    print(f"  around token 100 of the answer: {cost['early_ms']:.3f} ms")
    print(f"  around token {args.tokens}: {cost['late_ms']:.3f} ms")
    print(f"  ratio late/early: {cost['ratio']:.2f} (target close to 1); slowest single update {cost['max_ms']:.1f} ms")
    naive = per_token_cost(args.tokens, full_render=True)
    print("for comparison, re-rendering the whole reply on every token:")
    print(f"  early {naive['early_ms']:.3f} ms, late {naive['late_ms']:.3f} ms, ratio {naive['ratio']:.2f}")


if __name__ == "__main__":
    main()
