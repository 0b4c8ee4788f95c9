"""GGUF LoRA adapters written with gguf's own writer, for the tiny qwen2 test model (64 wide, 2 layers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The tiny R1 test model's projections: GGUF kind -> numpy shape of the base weight (n_out, n_in).
TINY_QWEN2 = {"attn_q": (64, 64), "attn_k": (32, 64), "attn_v": (32, 64), "attn_output": (64, 64),
              "ffn_gate": (128, 64), "ffn_up": (128, 64), "ffn_down": (64, 128)}


def write_lora(out: Path, *, arch: str = "qwen2", rank: int = 4, alpha: float = 8.0, seed: int = 1,
               kinds: tuple[str, ...] = ("attn_q", "attn_v", "attn_output", "ffn_down"), layers: int = 2,
               shapes: dict[str, tuple[int, int]] | None = None, magnitude: float = 0.5,
               adapter_type: str = "adapter") -> Path:
    import gguf

    shapes = shapes or TINY_QWEN2
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(out), arch)
    w.add_type(adapter_type)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for layer in range(layers):
        for kind in kinds:
            n_out, n_in = shapes[kind]
            name = f"blk.{layer}.{kind}.weight"
            w.add_tensor(name + ".lora_a", rng.normal(0, magnitude, (rank, n_in)).astype(np.float32))
            w.add_tensor(name + ".lora_b", rng.normal(0, magnitude, (n_out, rank)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
