"""Tiny random Hugging Face model folders (llama, qwen2, llama-2) made with transformers, for converter tests.

Each has a real tokenizer trained here on a few sentences of English, Chinese, code and emoji:
byte-level BPE for llama (Llama 3) and qwen2, so every byte has a token, and a SentencePiece
BPE with byte fallback for llama2, as Llama 2 has; the special tokens and chat template its
family uses, and weights drawn at a scale where attention and the norms matter. Test-only: the
converters themselves never import torch, transformers or sentencepiece.
"""

from __future__ import annotations

from pathlib import Path

# The split rules the real tokenizers use (copied from their tokenizer.json files).
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's what they'll do, isn't it?",
    "Machine learning models turn text into tokens, then tokens into vectors.",
    "深度学习模型把文本变成向量。我们今天在北京开会，明天去上海。你好，世界！",
    "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(i ** 2)\n",
    "if (x != 0) { y = x * 3.14; } else { y = -1; } // 2024-01-31 12:30",
    "Emoji: 🚀 🦙🦙 ✅ 😶‍🌫️ 👍🏽 — and some accents: café, naïve, Größe.",
    "   indented text\twith tabs\n\n\nand blank lines   ",
]

QWEN_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)


def byte_level_tokenizer(family: str, vocab_size: int = 420):
    """A transformers fast tokenizer of the ``family`` ("qwen2" or "llama3") trained on CORPUS."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if family == "qwen2":
        split, specials = QWEN2_SPLIT, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        model = models.BPE()
    else:
        split, specials = LLAMA3_SPLIT, ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                         "<|end_header_id|>", "<|eot_id|>"]
        model = models.BPE(ignore_merges=True)  # as Llama 3's tokenizer.json says
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    if family == "qwen2":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                       chat_template=QWEN_TEMPLATE)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                      special_tokens=[(bos, tok.token_to_id(bos))]),
    ])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<|eot_id|>",
                                   chat_template=LLAMA3_TEMPLATE)


def sentencepiece_model(vocab_size: int = 400, **ids: int) -> bytes:
    """A serialized tokenizer.model trained on CORPUS with Llama 2's SentencePiece settings.

    ``ids`` (unk_id, bos_id, eos_id, pad_id) move the special pieces from Llama 2's 0, 1, 2 and no pad.
    """
    import io

    import sentencepiece as spm

    proto = io.BytesIO()
    # Llama 2's trainer_spec: BPE, digits split, byte fallback, whitespace kept as it is (runs of
    # spaces become pieces), no normalization, and a "▁" put before the text.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4), model_writer=proto, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, split_digits=True, character_coverage=1.0, allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False, normalization_rule_name="identity", add_dummy_prefix=True,
        minloglevel=2, num_threads=1, **{"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1, **ids})
    return proto.getvalue()


def sentencepiece_tokenizer(proto: bytes):
    """The transformers fast tokenizer Llama 2 folders ship next to their tokenizer.model, for ``proto``.

    Built from the pieces as Llama 2's tokenizer.json is (a "▁" prepended and spaces replaced in
    the normalizer, BPE with byte fallback, merges from the piece scores, BOS added), since
    transformers itself needs protobuf to convert a tokenizer.model.
    """
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.tokenization_utils_base import generate_merges

    sp = spm.SentencePieceProcessor(model_proto=proto)
    n = sp.get_piece_size()
    vocab = {sp.id_to_piece(i): i for i in range(n)}
    scores = {sp.id_to_piece(i): sp.get_score(i) for i in range(n)}
    specials = {sp.id_to_piece(i) for i in range(n) if sp.is_control(i) or sp.is_unknown(i)}
    unk, bos, eos = (sp.id_to_piece(i) for i in (sp.unk_id(), sp.bos_id(), sp.eos_id()))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=generate_merges(vocab, scores, skip_tokens=specials),
                               unk_token=unk, fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1)])
    tok.post_processor = processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                                       special_tokens=[(bos, sp.bos_id())])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=unk, bos_token=bos, eos_token=eos,
                                   add_bos_token=True, add_eos_token=False, chat_template=LLAMA2_TEMPLATE)


def tiny_model(family: str, *, seed: int = 0, hidden: int = 64, layers: int = 2):
    """(model, tokenizer): a random ``family`` causal LM ("llama", "llama2" or "qwen2") in float32.

    A llama2 tokenizer carries its tokenizer.model as ``sentencepiece_proto``, for save_folder.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    if family == "llama2":
        proto = sentencepiece_model()
        tokenizer = sentencepiece_tokenizer(proto)
        tokenizer.sentencepiece_proto = proto
    else:
        tokenizer = byte_level_tokenizer("qwen2" if family == "qwen2" else "llama3")
    common = {"vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": hidden * 2,
              "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
              "initializer_range": 0.1}
    if family == "qwen2":
        config = Qwen2Config(**common, rope_theta=1_000_000.0, bos_token_id=None,
                             eos_token_id=tokenizer.eos_token_id)
        model = Qwen2ForCausalLM(config)
    else:
        # Llama 2 kept the original RoPE base; Llama 3 raised it.
        config = LlamaConfig(**common, rope_theta=10_000.0 if family == "llama2" else 500_000.0,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        model = LlamaForCausalLM(config)
    with torch.no_grad():
        # transformers starts norms at one and biases at zero; random ones prove they are mapped.
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.1)
            elif "norm" in name:
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
    return model.eval(), tokenizer


def save_folder(model, tokenizer, folder: Path, **kwargs) -> Path:
    """save_pretrained both into ``folder`` (safetensors; kwargs such as max_shard_size pass on).

    A SentencePiece tokenizer also leaves its tokenizer.model there, as Llama 2 folders have it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True, **kwargs)
    tokenizer.save_pretrained(folder)
    proto = getattr(tokenizer, "sentencepiece_proto", None)
    if proto is not None:
        (folder / "tokenizer.model").write_bytes(proto)
    return folder
