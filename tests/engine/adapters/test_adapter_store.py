"""Adapters kept in SQLite: import (checked first, all or nothing), list, export, remove, and the
file llama.cpp loads, written from the database and written again when missing or damaged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from r1desk.engine import paths
from r1desk.engine.adapters.check import check_fits, model_shape
from r1desk.engine.adapters.store import Adapters
from r1desk.engine.db.database import open_db
from r1desk.engine.errors import AdapterError, CorruptModel, NotAModel
from tests.engine.adapters.lora_files import write_lora


@pytest.fixture
def store() -> Adapters:
    return Adapters(open_db())


def test_an_adapter_round_trips_through_the_database(store: Adapters, tmp_path: Path) -> None:
    src = write_lora(tmp_path / "style.gguf", rank=4, alpha=8.0)
    a = store.add(src, notes="support replies")
    assert (a.name, a.architecture, a.rank, a.alpha, a.n_embd) == ("style", "qwen2", 4, 8.0, 64)
    assert a.target_modules == ["attn_output", "attn_q", "attn_v", "ffn_down"]
    assert a.tensors["blk.1.ffn_down.weight"] == [128, 64, 4]
    assert a.sha256 == hashlib.sha256(src.read_bytes()).hexdigest() and a.size == src.stat().st_size
    assert [x.name for x in store.list()] == ["style"]
    out = store.export("style", tmp_path / "back.gguf")
    assert out.read_bytes() == src.read_bytes()
    src.unlink()  # the database has it all
    cached = store.file_for("style")
    assert cached.parent == paths.adapters_dir() and cached.name == f"{a.sha256}.gguf"
    assert cached.read_bytes() == out.read_bytes()
    store.remove("style")
    assert store.count() == 0 and not cached.exists()
    assert open_db().execute("SELECT count(*) FROM adapter_chunks").fetchone()[0] == 0


def test_the_loaded_file_is_written_again_when_missing_or_wrong(store: Adapters, tmp_path: Path) -> None:
    a = store.add(write_lora(tmp_path / "a.gguf"), name="a")
    path = store.file_for(a)
    good = path.read_bytes()
    path.unlink()
    assert store.file_for(a).read_bytes() == good
    damaged = bytearray(good)
    damaged[-10] ^= 0xFF
    path.write_bytes(bytes(damaged))  # same size, other bytes (and another mtime)
    assert store.file_for(a).read_bytes() == good


def test_large_adapters_are_kept_in_chunks(store: Adapters, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from r1desk.engine.adapters import store as store_module

    monkeypatch.setattr(store_module, "CHUNK_BYTES", 1000)
    src = write_lora(tmp_path / "a.gguf")
    a = store.add(src)
    n = store.db.execute("SELECT count(*) FROM adapter_chunks WHERE adapter_id = ?", [a.id]).fetchone()[0]
    assert n == -(-src.stat().st_size // 1000)
    assert store.export(a.name, tmp_path / "out.gguf").read_bytes() == src.read_bytes()


def _bad_inputs(tmp_path: Path, tiny_r1: Path) -> dict[str, tuple[Path, type, str | None]]:
    good = write_lora(tmp_path / "good.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size - 100])
    text = tmp_path / "notes.gguf"
    text.write_text("not an adapter at all\n")
    pickle = tmp_path / "adapter.gguf"
    pickle.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    wrong_type = write_lora(tmp_path / "control.gguf", adapter_type="model")
    return {
        "truncated": (truncated, CorruptModel, "truncated"),
        "not GGUF": (text, NotAModel, "not-gguf"),
        "pickle": (pickle, NotAModel, "not-gguf"),
        "a model, not an adapter": (tiny_r1, AdapterError, "not-lora"),
        "not an adapter type": (wrong_type, AdapterError, "not-lora"),
    }


def test_bad_files_are_refused_in_words_and_the_database_is_unchanged(store: Adapters, tmp_path: Path,
                                                                       tiny_r1: Path) -> None:
    store.add(write_lora(tmp_path / "keep.gguf", seed=7), name="keep")
    for what, (path, kind, code) in _bad_inputs(tmp_path, tiny_r1).items():
        with pytest.raises(kind) as err:
            store.add(path, name="bad")
        assert err.value.facts.get("code") == code, what
        assert str(err.value) and "\n" not in str(err.value)
        assert [a.name for a in store.list()] == ["keep"], what
    chunks = store.db.execute("SELECT count(*) FROM adapter_chunks").fetchone()[0]
    # The same bytes twice, or a name taken, are refused too.
    with pytest.raises(AdapterError, match="already imported, as 'keep'"):
        store.add(write_lora(tmp_path / "again.gguf", seed=7), name="other")
    with pytest.raises(AdapterError, match="already imported"):
        store.add(write_lora(tmp_path / "new.gguf", seed=8), name="keep")
    with pytest.raises(AdapterError, match="cannot name"):
        store.add(write_lora(tmp_path / "new2.gguf", seed=9), name="a:b")
    assert store.count() == 1
    assert store.db.execute("SELECT count(*) FROM adapter_chunks").fetchone()[0] == chunks


def test_llama_cpp_s_own_reader_is_asked_too(store: Adapters, tmp_path: Path) -> None:
    # The bounded reader takes tensor names up to 256 bytes; llama.cpp's reader stops at 63.
    import gguf
    import numpy as np

    bad = tmp_path / "long-names.gguf"
    w = gguf.GGUFWriter(str(bad), "qwen2")
    w.add_type("adapter")
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 8.0)
    name = "blk.0." + "x" * 70 + ".weight"
    w.add_tensor(name + ".lora_a", np.ones((2, 64), np.float32))
    w.add_tensor(name + ".lora_b", np.ones((64, 2), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(AdapterError) as err:
        store.add(bad)
    assert err.value.facts["code"] == "rejected" and "llama.cpp" in str(err.value)
    assert store.count() == 0


@pytest.mark.parametrize("change, code", [
    ({"arch": "llama"}, "wrong-architecture"),
    ({"shapes": {k: (v[0], 96) for k, v in {"attn_q": (64, 64), "attn_v": (32, 64), "attn_output": (64, 64),
                                             "ffn_down": (64, 128)}.items()}}, "wrong-shape"),
    ({"layers": 3}, "wrong-layers"),
    ({"shapes": {"attn_q": (64, 64), "attn_v": (48, 64), "attn_output": (64, 64), "ffn_down": (64, 128)}},
     "wrong-shape"),
])
def test_an_adapter_for_another_model_is_refused_before_it_is_applied(store: Adapters, tmp_path: Path,
                                                                      tiny_r1: Path, change, code) -> None:
    a = store.add(write_lora(tmp_path / "x.gguf", **change), name="x")
    with pytest.raises(AdapterError) as err:
        check_fits(a.facts, model_shape(tiny_r1), adapter="x")
    assert err.value.facts["code"] == code
    assert "adapter x" in str(err.value)
    check_fits(store.add(write_lora(tmp_path / "ok.gguf"), name="ok").facts, model_shape(tiny_r1), adapter="ok")
