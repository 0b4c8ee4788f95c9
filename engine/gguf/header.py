"""Read and check GGUF model files without trusting them: every count and length is bounded.

llama.cpp and the gguf package both have crash or hang paths on hostile headers, so a file is
parsed here first, in plain Python, within the bytes it really has. The reader works on any
sequential binary stream, so a remote file can be read through HTTP range requests as well.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from r1desk.engine.errors import CorruptModel, ModelNotFound, NotAModel

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)

# Bounds far above any real model, far below what would exhaust memory.
MAX_KV = 65_536
MAX_TENSORS = 1_000_000
MAX_STRING = 64 * 1024 * 1024
MAX_ARRAY = 64 * 1024 * 1024
MAX_DIMS = 4
MAX_NAME = 256

_SCALARS = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}
_ARRAY_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}
T_STRING, T_ARRAY = 8, 9


def _ggml_type_sizes() -> dict[int, tuple[int, int, str]]:
    """type id -> (elements per block, bytes per block, name), from the gguf package."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    return {int(t): (bs, ts, GGMLQuantizationType(t).name) for t, (bs, ts) in GGML_QUANT_SIZES.items()}


_TYPE_SIZES: dict[int, tuple[int, int, str]] | None = None


def ggml_type_sizes() -> dict[int, tuple[int, int, str]]:
    global _TYPE_SIZES
    if _TYPE_SIZES is None:
        _TYPE_SIZES = _ggml_type_sizes()
    return _TYPE_SIZES


@dataclass
class ArraySummary:
    """A long array whose elements were skipped; only its type and length are kept."""

    item_type: int
    length: int


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: ne[0] first
    type_id: int
    offset: int  # relative to the start of tensor data
    nbytes: int

    @property
    def type_name(self) -> str:
        return ggml_type_sizes().get(self.type_id, (0, 0, f"TYPE_{self.type_id}"))[2]


@dataclass
class GGUFInfo:
    """What a GGUF header says. ``metadata`` holds scalars, strings and (short) arrays."""

    source: str
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int
    file_size: int
    header_size: int = 0
    warnings: list[str] = field(default_factory=list)

    # Convenience views of the metadata -------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def name(self) -> str | None:
        return self.metadata.get("general.name")

    @property
    def context_length(self) -> int | None:
        value = self.arch_get("context_length")
        return int(value) if value is not None else None

    @property
    def block_count(self) -> int | None:
        value = self.arch_get("block_count")
        return int(value) if value is not None else None

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return int(value) if value is not None else None

    @property
    def tensor_data_size(self) -> int:
        return max((t.offset + t.nbytes for t in self.tensors), default=0)

    @property
    def expected_file_size(self) -> int:
        return self.data_offset + self.tensor_data_size

    @property
    def parameter_count(self) -> int:
        total = 0
        for t in self.tensors:
            n = 1
            for d in t.shape:
                n *= d
            total += n
        return total

    @property
    def vocab_size(self) -> int | None:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, ArraySummary):
            return tokens.length
        if isinstance(tokens, list):
            return len(tokens)
        value = self.arch_get("vocab_size")
        return int(value) if value is not None else None

    def template_sha256(self) -> str | None:
        template = self.chat_template
        if template is None:
            return None
        return hashlib.sha256(template.encode("utf-8")).hexdigest()


class _Stream:
    """Sequential reads with a byte budget; running past the end raises CorruptModel."""

    def __init__(self, fh: BinaryIO, size: int, label: str):
        self.fh = fh
        self.size = size
        self.pos = 0
        self.label = label

    def read(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise CorruptModel(
                f"{self.label}: truncated or corrupt GGUF ({what} runs past the end of the file "
                f"at byte {self.pos:,})"
            )
        data = self.fh.read(n)
        if len(data) != n:
            raise CorruptModel(f"{self.label}: truncated GGUF (file ended while reading {what})")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise CorruptModel(
                f"{self.label}: truncated or corrupt GGUF ({what} runs past the end of the file)"
            )
        if hasattr(self.fh, "seek"):
            try:
                self.fh.seek(n, io.SEEK_CUR)
                self.pos += n
                return
            except (OSError, io.UnsupportedOperation):
                pass
        self.read(n, what)

    def scalar(self, fmt: str, size: int, what: str):
        return struct.unpack(fmt, self.read(size, what))[0]

    def u32(self, what: str) -> int:
        return self.scalar("<I", 4, what)

    def u64(self, what: str) -> int:
        return self.scalar("<Q", 8, what)

    def string(self, what: str, limit: int = MAX_STRING) -> str:
        n = self.u64(f"length of {what}")
        if n > limit:
            raise CorruptModel(f"{self.label}: corrupt GGUF ({what} claims {n:,} bytes)")
        raw = self.read(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptModel(f"{self.label}: corrupt GGUF ({what} is not valid UTF-8)") from None


def _read_value(s: _Stream, vtype: int, key: str, keep_array: int) -> Any:
    if vtype in _SCALARS:
        fmt, size = _SCALARS[vtype]
        return s.scalar(fmt, size, f"value of {key}")
    if vtype == T_STRING:
        return s.string(f"value of {key}")
    if vtype == T_ARRAY:
        item_type = s.u32(f"array type of {key}")
        length = s.u64(f"array length of {key}")
        if length > MAX_ARRAY:
            raise CorruptModel(f"{s.label}: corrupt GGUF (array {key} claims {length:,} items)")
        if item_type in _SCALARS:
            size = _SCALARS[item_type][1]
            if length * size > s.size - s.pos:
                raise CorruptModel(
                    f"{s.label}: truncated or corrupt GGUF (array {key} of {length:,} items "
                    "runs past the end of the file)"
                )
            if length > keep_array:
                s.skip(length * size, f"array {key}")
                return ArraySummary(item_type, length)
            import array

            values = array.array(_ARRAY_CODES[item_type])
            values.frombytes(s.read(length * size, f"array {key}"))
            if struct.pack("=I", 1) != struct.pack("<I", 1):  # big-endian host
                values.byteswap()
            out = values.tolist()
            return [bool(v) for v in out] if item_type == 7 else out
        if item_type == T_STRING:
            # Each string needs at least its 8-byte length: a cheap bound before looping.
            if length * 8 > s.size - s.pos:
                raise CorruptModel(
                    f"{s.label}: truncated or corrupt GGUF (array {key} of {length:,} strings "
                    "runs past the end of the file)"
                )
            keep = length <= keep_array
            items = []
            for i in range(length):
                n = s.u64(f"length of {key}[{i}]")
                if n > MAX_STRING:
                    raise CorruptModel(f"{s.label}: corrupt GGUF ({key}[{i}] claims {n:,} bytes)")
                if keep:
                    raw = s.read(n, f"{key}[{i}]")
                    try:
                        items.append(raw.decode("utf-8"))
                    except UnicodeDecodeError:
                        raise CorruptModel(
                            f"{s.label}: corrupt GGUF ({key}[{i}] is not valid UTF-8)"
                        ) from None
                else:
                    s.skip(n, f"{key}[{i}]")
            return items if keep else ArraySummary(item_type, length)
        raise CorruptModel(f"{s.label}: corrupt GGUF (array {key} has unsupported item type {item_type})")
    raise CorruptModel(f"{s.label}: corrupt GGUF (key {key} has unknown value type {vtype})")


def read_header(
    source: str | os.PathLike | BinaryIO,
    *,
    size: int | None = None,
    label: str | None = None,
    keep_arrays: int = 4096,
    keep: tuple[str, ...] = (),
    allow_truncated_data: bool = False,
) -> GGUFInfo:
    """Parse a GGUF header within the bytes that exist.

    ``keep_arrays``: arrays longer than this are skipped (only their length is kept), except
    the keys named in ``keep``. ``allow_truncated_data``: accept a header-only file whose
    tensor data lies past its end (for fit estimates and remote headers).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ModelNotFound(f"{path}: no such file", facts={"code": "no-file", "file": str(path)})
        if path.is_dir():
            raise NotAModel(f"{path}: is a folder, not a GGUF file",
                            facts={"code": "not-gguf", "what": "folder", "file": str(path)})
        with open(path, "rb") as fh:
            return read_header(
                fh, size=path.stat().st_size, label=label or str(path), keep_arrays=keep_arrays,
                keep=keep, allow_truncated_data=allow_truncated_data,
            )
    fh = source
    if size is None:
        raise ValueError("size is required when reading from a stream")
    label = label or getattr(fh, "name", "<stream>")
    s = _Stream(fh, size, label)
    if size < 24:
        raise NotAModel(f"{label}: not a GGUF model file ({size} bytes, too short to be one)",
                        facts={"code": "not-gguf", "what": "short", "file": label, "size": size})
    magic = s.read(4, "magic")
    if magic != GGUF_MAGIC:
        fh.seek(0)
        what = _what_it_is(fh.read(512))
        raise NotAModel(f"{label}: not a GGUF model file ({_WHAT_IT_IS[what]})",
                        facts={"code": "not-gguf", "what": what, "file": label})
    version = s.u32("version")
    if version not in SUPPORTED_VERSIONS:
        if struct.unpack(">I", struct.pack("<I", version))[0] in SUPPORTED_VERSIONS:
            raise CorruptModel(f"{label}: big-endian GGUF files are not supported")
        raise CorruptModel(f"{label}: unsupported GGUF version {version} (supported: 2, 3)")
    n_tensors = s.u64("tensor count")
    n_kv = s.u64("metadata count")
    if n_kv > MAX_KV:
        raise CorruptModel(f"{label}: corrupt GGUF (claims {n_kv:,} metadata entries)")
    if n_tensors > MAX_TENSORS:
        raise CorruptModel(f"{label}: corrupt GGUF (claims {n_tensors:,} tensors)")

    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        key = s.string(f"metadata key #{i}", limit=65_536)
        if key in metadata:
            raise CorruptModel(f"{label}: corrupt GGUF (duplicate metadata key {key!r})")
        vtype = s.u32(f"type of {key}")
        metadata[key] = _read_value(s, vtype, key, keep_arrays if key not in keep else MAX_ARRAY)

    sizes = ggml_type_sizes()
    tensors: list[TensorInfo] = []
    names: set[str] = set()
    for i in range(n_tensors):
        name = s.string(f"tensor name #{i}", limit=65_536)
        if len(name.encode()) > MAX_NAME:
            raise CorruptModel(f"{label}: corrupt GGUF (tensor name #{i} is {len(name)} characters)")
        if name in names:
            raise CorruptModel(f"{label}: corrupt GGUF (duplicate tensor {name!r})")
        names.add(name)
        n_dims = s.u32(f"dimensions of {name}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise CorruptModel(f"{label}: corrupt GGUF (tensor {name} has {n_dims} dimensions)")
        shape = tuple(s.u64(f"shape of {name}") for _ in range(n_dims))
        type_id = s.u32(f"type of {name}")
        offset = s.u64(f"offset of {name}")
        if type_id not in sizes:
            raise CorruptModel(f"{label}: tensor {name} has tensor type {type_id}, unknown to this version")
        block, type_size, _ = sizes[type_id]
        elements = 1
        for d in shape:
            if d == 0 or d > 2**40:
                raise CorruptModel(f"{label}: corrupt GGUF (tensor {name} has dimension {d})")
            elements *= d
        if elements > 2**48:
            raise CorruptModel(f"{label}: corrupt GGUF (tensor {name} has {elements:,} elements)")
        if shape[0] % block:
            raise CorruptModel(
                f"{label}: corrupt GGUF (tensor {name} row of {shape[0]} is not a multiple of its "
                f"block size {block})"
            )
        tensors.append(TensorInfo(name, shape, type_id, offset, elements // block * type_size))

    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1) or alignment > 2**20:
        raise CorruptModel(f"{label}: corrupt GGUF (alignment {alignment!r} is not a power of two)")
    header_size = s.pos
    data_offset = (header_size + alignment - 1) // alignment * alignment

    warnings: list[str] = []
    info = GGUFInfo(label, version, metadata, tensors, data_offset, size, header_size, warnings)
    for t in tensors:
        if t.offset % alignment:
            raise CorruptModel(f"{label}: corrupt GGUF (tensor {t.name} is not aligned)")
    # Tensors may not overlap: sort by offset and check each ends before the next begins.
    ordered = sorted(tensors, key=lambda t: t.offset)
    for a, b in zip(ordered, ordered[1:]):
        if a.offset + a.nbytes > b.offset:
            raise CorruptModel(f"{label}: corrupt GGUF (tensors {a.name} and {b.name} overlap)")
    if info.expected_file_size > size:
        if not allow_truncated_data:
            missing = info.expected_file_size - size
            pct = 100.0 * size / max(info.expected_file_size, 1)
            raise CorruptModel(
                f"{label}: truncated GGUF (file has {size:,} bytes of {info.expected_file_size:,}; "
                f"{missing:,} bytes missing, {pct:.1f}% present)",
                facts={"code": "truncated", "file": label, "size": size, "expected": info.expected_file_size},
            )
        warnings.append("tensor data lies past the end of the file (header only)")
    return info


_BYTE_TOKEN = re.compile(r"<0x(.*)>\Z")


_WHAT_IT_IS = {
    "zip": "it is a ZIP archive, as PyTorch checkpoints are; convert the model to GGUF first",
    "safetensors": "it is a safetensors file; convert the model to GGUF first",
    "pickle": "it is a Python pickle; r1desk never loads those",
    "html": "it is a web page, perhaps an error page saved instead of the download",
    "text": "it is a text file",
    "unknown": "it does not start with the GGUF signature",
}


def _what_it_is(head: bytes) -> str:
    """What a file that is not GGUF looks like, from its first bytes: a key of _WHAT_IT_IS."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "safetensors"
    if head.startswith((b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")):
        return "pickle"
    if head.startswith(b"<") and b"html" in head[:200].lower():
        return "html"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head[: exc.start].decode("utf-8") if exc.start > len(head) - 4 else None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "text"
    return "unknown"


def check_model(path: str | os.PathLike) -> GGUFInfo:
    """Everything checkable before handing a file to llama.cpp; raises CorruptModel with one line."""
    path = Path(path)
    info = read_header(path, keep=("tokenizer.ggml.tokens",))
    label = str(path)
    if info.metadata.get("general.type") == "adapter":
        raise NotAModel(f"{label}: is a LoRA adapter, not a model (load it on top of a model)",
                        facts={"code": "not-gguf", "what": "adapter", "file": label})
    if "general.architecture" not in info.metadata:
        raise CorruptModel(f"{label}: GGUF has no general.architecture; not a model file")
    if not info.tensors:
        raise CorruptModel(f"{label}: GGUF has no tensors; not a model file")
    tokens = info.metadata.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens:
        raise CorruptModel(f"{label}: GGUF has no tokenizer vocabulary")
    n_vocab = len(tokens)
    for key in ("bos", "eos", "unknown", "padding", "eot", "sep", "cls", "mask"):
        tid = info.metadata.get(f"tokenizer.ggml.{key}_token_id")
        if isinstance(tid, int) and not 0 <= tid < n_vocab and tid != 0xFFFFFFFF:
            raise CorruptModel(
                f"{label}: corrupt GGUF ({key} token id {tid} is outside the {n_vocab}-token vocabulary)"
            )
    for tok in tokens:
        if tok.startswith("<0x"):
            m = _BYTE_TOKEN.match(tok)
            if m and not re.fullmatch(r"[0-9A-Fa-f]{2}", m.group(1)):
                raise CorruptModel(f"{label}: corrupt GGUF (invalid byte token {tok!r})")
    info.metadata["tokenizer.ggml.tokens"] = ArraySummary(T_STRING, n_vocab)
    return info
