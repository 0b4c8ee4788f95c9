"""The memory estimate against measured resident memory of a process running the model.

A child process loads the model with llama-cpp-python as the model host does (mmap on, the
default context settings) and fills its context with one prompt of exactly ``n_ctx`` tokens, so
the last 512-token batch runs against a full KV cache: the worst case a long chat reaches,
which is what the estimate promises to cover. Its RSS is then compared with the estimate.

What RSS counts, and how the estimate models it:
- the process before any model (Python, llama_cpp, numpy, the model host's own modules and
  its hardware probe): RUNTIME_BASE, checked below;
- mmapped weights: counted once touched; a full-context prompt touches every layer, and the
  prefetch at load maps the rest (the estimate counts the whole file);
- llama.cpp's CPU "extra buffers" (AMX, CPU_REPACK) copy some weights to anonymous memory
  while their file pages stay mapped: RSS then counts those weights twice although the kernel
  can drop the file copy at will. The calibration runs with repacking off
  (``use_extra_bufts=False``), so that RSS counts each weight once, as the estimate does. (It
  also sidesteps an AMX crash this machine shows with SmolLM2's Q4_1 weights on batches of
  more than one token.) The model host, which keeps the defaults, is measured too, on the tiny
  model whose repacked part is small;
- the KV cache is zeroed when created, so it is resident in full;
- the compute buffer is resident only where written: the estimate's RAM figure is the peak a
  batch writes (one output row, as the host asks for) plus the CPU backend's work buffer.

The resident share of the shared libraries' pages moves by several MiB with the page cache's
state (the kernel maps cached pages around each fault), which on the tiny model is several per
cent; so each figure is the median of three fresh processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from r1desk.engine.gguf.header import read_header
from r1desk.engine.hardware import fit

MiB = 1024**2
TOLERANCE = 0.10

_CHILD = r"""
import json, sys
import psutil
proc = psutil.Process()
import llama_cpp
import llama_cpp.llama_cpp as low
path, n_ctx, repack = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
if not repack:
    default_params = low.llama_model_default_params
    def no_repack():
        p = default_params()
        p.use_extra_bufts = False
        return p
    low.llama_model_default_params = no_repack
llama_cpp.llama_backend_init()
# What the model host has in memory before it loads a model: its modules and the hardware probe.
import r1desk.engine.inference.runner, r1desk.engine.hardware.probe
r1desk.engine.hardware.probe.detect()
base = proc.memory_info().rss
llm = llama_cpp.Llama(path, n_ctx=n_ctx, verbose=False, seed=1)
loaded = proc.memory_info().rss
bos = llm.token_bos()
vocab = llm.n_vocab()
tokens = [bos if bos >= 0 else 1] + [1000 + (i * 7919) % min(vocab - 1000, 30000) for i in range(n_ctx - 1)]
llm.eval(tokens)
assert llm.n_tokens == n_ctx
print(json.dumps({"base": base, "loaded": loaded, "full": proc.memory_info().rss}))
"""


def _measure_once(path: Path, n_ctx: int, repack: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(n_ctx), "1" if repack else "0"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure(path: Path, n_ctx: int, *, repack: bool = False) -> dict:
    """The median run (by final RSS) of three fresh processes."""
    runs = sorted((_measure_once(path, n_ctx, repack) for _ in range(3)), key=lambda r: r["full"])
    return runs[1]


CASES = [("tiny_r1", 512), ("tiny_r1", 2048), ("tiny_r1", 4096),
         ("smollm2", 512), ("smollm2", 1024), ("smollm2", 2048)]


@pytest.mark.slow
@pytest.mark.parametrize("model,n_ctx", CASES, ids=[f"{m}-{c}" for m, c in CASES])
def test_estimate_within_ten_percent_of_measured_memory(request, model, n_ctx):
    path = request.getfixturevalue(model)
    measured = _measure(path, n_ctx)
    plan = fit.estimate(read_header(path), n_ctx=n_ctx)
    est = plan.ram_bytes
    error = (est - measured["full"]) / measured["full"]
    print(f"{model} n_ctx={n_ctx}: measured {measured['full'] / MiB:.1f} MiB, "
          f"estimated {est / MiB:.1f} MiB ({error:+.1%}); before the prompt {measured['loaded'] / MiB:.1f} MiB")
    assert abs(error) <= TOLERANCE
    # The fixed part of the estimate is the real baseline of a process with llama_cpp loaded.
    assert measured["base"] == pytest.approx(fit.RUNTIME_BASE, rel=0.25)


@pytest.mark.slow
def test_the_model_hosts_memory_matches_the_estimate(tiny_r1):
    """The model host's own process, with its own defaults, after a context-filling chat."""
    host_mod = pytest.importorskip("r1desk.engine.inference.host")

    n_ctx = 2048
    rss_runs = [_host_rss(host_mod, tiny_r1, n_ctx) for _ in range(3)]
    rss = sorted(rss_runs)[1]
    est = fit.estimate(read_header(tiny_r1), n_ctx=n_ctx).ram_bytes
    print(f"model host, tiny R1, n_ctx={n_ctx}: RSS {rss / MiB:.1f} MiB (median of "
          f"{', '.join(f'{r / MiB:.1f}' for r in rss_runs)}), estimated {est / MiB:.1f} MiB")
    assert abs(est - rss) / rss <= TOLERANCE


def _host_rss(host_mod, tiny_r1: Path, n_ctx: int) -> int:
    import psutil

    host = host_mod.ModelHost()
    try:
        host.load(tiny_r1, host_mod.LoadOptions(n_ctx=n_ctx))

        def message(k: int) -> list[dict]:
            return [{"role": "user", "content": " ".join(["hello world"] * k)}]

        per_k = (host.count_tokens(message(101)) - host.count_tokens(message(1))) / 100
        fixed = host.count_tokens(message(1)) - per_k
        k = int((n_ctx - 48 - fixed) / per_k)
        assert n_ctx - 200 < host.count_tokens(message(k)) <= n_ctx - 40
        params = {"max_tokens": 4, "temperature": 0.0, "top_p": 1.0, "top_k": 1, "min_p": 0.0,
                  "repeat_penalty": 1.0, "seed": 1}
        events = list(host.chat(message(k), params))
        assert events[-1][0] == "done"
        return psutil.Process(host.pid).memory_info().rss
    finally:
        host.close()
