"""What a GGUF LoRA adapter is, and whether it fits a model, decided before llama.cpp sees it.

llama.cpp refuses a mismatched adapter only while applying it, with a line in its log; a bad
file given to ``Llama(lora_path=...)`` is not even refused (the first token crashes). So an
adapter is read here with the bounded GGUF reader, then parsed by llama.cpp's own GGUF reader in
a child process (a crash there ends the child only), and compared with the model's tensors
before it is applied: a mismatch is said in words and the model keeps working without it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from r1desk.engine.errors import AdapterError, CorruptModel
from r1desk.engine.gguf import splits
from r1desk.engine.gguf.header import GGUFInfo, read_header
from r1desk.engine.processes import child_command

# Tensor types an adapter's pairs may have: what converters write, and what llama.cpp's
# converter writes (q8_0 included).
ADAPTER_TYPES = {"F32", "F16", "BF16", "Q8_0"}
_BLOCK = re.compile(r"^blk\.(\d+)\.")
LLAMA_CPP_CHECK_SECONDS = 60


@dataclass
class AdapterFacts:
    """An adapter's own facts, as its file says them."""

    architecture: str
    alpha: float
    rank: int  # the largest rank of its pairs
    n_embd: int | None  # the model width its attention / feed-forward inputs imply
    n_layer: int | None  # the base's layer count when known (PEFT import), else None
    blocks: int  # layers it touches: highest block index + 1
    tensors: dict[str, list[int]]  # base tensor -> [n_in, n_out, rank]
    target_modules: list[str]  # GGUF tensor kinds (attn_q, ffn_up...)
    base_model: str = ""  # what it was trained on, where the file says
    name: str = ""  # general.name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelShape:
    """What an adapter must match in a model: its architecture, width, depth and tensor shapes."""

    architecture: str
    n_embd: int
    n_layer: int
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)  # ggml shape (ne0, ne1)
    name: str = ""


def _refuse(label: str, message: str, code: str, **facts: Any) -> AdapterError:
    return AdapterError(f"{label}: {message}", facts={"code": code, "file": label, **facts})


def describe(path: str | os.PathLike, *, llama_cpp_check: bool = True) -> AdapterFacts:
    """Read and check a GGUF LoRA adapter; AdapterError (or CorruptModel, NotAModel) if it is not one."""
    path = Path(path)
    info = read_header(path)
    label = str(path)
    facts = facts_from_header(info, label)
    if llama_cpp_check:
        llama_cpp_parses(path)
    return facts


def facts_from_header(info: GGUFInfo, label: str) -> AdapterFacts:
    md = info.metadata
    if md.get("general.type") != "adapter":
        what = "a model" if md.get("general.architecture") and md.get("general.type") in (None, "model") else \
            f"general.type {md.get('general.type')!r}"
        raise _refuse(label, f"is {what}, not a LoRA adapter (general.type is not \"adapter\")", "not-lora")
    if md.get("adapter.type") != "lora":
        raise _refuse(label, f"is a {md.get('adapter.type') or 'untyped'} adapter; only LoRA adapters are "
                      "supported", "not-lora")
    arch = md.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise _refuse(label, "names no architecture (general.architecture)", "not-lora")
    alpha = md.get("adapter.lora.alpha", 0.0)
    if not isinstance(alpha, (int, float)) or alpha != alpha or alpha < 0:
        raise _refuse(label, f"has an invalid alpha ({alpha!r})", "not-lora")
    if md.get("adapter.alora.invocation_tokens") is not None:
        raise _refuse(label, "is an activated LoRA (aLoRA), which r1desk does not apply", "unsupported",
                      what="alora")
    pairs: dict[str, dict[str, Any]] = {}
    for t in info.tensors:
        if t.name.endswith("_norm.weight"):
            continue  # llama.cpp ignores these too
        for suffix in (".lora_a", ".lora_b"):
            if t.name.endswith(suffix):
                pairs.setdefault(t.name[: -len(suffix)], {})[suffix[-1]] = t
                break
        else:
            raise _refuse(label, f"holds {t.name}, which is not part of a LoRA pair (.lora_a / .lora_b)",
                          "not-lora")
        if t.type_name not in ADAPTER_TYPES:
            raise _refuse(label, f"{t.name} is {t.type_name}; adapters in F32, F16, BF16 or Q8_0 are supported",
                          "unsupported", what=t.type_name)
    if not pairs:
        raise _refuse(label, "holds no LoRA tensors", "not-lora")
    tensors: dict[str, list[int]] = {}
    widths: set[int] = set()
    kinds: set[str] = set()
    blocks = 0
    for name, pair in sorted(pairs.items()):
        if set(pair) != {"a", "b"}:
            raise _refuse(label, f"{name} has lora_{'a' if 'a' not in pair else 'b'} missing", "not-lora")
        a, b = pair["a"], pair["b"]
        if len(a.shape) != 2 or len(b.shape) != 2:
            raise _refuse(label, f"{name}: its lora tensors are not matrices", "wrong-shape", tensor=name)
        # ggml order: lora_a (n_in, r), lora_b (r, n_out).
        n_in, r = a.shape
        r_b, n_out = b.shape
        if r != r_b:
            raise _refuse(label, f"{name}: lora_a has rank {r} but lora_b rank {r_b}", "wrong-shape", tensor=name)
        if name.endswith("token_embd.weight"):
            raise _refuse(label, "adapts the token embeddings, which r1desk does not apply", "unsupported",
                          what="embeddings")
        tensors[name] = [int(n_in), int(n_out), int(r)]
        m = _BLOCK.match(name)
        if m:
            blocks = max(blocks, int(m.group(1)) + 1)
            kind = name.split(".")[2]
            kinds.add(kind)
            if kind in ("attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"):
                widths.add(int(n_in))
        else:
            kinds.add(name.rsplit(".", 1)[0])
    base_model = md.get("general.base_model.0.name") or md.get("general.base_model.0.repo_url") or ""
    return AdapterFacts(
        architecture=arch, alpha=float(alpha), rank=max(v[2] for v in tensors.values()),
        n_embd=widths.pop() if len(widths) == 1 else None, n_layer=None, blocks=blocks, tensors=tensors,
        target_modules=sorted(kinds), base_model=str(base_model), name=str(md.get("general.name") or ""),
    )


def llama_cpp_parses(path: str | os.PathLike) -> None:
    """llama.cpp's own GGUF reader accepts the file (in a child process: a crash there is only a no)."""
    try:
        done = subprocess.run(child_command("r1desk.engine.adapters.check", str(path)), capture_output=True,
                              timeout=LLAMA_CPP_CHECK_SECONDS, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise _refuse(str(path), "llama.cpp's GGUF reader did not finish reading it", "rejected") from None
    if done.returncode != 0:
        raise _refuse(str(path), "llama.cpp's GGUF reader refuses it (damaged or truncated)", "rejected")


def model_shape(path: str | os.PathLike) -> ModelShape:
    """The model's architecture, sizes and every tensor's shape, from its header(s)."""
    first = Path(path)
    info = read_header(first, allow_truncated_data=True)
    tensors = {t.name: t.shape for t in info.tensors}
    count = int(info.metadata.get("split.count", 1) or 1)
    if count > 1:
        names = splits.part_names(first.name, count) or []
        for name in names[1:]:
            part = first.with_name(name)
            try:
                tensors.update({t.name: t.shape for t in read_header(part, allow_truncated_data=True).tensors})
            except (CorruptModel, OSError):
                continue
    return ModelShape(architecture=info.architecture, n_embd=int(info.arch_get("embedding_length", 0) or 0),
                      n_layer=int(info.block_count or 0), tensors=tensors, name=info.name or first.name)


def check_fits(facts: AdapterFacts, model: ModelShape, *, adapter: str) -> None:
    """Refuse, in words, an adapter made for another model: architecture, width, depth, each shape."""
    if facts.architecture != model.architecture:
        raise AdapterError(
            f"adapter {adapter} is for {facts.architecture} models, but {model.name} is a {model.architecture} "
            "model", facts={"code": "wrong-architecture", "adapter": adapter, "want": facts.architecture,
                            "have": model.architecture})
    if facts.n_embd and model.n_embd and facts.n_embd != model.n_embd:
        raise AdapterError(
            f"adapter {adapter} was made for a model {facts.n_embd} wide, but {model.name} is {model.n_embd} wide: "
            "it belongs to another model", facts={"code": "wrong-shape", "adapter": adapter, "want": facts.n_embd,
                                                   "have": model.n_embd})
    if (facts.n_layer and model.n_layer and facts.n_layer != model.n_layer) or facts.blocks > model.n_layer:
        want = facts.n_layer or facts.blocks
        raise AdapterError(
            f"adapter {adapter} was made for a model with {want} layers, but {model.name} has {model.n_layer}",
            facts={"code": "wrong-layers", "adapter": adapter, "want": want, "have": model.n_layer})
    for name, (n_in, n_out, _r) in facts.tensors.items():
        have = model.tensors.get(name)
        if have is None:
            raise AdapterError(f"adapter {adapter} changes {name}, which {model.name} does not have",
                               facts={"code": "wrong-shape", "adapter": adapter, "tensor": name})
        if tuple(have[:2]) != (n_in, n_out):
            raise AdapterError(
                f"adapter {adapter} changes {name} as {n_out}x{n_in}, but in {model.name} it is {have[1]}x{have[0]}: "
                "it belongs to another model", facts={"code": "wrong-shape", "adapter": adapter, "tensor": name})


def _main(argv: list[str]) -> int:
    """Child process: exit 0 if llama.cpp's GGUF reader accepts the file (metadata and tensor table)."""
    import ctypes

    import llama_cpp  # noqa: F401 - loads ggml's libraries
    from llama_cpp import _ggml

    class _Params(ctypes.Structure):
        _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]

    lib = _ggml.libggml
    lib.gguf_init_from_file.restype = ctypes.c_void_p
    lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, _Params]
    lib.gguf_free.argtypes = [ctypes.c_void_p]
    ctx = lib.gguf_init_from_file(os.fsencode(argv[0]), _Params(True, None))
    if not ctx:
        return 1
    lib.gguf_free(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
