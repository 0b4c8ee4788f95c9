"""PEFT LoRA folder -> GGUF adapter: llama.cpp with the adapter matches transformers + peft, one
adapter or two, at the scales asked; what cannot be converted is refused by name, leaving the
database as it was. PyTorch, transformers and peft are the reference here only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from r1desk.converters.hf import convert as convert_hf
from r1desk.converters.lora import convert, import_adapter
from r1desk.engine.adapters.store import Adapters
from r1desk.engine.db.database import open_db
from r1desk.engine.errors import AdapterError
from tests.engine.adapters.lora_files import write_lora
from tests.support.tiny_hf import CORPUS, save_folder, tiny_model

# Both sides compute in f32 (base and adapter), llama.cpp with an f16 KV cache and its own
# summation order: max |difference| over all logits, relative to max |logit|, as for the base.
LOGIT_TOLERANCE = 2e-3
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _peft_folder(family: str, folder: Path, *, seed: int, r: int, alpha: float, targets=TARGETS, **config) -> Path:
    """A PEFT adapter on the tiny model with random non-zero B (PEFT starts B at zero)."""
    import torch
    from peft import LoraConfig, get_peft_model

    base, _ = tiny_model(family)
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0,
                                            **config))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "lora_A" in name:
                param.normal_(0.0, 0.1)  # larger q/k deltas push attention past f16 KV precision
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """family -> (base GGUF, tokenizer, adapter folder one, adapter folder two)."""
    made = {}
    for family in ("llama", "qwen2"):
        root = tmp_path_factory.mktemp(f"lora-{family}")
        model, tokenizer = tiny_model(family)
        folder = save_folder(model, tokenizer, root / f"tiny-{family}")
        base = root / f"tiny-{family}.gguf"
        list(convert_hf(folder, base, outtype="f32", register=False))
        one = _peft_folder(family, root / "one", seed=1, r=4, alpha=8)
        # Another rank, rank-stabilised alpha and a per-module rank: each scaled as PEFT does.
        two = _peft_folder(family, root / "two", seed=2, r=2, alpha=3, targets=["q_proj", "v_proj", "down_proj"],
                           use_rslora=True, rank_pattern={"down_proj": 3})
        made[family] = (base, tokenizer, folder, one, two)
    return made


def _reference(family: str, adapters: list[tuple[Path, float]], ids: list[int]) -> np.ndarray:
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    base, _ = tiny_model(family)
    names = [f"a{i}" for i in range(len(adapters))]
    model = PeftModel.from_pretrained(base, str(adapters[0][0]), adapter_name=names[0])
    for name, (folder, _) in zip(names[1:], adapters[1:]):
        model.load_adapter(str(folder), adapter_name=name)
    model.base_model.set_adapter(names)
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name, (_, scale) in zip(names, adapters):
                if name in module.scaling:
                    module.scaling[name] *= scale
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def _llama_cpp(base: Path, adapters: list[tuple[Path, float]], ids: list[int]) -> np.ndarray:
    import ctypes

    import llama_cpp

    llm = llama_cpp.Llama(str(base), n_ctx=256, n_batch=256, n_threads=2, verbose=False, logits_all=True)
    try:
        loaded = []
        for path, _ in adapters:
            ptr = llama_cpp.llama_adapter_lora_init(llm._model.model, str(path).encode())
            assert ptr, f"llama.cpp refused {path}"  # a NULL pointer object, not None
            loaded.append(ptr)
        n = len(loaded)
        if n:
            rc = llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, (llama_cpp.llama_adapter_lora_p_ctypes * n)(*loaded),
                                                   n, (ctypes.c_float * n)(*[s for _, s in adapters]))
            assert rc == 0
        llm.eval(ids)
        return np.array(llm.scores[:len(ids)])
    finally:
        llm.close()  # frees the adapters with the model


def _error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_a_converted_adapter_matches_peft_at_each_scale_alone_and_with_another(tiny, tmp_path, family):
    base, tokenizer, _, one, two = tiny[family]
    store = Adapters(open_db())
    files = {}
    for label, folder in (("one", one), ("two", two)):
        job = import_adapter(folder, name=f"{family}-{label}", base=base)
        events = list(job)
        assert events[-1].message.startswith("Imported")
        files[label] = store.file_for(job.adapter)  # the file written back from the database
    a = store.get(f"{family}-one")
    assert (a.architecture, a.rank, a.n_layer, a.n_embd) == (family, 4, 2, 64)
    assert a.target_modules == sorted(["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"])
    assert store.get(f"{family}-two").rank == 3
    ids = tokenizer(CORPUS[0] + " " + CORPUS[2])["input_ids"]
    plain = _llama_cpp(base, [], ids)
    for case in ([("one", 1.0)], [("one", 0.5)], [("two", 1.0)], [("one", 1.0), ("two", 0.5)]):
        want = _reference(family, [(one if n == "one" else two, s) for n, s in case], ids)
        got = _llama_cpp(base, [(files[n], s) for n, s in case], ids)
        error = _error(got, want)
        effect = _error(want, plain)  # how far the adapter moves the logits: the test must see it
        print(f"{family} {case}: relative max logit error {error:.2e} (the adapter moves them {effect:.2f})")
        assert effect > 50 * LOGIT_TOLERANCE
        assert error < LOGIT_TOLERANCE, f"{family} {case}: relative max logit error {error:.2e}"


def test_f16_output_is_half_the_size(tiny, tmp_path):
    base, _, _, one, _ = tiny["qwen2"]
    list(convert(one, tmp_path / "a32.gguf", base=base))
    list(convert(one, tmp_path / "a16.gguf", base=base, outtype="f16"))
    assert (tmp_path / "a16.gguf").stat().st_size < 0.6 * (tmp_path / "a32.gguf").stat().st_size


# -- refused -------------------------------------------------------------------------------------
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_config(folder: Path, **changes) -> None:
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _bad_folders(tiny, root: Path) -> dict[str, tuple[Path, Path, str]]:
    """what -> (folder, base, facts code)."""
    import torch
    from safetensors.torch import load_file, save_file

    base, _, _, one, _ = tiny["qwen2"]
    cases: dict[str, tuple[Path, Path, str]] = {}

    pickle = _copy(one, root / "pickle")
    (pickle / "adapter_model.safetensors").unlink()
    torch.save({"x": torch.zeros(2)}, pickle / "adapter_model.bin")
    cases["a pickle"] = (pickle, base, "pickle")

    truncated = _copy(one, root / "truncated")
    data = (truncated / "adapter_model.safetensors").read_bytes()
    (truncated / "adapter_model.safetensors").write_bytes(data[: len(data) - 200])
    cases["truncated"] = (truncated, base, "truncated")

    text = _copy(one, root / "text")
    (text / "adapter_model.safetensors").write_text("not tensors\n" * 10)
    cases["not safetensors"] = (text, base, "not-lora")

    wrong_rank = _copy(one, root / "wrong-rank")
    _edit_config(wrong_rank, r=8)
    cases["a rank other than its config says"] = (wrong_rank, base, "wrong-shape")

    mismatched = _copy(one, root / "mismatched")
    tensors = load_file(mismatched / "adapter_model.safetensors")
    key = next(k for k in tensors if "lora_B" in k)
    tensors[key] = tensors[key][:, :3].contiguous()
    save_file(tensors, mismatched / "adapter_model.safetensors")
    cases["lora_A and lora_B of different ranks"] = (mismatched, base, "wrong-shape")

    dora = _copy(one, root / "dora")
    _edit_config(dora, use_dora=True)
    cases["DoRA"] = (dora, base, "unsupported")

    saved = _copy(one, root / "modules-to-save")
    _edit_config(saved, modules_to_save=["lm_head"])
    cases["whole modules"] = (saved, base, "unsupported")

    embed = root / "embed"
    _peft_folder("qwen2", embed, seed=3, r=2, alpha=2, targets=["embed_tokens", "q_proj"])
    cases["the embeddings"] = (embed, base, "unsupported")

    # A different base: the same family, narrower (32 wide) and with 3 layers.
    other, tokenizer = tiny_model("qwen2", hidden=32, layers=3)
    other_gguf = root / "other.gguf"
    list(convert_hf(save_folder(other, tokenizer, root / "other-hf"), other_gguf, outtype="f32", register=False))
    cases["an adapter for a different base"] = (one, other_gguf, "wrong-shape")
    # And a GGUF adapter of another architecture.
    cases["another architecture"] = (write_lora(root / "llama-lora.gguf", arch="llama"), base, "wrong-architecture")
    return cases


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_what_cannot_be_converted_is_refused_by_name_and_nothing_is_kept(tiny, tmp_path):
    store = Adapters(open_db())
    base, _, _, one, _ = tiny["qwen2"]
    list(import_adapter(one, name="keep", base=base))
    rows = store.count()
    chunks = store.db.execute("SELECT count(*) FROM adapter_chunks").fetchone()[0]
    for what, (folder, against, code) in _bad_folders(tiny, tmp_path).items():
        with pytest.raises(AdapterError) as err:
            list(import_adapter(folder, name="bad", base=against))
        message = str(err.value)
        print(f"{what}: {message}")
        assert err.value.facts.get("code") == code, f"{what}: {message}"
        assert "\n" not in message
        assert store.count() == rows, what
        assert store.db.execute("SELECT count(*) FROM adapter_chunks").fetchone()[0] == chunks, what
    assert not [p for p in (tmp_path / "r1desk-home" / "adapters").glob(".import-*")]
    with pytest.raises(AdapterError, match="--base"):
        list(import_adapter(one, name="no-base"))


def test_cancel_leaves_nothing(tiny, tmp_path):
    base, _, _, one, _ = tiny["qwen2"]
    job = convert(one, tmp_path / "a.gguf", base=base)
    events = iter(job)
    next(events)
    job.cancel()
    from r1desk.engine.errors import Cancelled

    with pytest.raises(Cancelled):
        list(events)
    assert not list(tmp_path.glob("a.gguf*"))


def test_bf16_adapters_are_read_exactly(tiny, tmp_path):
    # Most adapters are saved in bf16, which numpy cannot hold: the converter widens the bits itself.
    import gguf
    import torch
    from safetensors.torch import load_file, save_file

    base, _, _, one, _ = tiny["llama"]
    half = _copy(one, tmp_path / "bf16")
    tensors = {k: v.to(torch.bfloat16) for k, v in load_file(one / "adapter_model.safetensors").items()}
    save_file(tensors, half / "adapter_model.safetensors")
    list(convert(half, tmp_path / "bf16.gguf", base=base))
    got = {t.name: np.array(t.data) for t in gguf.GGUFReader(str(tmp_path / "bf16.gguf")).tensors}
    key = "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"
    assert np.array_equal(got["blk.0.attn_v.weight.lora_a"], tensors[key].float().numpy())


def test_the_command_line_converts_a_peft_folder(tiny, tmp_path):
    import subprocess
    import sys

    base, _tokenizer, _folder, one, _two = tiny["qwen2"]
    out = tmp_path / "one.gguf"
    proc = subprocess.run([sys.executable, "-m", "r1desk.cli", "convert", "lora", str(one), "--base", str(base),
                           "-o", str(out)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert f"Wrote {out} (qwen2, rank 4" in proc.stdout
    from r1desk.engine.adapters.check import describe

    facts = describe(out)
    assert facts.rank == 4 and facts.architecture == "qwen2"
    # Without --base it is refused before anything is read.
    proc = subprocess.run([sys.executable, "-m", "r1desk.cli", "convert", "lora", str(one), "-o", str(out)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2 and "--base" in proc.stderr
