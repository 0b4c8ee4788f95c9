"""The models r1desk offers: hub repos, every quant file with its size, and each model's shape.

``assets/catalog.json`` is the source. Sizes marked ``"estimated": true`` were computed here,
not read from the hub: every tensor's shape follows from the model's architecture numbers and
its type from llama.cpp's quantisation recipe (engine.quants.tensor_type), which reproduces
the real DeepSeek-R1-Distill-Qwen-7B Q4_K_M tensor data to the byte. ``refresh()`` replaces
file lists and sizes with the hub's when online (``r1desk catalog refresh``).

The same shape gives the memory estimator a header (``synthesize``) for files not downloaded
yet, so a recommendation can be made before anything is fetched.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from r1desk.engine import paths
from r1desk.engine.gguf import quants, splits
from r1desk.engine.gguf.header import GGUFInfo, TensorInfo, ggml_type_sizes

CATALOG_PATH = paths.asset("catalog.json")
SPLIT_LIMIT = 48 * 1000**3  # uploaders split files above the hub's 50 GB limit into parts
ALIGNMENT = 32

# Header bytes, from the real DeepSeek-R1-Distill-Qwen-7B header (5,953,248 bytes: 152,064
# tokens, 151,387 merges, 339 tensors): per token (text, length, type), per merge, per tensor.
HEADER_FIXED = 3_300  # the other metadata, chat template included
HEADER_PER_TOKEN = 21.04
HEADER_PER_MERGE = 18.04
HEADER_PER_TENSOR = 57


@dataclass
class Arch:
    """The architecture numbers a memory estimate needs (from the model's config.json)."""

    architecture: str  # llama.cpp's name: "qwen2", "qwen3", "llama"
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    n_ctx_train: int
    head_dim: int | None = None  # when not n_embd / n_head (Qwen3)
    tied_embeddings: bool = False
    attn_bias: bool = False  # Q/K/V biases (Qwen2)
    qk_norm: bool = False  # per-head Q/K norms (Qwen3)
    rope_freqs: bool = False  # Llama 3's rope scaling factors tensor
    n_merges: int | None = None

    @property
    def head_size(self) -> int:
        return self.head_dim or self.n_embd // self.n_head


@dataclass
class FilePart:
    name: str
    size: int


@dataclass
class QuantFiles:
    """One quantisation of a model: its file, or its split parts in order."""

    quant: str
    files: list[FilePart]
    estimated: bool = True

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.files]


@dataclass
class CatalogModel:
    id: str
    name: str
    repo: str
    family: str  # "deepseek-r1" or "general"
    license: str
    params: int
    arch: Arch
    quants: list[QuantFiles]
    base_model: str | None = None
    reasoning: bool = False
    description_en: str = ""
    description_zh: str = ""
    # Added to the ranking score (log2-parameter units) where a model is known to be better or
    # worse than its size says; quality_note gives the evidence.
    quality_offset: float = 0.0
    quality_note: str = ""
    # "chat", or "embedding": a model that turns text into vectors for the document index,
    # never offered for chat. An embedding model's questions and passages may need prefixes.
    role: str = "chat"
    default_quant: str | None = None  # the quant to fetch when none is asked for (embedding models)
    query_prefix: str = ""
    document_prefix: str = ""

    def quant(self, name: str) -> QuantFiles | None:
        return next((q for q in self.quants if quants.matches(name, q.quant)), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for q, qd in zip(self.quants, d["quants"]):
            qd["size"] = q.size
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CatalogModel":
        d = dict(d)
        arch = Arch(**d.pop("arch"))
        qs = []
        for q in d.pop("quants"):
            qs.append(QuantFiles(quant=q["quant"], files=[FilePart(**f) for f in q["files"]],
                                 estimated=bool(q.get("estimated", True))))
        return cls(arch=arch, quants=qs, **d)


@dataclass
class Catalog:
    """``models`` are the chat models (what pickers and recommendations offer);
    ``embedding_models`` the models for the document index. Both download and fit alike."""

    models: list[CatalogModel]
    updated: str = ""
    notes: list[str] = field(default_factory=list)
    embedding_models: list[CatalogModel] = field(default_factory=list)

    @property
    def all_models(self) -> list[CatalogModel]:
        return [*self.models, *self.embedding_models]

    def get(self, model_id: str) -> CatalogModel:
        for m in self.all_models:
            if m.id == model_id:
                return m
        raise KeyError(model_id)

    def by_repo(self, repo: str) -> CatalogModel | None:
        return next((m for m in self.all_models if m.repo.lower() == repo.lower()), None)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "updated": self.updated, "notes": self.notes,
                "models": [m.to_dict() for m in self.all_models]}

    def save(self, path: str | os.PathLike = CATALOG_PATH) -> None:
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def load(path: str | os.PathLike | None = None) -> Catalog:
    """The catalog: a refreshed copy in the user's cache when there is one, else the shipped one."""
    if path is None:
        from r1desk.engine.paths import cache_dir

        refreshed = cache_dir() / "catalog.json"
        path = refreshed if refreshed.exists() else CATALOG_PATH
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    entries = [CatalogModel.from_dict(m) for m in data["models"]]
    return Catalog(models=[m for m in entries if m.role == "chat"],
                   embedding_models=[m for m in entries if m.role == "embedding"],
                   updated=data.get("updated", ""), notes=list(data.get("notes", [])))


def embedding_entry(filename: str, catalog: Catalog | None = None) -> CatalogModel | None:
    """The catalog's embedding model a GGUF file name belongs to ("Qwen3-Embedding-0.6B-Q8_0.gguf")."""
    catalog = catalog or load()
    name = Path(filename).name.lower()
    for model in catalog.embedding_models:
        if any(f.name.lower() == name for q in model.quants for f in q.files):
            return model
    return None


# Shapes and sizes ---------------------------------------------------------------------------
def tensor_shapes(arch: Arch) -> list[tuple[str, tuple[int, ...], int | None]]:
    """(name, ggml shape, layer) of every tensor a llama.cpp GGUF of this dense model holds."""
    e, f, hd = arch.n_embd, arch.n_ff, arch.head_size
    q, kv = arch.n_head * hd, arch.n_head_kv * hd
    out: list[tuple[str, tuple[int, ...], int | None]] = []
    if not arch.tied_embeddings:
        out.append(("output.weight", (e, arch.n_vocab), None))
    out.append(("output_norm.weight", (e,), None))
    if arch.rope_freqs:
        out.append(("rope_freqs.weight", (hd // 2,), None))
    out.append(("token_embd.weight", (e, arch.n_vocab), None))
    for i in range(arch.n_layer):
        p = f"blk.{i}."
        layer = [
            ("attn_norm.weight", (e,)), ("attn_q.weight", (e, q)), ("attn_k.weight", (e, kv)),
            ("attn_v.weight", (e, kv)), ("attn_output.weight", (q, e)), ("ffn_norm.weight", (e,)),
            ("ffn_gate.weight", (e, f)), ("ffn_up.weight", (e, f)), ("ffn_down.weight", (f, e)),
        ]
        if arch.attn_bias:
            layer += [("attn_q.bias", (q,)), ("attn_k.bias", (kv,)), ("attn_v.bias", (kv,))]
        if arch.qk_norm:
            layer += [("attn_q_norm.weight", (hd,)), ("attn_k_norm.weight", (hd,))]
        out += [(p + n, s, i) for n, s in layer]
    return out


def synthesize(arch: Arch, quant: str, *, name: str = "model", imatrix: bool = True) -> GGUFInfo:
    """A header (no data) for ``arch`` quantised as ``quant``, as llama.cpp's quantiser would write it.

    Treat the result as read-only: it is cached, since ranking a catalog asks for hundreds."""
    return _synthesize(astuple(arch), quant, name, imatrix)


@functools.lru_cache(maxsize=1024)
def _synthesize(arch_fields: tuple, quant: str, name: str, imatrix: bool) -> GGUFInfo:
    arch = Arch(*arch_fields)
    sizes = ggml_type_sizes()
    n_gqa = arch.n_head // max(arch.n_head_kv, 1)
    is_70b = arch.architecture == "llama" and arch.n_layer == 80
    tensors: list[TensorInfo] = []
    offset = 0
    for tname, shape, layer in tensor_shapes(arch):
        t = quants.tensor_type(quant, tname, shape, layer=layer, n_layer=arch.n_layer, n_gqa=n_gqa,
                               has_output=not arch.tied_embeddings, imatrix=imatrix, is_70b=is_70b)
        block, type_size, _ = sizes[t]
        n = 1
        for d in shape:
            n *= d
        nbytes = n // block * type_size
        tensors.append(TensorInfo(tname, shape, t, offset, nbytes))
        offset += (nbytes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
    a = arch.architecture
    q = quants.get(quant)
    metadata: dict[str, Any] = {
        "general.architecture": a, "general.name": name,
        f"{a}.block_count": arch.n_layer, f"{a}.context_length": arch.n_ctx_train,
        f"{a}.embedding_length": arch.n_embd, f"{a}.feed_forward_length": arch.n_ff,
        f"{a}.attention.head_count": arch.n_head, f"{a}.attention.head_count_kv": arch.n_head_kv,
        f"{a}.vocab_size": arch.n_vocab,
    }
    if arch.head_dim:
        metadata[f"{a}.attention.key_length"] = arch.head_dim
        metadata[f"{a}.attention.value_length"] = arch.head_dim
    file_type = q.file_type if q.file_type is not None else quants.get(q.base or quant).file_type
    if file_type is not None:
        metadata["general.file_type"] = file_type
    header = header_bytes(arch, len(tensors))
    data_offset = (header + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
    return GGUFInfo(source=f"{name} ({quant}, estimated)", version=3, metadata=metadata,
                    tensors=tensors, data_offset=data_offset, file_size=data_offset + offset,
                    header_size=header, warnings=["synthesised from architecture numbers"])


def header_bytes(arch: Arch, n_tensors: int) -> int:
    merges = arch.n_merges if arch.n_merges is not None else arch.n_vocab
    return int(HEADER_FIXED + HEADER_PER_TOKEN * arch.n_vocab + HEADER_PER_MERGE * merges
               + HEADER_PER_TENSOR * n_tensors)


def estimated_size(arch: Arch, quant: str) -> int:
    return synthesize(arch, quant).expected_file_size


def parameter_count(arch: Arch) -> int:
    total = 0
    for _, shape, _ in tensor_shapes(arch):
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


def info_for(model: CatalogModel, quant: str) -> GGUFInfo:
    """The header to estimate with: synthesised from the model's shape (no download needed)."""
    return synthesize(model.arch, quant, name=model.name)


def estimated_files(model: CatalogModel, quant: str, stem: str | None = None) -> QuantFiles:
    """The file(s) an uploader would publish for ``quant``, split into parts above SPLIT_LIMIT."""
    stem = stem or model.repo.split("/", 1)[1].removesuffix("-GGUF")
    label = "f16" if quant == "F16" else quant
    size = estimated_size(model.arch, quant)
    n_parts = -(-size // SPLIT_LIMIT)
    if n_parts == 1:
        return QuantFiles(quant, [FilePart(f"{stem}-{label}.gguf", size)])
    part = size // n_parts
    files = [FilePart(splits.part_name(f"{stem}-{label}/{stem}-{label}", i + 1, n_parts),
                      part if i < n_parts - 1 else size - part * (n_parts - 1))
             for i in range(n_parts)]
    return QuantFiles(quant, files)


# Refresh from the hub -----------------------------------------------------------------------
def group_files(siblings: list[tuple[str, int | None]]) -> list[QuantFiles]:
    """Hub file list -> one entry per quant, split parts grouped in order; non-GGUF files dropped."""
    sizes = {path: int(size) for path, size in siblings
             if path.lower().endswith(".gguf") and "mmproj" not in path.lower() and size is not None}
    out = []
    for first, parts in splits.group(sizes).items():
        quant = quants.from_filename(first)
        if quant not in quants.QUANTS or None in parts:
            # Not a quant whose size and fit r1desk can work out (Q4_K_XL, MXFP4...), or an
            # incomplete upload: not offered.
            continue
        out.append(QuantFiles(quant, [FilePart(p, sizes[p]) for p in parts], estimated=False))
    out.sort(key=lambda q: (quants.rank(q.quant), q.names[0]))
    # One file per quant: when an uploader has two (imatrix and not), keep the first by name.
    seen: set[str] = set()
    return [q for q in out if not (q.quant in seen or seen.add(q.quant))]


def refresh(
    catalog: Catalog | None = None,
    *,
    api: Any = None,
    save_to: str | os.PathLike | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[Any]:
    """Rebuild every model's file list from the hub; yields Progress events; saves at the end.

    Uses huggingface_hub's ``HfApi`` (its endpoint, token and proxies); a model whose repo
    cannot be read keeps its previous entry, and the reason is reported.
    """
    from r1desk.engine.errors import Cancelled, Offline
    from r1desk.engine.events import Progress

    if catalog is None:
        catalog = load(CATALOG_PATH)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    total = len(catalog.all_models)
    failures: list[str] = []
    refreshed = 0
    for i, model in enumerate(catalog.all_models):
        if cancel is not None and cancel():
            raise Cancelled("catalog refresh cancelled")
        yield Progress(done=i, total=total, message=f"reading {model.repo}")
        try:
            info = api.model_info(model.repo, files_metadata=True)
        except Exception as exc:  # offline, repo gone, rate limited: keep the old entry
            failures.append(f"{model.repo}: {type(exc).__name__}: {exc}")
            continue
        siblings = [(s.rfilename, getattr(s, "size", None)) for s in (info.siblings or [])]
        found = group_files(siblings)
        if found:
            model.quants = found
            refreshed += 1
        else:
            failures.append(f"{model.repo}: no GGUF files listed")
    if refreshed == 0 and failures:
        raise Offline(f"could not read the hub ({failures[0]})")
    import datetime

    catalog.updated = datetime.date.today().isoformat()
    catalog.notes = [n for n in catalog.notes if not n.startswith("refresh:")]
    catalog.notes += [f"refresh: {f}" for f in failures]
    if save_to is None:
        from r1desk.engine.paths import cache_dir

        save_to = cache_dir() / "catalog.json"
    catalog.save(save_to)
    yield Progress(done=total, total=total,
                   message=f"{refreshed} of {total} models refreshed" + (f"; {len(failures)} failed" if failures else ""))
