"""Will this model run on this machine, how, and how fast: memory per device, from the GGUF header.

The estimate follows what llama.cpp allocates, buffer by buffer, so that it can be checked
against llama.cpp's own accounting and against measured memory:

- weights, placed as llama.cpp places them: the token embedding always in RAM (llama.cpp
  never offloads the input layer), the repeating layers ``blk.N`` on the GPU from the last one
  down (``n_gpu_layers``), the output layer on the GPU only when ``n_gpu_layers`` > layers
  (a model with tied embeddings then needs a GPU copy of the embedding as its output);
  several GPUs get consecutive layers in proportion to their free memory (llama.cpp's default
  split);
- the KV cache: ``n_ctx`` rounded up to 256 cells x per-layer K and V widths x the cache
  type's bytes, on the device of its layer;
- the compute buffer: llama.cpp sizes it for a worst-case batch of ``n_ubatch`` tokens with
  every token an output. Its peak is the largest of the attention step (without flash
  attention the ``n_kv x n_ubatch x n_head`` f32 score matrix plus the f32 mask; with it only
  the f16 mask), the feed-forward step, and the output step (``n_vocab x n_ubatch`` f32
  logits). On a GPU the whole buffer is committed. In RAM only the pages written count, and
  r1desk asks for one output per batch, so RAM counts the output step with one row and adds
  the CPU backend's work buffer (the score matrix converted to f16 for the multiply with V),
  which llama.cpp does not report;
- fixed costs: the model process itself (Python, llama.cpp, numpy), the tokenizer tables
  (~300 bytes per vocabulary entry), and per GPU the CUDA context.

Calibrated against measured resident memory (tests/engine/test_fit_calibration.py), and the
compute and KV figures against llama.cpp's own numbers (tests/engine/test_fit.py).

One budget per device, two moments (``ram_budget``, ``gpu_budget``): when planning what to
download, RAM minus a reserve kept for the system and other programs (VRAM minus a margin);
when loading now, the same, and no more than is free now (minus a margin). The load check can
so never allow more than a recommendation promised, and on a machine with enough free memory
both say the same number. Known
failures of other estimators this avoids: Ollama and koboldcpp ignore the f32 score matrix
that grows with context when flash attention is off (ollama#8471: OOM at 32k), LM Studio
counts the whole file against VRAM even when layers stay in RAM (lmstudio#1631), GPT4All's
estimate returns 0 for every GGUF.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Self, Sequence

from r1desk.engine.errors import NotEnoughMemory
from r1desk.engine.units import human_bytes

if TYPE_CHECKING:
    from r1desk.engine.gguf.header import GGUFInfo
    from r1desk.engine.hardware.probe import GPU, Hardware

MiB = 1024**2
GiB = 1024**3

KV_PAD = 256  # llama.cpp rounds the KV cache up to a multiple of 256 cells
N_UBATCH = 512  # llama-cpp-python's n_batch/n_ubatch default, which the model host keeps

# The model process before any model: a Python interpreter with llama_cpp (ctypes, numpy)
# imported and the CPU backend initialised, plus what the model host itself brings in before
# loading: its modules, the template sandbox (jinja2) and the hardware probe (6.5 MiB more).
# Measured on Linux x86-64: 48.5 MiB with llama_cpp imported in a fresh install, 41 MiB in one
# whose libraries have sat on disk for hours (the kernel maps freshly written files' pages in
# larger pieces, so more of NumPy's OpenBLAS counts as resident). The fresh figure is taken:
# that is the user's case, and the estimate errs on the side of room.
RUNTIME_BASE = int(55 * MiB)
# Tokenizer tables in llama.cpp and the bindings (token texts, lookup hash, BPE merge ranks,
# sampling candidates): measured with vocab-only loads, 49,152 tokens -> 17.5 MiB and
# 152,064 tokens -> 47.2 MiB, i.e. 2.6 MiB + 303 bytes per vocabulary entry.
TOKENIZER_FIXED = int(2.6 * MiB)
TOKENIZER_PER_TOKEN = 303
# Per NVIDIA GPU: the CUDA context, cuBLAS workspace and kernels (not counted by llama.cpp's
# buffer sizes). 450 MiB is what nvidia-smi shows for a llama.cpp process before any model
# on recent drivers; Ollama reserves 457 MiB for the same reason.
CUDA_CONTEXT = 450 * MiB
CUDA_HOST = 300 * MiB  # RAM the CUDA runtime itself takes in the model process
METAL_CONTEXT = 64 * MiB
# Room left on a GPU for the desktop, other programs and fragmentation.
GPU_MARGIN_MIN = 256 * MiB
GPU_MARGIN_SHARE = 0.05
# RAM left to the system and other programs (the desktop, a browser, r1desk's own window): a
# quarter of RAM, at least 2 GiB. Loading now also stays RAM_MARGIN below what is free now,
# for what the running programs allocate while the model loads.
RAM_RESERVE_SHARE = 0.25
RAM_RESERVE_MIN = 2 * GiB
RAM_MARGIN = 512 * MiB

# Generation reads every weight once per token: speed ~ effective bandwidth / bytes read.
BANDWIDTH_EFFICIENCY = 0.7
DEFAULT_CPU_BANDWIDTH = 40e9  # dual-channel DDR4-3200 / DDR5-5600 laptops: 40-90 GB/s peak
# On few cores the cores, not the memory, are the limit: each works through about this many
# bytes of weights a second (reading, dequantising, multiplying, and the per-token work around
# it). Measured with SmolLM2-135M Q4_1 on one thread of a 2-core AMD EPYC VM: 69.6 to 76.8
# (median 72.2) tokens per CPU-second at a 512 context, 102.5 MB read per token. Re-measure
# (prints the figure):  .venv/bin/python -m pytest -q -s tests/engine/hardware/test_fit_speed.py
CPU_CORE_RATE = 7.4e9
# With more than one thread, llama.cpp's threads meet after every operation of every layer, and
# sampling and streaming run on one of them: a cost per token that more cores do not shrink.
# 4.6 ms on the same VM: bench/results/chat.json (bench/bench_chat.py, SmolLM2-135M Q4_1 on two
# threads, 84.5 tokens/s = 11.8 ms a token, of which the two cores' rate above accounts for 7.2).
THREAD_SYNC_PER_TOKEN = 4.6e-3
DEFAULT_GPU_BANDWIDTH = 400e9
DECENT_TOKENS_PER_SECOND = 5.0  # about reading speed; slower feels like waiting

_KV_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
             "q4_1": 20 / 32, "q4_0": 18 / 32}
# Sliding-window layers: which layers use the window, by architecture (llama.cpp's defaults).
_SWA_PERIOD = {"gemma2": 2, "gemma3": 6, "cohere2": 4, "gemma3n": 5}
_LAYER = re.compile(r"^blk\.(\d+)\.")


@dataclass
class ModelShape:
    """The numbers of a model that decide its memory, read from a GGUF header."""

    name: str
    architecture: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: list[int]
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    n_params: int
    file_size: int
    layer_bytes: list[int]
    input_bytes: int  # token_embd: always in RAM
    output_bytes: int  # output + output_norm (+ anything not in a layer)
    tied_output: bool  # no output.weight: the token embedding doubles as the output
    n_swa: int = 0
    swa_layers: list[bool] = field(default_factory=list)
    quant: str | None = None

    @classmethod
    def from_info(cls, info: "GGUFInfo") -> "ModelShape":
        from r1desk.engine.gguf import quants

        arch = info.architecture
        n_layer = info.block_count
        if not n_layer:
            raise ValueError(f"{info.source}: no {arch}.block_count; not a model this estimate knows")
        n_embd = int(_scalar(info.arch_get("embedding_length"), 0))
        n_head = int(_scalar(info.arch_get("attention.head_count"), 0)) or 1
        kv = info.arch_get("attention.head_count_kv", n_head)
        n_head_kv = [int(x) for x in kv] if isinstance(kv, list) else [int(kv)] * n_layer
        if len(n_head_kv) != n_layer:
            n_head_kv = (n_head_kv + [n_head_kv[-1]] * n_layer)[:n_layer]
        head_k = int(info.arch_get("attention.key_length") or (n_embd // n_head if n_head else 0))
        head_v = int(info.arch_get("attention.value_length") or head_k)
        n_ff = int(_scalar(info.arch_get("feed_forward_length"), 4 * n_embd))
        layer_bytes = [0] * n_layer
        input_bytes = output_bytes = 0
        has_output = False
        n_vocab = info.vocab_size or 0
        for t in info.tensors:
            m = _LAYER.match(t.name)
            if m and int(m.group(1)) < n_layer:
                layer_bytes[int(m.group(1))] += t.nbytes
            elif t.name == "token_embd.weight":
                input_bytes += t.nbytes
                if not n_vocab and len(t.shape) > 1:
                    n_vocab = t.shape[1]
            else:
                if t.name == "output.weight":
                    has_output = True
                output_bytes += t.nbytes
        n_swa = int(info.arch_get("attention.sliding_window") or 0)
        period = _SWA_PERIOD.get(arch)
        swa_layers = [bool(n_swa and period and (i + 1) % period != 0) for i in range(n_layer)]
        return cls(
            name=info.name or str(info.source).rsplit("/", 1)[-1],
            architecture=arch, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv,
            head_dim_k=head_k, head_dim_v=head_v, n_ff=n_ff, n_vocab=n_vocab,
            n_ctx_train=info.context_length or 0, n_params=info.parameter_count,
            file_size=info.expected_file_size, layer_bytes=layer_bytes, input_bytes=input_bytes,
            output_bytes=output_bytes, tied_output=not has_output, n_swa=n_swa if period else 0,
            swa_layers=swa_layers if period else [False] * n_layer,
            quant=quants.from_file_type(info.file_type),
        )

    @property
    def weights_bytes(self) -> int:
        return sum(self.layer_bytes) + self.input_bytes + self.output_bytes

    def kv_cells(self, n_ctx: int, layer: int, n_ubatch: int) -> int:
        cells = _pad(n_ctx, KV_PAD)
        if self.swa_layers and self.swa_layers[layer] and self.n_swa:
            cells = min(cells, _pad(self.n_swa + n_ubatch, KV_PAD))
        return cells

    def kv_layer_bytes(self, layer: int, n_ctx: int, kv_type: str, n_ubatch: int = N_UBATCH) -> int:
        per = _KV_BYTES[kv_type]
        cells = self.kv_cells(n_ctx, layer, n_ubatch)
        return int(cells * self.n_head_kv[layer] * (self.head_dim_k + self.head_dim_v) * per)

    def kv_bytes(self, n_ctx: int, kv_type: str = "f16", layers: Sequence[int] | None = None) -> int:
        layers = range(self.n_layer) if layers is None else layers
        return sum(self.kv_layer_bytes(i, n_ctx, kv_type) for i in layers)


@dataclass
class ComputeSizes:
    """Peak bytes of each step of one batch's graph (see the module docstring)."""

    attention: int
    feed_forward: int
    output_full: int  # every token of the batch an output (llama.cpp's reserve)
    output_one: int  # one output row (what r1desk asks for)
    work: int  # the CPU backend's conversion buffer

    def reserved(self, with_output: bool = True) -> int:
        return max(self.attention, self.feed_forward, self.output_full if with_output else 0)

    def touched_in_ram(self, with_layers: bool = True, with_output: bool = True) -> int:
        peak = max(self.attention if with_layers else 0, self.feed_forward if with_layers else 0,
                   self.output_one if with_output else 0)
        return peak + (self.work if with_layers else 0)


def compute_sizes(shape: ModelShape, n_ctx: int, *, flash_attn: bool, n_ubatch: int = N_UBATCH) -> ComputeSizes:
    n_ub = max(1, min(n_ubatch, n_ctx))
    n_kv = max(shape.kv_cells(n_ctx, i, n_ub) for i in range(shape.n_layer))
    n_q = shape.n_head * shape.head_dim_k
    n_kv_width = max(shape.n_head_kv) * max(shape.head_dim_k, shape.head_dim_v)
    # Live beside the scores: the residual stream and its norm, Q before and after RoPE, K, V.
    others = n_ub * 4 * (3 * shape.n_embd + 2 * n_q + 2 * n_kv_width)
    ub_pad = _pad(n_ub, 64)  # the mask's rows are padded to GGML_KQ_MASK_PAD
    # The mask is a graph input, alive until the last layer's attention: it adds to every step.
    mask = n_kv * ub_pad * (2 if flash_attn else 4)
    if flash_attn:
        attention = mask + others + n_ub * shape.n_head * shape.head_dim_v * 4
        work = n_ub * max(shape.n_embd, shape.n_ff) * 2
    else:
        scores = n_kv * n_ub * shape.n_head
        attention = scores * 4 + mask + others
        work = max(scores * 2, n_ub * max(shape.n_embd, shape.n_ff) * 2)
    # Gate, up and their product at the FFN width, beside four rows at the embedding width.
    feed_forward = n_ub * 4 * (4 * shape.n_embd + 3 * shape.n_ff) + mask
    embd_rows = 2 * n_ub * shape.n_embd * 4
    return ComputeSizes(
        attention=attention, feed_forward=feed_forward,
        output_full=shape.n_vocab * n_ub * 4 + embd_rows, output_one=shape.n_vocab * 4 + embd_rows,
        work=work,
    )


@dataclass
class DeviceUse:
    """Bytes one device holds for the model, and what it may hold."""

    device: str  # "CPU", "CUDA0", "Metal"...
    kind: str  # "cpu" or "gpu"
    layers: int = 0
    weights: int = 0
    kv: int = 0
    compute: int = 0
    overhead: int = 0
    budget: int | None = None  # bytes usable for the model on this device

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.compute + self.overhead

    @property
    def fits(self) -> bool:
        return self.budget is None or self.total <= self.budget

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"total": self.total, "fits": self.fits}


class Note(str):
    """A remark on a plan: an English sentence (JSON, logs, errors) that keeps its kind and values,
    so that an edge can word it in the user's language."""

    kind: str
    values: dict[str, Any]

    def __new__(cls, kind: str, text: str, **values: Any) -> Self:
        note = super().__new__(cls, text)
        note.kind = kind
        note.values = values
        return note

    def __reduce__(self):  # str's own pickling would call Note(text) and lose the kind
        return (_note, (self.kind, str(self), self.values))


def _note(kind: str, text: str, values: dict[str, Any]) -> Note:
    return Note(kind, text, **values)


@dataclass
class Plan:
    """How a model would be loaded on a machine, with the numbers behind it.

    ``planning`` says which budget the devices' ``budget`` is: the machine's (what to download,
    True) or what can be used right now (loading, False); see :func:`ram_budget`.
    """

    mode: str  # "gpu" (fully offloaded), "partial", "cpu", "no_fit"
    n_gpu_layers: int  # llama.cpp's n_gpu_layers: n_layer + 1 = every layer and the output
    n_layer: int
    n_ctx: int
    kv_type: str
    flash_attn: bool
    devices: list[DeviceUse]
    tokens_per_second: float | None = None
    unified_total: int | None = None  # Apple: everything, since GPU and CPU share the RAM
    unified_budget: int | None = None
    notes: list[str] = field(default_factory=list)
    planning: bool = False

    @property
    def fits(self) -> bool:
        if self.mode == "no_fit":
            return False
        ok = all(d.fits for d in self.devices)
        if self.unified_budget is not None and self.unified_total is not None:
            ok = ok and self.unified_total <= self.unified_budget
        return ok

    @property
    def gpu_bytes(self) -> int:
        return sum(d.total for d in self.devices if d.kind == "gpu")

    @property
    def ram_bytes(self) -> int:
        return sum(d.total for d in self.devices if d.kind == "cpu")

    @property
    def total_bytes(self) -> int:
        return self.gpu_bytes + self.ram_bytes

    @property
    def cpu(self) -> DeviceUse:
        return next(d for d in self.devices if d.kind == "cpu")

    @property
    def gpus(self) -> list[DeviceUse]:
        return [d for d in self.devices if d.kind == "gpu"]

    @property
    def offloaded_layers(self) -> int:
        return min(self.n_gpu_layers, self.n_layer)

    def describe(self) -> str:
        gb = human_bytes
        speed = f", about {self.tokens_per_second:.0f} tokens/s, estimated" if self.tokens_per_second else ""
        usable = "usable" if self.planning else "usable now"
        if self.mode == "gpu":
            where = " + ".join(f"{gb(d.total)} on {d.device}" for d in self.gpus)
            return f"Everything on the GPU ({where}; {gb(self.ram_bytes)} of RAM){speed}"
        if self.mode == "partial":
            where = " + ".join(f"{d.layers} on {d.device}" for d in self.gpus)
            return (f"{self.offloaded_layers} of {self.n_layer} layers on the GPU ({where}), "
                    f"the rest in RAM ({gb(self.gpu_bytes)} GPU + {gb(self.ram_bytes)} RAM){speed}")
        if self.mode == "cpu":
            return f"On the CPU, in RAM ({gb(self.ram_bytes)}){speed}"
        short = [f"{d.device} needs {gb(d.total)} of {gb(d.budget or 0)} {usable}" for d in self.devices if not d.fits]
        if self.unified_budget is not None and self.unified_total is not None and self.unified_total > self.unified_budget:
            short.append(f"memory needs {gb(self.unified_total)} of {gb(self.unified_budget)} {usable}")
        return "Does not fit: " + "; ".join(short or ["not enough memory"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "fits": self.fits, "n_gpu_layers": self.n_gpu_layers,
            "n_layer": self.n_layer, "n_ctx": self.n_ctx, "kv_type": self.kv_type,
            "flash_attn": self.flash_attn, "tokens_per_second": self.tokens_per_second,
            "gpu_bytes": self.gpu_bytes, "ram_bytes": self.ram_bytes,
            "unified_total": self.unified_total, "unified_budget": self.unified_budget,
            "budget": "planning" if self.planning else "now",
            "devices": [d.to_dict() for d in self.devices], "notes": [str(n) for n in self.notes],
            "summary": self.describe(),
        }


# Budgets ------------------------------------------------------------------------------------
def ram_reserve(hardware: "Hardware") -> int:
    """RAM kept for the system and other programs: a quarter, at least RAM_RESERVE_MIN."""
    return max(RAM_RESERVE_MIN, int(hardware.ram_total * RAM_RESERVE_SHARE))


def ram_budget(hardware: "Hardware | None", *, planning: bool = False) -> int | None:
    """RAM a model may use: RAM minus the reserve; loading now, also no more than is free now minus a margin.

    Planning (what to download) assumes the machine as it is when nothing big runs; loading
    now takes what other programs hold into account, and never allows more than planning does.
    """
    if hardware is None or not hardware.ram_total:
        return None
    planned = max(hardware.ram_total - ram_reserve(hardware), 0)
    if planning or hardware.ram_available is None:
        return planned
    return max(min(planned, hardware.ram_available - RAM_MARGIN), 0)


def gpu_budget(gpu: "GPU", *, planning: bool = False) -> int:
    """VRAM the model may use on one GPU: its total (planning) or free memory (now), minus one margin."""
    if gpu.unified:
        limit = gpu.working_set or gpu.total
        return max(limit - GPU_MARGIN_MIN, 0)
    base = gpu.total if planning else gpu.free
    margin = max(GPU_MARGIN_MIN, int(gpu.total * GPU_MARGIN_SHARE))
    return max(base - margin, 0)


# The estimate -------------------------------------------------------------------------------
def estimate(
    model: "GGUFInfo | ModelShape",
    *,
    n_ctx: int,
    hardware: "Hardware | None" = None,
    n_gpu_layers: int | str = "auto",
    kv_type: str = "f16",
    flash_attn: bool = False,
    n_ubatch: int = N_UBATCH,
    planning: bool = False,
) -> Plan:
    """Memory per device for loading ``model`` with these settings on ``hardware``.

    ``n_gpu_layers="auto"`` picks the most layers the GPUs hold (what the model host uses);
    an int is llama.cpp's own (-1 = all). ``hardware=None`` estimates a CPU-only load with no
    budget (a plain "how much memory" answer). ``planning`` judges against the machine's
    total memory instead of what is free now (for choosing what to download).
    """
    shape = model if isinstance(model, ModelShape) else ModelShape.from_info(model)
    kv_type = kv_type.lower()
    if kv_type not in _KV_BYTES:
        raise ValueError(f"unknown KV cache type {kv_type!r} (use f16, q8_0 or q4_0)")
    if n_ctx < 1:
        raise ValueError("n_ctx must be positive")
    notes: list[str] = []
    if kv_type not in ("f16", "f32", "bf16") and not flash_attn:
        notes.append(Note("kv_needs_flash_attn",
                          "a quantised KV cache needs flash attention; llama.cpp refuses it otherwise"))
    if shape.n_ctx_train and n_ctx > shape.n_ctx_train:
        notes.append(Note("ctx_beyond_training",
                          f"context {n_ctx} is longer than the model was trained for ({shape.n_ctx_train})",
                          n_ctx=n_ctx, n_ctx_train=shape.n_ctx_train))
    gpus = hardware.usable_gpus() if hardware is not None else []
    full = shape.n_layer + 1
    if n_gpu_layers == "auto":
        def make(ngl: int) -> Plan:
            return _plan(shape, hardware, gpus, ngl, n_ctx, kv_type, flash_attn, n_ubatch, planning)

        def gpu_fits(p: Plan) -> bool:
            return all(d.fits for d in p.gpus) and (p.unified_budget is None or p.unified_total <= p.unified_budget)

        plan = make(full if gpus else 0)
        if gpus and not gpu_fits(plan):
            # GPU memory grows with every layer offloaded: find the most that fit by bisection.
            lo, hi = 0, full - 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if gpu_fits(make(mid)):
                    lo = mid
                else:
                    hi = mid - 1
            plan = make(lo)
    else:
        ngl = int(n_gpu_layers)
        ngl = full if ngl < 0 else min(ngl, full)
        if not gpus:
            if ngl and hardware is not None:
                notes.append(Note("no_usable_gpu", "no GPU this llama.cpp build can use: every layer stays in RAM"))
            ngl = 0
        plan = _plan(shape, hardware, gpus, ngl, n_ctx, kv_type, flash_attn, n_ubatch, planning)
    if not flash_attn:
        without = compute_sizes(shape, n_ctx, flash_attn=False, n_ubatch=n_ubatch)
        with_fa = compute_sizes(shape, n_ctx, flash_attn=True, n_ubatch=n_ubatch)
        saved = (without.touched_in_ram() - with_fa.touched_in_ram()) if plan.mode == "cpu" else \
            (without.reserved() - with_fa.reserved())
        if saved >= 256 * MiB:
            notes.append(Note("flash_attn_saves", f"flash attention would save about {human_bytes(saved)} at this context",
                              saved=saved))
    plan.notes = notes + plan.notes
    plan.planning = planning
    if not plan.fits:
        plan.mode = "no_fit"
    return plan


def default_gpu_layers(info: "GGUFInfo", hardware: "Hardware", n_ctx: int, kv_type: str = "f16",
                       flash_attn: bool = False) -> int:
    """``n_gpu_layers`` for "auto": the most layers the GPUs hold with their margins; 0 without a usable GPU.

    Returns ``n_layer + 1`` when everything, output included, fits on the GPU(s). When even the
    RAM part does not fit this still returns the GPU-optimal count: loading then fails with
    llama.cpp's own error, or the caller refuses first with :func:`check`. A model whose shape
    cannot be read gets 0.
    """
    if not hardware.usable_gpus():
        return 0
    try:
        plan = estimate(info, n_ctx=n_ctx, hardware=hardware, n_gpu_layers="auto", kv_type=kv_type,
                        flash_attn=flash_attn)
    except (ValueError, KeyError):
        return 0  # a shape this estimate cannot read: RAM is slow but cannot run out of VRAM
    return plan.n_gpu_layers


def check(plan: Plan) -> Plan:
    """Raise NotEnoughMemory with the numbers when the plan does not fit."""
    if not plan.fits:
        raise NotEnoughMemory(plan.describe(), hint="try a smaller quantisation, a shorter context, "
                              "or flash attention with a q8_0 KV cache")
    return plan


def _split_points(gpus: list["GPU"], planning: bool) -> list[float]:
    weights = [float(gpu_budget(g, planning=planning)) or 1.0 for g in gpus]
    total, acc, points = sum(weights), 0.0, []
    for w in weights:
        acc += w
        points.append(acc / total)
    return points


def _plan(shape: ModelShape, hardware: "Hardware | None", gpus: list["GPU"], ngl: int, n_ctx: int,
          kv_type: str, flash_attn: bool, n_ubatch: int, planning: bool) -> Plan:
    import bisect

    n_layer = shape.n_layer
    ngl = max(0, min(ngl, n_layer + 1)) if gpus else 0
    comp = compute_sizes(shape, n_ctx, flash_attn=flash_attn, n_ubatch=n_ubatch)
    cpu = DeviceUse("CPU", "cpu", budget=ram_budget(hardware, planning=planning))
    gpu_uses = [DeviceUse(_device_name(g, i), "gpu", budget=gpu_budget(g, planning=planning))
                for i, g in enumerate(gpus)]
    # Which device each layer (and, at index n_layer, the output) lives on; -1 = CPU.
    i_gpu_start = max(n_layer - ngl, 0)
    points = _split_points(gpus, planning) if gpus else []

    def device_of(il: int) -> int:
        if not gpus or il < i_gpu_start or il - i_gpu_start >= ngl:
            return -1
        k = bisect.bisect_right(points, (il - i_gpu_start) / ngl)
        return min(k, len(gpus) - 1)

    for il in range(n_layer):
        d = device_of(il)
        use = cpu if d < 0 else gpu_uses[d]
        use.layers += 1
        use.weights += shape.layer_bytes[il]
        use.kv += shape.kv_layer_bytes(il, n_ctx, kv_type, n_ubatch)
    out_dev = device_of(n_layer)
    cpu.weights += shape.input_bytes
    if out_dev < 0:
        cpu.weights += shape.output_bytes
    else:
        gpu_uses[out_dev].weights += shape.output_bytes + (shape.input_bytes if shape.tied_output else 0)
    # Compute buffers: every GPU holding layers reserves the full graph step sizes; the one
    # with the output also the logits. With the output in RAM, llama.cpp still runs the big
    # output multiply on the GPU for prompt batches and copies the weight there (Ollama's
    # "partial" graph counts the same copy).
    for k, use in enumerate(gpu_uses):
        if use.layers == 0 and out_dev != k:
            continue
        use.compute = comp.reserved(with_output=(out_dev == k))
        if out_dev < 0 and k == len(gpu_uses) - 1 and use.layers:
            use.compute += shape.output_bytes if not shape.tied_output else shape.input_bytes
        use.overhead = CUDA_CONTEXT if gpus[k].backend == "cuda" else METAL_CONTEXT
    cpu_layers = cpu.layers > 0
    cpu.compute = comp.touched_in_ram(with_layers=cpu_layers, with_output=out_dev < 0)
    if not cpu_layers and out_dev >= 0:
        cpu.compute = 2 * min(n_ubatch, n_ctx) * shape.n_embd * 4  # embeddings in, logits row out
    cpu.overhead = (RUNTIME_BASE + TOKENIZER_FIXED + TOKENIZER_PER_TOKEN * shape.n_vocab
                    + shape.n_vocab * 4  # llama.cpp's output buffer: one row of logits
                    + (CUDA_HOST if any(g.backend == "cuda" for g in gpus) and ngl else 0))
    used_gpus = [u for u in gpu_uses if u.layers or u.weights]
    if ngl == 0:
        mode = "cpu"
        used_gpus = []
    elif ngl >= n_layer + 1:
        mode = "gpu"
    else:
        mode = "partial"
    plan = Plan(mode=mode, n_gpu_layers=ngl, n_layer=n_layer, n_ctx=n_ctx, kv_type=kv_type,
                flash_attn=flash_attn, devices=[cpu] + used_gpus)
    unified = [g for g in gpus if g.unified]
    if hardware is not None and (unified or hardware.unified_memory):
        plan.unified_total = plan.total_bytes
        plan.unified_budget = ram_budget(hardware, planning=planning)
    plan.tokens_per_second = _speed(shape, plan, hardware, gpus, n_ctx, kv_type)
    return plan


def _device_name(gpu: "GPU", i: int) -> str:
    if gpu.backend == "metal":
        return "Metal"
    return f"{gpu.backend.upper()}{i}"


def _speed(shape: ModelShape, plan: Plan, hardware: "Hardware | None", gpus: list["GPU"],
           n_ctx: int, kv_type: str) -> float | None:
    """Tokens per second while generating, an estimate: each token reads every weight and half the
    KV cache, at the memory's effective bandwidth or, on the CPU, what its cores get through
    (the model host runs one thread per physical core), and CPU threads meet once per token."""
    if hardware is None:
        return None
    seconds = 0.0
    cpu_bw = min((hardware.cpu.bandwidth or DEFAULT_CPU_BANDWIDTH) * BANDWIDTH_EFFICIENCY,
                 max(hardware.cpu.physical_cores, 1) * CPU_CORE_RATE)
    output_in_ram = plan.n_gpu_layers <= shape.n_layer
    for d in plan.devices:
        read = d.weights + d.kv / 2
        if d.kind == "cpu":
            # One embedding row is read per token, unless the embedding is also the output layer
            # (tied, as in SmolLM2 or Qwen2.5-0.5B): the output multiply then reads all of it.
            if not (shape.tied_output and output_in_ram):
                read -= shape.input_bytes
            seconds += max(read, 0) / cpu_bw
            if d.layers and hardware.cpu.physical_cores > 1:
                seconds += THREAD_SYNC_PER_TOKEN
        else:
            idx = int(d.device[-1]) if d.device[-1:].isdigit() else 0
            gpu = gpus[idx] if idx < len(gpus) else gpus[0]
            bw = (gpu.bandwidth or DEFAULT_GPU_BANDWIDTH) * BANDWIDTH_EFFICIENCY
            seconds += read / bw
    return round(1.0 / seconds, 1) if seconds > 0 else None


def _pad(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def _scalar(value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, list):
        return max(value) if value else default
    return value


def context_for(shape: ModelShape, wanted: int) -> int:
    """The context to plan with: what was asked, within what the model was trained for."""
    if shape.n_ctx_train:
        return max(256, min(wanted, shape.n_ctx_train))
    return max(256, wanted)
