"""PEFT LoRA adapter folders to GGUF LoRA adapters llama.cpp applies at run time, without PyTorch.

A PEFT folder holds ``adapter_config.json`` and ``adapter_model.safetensors`` with, for each
adapted weight W (n_out x n_in), a pair A (r x n_in) and B (n_out x r): the fine-tuned weight is
W + (alpha / r) * B @ A. llama.cpp wants the same pair under the base model's GGUF tensor name
(``blk.0.attn_q.weight.lora_a`` / ``.lora_b``), numpy shapes unchanged, with one ``alpha`` for
the whole file and ``alpha / r`` taken per tensor. Where PEFT scales a module otherwise (rank-
stabilised alpha / sqrt(r), per-module ranks or alphas), that module's B carries the difference,
so the adapter means the same thing in both.

The safetensors file is read here within its own bounds, tensor by tensor (numpy cannot hold
bfloat16, which most adapters are saved in), and a pickle (``adapter_model.bin``) is refused by
name: unpickling runs code.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from r1desk.engine.errors import AdapterError, Cancelled, ModelNotFound
from r1desk.engine.events import Progress

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "bert")
# The only base tensors an adapter may change: attention and feed-forward projections. Embeddings
# and the output layer are refused (llama.cpp cannot take a full new vocabulary row as an adapter).
ADAPTABLE = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
OUTTYPES = ("f32", "f16")

# Hugging Face config keys, by what they mean.
_HF_KEYS = {
    "n_layer": ("num_hidden_layers", "n_layer", "num_layers"),
    "n_embd": ("hidden_size", "n_embd", "d_model"),
    "n_head": ("num_attention_heads", "n_head"),
    "n_head_kv": ("num_key_value_heads", "n_head_kv"),
}
_HF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "bert": "bert"}


@dataclass
class BaseShape:
    """What the conversion needs to know of the base model."""

    architecture: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    name: str = ""  # the base model as the user named it (file, folder or library name)
    tensors: dict[str, tuple[int, ...]] | None = None  # GGUF name -> ggml shape, when read from a GGUF


@dataclass
class LoraSummary:
    """What a converted adapter is, for the adapters table."""

    architecture: str
    n_layer: int
    n_embd: int
    rank: int
    alpha: float
    target_modules: list[str]
    base_model: str  # what adapter_config.json says it was trained on
    tensors: dict[str, list[int]] = field(default_factory=dict)  # base tensor -> [n_in, n_out, rank]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- safetensors, read within its bounds -----------------------------------------------------
_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16}


class SafetensorsFile:
    """A safetensors file's tensors as numpy arrays, one at a time (bfloat16 widened to float32)."""

    def __init__(self, path: Path):
        self.path = path
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise AdapterError(f"{path}: not a safetensors file (too short)", facts={"code": "not-lora"})
            (n,) = struct.unpack("<Q", head)
            if n > MAX_SAFETENSORS_HEADER or 8 + n > size:
                raise AdapterError(f"{path}: not a safetensors file, or truncated (header of {n:,} bytes)",
                                   facts={"code": "not-lora"})
            try:
                header = json.loads(fh.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise AdapterError(f"{path}: not a safetensors file (its header is not JSON)",
                                   facts={"code": "not-lora"}) from None
        if not isinstance(header, dict):
            raise AdapterError(f"{path}: not a safetensors file", facts={"code": "not-lora"})
        self.metadata = header.pop("__metadata__", None) or {}
        self._start = 8 + n
        self.entries: dict[str, dict[str, Any]] = {}
        for name, entry in header.items():
            try:
                dtype, shape, (begin, end) = entry["dtype"], [int(d) for d in entry["shape"]], entry["data_offsets"]
            except (KeyError, TypeError, ValueError):
                raise AdapterError(f"{path}: damaged safetensors header at {name!r}", facts={"code": "not-lora"}) \
                    from None
            if dtype not in _DTYPES:
                raise AdapterError(f"{path}: tensor {name} is {dtype}; adapters in F32, F16 or BF16 are supported",
                                   facts={"code": "unsupported", "what": dtype})
            count = math.prod(shape)
            if end - begin != count * np.dtype(_DTYPES[dtype]).itemsize or begin < 0 or self._start + end > size:
                raise AdapterError(f"{path}: tensor {name} lies outside the file (truncated or damaged)",
                                   facts={"code": "truncated"})
            self.entries[name] = {"dtype": dtype, "shape": shape, "begin": begin, "end": end}

    def nbytes(self, name: str) -> int:
        e = self.entries[name]
        return e["end"] - e["begin"]

    def shape(self, name: str) -> list[int]:
        return self.entries[name]["shape"]

    def read(self, name: str) -> np.ndarray:
        e = self.entries[name]
        raw = np.memmap(self.path, dtype=_DTYPES[e["dtype"]], mode="r", offset=self._start + e["begin"],
                        shape=tuple(e["shape"]))
        if e["dtype"] == "BF16":
            return (np.asarray(raw).astype(np.uint32) << 16).view(np.float32)
        return np.asarray(raw, dtype=np.float32)


# -- the base model ----------------------------------------------------------------------------
def base_shape(base: str | os.PathLike) -> BaseShape:
    """The base model's architecture and sizes, from a GGUF model file or a Hugging Face folder."""
    path = Path(base).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise AdapterError(f"{path}: a base model folder needs its config.json", facts={"code": "no-base"})
        hp = json.loads(config.read_text(encoding="utf-8"))
        model_type = str(hp.get("model_type", ""))
        arch = _HF_ARCH.get(model_type)
        if arch is None:
            raise AdapterError(f"{path}: the base model is {model_type or 'of an unknown type'}; adapters for "
                               f"{', '.join(SUPPORTED_ARCHITECTURES)} models are supported",
                               facts={"code": "unsupported", "what": model_type})

        def get(what: str, default: Any = None) -> Any:
            for key in _HF_KEYS[what]:
                if key in hp:
                    return int(hp[key])
            if default is None:
                raise AdapterError(f"{config}: has no {_HF_KEYS[what][0]}", facts={"code": "no-base"})
            return default

        n_head = get("n_head")
        return BaseShape(arch, get("n_layer"), get("n_embd"), n_head, get("n_head_kv", n_head), name=path.name)
    if not path.is_file():
        from r1desk.engine.models.library import resolve

        try:
            path = Path(resolve(str(base)))
        except ModelNotFound:
            raise ModelNotFound(f"{base}: no such base model (give a .gguf file, a Hugging Face folder or "
                                "a library name)", facts={"code": "no-file", "file": str(base)}) from None
    return base_shape_from_gguf(path)


def base_shape_from_gguf(path: str | os.PathLike) -> BaseShape:
    from r1desk.engine.gguf.header import check_model, read_header
    from r1desk.engine.models.library import inspect_model

    inspection = inspect_model(path)
    info = inspection.info
    tensors = {t.name: t.shape for t in info.tensors}
    for part in inspection.parts[1:]:
        tensors.update({t.name: t.shape for t in read_header(part).tensors})
    if inspection.parts[0] == Path(path) and not info.tensors:
        check_model(path)
    arch = info.architecture
    n_head = int(info.arch_get("attention.head_count", 0) or 0)
    return BaseShape(
        architecture=arch,
        n_layer=int(info.block_count or 0),
        n_embd=int(info.arch_get("embedding_length", 0) or 0),
        n_head=n_head,
        n_head_kv=int(info.arch_get("attention.head_count_kv", n_head) or n_head),
        name=Path(path).name,
        tensors=tensors,
    )


# -- names -------------------------------------------------------------------------------------
_PEFT_PAIR = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])(?:\.[^.]+)?\.weight$")


def _module_of(key: str) -> tuple[str, str] | None:
    """``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` -> (module path, "A")."""
    m = _PEFT_PAIR.match(key)
    if m is None:
        return None
    module = m.group("module")
    for prefix in ("base_model.model.",):
        if module.startswith(prefix):
            module = module[len(prefix):]
    return module, m.group("which")


def _gguf_name(arch: str, n_layer: int, module: str) -> str | None:
    import gguf

    archs = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2, "bert": gguf.MODEL_ARCH.BERT}
    names = gguf.get_tensor_name_map(archs[arch], n_layer)
    candidates = [module]
    if arch == "bert" and module.startswith("bert."):
        candidates.append(module[len("bert."):])  # BertFor... heads wrap the encoder as "bert."
    for candidate in candidates:
        name = names.get_name(candidate + ".weight", try_suffixes=(".weight",))
        if name is not None:
            return name
    return None


def _llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama's rotary layout: llama.cpp's converter reorders the rows of q and k (per head, the
    two halves interleaved); an adapter's B, whose rows are those outputs, is reordered the same way."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# -- the conversion ----------------------------------------------------------------------------
def _refuse(folder: Path, message: str, code: str, **facts: Any) -> AdapterError:
    return AdapterError(f"{folder}: {message}", facts={"code": code, "folder": str(folder), **facts})


class ConvertLora:
    """One conversion: iterate for Progress events, ``cancel()`` from any thread.

    After the iteration ends, ``out`` is the GGUF adapter and ``summary`` what it is.
    """

    def __init__(self, folder: str | os.PathLike, out: str | os.PathLike, *, base: str | os.PathLike | BaseShape,
                 outtype: str = "f32"):
        self.folder = Path(folder).expanduser()
        self.out = Path(os.path.abspath(Path(out).expanduser()))
        self.base_arg = base
        self.outtype = outtype.lower()
        self.summary: LoraSummary | None = None
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def __iter__(self) -> Iterator[Progress]:
        return self._run()

    def _config(self) -> dict[str, Any]:
        folder = self.folder
        if not folder.is_dir():
            if folder.is_file():
                raise _refuse(folder, "is a file; a PEFT adapter is a folder with adapter_config.json and "
                              "adapter_model.safetensors", "not-lora")
            raise ModelNotFound(f"{folder}: no such folder", facts={"code": "no-file", "file": str(folder)})
        if not (folder / "adapter_model.safetensors").is_file():
            if any((folder / n).exists() for n in ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth")):
                raise _refuse(folder, "holds the adapter as a Python pickle (adapter_model.bin), which r1desk "
                              "never loads because unpickling can run code; save it with "
                              "save_pretrained(..., safe_serialization=True) to get adapter_model.safetensors",
                              "pickle")
            raise _refuse(folder, "has no adapter_model.safetensors", "not-lora")
        try:
            config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise _refuse(folder, "has no adapter_config.json", "not-lora") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _refuse(folder, f"adapter_config.json is not valid JSON ({exc})", "not-lora") from None
        if not isinstance(config, dict):
            raise _refuse(folder, "adapter_config.json is not a JSON object", "not-lora")
        kind = str(config.get("peft_type", "LORA")).upper()
        if kind != "LORA":
            raise _refuse(folder, f"is a {kind} adapter; only LoRA adapters can be converted", "unsupported",
                          what=kind)
        refusals = {
            "use_dora": "it is a DoRA adapter (weight-decomposed LoRA), which llama.cpp cannot apply",
            "fan_in_fan_out": "it stores transposed weights (fan_in_fan_out), as only GPT-2 style models do",
            "lora_bias": "it trains a bias with each adapted weight (lora_bias), which llama.cpp cannot apply",
            "modules_to_save": "it saves whole modules besides the LoRA pairs "
                               f"({', '.join(config.get('modules_to_save') or [])}), which an adapter file cannot hold",
        }
        for key, why in refusals.items():
            if config.get(key):
                raise _refuse(folder, f"cannot be converted: {why}", "unsupported", what=key)
        if config.get("alora_invocation_tokens") or config.get("invocation_string"):
            raise _refuse(folder, "is an activated LoRA (aLoRA), which r1desk does not apply", "unsupported",
                          what="alora")
        if "lora_alpha" not in config or "r" not in config:
            raise _refuse(folder, "adapter_config.json has no r or lora_alpha", "not-lora")
        return config

    def _base(self) -> BaseShape:
        base = self.base_arg
        return base if isinstance(base, BaseShape) else base_shape(base)

    def _run(self) -> Iterator[Progress]:
        import gguf

        if self.outtype not in OUTTYPES:
            raise AdapterError(f"unknown adapter type {self.outtype!r} (use {' or '.join(OUTTYPES)})",
                               facts={"code": "unsupported", "what": self.outtype})
        config = self._config()
        base = self._base()
        folder = self.folder
        if base.architecture not in SUPPORTED_ARCHITECTURES:
            raise _refuse(folder, f"its base model is a {base.architecture} model; adapters for "
                          f"{', '.join(SUPPORTED_ARCHITECTURES)} models are supported", "unsupported",
                          what=base.architecture)
        st = SafetensorsFile(folder / "adapter_model.safetensors")
        pairs: dict[str, dict[str, str]] = {}
        for key in st.entries:
            found = _module_of(key)
            if found is None:
                if "lora_embedding" in key or "embed_tokens" in key:
                    raise _refuse(folder, f"adapts the token embeddings ({key}); r1desk converts adapters of "
                                  "attention and feed-forward layers only", "unsupported", what="embeddings")
                raise _refuse(folder, f"holds {key}, which is not a LoRA pair (lora_A / lora_B); only LoRA "
                              "weights can be converted", "unsupported", what=key)
            module, which = found
            pairs.setdefault(module, {})[which] = key
        if not pairs:
            raise _refuse(folder, "adapter_model.safetensors holds no LoRA weights", "not-lora")

        alpha0, r0 = float(config["lora_alpha"]), int(config["r"])
        rank_pattern = config.get("rank_pattern") or {}
        alpha_pattern = config.get("alpha_pattern") or {}
        rslora = bool(config.get("use_rslora"))
        # One alpha for the file: llama.cpp scales each tensor by alpha / (its rank). With the
        # common rank this is exactly PEFT's alpha / r (or alpha / sqrt(r), rank-stabilised).
        file_alpha = alpha0 * math.sqrt(r0) if rslora else alpha0

        plan: list[tuple[str, str, str, str, float]] = []  # (module, gguf name, key A, key B, factor)
        targets: set[str] = set()
        ranks: set[int] = set()
        for module, pair in sorted(pairs.items()):
            if set(pair) != {"A", "B"}:
                raise _refuse(folder, f"{module} has lora_{'A' if 'A' not in pair else 'B'} missing", "not-lora")
            name = _gguf_name(base.architecture, base.n_layer, module)
            short = module.rsplit(".", 1)[-1]
            if name is None:
                raise _refuse(folder, f"adapts {module}, which a {base.architecture} model with {base.n_layer} "
                              "layers does not have (is --base the model it was trained on?)", "wrong-layers",
                              module=module)
            kind = name.split(".")[-2] if name.startswith("blk.") else name.rsplit(".", 1)[0]
            if kind not in ADAPTABLE:
                raise _refuse(folder, f"adapts {short} ({name}); r1desk converts adapters of attention and "
                              "feed-forward layers only (not embeddings or the output layer)", "unsupported",
                              what=short)
            a_shape, b_shape = st.shape(pair["A"]), st.shape(pair["B"])
            if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1] or a_shape[0] < 1:
                raise _refuse(folder, f"{module}: lora_A {a_shape} and lora_B {b_shape} do not form a LoRA pair",
                              "wrong-shape", module=module)
            r = a_shape[0]
            want_r = int(_pattern(rank_pattern, module, r0))
            if r != want_r:
                raise _refuse(folder, f"{module}: its rank is {r} but adapter_config.json says {want_r}",
                              "wrong-shape", module=module)
            alpha = float(_pattern(alpha_pattern, module, alpha0))
            peft_scale = alpha / math.sqrt(r) if rslora else alpha / r
            factor = peft_scale / (file_alpha / r)
            plan.append((module, name, pair["A"], pair["B"], factor))
            targets.add(short)
            ranks.add(r)
            if base.tensors is not None:
                have = base.tensors.get(name)
                want = (a_shape[1], b_shape[0])
                if have is None:
                    raise _refuse(folder, f"adapts {name}, which the base model does not have", "wrong-layers",
                                  module=module)
                if tuple(have[:2]) != want:
                    raise _refuse(folder, f"{module} is {want[1]}x{want[0]} but the base model's {name} is "
                                  f"{have[1]}x{have[0]}: the adapter was made for another model", "wrong-shape",
                                  module=module)
        if self.out.exists():
            raise AdapterError(f"{self.out} already exists; choose another file or delete it first",
                               facts={"code": "exists", "file": str(self.out)})
        self.out.parent.mkdir(parents=True, exist_ok=True)
        # Progress in bytes of the adapter's weights, as the other jobs count.
        sizes = [st.nbytes(key_a) + st.nbytes(key_b) for _m, _n, key_a, key_b, _f in plan]
        total = sum(sizes)
        done = 0
        tmp = self.out.with_name(self.out.name + ".partial")
        dtype = np.float16 if self.outtype == "f16" else np.float32
        shapes: dict[str, list[int]] = {}
        writer = gguf.GGUFWriter(str(tmp), base.architecture)
        try:
            writer.add_type(gguf.GGUFType.ADAPTER)
            writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
            writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, file_alpha)
            writer.add_name(folder.name)
            trained_on = str(config.get("base_model_name_or_path") or "")
            if trained_on:
                writer.add_string("general.base_model.0.name", trained_on)
                writer.add_uint32("general.base_model.count", 1)
            for i, (module, name, key_a, key_b, factor) in enumerate(plan):
                if self._cancel.is_set():
                    raise Cancelled(f"converting {folder.name} cancelled; nothing was kept")
                yield Progress(done, total, f"Converting {module}")
                done += sizes[i]
                lora_a = st.read(key_a)
                lora_b = st.read(key_b)
                if factor != 1.0:
                    lora_b = lora_b * np.float32(factor)
                if base.architecture == "llama":
                    if name.endswith("attn_q.weight"):
                        lora_b = _llama_permute(lora_b, base.n_head)
                    elif name.endswith("attn_k.weight"):
                        lora_b = _llama_permute(lora_b, base.n_head_kv)
                if not (np.isfinite(lora_a).all() and np.isfinite(lora_b).all()):
                    raise _refuse(folder, f"{module} holds NaN or infinite values", "not-lora", module=module)
                writer.add_tensor(name + ".lora_a", np.ascontiguousarray(lora_a, dtype=dtype))
                writer.add_tensor(name + ".lora_b", np.ascontiguousarray(lora_b, dtype=dtype))
                shapes[name] = [int(lora_a.shape[1]), int(lora_b.shape[0]), int(lora_a.shape[0])]
            if self._cancel.is_set():
                raise Cancelled(f"converting {folder.name} cancelled; nothing was kept")
            yield Progress(total, total, f"Writing {self.out.name}")
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
            os.replace(tmp, self.out)
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - already closed, or the error above is the one to report
                pass
            tmp.unlink(missing_ok=True)
        n_embd = base.n_embd or next(iter(shapes.values()))[0]
        self.summary = LoraSummary(
            architecture=base.architecture, n_layer=base.n_layer, n_embd=n_embd,
            rank=max(ranks), alpha=file_alpha, target_modules=sorted(targets),
            base_model=str(config.get("base_model_name_or_path") or ""), tensors=shapes,
        )
        size = self.out.stat().st_size
        yield Progress(total, total, f"Wrote {self.out.name} ({size / 1e6:.1f} MB)")


def _pattern(pattern: dict[str, Any], module: str, default: Any) -> Any:
    """PEFT's rank_pattern / alpha_pattern: a key matches a module whose name ends with it."""
    for key, value in pattern.items():
        if module == key or module.endswith("." + key) or re.fullmatch(key, module):
            return value
    return default


def convert(folder: str | os.PathLike, out: str | os.PathLike, *, base: str | os.PathLike | BaseShape,
            outtype: str = "f32") -> ConvertLora:
    """Build a conversion of a PEFT LoRA folder to a GGUF adapter; iterate it to run it."""
    return ConvertLora(folder, out, base=base, outtype=outtype)


class ImportAdapter:
    """Bring an adapter into the database: a PEFT folder (converted first) or a GGUF LoRA file.

    Iterate for Progress events; ``cancel()`` from any thread. ``base`` (a GGUF model, a Hugging
    Face folder or a library name) is needed for a PEFT folder and checked against for a GGUF
    file. Nothing is kept unless all of it is: a refusal leaves the database as it was. After
    the iteration, ``adapter`` is the new row.
    """

    def __init__(self, path: str | os.PathLike, *, name: str | None = None, base: str | os.PathLike | None = None,
                 notes: str = "", db: Any = None, outtype: str = "f32"):
        self.path = Path(path).expanduser()
        self.name = name
        self.base = base
        self.notes = notes
        self.db = db
        self.outtype = outtype
        self.adapter: Any = None
        self._job: ConvertLora | None = None
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()
        if self._job is not None:
            self._job.cancel()

    def __iter__(self) -> Iterator[Progress]:
        return self._run()

    def _run(self) -> Iterator[Progress]:
        from r1desk.engine import paths
        from r1desk.engine.adapters.check import ModelShape, check_fits, describe
        from r1desk.engine.adapters.store import Adapters, check_name, default_name

        store = Adapters(self.db)
        base = base_shape(self.base) if self.base is not None else None
        path = self.path
        if path.is_dir():
            if base is None:
                raise _refuse(path, "is a PEFT adapter folder; say which model it was trained on with --base "
                              "(a GGUF model, its Hugging Face folder or a library name)", "no-base")
            name = check_name(self.name if self.name is not None else path.name)
            store_has = [a.name for a in store.list()]
            if name in store_has:
                raise AdapterError(f"an adapter named {name!r} is already imported; choose another --name",
                                   facts={"code": "duplicate", "name": name})
            tmp = paths.adapters_dir() / f".import-{os.getpid()}-{threading.get_ident()}.gguf"
            tmp.unlink(missing_ok=True)
            try:
                self._job = ConvertLora(path, tmp, base=base, outtype=self.outtype)
                if self._cancel.is_set():
                    self._job.cancel()
                yield from self._job
                summary = self._job.summary
                facts = describe(tmp)
                facts.n_layer = summary.n_layer or None
                facts.n_embd = summary.n_embd or facts.n_embd
                yield Progress(1, None, f"Saving {name} in the database")
                self.adapter = store.add(tmp, name=name, notes=self.notes, facts=facts, source=str(path),
                                         base_model=summary.base_model or base.name)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            yield Progress(0, None, f"Checking {path.name}")
            facts = describe(path)
            if base is not None:
                if base.tensors is not None:
                    shape = ModelShape(base.architecture, base.n_embd, base.n_layer, base.tensors, base.name)
                    check_fits(facts, shape, adapter=self.name or default_name(path))
                elif base.architecture != facts.architecture:
                    raise AdapterError(f"{path.name} is for {facts.architecture} models, but {base.name} is a "
                                       f"{base.architecture} model", facts={"code": "wrong-architecture"})
                facts.n_layer = base.n_layer
            if self._cancel.is_set():
                raise Cancelled(f"importing {path.name} cancelled; nothing was kept")
            self.adapter = store.add(path, name=self.name, notes=self.notes, facts=facts,
                                     base_model=facts.base_model or (base.name if base is not None else ""))
        yield Progress(1, None, f"Imported {self.adapter.name} ({self.adapter.size / 1e6:.1f} MB)")


def import_adapter(path: str | os.PathLike, **kwargs: Any) -> ImportAdapter:
    """Build an import of a PEFT folder or GGUF LoRA file into the database; iterate it to run it."""
    return ImportAdapter(path, **kwargs)
