"""Hugging Face folder -> GGUF: parity with transformers on real and tiny models, and bad input refused.

PyTorch and transformers are the reference here only; the converter reads safetensors itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from r1desk.converters.hf import convert
from r1desk.engine.errors import Cancelled, ConversionError
from r1desk.engine.events import CancelToken

from tests.support.models import minilm_path
from tests.support.tiny_hf import CORPUS, save_folder, tiny_model

TEXTS = {
    "english": "The quick brown fox jumps over the lazy dog. It's what they'll do, isn't it?",
    "chinese": "深度学习模型把文本变成向量。我们今天在北京开会，明天去上海。",
    "code": "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(i ** 2)\n",
    "emoji": "Emoji: 🚀 🦙🦙 ✅ 😶‍🌫️ 👍🏽 done",
    "mixed": "  spaces\tand tabs\n\n\nnew lines: café 3.14 — 你好 🚀",
}

# llama.cpp computes in f32 like the reference, but sums in another order and keeps the KV cache
# in f16 by default; these bounds are on max |difference| over all logits, relative to max |logit|.
LOGIT_TOLERANCE = {"f32": 2e-3, "f16": 1e-2, "q8_0": 6e-2}  # q8_0: llama.cpp also rounds activations to 8 bits


def _run(folder: Path, out: Path, outtype: str = "f32", **kwargs) -> list:
    return list(convert(folder, out, outtype=outtype, register=False, **kwargs))


def _metadata(path: Path) -> dict:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {name: field.contents() for name, field in reader.fields.items()
            if not name.startswith("tokenizer.ggml.") or name.endswith(("_id", "pre", "model", "add_bos_token"))}


# -- tiny llama / qwen2 ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """family -> (torch model, tokenizer, folder); qwen2 saved in shards, llama in one file."""
    made = {}
    for family in ("llama", "qwen2"):
        model, tokenizer = tiny_model(family)
        folder = tmp_path_factory.mktemp(family) / f"tiny-{family}"
        save_folder(model, tokenizer, folder, **({"max_shard_size": "200KB"} if family == "qwen2" else {}))
        made[family] = (model, tokenizer, folder)
    return made


def _llama(path: Path, **kwargs):
    import llama_cpp

    return llama_cpp.Llama(str(path), n_ctx=256, n_batch=256, n_threads=2, verbose=False, **kwargs)


def _logit_error(model, path: Path, ids: list[int]) -> float:
    import torch

    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].float().numpy()
    llm = _llama(path, logits_all=True)
    try:
        llm.eval(ids)
        got = np.array(llm.scores[:len(ids)])
    finally:
        llm.close()
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("outtype", ["f32", "f16", "q8_0"])
def test_tiny_model_logits_match_transformers(tiny, tmp_path, family, outtype):
    model, tokenizer, folder = tiny[family]
    out = tmp_path / f"{family}-{outtype}.gguf"
    events = _run(folder, out, outtype)
    assert events[-1].message.startswith("Wrote") and out.exists()
    ids = tokenizer(CORPUS[0] + " " + CORPUS[2])["input_ids"]
    error = _logit_error(model, out, ids)
    print(f"{family} {outtype}: relative max logit error {error:.2e}")
    assert error < LOGIT_TOLERANCE[outtype], f"{family} {outtype}: relative max logit error {error:.2e}"


@pytest.mark.slow
def test_bf16_weights_are_read_exactly(tiny, tmp_path):
    """A bf16 folder (as most published models are) converts; f32 output matches the bf16 weights."""
    import torch

    model, tokenizer, _ = tiny["llama"]
    half = type(model)(model.config).eval()
    half.load_state_dict(model.state_dict())
    half = half.to(torch.bfloat16)
    folder = save_folder(half, tokenizer, tmp_path / "tiny-llama-bf16")
    header = json.loads((folder / "model.safetensors").read_bytes()[8:][:200_000].split(b"}}", 1)[0] + b"}}")
    assert any(v.get("dtype") == "BF16" for v in header.values() if isinstance(v, dict))
    out = tmp_path / "bf16-source.gguf"
    _run(folder, out, "f32")
    ids = tokenizer(CORPUS[1])["input_ids"]
    errors = [_logit_error(half.float(), out, ids)]
    _run(folder, tmp_path / "bf16.gguf", "bf16")
    errors.append(_logit_error(half.float(), tmp_path / "bf16.gguf", ids))
    print(f"bf16 source: relative max logit error {errors[0]:.2e} (f32 out), {errors[1]:.2e} (bf16 out)")
    # bf16 output: llama.cpp rounds the activations to bf16 for those matrix products.
    assert errors[0] < LOGIT_TOLERANCE["f32"] and errors[1] < LOGIT_TOLERANCE["f16"]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_tokenizer_and_template_carried_over(tiny, tmp_path, family):
    _, tokenizer, folder = tiny[family]
    out = tmp_path / f"{family}.gguf"
    _run(folder, out, "q8_0")
    meta = _metadata(out)
    assert meta["tokenizer.ggml.pre"] == ("qwen2" if family == "qwen2" else "llama-bpe")
    assert meta["tokenizer.chat_template"] == (folder / "chat_template.jinja").read_text(encoding="utf-8")
    assert meta["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    if family == "llama":
        assert meta["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id
        assert meta["tokenizer.ggml.add_bos_token"] is True
    llm = _llama(out)
    try:
        for kind, text in TEXTS.items():
            want = tokenizer(text)["input_ids"]
            assert llm.tokenize(text.encode(), add_bos=True) == want, kind
            # Without the BOS: after one the bindings drop a leading space, as SentencePiece models want.
            body = [t for t in want if t != tokenizer.bos_token_id]
            assert llm.detokenize(body).decode() == tokenizer.decode(body), kind
        marker = "<|im_end|>" if family == "qwen2" else "<|eot_id|>"
        assert llm.tokenize(marker.encode(), add_bos=False, special=True) == [tokenizer.convert_tokens_to_ids(marker)]
    finally:
        llm.close()


# -- a tiny Llama 2 (SentencePiece) folder ----------------------------------------------------
# Characters CORPUS never has, so SentencePiece spells them in byte pieces.
BYTE_FALLBACK = "麒麟 ½ Ωmega ✨ 𝔘"


@pytest.fixture(scope="module")
def llama2(tmp_path_factory):
    """(torch model, tokenizer, folder): tokenizer.model beside tokenizer.json, as Llama 2 is published."""
    model, tokenizer = tiny_model("llama2")
    folder = save_folder(model, tokenizer, tmp_path_factory.mktemp("llama2") / "tiny-llama2")
    return model, tokenizer, folder


def _model_only(folder: Path, into: Path) -> Path:
    """The folder without tokenizer.json, its tokenizer_config.json saying what Llama 2's says of BOS and EOS."""
    shutil.copytree(folder, into, ignore=shutil.ignore_patterns("tokenizer.json"))
    config = json.loads((into / "tokenizer_config.json").read_text())
    config.update(add_bos_token=True, add_eos_token=False)
    (into / "tokenizer_config.json").write_text(json.dumps(config))
    return into


@pytest.mark.slow
@pytest.mark.parametrize("files", ["published", "model-only"])
def test_sentencepiece_tokenizer_carried_over(llama2, tmp_path, files):
    import gguf
    import sentencepiece as spm

    _, tokenizer, folder = llama2
    if files == "model-only":
        folder = _model_only(folder, tmp_path / "tiny-llama2")
    out = tmp_path / "llama2.gguf"
    events = _run(folder, out, "f32")
    assert any("SentencePiece" in e.message for e in events), [e.message for e in events]
    meta = _metadata(out)
    assert meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id == 1
    assert meta["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id == 2
    assert meta["tokenizer.ggml.unknown_token_id"] == tokenizer.unk_token_id == 0
    assert meta["tokenizer.ggml.add_bos_token"] is True
    assert meta.get("tokenizer.ggml.add_eos_token", False) is False
    assert meta["tokenizer.chat_template"] == (folder / "chat_template.jinja").read_text(encoding="utf-8")

    # The pieces, scores and kinds are tokenizer.model's own, read by r1desk's protobuf reader.
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    fields = gguf.GGUFReader(str(out)).fields
    tokens, scores, types = (fields[f"tokenizer.ggml.{k}"].contents() for k in ("tokens", "scores", "token_type"))
    assert tokens == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert np.allclose(scores, [sp.get_score(i) for i in range(sp.get_piece_size())])
    assert types[:4] == [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, gguf.TokenType.BYTE]
    assert types.count(gguf.TokenType.BYTE) == 256

    llm = _llama(out, vocab_only=True)
    try:
        for kind, text in {**TEXTS, "byte fallback": BYTE_FALLBACK}.items():
            want = tokenizer(text)["input_ids"]
            assert want == [sp.bos_id(), *sp.encode(text)], kind  # the reference agrees with SentencePiece
            assert llm.tokenize(text.encode(), add_bos=True, special=False) == want, kind
            assert llm.tokenize(text.encode(), add_bos=False, special=False) == want[1:], kind
            # After the BOS the bindings drop the space SentencePiece put before the text, as transformers does.
            assert llm.detokenize(want).decode() == tokenizer.decode(want, skip_special_tokens=True) == text, kind
        assert any(types[i] == gguf.TokenType.BYTE for i in tokenizer(BYTE_FALLBACK)["input_ids"])
    finally:
        llm.close()


def test_sentencepiece_special_ids_read_from_the_trainer_spec(tmp_path):
    """Where tokenizer.model puts its unknown, BOS and EOS pieces is read, not assumed (0, 1, 2)."""
    from r1desk.converters.hf import _sentencepiece_vocab

    from tests.support.tiny_hf import sentencepiece_model

    (tmp_path / "tokenizer.model").write_bytes(sentencepiece_model(unk_id=3, bos_id=0, eos_id=1, pad_id=2))
    *_, ids = _sentencepiece_vocab(tmp_path, 400)
    assert ids == {"unk": 3, "bos": 0, "eos": 1, "pad": 2}
    (tmp_path / "tokenizer.model").write_bytes(sentencepiece_model())
    *_, ids = _sentencepiece_vocab(tmp_path, 400)
    assert ids == {"unk": 0, "bos": 1, "eos": 2}  # pad -1: none


@pytest.mark.slow
def test_sentencepiece_model_logits_match_transformers(llama2, tmp_path):
    model, tokenizer, folder = llama2
    out = tmp_path / "llama2-f32.gguf"
    _run(folder, out, "f32")
    ids = tokenizer(CORPUS[0] + " " + CORPUS[2] + " " + BYTE_FALLBACK)["input_ids"]
    error = _logit_error(model, out, ids)
    print(f"llama2 f32: relative max logit error {error:.2e}")
    assert error < LOGIT_TOLERANCE["f32"], f"llama2 f32: relative max logit error {error:.2e}"


# -- the real MiniLM folder ------------------------------------------------------------------
SENTENCES = [
    "A man is eating food.",
    "The weather is lovely today, let's go for a walk in the park.",
    "Embeddings map sentences to points in a vector space.",
    "我喜欢在晚上读书。",
    "北京是中国的首都，也是一座历史悠久的城市。",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "Launch at 10:30 🚀 — don't be late!",
]


@pytest.mark.slow
def test_minilm_embeddings_match_transformers(tmp_path):
    import llama_cpp
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = minilm_path()
    out = tmp_path / "all-MiniLM-L6-v2-F16.gguf"
    list(convert(folder, out, outtype="f16"))  # the default type, registered like a download
    meta = _metadata(out)
    assert meta["general.architecture"] == "bert" and meta["bert.pooling_type"] == 1  # mean
    assert meta["bert.attention.causal"] is False

    tokenizer = AutoTokenizer.from_pretrained(folder)
    reference = AutoModel.from_pretrained(folder).eval()
    llm = llama_cpp.Llama(str(out), embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                          n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2, verbose=False)
    try:
        worst = 1.0
        for text in SENTENCES:
            encoded = tokenizer(text, return_tensors="pt")
            assert llm.tokenize(text.encode(), add_bos=True) == encoded["input_ids"][0].tolist(), text
            with torch.no_grad():
                hidden = reference(**encoded).last_hidden_state[0]
            want = hidden.mean(0).numpy()  # sentence-transformers' mean pooling (one sequence, no padding)
            got = np.array(llm.embed(text))
            cosine = float(want @ got / np.linalg.norm(want) / np.linalg.norm(got))
            worst = min(worst, cosine)
        print(f"MiniLM F16: lowest cosine {worst:.6f}")
        assert worst >= 0.999, f"lowest cosine {worst:.6f}"
    finally:
        llm.close()

    from r1desk.engine.db.database import open_db
    from r1desk.engine.models.library import Library

    db = open_db()
    try:
        model = Library(db).by_path(out)
    finally:
        db.conn.close()
    assert model is not None and model.origin == "converted" and model.architecture == "bert"


# -- refused in words, nothing left behind ---------------------------------------------------
def _refusal(folder: Path, out: Path) -> ConversionError:
    with pytest.raises(ConversionError) as caught:
        _run(folder, out)
    assert not out.exists() and not list(out.parent.glob("*.partial"))
    assert "\n" not in str(caught.value)
    return caught.value


def _bert_config(folder: Path, **changes) -> None:
    config = json.loads((minilm_path() / "config.json").read_text())
    config.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))


def test_pickle_checkpoint_refused(tmp_path):
    folder = tmp_path / "pickled"
    _bert_config(folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")  # never opened
    error = _refusal(folder, tmp_path / "out" / "x.gguf")
    assert error.facts["code"] == "pickle"
    assert "pytorch_model.bin" in str(error) and "safetensors" in str(error)


def test_unknown_architecture_refused_with_what_is_supported(tmp_path):
    folder = tmp_path / "neox"
    _bert_config(folder, model_type="gpt_neox", architectures=["GPTNeoXForCausalLM"])
    error = _refusal(folder, tmp_path / "x.gguf")
    assert error.facts["code"] == "unsupported-architecture"
    assert "gpt_neox" in str(error) and all(a in str(error) for a in ("llama", "qwen2", "bert"))


def test_missing_config_refused(tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    shutil.copy(minilm_path() / "tokenizer.json", folder)
    error = _refusal(folder, tmp_path / "x.gguf")
    assert error.facts["code"] == "no-config" and "config.json" in str(error)


@pytest.mark.parametrize("keep", [4, 5000, 60_000_000])
def test_truncated_safetensors_refused(tmp_path, keep):
    folder = tmp_path / "cut"
    shutil.copytree(minilm_path(), folder, ignore=shutil.ignore_patterns("model.safetensors"))
    with open(minilm_path() / "model.safetensors", "rb") as src:
        (folder / "model.safetensors").write_bytes(src.read(keep))
    error = _refusal(folder, tmp_path / "x.gguf")
    assert error.facts["code"] in ("truncated", "corrupt")
    assert "model.safetensors" in str(error)


def test_cancel_leaves_nothing(tmp_path):
    cancel = CancelToken()
    out = tmp_path / "out" / "x.gguf"
    job = convert(minilm_path(), out, outtype="f32", cancel=cancel, register=False)
    next(job)
    next(job)
    cancel.cancel()
    with pytest.raises(Cancelled):
        list(job)
    assert list(out.parent.iterdir()) == []
