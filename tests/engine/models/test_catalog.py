"""Catalog: computed file sizes against real ones, the shipped JSON's consistency, and refresh
against a loopback stand-in for the hub (the real hub cannot be reached from tests)."""

from __future__ import annotations

import json
import re

import pytest
from huggingface_hub import HfApi

from r1desk.engine.errors import Offline
from r1desk.engine.events import Progress
from r1desk.engine.gguf import quants
from r1desk.engine.gguf.header import read_header
from r1desk.engine.models import catalog as C

from tests.support.hub import fake_hub  # noqa: F401 (fixture)

QWEN_7B = C.Arch("qwen2", 28, 3584, 18944, 28, 4, 152064, 131072, attn_bias=True, n_merges=151387)
QWEN_1_5B = C.Arch("qwen2", 28, 1536, 8960, 12, 2, 151936, 131072, attn_bias=True, n_merges=151387)
QWEN_32B = C.Arch("qwen2", 64, 5120, 27648, 40, 8, 152064, 131072, attn_bias=True, n_merges=151387)
LLAMA_70B = C.Arch("llama", 80, 8192, 28672, 64, 8, 128256, 131072, rope_freqs=True, n_merges=280147)


def test_synthesised_header_matches_the_real_7b_q4_k_m(r1_header):
    real = read_header(r1_header, allow_truncated_data=True)
    syn = C.synthesize(QWEN_7B, "Q4_K_M")
    assert {t.name: (t.shape, t.type_id, t.nbytes) for t in syn.tensors} == \
           {t.name: (t.shape, t.type_id, t.nbytes) for t in real.tensors}
    assert syn.tensor_data_size == real.tensor_data_size == 4_677_120_000
    # The header itself is estimated from vocabulary and tensor counts: within 1 KB.
    assert abs(syn.expected_file_size - 4_683_073_248) < 1024
    assert C.parameter_count(QWEN_7B) == real.parameter_count


@pytest.mark.parametrize("arch,quant,size", [
    (QWEN_1_5B, "Q8_0", 1_894_531_872),  # LFS pointer of QuantFactory's DeepSeek-R1-Distill-Qwen-1.5B.Q8_0.gguf
    (QWEN_7B, "Q2_K_L", 3_548_164_064),  # LFS pointer of bartowski's DeepSeek-R1-Distill-Qwen-7B-Q2_K_L.gguf
])
def test_exact_published_sizes(arch, quant, size):
    assert abs(C.estimated_size(arch, quant) - size) < 1024


@pytest.mark.parametrize("arch,quant,gb", [
    # Sizes the hub's file listings show (bartowski's repos, rounded to 3 digits).
    (QWEN_7B, "Q3_K_S", 3.49), (QWEN_7B, "Q3_K_M", 3.81), (QWEN_7B, "Q3_K_L", 4.09),
    (QWEN_7B, "Q3_K_XL", 4.57), (QWEN_7B, "IQ3_M", 3.57), (QWEN_7B, "IQ4_NL", 4.44),
    (QWEN_7B, "IQ4_XS", 4.22), (QWEN_7B, "Q6_K", 6.25), (QWEN_7B, "Q8_0", 8.1), (QWEN_7B, "F16", 15.2),
    (QWEN_7B, "Q2_K", 3.02), (QWEN_7B, "Q5_K_M", 5.44),
    (QWEN_32B, "IQ4_NL", 18.7), (QWEN_32B, "IQ4_XS", 17.7), (QWEN_32B, "Q3_K_L", 17.2),
    (QWEN_32B, "Q3_K_M", 15.9), (QWEN_32B, "Q3_K_XL", 17.9), (QWEN_32B, "Q4_0", 18.7),
    (QWEN_32B, "Q4_1", 20.6), (QWEN_32B, "Q8_0", 34.8),
    (LLAMA_70B, "IQ4_NL", 40.1), (LLAMA_70B, "IQ4_XS", 37.9), (LLAMA_70B, "Q3_K_XL", 38.1),
    (LLAMA_70B, "Q4_0", 40.1), (LLAMA_70B, "Q4_1", 44.3),
])
def test_sizes_shown_on_the_hub(arch, quant, gb):
    assert C.estimated_size(arch, quant) / 1e9 == pytest.approx(gb, abs=0.051)


def test_shipped_catalog_is_complete_and_consistent():
    cat = C.load(C.CATALOG_PATH)
    ids = {m.id for m in cat.models}
    for wanted in ("deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b", "deepseek-r1-distill-qwen-14b",
                   "deepseek-r1-distill-qwen-32b", "deepseek-r1-distill-llama-8b", "deepseek-r1-distill-llama-70b",
                   "deepseek-r1-0528-qwen3-8b"):
        assert wanted in ids
    assert len([m for m in cat.models if m.family == "general"]) >= 4
    names: set[str] = set()
    for m in cat.models:
        assert m.params == C.parameter_count(m.arch)
        assert m.license and m.repo.count("/") == 1 and m.description_en and m.description_zh
        assert "Q4_K_M" in [q.quant for q in m.quants]
        for q in m.quants:
            assert q.quant in quants.QUANTS
            assert quants.from_filename(q.files[0].name) == q.quant
            for f in q.files:
                assert f.name not in names
                names.add(f.name)
            if len(q.files) > 1:  # split parts: grouped, numbered, in order
                for i, f in enumerate(q.files, 1):
                    assert re.search(rf"-{i:05d}-of-{len(q.files):05d}\.gguf$", f.name)
            if q.estimated:
                assert q.size == C.estimated_size(m.arch, q.quant)
    seventy = cat.get("deepseek-r1-distill-llama-70b")
    assert len(seventy.quant("Q8_0").files) == 2 and len(seventy.quant("Q4_K_M").files) == 1
    # to_dict / from_dict round trip
    assert C.CatalogModel.from_dict(json.loads(json.dumps(seventy.to_dict()))) == seventy


def test_group_files_groups_splits_and_skips_what_is_not_a_model():
    got = C.group_files([
        ("README.md", 5000),
        ("M-Q4_K_M.gguf", 100),
        ("M-Q8_0/M-Q8_0-00002-of-00002.gguf", 20),
        ("M-Q8_0/M-Q8_0-00001-of-00002.gguf", 30),
        ("M-Q6_K/M-Q6_K-00001-of-00003.gguf", 10),  # an incomplete upload
        ("mmproj-M-f16.gguf", 7),
        ("M-IQ4_XS.gguf", 80),
        ("M-weird.gguf", 1),
    ])
    assert [(q.quant, q.names, q.size, q.estimated) for q in got] == [
        ("Q8_0", ["M-Q8_0/M-Q8_0-00001-of-00002.gguf", "M-Q8_0/M-Q8_0-00002-of-00002.gguf"], 50, False),
        ("Q4_K_M", ["M-Q4_K_M.gguf"], 100, False),
        ("IQ4_XS", ["M-IQ4_XS.gguf"], 80, False),
    ]


def _sparse(path, size):
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def test_refresh_reads_file_lists_from_the_hub(fake_hub, tmp_path):  # noqa: F811
    cat = C.load(C.CATALOG_PATH)
    cat.models = [cat.get("deepseek-r1-distill-qwen-7b"), cat.get("deepseek-r1-distill-llama-70b")]
    cat.embedding_models = []
    seven, seventy = cat.models
    old_seventy = [q.quant for q in seventy.quants]
    fake_hub.add_repo(seven.repo, {
        "README.md": b"# card",
        "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf": _sparse(tmp_path / "a", 4_683_073),
        "DeepSeek-R1-Distill-Qwen-7B-Q8_0/DeepSeek-R1-Distill-Qwen-7B-Q8_0-00001-of-00002.gguf": _sparse(tmp_path / "b", 5_000_000),
        "DeepSeek-R1-Distill-Qwen-7B-Q8_0/DeepSeek-R1-Distill-Qwen-7B-Q8_0-00002-of-00002.gguf": _sparse(tmp_path / "c", 3_000_000),
    })
    # The 70B repo is missing on this "hub": its entry is kept and the reason reported.
    out = tmp_path / "refreshed.json"
    events = list(C.refresh(cat, api=HfApi(endpoint=fake_hub.endpoint), save_to=out))
    assert all(isinstance(e, Progress) for e in events)
    assert events[-1].done == events[-1].total == 2 and "1 of 2 models refreshed" in events[-1].message
    again = C.load(out)
    seven = again.get("deepseek-r1-distill-qwen-7b")
    assert [(q.quant, q.size, q.estimated) for q in seven.quants] == [
        ("Q8_0", 8_000_000, False), ("Q4_K_M", 4_683_073, False)]
    assert [q.quant for q in again.get("deepseek-r1-distill-llama-70b").quants] == old_seventy
    assert any("refresh:" in n and seventy.repo in n for n in again.notes)
    # Only file metadata was fetched: no model bytes.
    assert fake_hub.bytes_served("DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf") == 0


def test_refresh_with_the_hub_unreachable_is_offline(tmp_path):
    cat = C.load(C.CATALOG_PATH)
    cat.models = cat.models[:2]
    with pytest.raises(Offline):
        list(C.refresh(cat, api=HfApi(endpoint="http://127.0.0.1:9"), save_to=tmp_path / "x.json"))
    assert not (tmp_path / "x.json").exists()


def test_refreshed_catalog_in_the_cache_is_preferred(r1desk_home):
    from r1desk.engine.paths import cache_dir

    cat = C.load(C.CATALOG_PATH)
    cat.models = cat.models[:1]
    cat.save(cache_dir() / "catalog.json")
    assert [m.id for m in C.load().models] == [cat.models[0].id]


def test_catalog_commands():
    from click.testing import CliRunner

    from r1desk.cli import cli

    result = CliRunner().invoke(cli, ["catalog"])
    assert result.exit_code == 0, result.output
    assert "deepseek-r1-distill-qwen-7b" in result.output and "bartowski/" in result.output
    result = CliRunner().invoke(cli, ["catalog", "--json"])
    assert json.loads(result.output)["models"][0]["quants"][0]["size"] > 0
