"""Converting a Hugging Face folder larger than the memory allowed: peak RSS against folder size.

    .venv/bin/python bench/bench_convert.py [--layers 16] [--limit-mb 768] [--types f16,q8_0]

Writes a synthetic llama folder (hidden 2048, ffn 5632, vocab 32000, ``--layers`` layers, random
bf16 weights in two safetensors shards with an index, a byte-level BPE tokenizer.json), then
converts it in a child process whose data segment (heap and anonymous mappings) is capped at
``--limit-mb`` with RLIMIT_DATA, once per output type. Reports each run's peak RSS, time and
sizes, prints them and writes bench/results/convert.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HIDDEN, FFN, VOCAB, HEADS, KV_HEADS = 2048, 5632, 32000, 16, 4

CHILD = r"""
import json, resource, sys, time
limit = int(sys.argv[4]) << 20
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
from r1desk.converters.hf import convert
started = time.monotonic()
for _ in convert(sys.argv[1], sys.argv[2], outtype=sys.argv[3], register=False):
    pass
print(json.dumps({"seconds": time.monotonic() - started,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def _byte_chars() -> list[str]:
    # GPT-2's byte -> printable character table, which byte-level BPE vocabularies are written in.
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _tokenizer() -> dict:
    vocab = {c: i for i, c in enumerate(_byte_chars())}
    vocab["Ġt"] = len(vocab)
    split = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    return {
        "version": "1.0",
        "added_tokens": [{"id": len(vocab), "content": "<|begin_of_text|>", "special": True},
                         {"id": len(vocab) + 1, "content": "<|eot_id|>", "special": True}],
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "model": {"type": "BPE", "vocab": vocab, "merges": [["Ġ", "t"]], "ignore_merges": True},
    }


def _tensors(layers: int) -> list[tuple[str, tuple[int, ...]]]:
    head = HIDDEN // HEADS
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "self_attn.q_proj.weight", (HIDDEN, HIDDEN)),
                (p + "self_attn.k_proj.weight", (KV_HEADS * head, HIDDEN)),
                (p + "self_attn.v_proj.weight", (KV_HEADS * head, HIDDEN)),
                (p + "self_attn.o_proj.weight", (HIDDEN, HIDDEN)),
                (p + "mlp.gate_proj.weight", (FFN, HIDDEN)),
                (p + "mlp.up_proj.weight", (FFN, HIDDEN)),
                (p + "mlp.down_proj.weight", (HIDDEN, FFN)),
                (p + "input_layernorm.weight", (HIDDEN,)),
                (p + "post_attention_layernorm.weight", (HIDDEN,))]
    return out + [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]


def _write_shard(path: Path, tensors: list[tuple[str, tuple[int, ...]]], rng: np.random.Generator) -> None:
    header, offset = {}, 0
    for name, shape in tensors:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for name, shape in tensors:
            rows = shape[0]
            step = max(1, (16 << 20) // (int(np.prod(shape[1:])) * 4)) if len(shape) > 1 else rows
            for first in range(0, rows, step):
                part = (min(step, rows - first), *shape[1:])
                values = rng.standard_normal(part, dtype=np.float32) * 0.02
                f.write((values.view(np.uint32) >> 16).astype("<u2").tobytes())


def make_folder(folder: Path, layers: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
              "intermediate_size": FFN, "num_hidden_layers": layers, "num_attention_heads": HEADS,
              "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB, "max_position_embeddings": 4096,
              "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text(json.dumps(_tokenizer()))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|begin_of_text|>",
                                                              "eos_token": "<|eot_id|>"}))
    tensors = _tensors(layers)
    half = len(tensors) // 2
    shards = {"model-00001-of-00002.safetensors": tensors[:half], "model-00002-of-00002.safetensors": tensors[half:]}
    rng = np.random.default_rng(0)
    weight_map = {}
    for name, part in shards.items():
        _write_shard(folder / name, part, rng)
        weight_map.update({t: name for t, _ in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--limit-mb", type=int, default=768)
    ap.add_argument("--types", default="f16,q8_0")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="r1desk-bench-convert-") as tmp:
        folder = Path(tmp) / "synthetic-llama"
        started = time.monotonic()
        size = make_folder(folder, args.layers)
        print(f"folder: {size / 1e9:.2f} GB of bf16 safetensors in {time.monotonic() - started:.0f} s; "
              f"memory limit {args.limit_mb} MB")
        for outtype in args.types.split(","):
            out = Path(tmp) / f"out-{outtype}.gguf"
            proc = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(out), outtype, str(args.limit_mb)],
                                  check=False, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                raise SystemExit(f"conversion to {outtype} failed under {args.limit_mb} MB:\n{proc.stderr[-2000:]}")
            figures = json.loads(proc.stdout.strip().splitlines()[-1])
            run = {"outtype": outtype, "folder_bytes": size, "output_bytes": out.stat().st_size,
                   "limit_bytes": args.limit_mb << 20, **figures,
                   "peak_rss_over_folder": round(figures["peak_rss"] / size, 3)}
            out.unlink()
            runs.append(run)
            print(f"{outtype}: peak RSS {run['peak_rss'] / 1e6:.0f} MB for a {size / 1e9:.2f} GB folder "
                  f"({run['peak_rss_over_folder'] * 100:.0f}%), output {run['output_bytes'] / 1e9:.2f} GB, "
                  f"{run['seconds']:.0f} s")
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
              "layers": args.layers, "runs": runs}
    path = ROOT / "bench" / "results" / "convert.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
