"""Turn a Hugging Face model folder into a GGUF file llama.cpp loads, without PyTorch.

The folder's safetensors are read tensor by tensor (and large tensors a block of rows at a
time), converted and written straight into the GGUF's data section, so memory stays near the
size of the biggest block, not the model: a 7B folder converts on a 16 GB machine. The
tokenizer (byte-level BPE, SentencePiece or WordPiece), its special tokens and the chat
template come along. Pickle checkpoints are refused: loading one runs code from the file.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from r1desk.engine import paths
from r1desk.engine.errors import Cancelled, ConversionError, DiskFull
from r1desk.engine.events import CancelToken, Progress

OUTTYPES = ("f32", "f16", "bf16", "q8_0")
# Hugging Face model_type -> llama.cpp architecture, for what this converter knows and tests.
ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2", "bert": "bert"}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Convert this many bytes of a tensor at a time: big embeddings (a 7B model's is 1 GB in bf16,
# 2 GB once widened to f32) never sit in memory whole.
BLOCK_BYTES = 64 << 20

# Safetensors dtypes as they lie on disk (little-endian); bf16 is read as its 16 raw bits.
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
           "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "u1"}

# Pre-tokenizer regexes as tokenizer.json writes them -> the name llama.cpp knows them by.
_PRE_TOKENIZERS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "qwen2",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "llama-bpe",
}


def _refuse(code: str, message: str, **facts: Any) -> ConversionError:
    return ConversionError(message, facts={"code": code, **facts})


# -- reading safetensors ---------------------------------------------------------------------
@dataclass
class SourceTensor:
    """One tensor in a safetensors file: where its bytes are, not the bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    start: int  # absolute offset in the file
    nbytes: int

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def row_elems(self) -> int:
        return math.prod(self.shape[1:]) if len(self.shape) > 1 else 1

    def read(self, first: int = 0, count: int | None = None) -> np.ndarray:
        """Rows ``first`` to ``first + count`` as float32 (the whole tensor by default)."""
        dtype = np.dtype(_DTYPES[self.dtype])
        if count is None:
            count = self.rows - first
        per_row = math.prod(self.shape[1:]) if len(self.shape) > 1 else 1
        if len(self.shape) <= 1:
            first, count, per_row = 0, max(1, math.prod(self.shape)), 1
        n = count * per_row
        with open(self.file, "rb") as f:
            f.seek(self.start + first * per_row * dtype.itemsize)
            raw = np.fromfile(f, dtype=dtype, count=n)
        if raw.size != n:
            raise _refuse("truncated", f"{self.file.name} ends inside tensor {self.name}: the file is incomplete",
                          file=str(self.file))
        if self.dtype == "BF16":
            values = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            values = raw.astype(np.float32, copy=False)
        shape = (count, *self.shape[1:]) if len(self.shape) > 1 else self.shape
        return values.reshape(shape)


def read_safetensors_header(path: Path) -> list[SourceTensor]:
    """The tensors of one safetensors file, every offset checked against the file's size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _refuse("truncated", f"{path.name} is too short to be a safetensors file", file=str(path))
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100 << 20):
            raise _refuse("corrupt", f"{path.name} is not a valid safetensors file (header size {n})",
                          file=str(path))
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _refuse("corrupt", f"{path.name} is not a valid safetensors file (unreadable header)",
                          file=str(path)) from None
    base = 8 + n
    out = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise _refuse("corrupt", f"{path.name}: tensor {name} has a damaged entry", file=str(path)) from None
        if dtype not in _DTYPES:
            raise _refuse("unsupported-dtype", f"{path.name}: tensor {name} is {dtype}, which r1desk cannot read",
                          file=str(path))
        if end - begin != math.prod(shape) * np.dtype(_DTYPES[dtype]).itemsize or begin < 0:
            raise _refuse("corrupt", f"{path.name}: tensor {name}'s size does not match its shape", file=str(path))
        if base + end > size:
            raise _refuse("truncated", f"{path.name} is incomplete: it ends before tensor {name} "
                          f"({size} of at least {base + end} bytes)", file=str(path))
        out.append(SourceTensor(name, dtype, shape, path, base + begin, end - begin))
    return out


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise _refuse("corrupt", f"{index.name} in {folder} is damaged") from None
        files = sorted({folder / name for name in weight_map.values()})
        missing = [p.name for p in files if not p.is_file()]
        if missing:
            raise _refuse("missing-shard", f"{folder} lacks {', '.join(missing[:3])}"
                          f"{' and more' if len(missing) > 3 else ''} named by {index.name}", files=missing)
        return files
    files = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if files:
        return files
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise _refuse("pickle", f"{folder} holds only pickle checkpoints ({', '.join(pickles[:3])}), which r1desk "
                      "does not open because loading one can run code hidden in it; save the model as "
                      "safetensors (model.save_pretrained(folder, safe_serialization=True)) and convert that",
                      files=pickles)
    raise _refuse("no-weights", f"{folder} has no .safetensors weights")


# -- the folder ------------------------------------------------------------------------------
def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse("corrupt", f"{path.name} in {path.parent} cannot be read: {exc}") from None


def read_config(folder: Path) -> tuple[dict, str]:
    """(config.json, llama.cpp architecture); refuses folders this converter cannot do."""
    if not folder.is_dir():
        raise _refuse("not-a-folder", f"{folder} is not a folder; give the Hugging Face model folder")
    path = folder / "config.json"
    if not path.is_file():
        raise _refuse("no-config", f"{folder} has no config.json, so it is not a Hugging Face model folder")
    config = _load_json(path)
    if "text_config" in config and "model_type" not in config:
        config = {**config, **config["text_config"]}
    model_type = str(config.get("model_type", ""))
    arch = ARCHITECTURES.get(model_type)
    if arch is None:
        named = model_type or ", ".join(config.get("architectures") or []) or "an unnamed architecture"
        raise _refuse("unsupported-architecture",
                      f"{folder.name} is {named}; r1desk converts {', '.join(ARCHITECTURES)} models",
                      architecture=model_type, supported=list(ARCHITECTURES))
    return config, arch


def _rope(config: dict) -> dict:
    # transformers 5 writes rope settings as rope_parameters; older folders as rope_theta + rope_scaling.
    rope = dict(config.get("rope_scaling") or {})
    rope.update(config.get("rope_parameters") or {})
    if "rope_theta" not in rope and "rope_theta" in config:
        rope["rope_theta"] = config["rope_theta"]
    if "rope_type" not in rope and "type" in rope:
        rope["rope_type"] = rope["type"]
    return rope


# -- tokenizers ------------------------------------------------------------------------------
def _looks_special(text: str) -> bool:
    # Some folders leave chat markers such as <|im_end|> or <｜Assistant｜> unmarked.
    return (text.startswith("<|") and text.endswith("|>")) or (text.startswith("<｜") and text.endswith("｜>"))


def _split_patterns(pre: dict | None) -> tuple[list[str], bool]:
    """(regexes of its Split steps, whether a ByteLevel step splits with GPT-2's own regex)."""
    if not pre:
        return [], False
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    patterns, gpt2 = [], False
    for step in steps or []:
        if step.get("type") == "Split":
            pattern = step.get("pattern") or {}
            patterns.append(pattern.get("Regex") or re.escape(pattern.get("String", "")))
        elif step.get("type") == "ByteLevel" and step.get("use_regex", True):
            gpt2 = True
    return patterns, gpt2


def _pre_tokenizer(tok: dict, folder: Path) -> str:
    patterns, gpt2 = _split_patterns(tok.get("pre_tokenizer"))
    if not patterns and gpt2:
        return "gpt-2"
    if len(patterns) == 1 and patterns[0] in _PRE_TOKENIZERS and not gpt2:
        return _PRE_TOKENIZERS[patterns[0]]
    raise _refuse("unknown-pretokenizer",
                  f"the tokenizer in {folder.name} splits text in a way r1desk does not know, so llama.cpp would "
                  "tokenize differently; r1desk knows the Qwen2, Llama 3 and GPT-2 byte-level tokenizers",
                  patterns=patterns)


def _added_tokens(tok: dict, folder: Path) -> dict[int, tuple[str, bool]]:
    added = {int(t["id"]): (t["content"], bool(t.get("special"))) for t in tok.get("added_tokens", [])}
    config = folder / "tokenizer_config.json"
    if config.is_file():
        for key, t in (_load_json(config).get("added_tokens_decoder") or {}).items():
            added.setdefault(int(key), (t["content"], bool(t.get("special"))))
    return added


def _bpe_vocab(tok: dict, folder: Path, n_vocab: int) -> tuple[list[str], list[int], str]:
    import gguf

    pre_steps = tok.get("pre_tokenizer") or {}
    pre_steps = pre_steps.get("pretokenizers") or [pre_steps]
    if not any(step.get("type") == "ByteLevel" for step in pre_steps):
        # A BPE over SentencePiece pieces (byte fallback, "▁" for spaces) is another tokenizer.
        raise _refuse("unsupported-tokenizer", f"the BPE tokenizer in {folder.name} is not byte-level and the folder "
                      "has no tokenizer.model; r1desk converts byte-level BPE (Qwen2, Llama 3) and SentencePiece")
    pre = _pre_tokenizer(tok, folder)
    vocab: dict[str, int] = tok["model"]["vocab"]
    added = _added_tokens(tok, folder)
    size = max(n_vocab, max(vocab.values(), default=-1) + 1, max(added, default=-1) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [int(gguf.TokenType.UNUSED)] * size
    for text, i in vocab.items():
        tokens[i], types[i] = text, int(gguf.TokenType.NORMAL)
    for i, (text, special) in added.items():
        tokens[i] = text
        types[i] = int(gguf.TokenType.CONTROL if special or _looks_special(text) else gguf.TokenType.USER_DEFINED)
    return tokens, types, pre


def _wordpiece_vocab(tok: dict | None, folder: Path, n_vocab: int) -> tuple[list[str], list[int]]:
    import gguf

    if tok is not None and tok.get("model", {}).get("type") == "WordPiece":
        vocab = tok["model"]["vocab"]
        added = _added_tokens(tok, folder)
    elif (folder / "vocab.txt").is_file():
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
        vocab = {t: i for i, t in enumerate(lines) if t}
        added = {i: (t, True) for t, i in vocab.items() if t.startswith("[") and t.endswith("]")}
    else:
        raise _refuse("no-tokenizer", f"{folder.name} has neither tokenizer.json nor vocab.txt")
    size = max(n_vocab, max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [int(gguf.TokenType.UNUSED)] * size
    for text, i in vocab.items():
        # llama.cpp's WordPiece marks a word start with "▁" instead of marking pieces with "##".
        tokens[i] = text[2:] if text.startswith("##") else "\u2581" + text
        types[i] = int(gguf.TokenType.NORMAL)
    for i, (text, special) in added.items():
        if special:
            tokens[i], types[i] = text, int(gguf.TokenType.CONTROL)
    return tokens, types


def _protobuf_fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; enough for tokenizer.model."""
    pos, end = 0, len(data)

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= end:
                raise ValueError("truncated varint")
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    while pos < end:
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, wire, varint()
        elif wire == 1:
            yield field, wire, data[pos:pos + 8]
            pos += 8
        elif wire == 2:
            n = varint()
            yield field, wire, data[pos:pos + n]
            pos += n
        elif wire == 5:
            yield field, wire, data[pos:pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated message")


# TrainerSpec's unk_id, bos_id, eos_id and pad_id fields -> the names SpecialVocab gives those tokens.
_SPM_SPECIAL_FIELDS = {40: "unk", 41: "bos", 42: "eos", 43: "pad"}


def _sentencepiece_vocab(folder: Path, n_vocab: int) -> tuple[list[bytes], list[float], list[int], dict[str, int]]:
    """(pieces, scores, token types, special token ids the trainer gave) of tokenizer.model."""
    import gguf

    path = folder / "tokenizer.model"
    pieces: list[tuple[str, float, int]] = []
    trainer_ids: dict[str, int] = {}
    try:
        for field, wire, value in _protobuf_fields(path.read_bytes()):
            if field == 2 and wire == 2:  # ModelProto.trainer_spec
                for f, w, v in _protobuf_fields(value):
                    if f in _SPM_SPECIAL_FIELDS and w == 0:
                        # int32 fields: -1 (no such token) comes as a 64-bit two's complement varint.
                        trainer_ids[_SPM_SPECIAL_FIELDS[f]] = v - (1 << 64) if v >= 1 << 63 else v
                continue
            if field != 1 or wire != 2:  # ModelProto.pieces
                continue
            text, score, kind = "", 0.0, 1  # SentencePiece.Type NORMAL unless said
            for f, w, v in _protobuf_fields(value):
                if f == 1 and w == 2:
                    text = v.decode("utf-8")
                elif f == 2 and w == 5:
                    (score,) = struct.unpack("<f", v)
                elif f == 3 and w == 0:
                    kind = v
            pieces.append((text, score, kind))
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise _refuse("corrupt", f"tokenizer.model in {folder.name} is damaged ({exc})") from None
    if not pieces:
        raise _refuse("corrupt", f"tokenizer.model in {folder.name} holds no tokens")
    size = max(n_vocab, len(pieces))
    tokens = [f"[PAD{i}]".encode() for i in range(size)]
    scores = [-1000.0] * size
    types = [int(gguf.TokenType.UNUSED)] * size
    for i, (text, score, kind) in enumerate(pieces):
        # SentencePiece's type numbers are the ones GGUF uses (NORMAL 1 ... BYTE 6).
        tokens[i], scores[i], types[i] = text.encode("utf-8"), score, kind
    config = folder / "tokenizer_config.json"
    if config.is_file():
        for key, t in (_load_json(config).get("added_tokens_decoder") or {}).items():
            i = int(key)
            if i >= size:
                continue
            special = t.get("special") or _looks_special(t["content"])
            tokens[i] = t["content"].encode("utf-8")
            scores[i] = -1000.0
            types[i] = int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
    # A field left out has sentencepiece_model.proto's default: unk 0, bos 1, eos 2, no pad.
    trainer_ids = {"unk": 0, "bos": 1, "eos": 2} | trainer_ids
    special_ids = {name: i for name, i in trainer_ids.items() if 0 <= i < len(pieces)}
    return tokens, scores, types, special_ids


def add_tokenizer(w: Any, folder: Path, arch: str, config: dict) -> str:
    """Write the folder's tokenizer, special tokens and chat template; returns the tokenizer kind."""
    import gguf

    n_vocab = int(config.get("vocab_size") or 0)
    tok_path = folder / "tokenizer.json"
    tok = _load_json(tok_path) if tok_path.is_file() else None
    if arch == "bert":
        tokens, types = _wordpiece_vocab(tok, folder, n_vocab)
        w.add_tokenizer_model("bert")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_type_count(int(config.get("type_vocab_size", 1)))
        special = gguf.SpecialVocab(folder, n_vocab=len(tokens))
        kind = "WordPiece"
    elif (folder / "tokenizer.model").is_file():
        tokens_b, scores, types, spm_ids = _sentencepiece_vocab(folder, n_vocab)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens_b)
        w.add_token_scores(scores)
        w.add_token_types(types)
        special = gguf.SpecialVocab(folder, n_vocab=len(tokens_b))
        # Without tokenizer.json, SpecialVocab finds only what config.json names (BOS, EOS), never
        # the unknown token; tokenizer.model itself says which pieces those are.
        for name, i in spm_ids.items():
            special.special_token_ids.setdefault(name, i)
        kind = "SentencePiece"
    elif tok is not None and tok.get("model", {}).get("type") == "BPE":
        tokens, types, pre = _bpe_vocab(tok, folder, n_vocab)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
        if not special.merges:
            raise _refuse("corrupt", f"the BPE tokenizer in {folder.name} has no merges")
        kind = f"BPE ({pre})"
    else:
        found = (tok or {}).get("model", {}).get("type") or "none"
        raise _refuse("unsupported-tokenizer", f"{folder.name}'s tokenizer ({found}) is not one r1desk converts: "
                      "byte-level BPE in tokenizer.json, SentencePiece in tokenizer.model, or WordPiece for bert")
    # A type GGUF has no key for (bert's "cls") would only print a warning.
    special.special_token_ids = {k: v for k, v in special.special_token_ids.items()
                                 if hasattr(w, f"add_{k}_token_id")}
    special.add_to_gguf(w, quiet=True)
    return kind


# -- hyperparameters -------------------------------------------------------------------------
_FILE_TYPES = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0"}


def _llama3_rope_factors(rope: dict, head_dim: int) -> np.ndarray:
    # Llama 3.1+ stretch long wavelengths by ``factor`` and leave short ones, blending between.
    base = float(rope.get("rope_theta", 10000.0))
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old_ctx = float(rope.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def add_hyperparameters(w: Any, folder: Path, arch: str, config: dict, outtype: str) -> dict[str, np.ndarray]:
    """Write the architecture's keys; returns extra tensors llama.cpp wants that the folder lacks."""
    import gguf

    def need(*keys: str) -> Any:
        for key in keys:
            if config.get(key) is not None:
                return config[key]
        raise _refuse("incomplete-config", f"config.json in {folder.name} lacks {keys[0]}", key=keys[0])

    n_layer = int(need("num_hidden_layers"))
    n_embd = int(need("hidden_size"))
    n_head = int(need("num_attention_heads"))
    w.add_name(str(config.get("_name_or_path") or folder.name).rstrip("/").rsplit("/", 1)[-1] or folder.name)
    w.add_type("model")
    w.add_block_count(n_layer)
    w.add_context_length(int(need("max_position_embeddings")))
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(int(need("intermediate_size")))
    w.add_head_count(n_head)
    w.add_file_type(int(gguf.LlamaFileType[_FILE_TYPES[outtype]]))
    extra: dict[str, np.ndarray] = {}
    if arch == "bert":
        w.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
        w.add_causal_attention(False)
        pooling = _pooling_type(folder)
        if pooling is not None:
            w.add_pooling_type(pooling)
        return extra
    w.add_head_count_kv(int(config.get("num_key_value_heads") or n_head))
    w.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    w.add_vocab_size(int(need("vocab_size")))
    head_dim = int(config.get("head_dim") or n_embd // n_head)
    w.add_rope_dimension_count(head_dim)
    if config.get("head_dim") and head_dim != n_embd // n_head:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    rope = _rope(config)
    w.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    kind = str(rope.get("rope_type") or "default").lower()
    if kind == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(rope["factor"]))
    elif kind == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(rope["factor"]))
        w.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))
    elif kind == "llama3":
        extra[gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"] = _llama3_rope_factors(rope, head_dim)
    elif kind != "default":
        raise _refuse("unsupported-rope", f"{folder.name} uses {kind} rope scaling, which r1desk does not convert",
                      rope_type=kind)
    return extra


def _pooling_type(folder: Path) -> Any:
    """Sentence-transformers' pooling (1_Pooling/config.json), which llama.cpp applies itself."""
    import gguf

    modules = folder / "modules.json"
    where = "1_Pooling"
    if modules.is_file():
        for module in _load_json(modules):
            if str(module.get("type", "")).endswith("Pooling"):
                where = module.get("path") or where
    path = folder / where / "config.json"
    if not path.is_file():
        return None
    pooling = _load_json(path)
    if pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode") == "mean":
        return gguf.PoolingType.MEAN
    if pooling.get("pooling_mode_cls_token") or pooling.get("pooling_mode") == "cls":
        return gguf.PoolingType.CLS
    if pooling.get("pooling_mode_lasttoken") or pooling.get("pooling_mode") == "lasttoken":
        return gguf.PoolingType.LAST
    raise _refuse("unsupported-pooling", f"{folder.name} pools its embeddings in a way llama.cpp does not "
                  "(it does mean, CLS and last-token pooling)")


# -- tensors ---------------------------------------------------------------------------------
@dataclass
class _Planned:
    name: str  # the GGUF name
    source: SourceTensor | None
    array: np.ndarray | None  # for tensors made here (rope factors)
    qtype: Any  # gguf.GGMLQuantizationType
    shape: tuple[int, ...]
    nbytes: int
    permute_heads: int = 0  # llama q/k: rows regrouped for llama.cpp's rope layout


def _skip(name: str, arch: str) -> bool:
    if name.endswith("rotary_emb.inv_freq"):
        return True
    if arch == "bert":
        return name.endswith("position_ids") or name.startswith(("pooler.", "cls.", "bert.pooler.", "bert.cls."))
    return False


def _hf_name(name: str, arch: str) -> str:
    if arch == "bert":
        name = name.removeprefix("bert.")
        if name.endswith(".gamma"):
            name = name[:-6] + ".weight"
        elif name.endswith(".beta"):
            name = name[:-5] + ".bias"
    elif not name.startswith(("model.", "lm_head.")):
        name = "model." + name  # a bare LlamaModel / Qwen2Model has no "model." prefix
    return name


def _tensor_type(gguf_name: str, shape: tuple[int, ...], outtype: str) -> Any:
    import gguf

    T = gguf.GGMLQuantizationType
    # Norms, biases and the bert position/token-type tables stay f32, as llama.cpp keeps them.
    if outtype == "f32" or len(shape) < 2 or gguf_name.startswith(("position_embd", "token_types")):
        return T.F32
    if outtype == "f16":
        return T.F16
    if outtype == "bf16":
        return T.BF16
    block = gguf.GGML_QUANT_SIZES[T.Q8_0][0]
    return T.Q8_0 if shape[-1] % block == 0 else T.F16


def _nbytes(shape: tuple[int, ...], qtype: Any) -> int:
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return math.prod(shape) // block * size


def plan_tensors(sources: list[SourceTensor], arch: str, config: dict, outtype: str,
                 extra: dict[str, np.ndarray]) -> list[_Planned]:
    import gguf

    model_arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch)
    n_layer = int(config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(model_arch, n_layer)
    allowed = set(gguf.MODEL_TENSORS[model_arch])
    n_head = int(config.get("num_attention_heads") or 0)
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    planned: list[_Planned] = []
    unknown: list[str] = []
    for src in sources:
        if _skip(src.name, arch):
            continue
        hf = _hf_name(src.name, arch)
        found = names.get_type_and_name(hf, try_suffixes=(".weight", ".bias"))
        if found is None or found[0] not in allowed:
            unknown.append(src.name)
            continue
        kind, gguf_name = found
        permute = 0
        if arch == "llama" and kind == gguf.MODEL_TENSOR.ATTN_Q:
            permute = n_head
        elif arch == "llama" and kind == gguf.MODEL_TENSOR.ATTN_K:
            permute = n_head_kv
        qtype = _tensor_type(gguf_name, src.shape, outtype)
        planned.append(_Planned(gguf_name, src, None, qtype, src.shape, _nbytes(src.shape, qtype), permute))
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise _refuse("unknown-tensor", f"the weights hold tensors a {arch} model in llama.cpp has no place for "
                      f"({shown}); the folder may be a different model or hold extra heads", tensors=unknown[:20])
    seen: dict[str, str] = {}
    for p in planned:
        if p.name in seen:
            raise _refuse("corrupt", f"two tensors map to {p.name}: {seen[p.name]} and {p.source.name}")
        seen[p.name] = p.source.name
    for name, array in extra.items():
        planned.append(_Planned(name, None, array, gguf.GGMLQuantizationType.F32, array.shape, array.nbytes))
    if not any(p.name.startswith("token_embd.") for p in planned):
        raise _refuse("incomplete-weights", "the weights have no token embedding table; the folder is incomplete")
    return planned


def _permute_rows(values: np.ndarray, n_head: int) -> np.ndarray:
    # Hugging Face keeps each head's rotary halves apart ([x0..x63, y0..y63]); llama.cpp's
    # llama rope wants them interleaved by pairs, as the original weights were.
    rows = values.shape[0]
    return (values.reshape(n_head, 2, rows // n_head // 2, *values.shape[1:])
            .swapaxes(1, 2).reshape(values.shape))


def _encode(values: np.ndarray, qtype: Any) -> bytes:
    import gguf

    T = gguf.GGMLQuantizationType
    if qtype == T.F32:
        return np.ascontiguousarray(values, dtype="<f4").tobytes()
    if qtype == T.F16:
        return np.ascontiguousarray(values, dtype="<f2").tobytes()
    return gguf.quants.quantize(np.ascontiguousarray(values, dtype=np.float32), qtype).tobytes()


def _blocks(p: _Planned) -> Iterator[np.ndarray]:
    """The planned tensor's values in blocks of whole rows, each at most about BLOCK_BYTES as f32."""
    if p.array is not None:
        yield p.array
        return
    src = p.source
    if p.permute_heads or len(src.shape) < 2:
        values = src.read()
        yield _permute_rows(values, p.permute_heads) if p.permute_heads else values
        return
    step = max(1, BLOCK_BYTES // (src.row_elems * 4))
    for first in range(0, src.rows, step):
        yield src.read(first, min(step, src.rows - first))


# -- the job ---------------------------------------------------------------------------------
def default_output(folder: Path, outtype: str) -> Path:
    return paths.models_dir() / f"{folder.name}-{outtype.upper()}.gguf"


def convert(
    folder: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    outtype: str = "f16",
    cancel: CancelToken | None = None,
    register: bool = True,
    db: Any = None,
) -> Iterator[Progress]:
    """Convert a Hugging Face folder to ``out`` (default: the models folder), yielding Progress.

    Progress counts source bytes read. Refusals and failures raise ConversionError (``facts
    ["code"]`` says which) before anything is written or with the partial file removed; cancel
    raises Cancelled, also leaving nothing behind. With ``register`` the file enters the library
    with origin "converted".
    """
    import gguf

    outtype = outtype.strip().lower()
    if outtype not in OUTTYPES:
        raise _refuse("unknown-type", f"unknown output type {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    folder = Path(os.path.abspath(Path(folder).expanduser()))
    config, arch = read_config(folder)
    sources = [t for f in _weight_files(folder) for t in read_safetensors_header(f)]
    target = Path(os.path.abspath(Path(out).expanduser())) if out else default_output(folder, outtype)
    if target.exists():
        raise _refuse("exists", f"{target} already exists; choose another output or delete it first")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp), arch)
    extra = add_hyperparameters(writer, folder, arch, config, outtype)
    tokenizer = add_tokenizer(writer, folder, arch, config)
    planned = plan_tensors(sources, arch, config, outtype, extra)
    expected = sum(gguf.GGUFWriter.ggml_pad(p.nbytes, gguf.GGUF_DEFAULT_ALIGNMENT) for p in planned)
    free = shutil.disk_usage(target.parent).free
    if expected > free:
        raise DiskFull(f"not enough disk space in {target.parent}: about {expected / 1e9:.1f} GB needed, "
                       f"{free / 1e9:.1f} GB free", facts={"code": "disk-full", "needed": expected, "free": free})
    for p in planned:
        writer.add_tensor_info(p.name, p.shape, np.dtype(np.float32), p.nbytes, raw_dtype=p.qtype)
    total = sum(p.source.nbytes for p in planned if p.source is not None)
    label = f"Converting {folder.name} to {outtype.upper()}"
    done = 0
    started = time.monotonic()
    try:
        yield Progress(0, total, f"{label} ({arch}, {tokenizer} tokenizer, {len(planned)} tensors)")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        fout = writer.fout[0]
        writer.write_padding(fout, fout.tell())
        for p in planned:
            written = 0
            for values in _blocks(p):
                if cancel is not None and cancel.cancelled:
                    raise Cancelled(f"converting {folder.name} cancelled; nothing was kept")
                data = _encode(values, p.qtype)
                fout.write(data)
                written += len(data)
                done += values.size * (np.dtype(_DTYPES[p.source.dtype]).itemsize if p.source else 4)
                elapsed = time.monotonic() - started
                speed = done / elapsed if elapsed > 0 else None
                eta = (total - done) / speed if speed else None
                yield Progress(min(done, total), total, label, speed=speed, eta=eta)
            if written != p.nbytes:
                raise ConversionError(f"tensor {p.name} came out {written} bytes instead of {p.nbytes}",
                                      facts={"code": "bug"})
            writer.write_padding(fout, written)
        writer.close()
        os.replace(tmp, target)
    except OSError as exc:
        if getattr(exc, "errno", None) == 28:
            raise DiskFull(f"the disk filled while writing {target.name}", facts={"code": "disk-full"}) from None
        raise
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    size = target.stat().st_size
    if register:
        _register(target, folder, outtype, db)
    yield Progress(total, total, f"Wrote {target.name} ({size / 1e6:.1f} MB)")


def _register(target: Path, folder: Path, outtype: str, db: Any) -> None:
    from r1desk.engine.models.library import Library

    own = None
    if db is None:
        from r1desk.engine.db.database import open_db

        db = own = open_db()
    try:
        Library(db).register(target, origin="converted",
                             metadata={"converted_from": str(folder), "converted_to": outtype.upper()})
    finally:
        if own is not None:
            own.conn.close()

