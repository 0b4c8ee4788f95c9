"""The GGUF guard: real files pass, every kind of broken or hostile header is refused in one line."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from r1desk.engine.errors import CorruptModel, NotAModel, ModelNotFound
from r1desk.engine.gguf.header import check_model, read_header

pytestmark = pytest.mark.timeout(60)  # a hang is a failure


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv_str(key: str, value: str) -> bytes:
    return _s(key) + struct.pack("<I", 8) + _s(value)


def _header(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def _write(tmp_path: Path, data: bytes, name: str = "m.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_real_model_header(smollm2: Path) -> None:
    info = check_model(smollm2)
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.block_count == 30
    assert info.expected_file_size == smollm2.stat().st_size
    assert info.vocab_size == 49152
    assert 130e6 < info.parameter_count < 140e6
    assert info.template_sha256() and len(info.template_sha256()) == 64


def test_r1_header_is_readable_but_truncated(r1_header: Path) -> None:
    info = read_header(r1_header, allow_truncated_data=True)
    assert info.architecture == "qwen2"
    assert info.block_count == 28
    assert len(info.tensors) == 339
    assert info.expected_file_size == 4_683_073_248
    assert info.warnings
    with pytest.raises(CorruptModel, match="truncated GGUF"):
        read_header(r1_header)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99])
def test_truncated_model_is_refused(tmp_path: Path, smollm2: Path, fraction: float) -> None:
    data = smollm2.read_bytes()
    p = _write(tmp_path, data[: int(len(data) * fraction)])
    with pytest.raises(CorruptModel) as exc:
        check_model(p)
    message = str(exc.value)
    assert str(p) in message and "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound):
        check_model(tmp_path / "nope.gguf")


def test_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(NotAModel, match="folder"):
        check_model(tmp_path)


@pytest.mark.parametrize("data, words", [
    (b"# Notes\nThis is a README, renamed to .gguf by mistake.\n" * 3, "it is a text file"),
    ("# 说明\n这是一个文本文件。\n".encode() * 20, "it is a text file"),
    (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>" + b" " * 40, "a web page"),
    (struct.pack("<Q", 120) + b'{"__metadata__": {}}' + b" " * 100, "safetensors"),
    (b"\x80\x04\x95" + b"\0" * 60, "pickle"),
    (bytes(range(256)), "does not start with the GGUF signature"),
])
def test_a_file_that_is_not_gguf_says_what_it_is_in_words(tmp_path: Path, data: bytes, words: str) -> None:
    p = _write(tmp_path, data)
    with pytest.raises(NotAModel) as info:
        check_model(p)
    message = str(info.value)
    assert "not a GGUF model file" in message and words in message
    assert "b'" not in message and "\\x" not in message  # no Python bytes repr


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "too short"),
        (b"PK\x03\x04" + b"\0" * 100, "not a GGUF model file \\(it is a ZIP archive"),
        (_header(0, 0, version=1) + b"\0" * 16, "unsupported GGUF version 1"),
        (_header(0, 0, version=0x03000000) + b"\0" * 16, "big-endian"),
        (_header(0, 2**64 - 1) + b"\0" * 16, "metadata entries"),
        (_header(2**64 - 1, 0) + b"\0" * 16, "tensors"),
        # a string that claims 2^63 bytes
        (_header(0, 1) + struct.pack("<Q", 2**63) + b"abc", "claims"),
        # an array at the end of the file claiming 2^40 items: the gguf package hangs on this
        (_header(0, 1) + _s("a.b") + struct.pack("<IIQ", 9, 4, 2**40), "array a.b"),
        # an array of strings longer than the file
        (_header(0, 1) + _s("x") + struct.pack("<IIQ", 9, 8, 10**6), "runs past the end"),
        (_header(0, 1) + _s("k") + struct.pack("<I", 77) + b"\0" * 8, "unknown value type 77"),
        (_header(0, 2) + _kv_str("k", "a") + _kv_str("k", "b"), "duplicate metadata key"),
        (_header(0, 1) + _s("k") + struct.pack("<I", 8) + struct.pack("<Q", 2) + b"\xff\xfe", "UTF-8"),
    ],
)
def test_hostile_headers(tmp_path: Path, data: bytes, fragment: str) -> None:
    p = _write(tmp_path, data)
    with pytest.raises(CorruptModel, match=fragment):
        read_header(p)


def _tensor(name: str, dims: list[int], type_id: int = 0, offset: int = 0) -> bytes:
    return _s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack(
        "<IQ", type_id, offset
    )


def _model(tensors: list[bytes], kv: bytes = b"", n_kv: int = 0, data: int = 0) -> bytes:
    head = _header(len(tensors), n_kv) + kv + b"".join(tensors)
    pad = (-len(head)) % 32
    return head + b"\0" * pad + b"\0" * data


@pytest.mark.parametrize(
    "tensors, data, fragment",
    [
        ([_tensor("t", [1, 1, 1, 1, 1])], 4, "5 dimensions"),
        ([_tensor("t", [4], type_id=999)], 16, "tensor type 999"),
        ([_tensor("t", [0])], 16, "dimension 0"),
        ([_tensor("t", [2**40, 2**40])], 16, "elements|dimension"),
        ([_tensor("t", [4]), _tensor("t", [4], offset=32)], 64, "duplicate tensor"),
        ([_tensor("t", [4], offset=3)], 64, "not aligned"),
        ([_tensor("a", [16]), _tensor("b", [16], offset=32)], 128, "overlap"),
        ([_tensor("t", [1024])], 100, "truncated GGUF"),
        ([_tensor("t", [4], offset=2**40)], 16, "truncated GGUF"),
        ([_tensor("t", [33], type_id=8)], 64, "block size"),  # Q8_0 rows come in blocks of 32
    ],
)
def test_hostile_tensor_tables(tmp_path: Path, tensors: list[bytes], data: int, fragment: str) -> None:
    p = _write(tmp_path, _model(tensors, data=data))
    with pytest.raises(CorruptModel, match=fragment):
        read_header(p)


def test_bad_alignment_is_refused(tmp_path: Path) -> None:
    kv = _s("general.alignment") + struct.pack("<II", 4, 24)
    p = _write(tmp_path, _model([_tensor("t", [4])], kv=kv, n_kv=1, data=64))
    with pytest.raises(CorruptModel, match="power of two"):
        read_header(p)


def _vocab_model(tokens: list[str], extra: bytes = b"", n_extra: int = 0) -> bytes:
    arr = _s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, len(tokens)) + b"".join(_s(t) for t in tokens)
    kv = _kv_str("general.architecture", "llama") + arr + extra
    return _model([_tensor("t", [4])], kv=kv, n_kv=2 + n_extra, data=16)


def test_invalid_byte_token_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path, _vocab_model(["<unk>", "<0x41>", "<0x-1>"]))
    with pytest.raises(CorruptModel, match="invalid byte token"):
        check_model(p)


def test_special_token_outside_vocab_is_refused(tmp_path: Path) -> None:
    extra = _s("tokenizer.ggml.eos_token_id") + struct.pack("<II", 4, 5000)
    p = _write(tmp_path, _vocab_model(["a", "b"], extra, 1))
    with pytest.raises(CorruptModel, match="eos token id 5000"):
        check_model(p)


def test_adapter_is_not_a_model(tmp_path: Path) -> None:
    p = _write(tmp_path, _model([_tensor("t", [4])], kv=_kv_str("general.type", "adapter"), n_kv=1, data=16))
    with pytest.raises(CorruptModel, match="LoRA adapter"):
        check_model(p)


def test_mutations_never_escape_as_other_errors(tmp_path: Path, tiny_r1: Path) -> None:
    """Flip bytes across the header of a real model: only CorruptModel (or success) may come out."""
    import random

    original = tiny_r1.read_bytes()
    header_len = read_header(tiny_r1).header_size
    rng = random.Random(1234)
    outcomes = {"ok": 0, "refused": 0}
    for i in range(100):
        data = bytearray(original[: header_len + 4096])
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(0, min(header_len, 4096) if rng.random() < 0.5 else header_len)
            data[pos] = rng.randrange(256)
        p = _write(tmp_path, bytes(data) + original[header_len + 4096:], f"mut{i}.gguf")
        try:
            check_model(p)
            outcomes["ok"] += 1
        except CorruptModel as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
        p.unlink()
    assert outcomes["refused"] > 0
