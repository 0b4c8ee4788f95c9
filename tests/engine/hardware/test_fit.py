"""Memory estimate and recommendation.

The estimate's KV cache and compute buffer are checked against llama.cpp's own accounting
(the real library, loading models with ``no_alloc``: it plans every buffer without allocating),
on the real test models and on header-only GGUFs of other shapes whose data is a sparse hole.
GPU machines are described (tests/data/profiles) since none exists here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from r1desk.engine.errors import CorruptModel, DownloadError, NotEnoughMemory, Offline
from r1desk.engine.gguf import quants
from r1desk.engine.gguf.header import read_header
from r1desk.engine.hardware import fit
from r1desk.engine.hardware.probe import CPU, GPU, Build, Hardware, metal_working_set
from r1desk.engine.models import catalog as C

from tests.support.http_range import RangeServer

GiB, MiB = 1024**3, 1024**2
PROFILES = Path(__file__).resolve().parents[2] / "data" / "profiles"
QWEN_7B = C.Arch("qwen2", 28, 3584, 18944, 28, 4, 152064, 131072, attn_bias=True, n_merges=151387)


def machine(*gpus: tuple[float, float], ram_gb: float = 32, backend: str = "cuda", unified: bool = False,
            build_backends: list[str] | None = None) -> Hardware:
    gs = []
    for i, (total, free) in enumerate(gpus):
        g = GPU(name=f"GPU{i}", vendor="apple" if unified else "nvidia", backend=backend,
                total=int(total * GiB), free=int(free * GiB), index=i, unified=unified,
                bandwidth=400e9)
        if unified:
            g.working_set = metal_working_set(g.total)
        gs.append(g)
    backends = build_backends if build_backends is not None else (["CPU", "Metal" if unified else backend.upper()])
    return Hardware(os="test", cpu=CPU(name="test", physical_cores=8, logical_cores=16, bandwidth=50e9),
                    ram_total=int(ram_gb * GiB), ram_available=int(ram_gb * 0.8 * GiB), gpus=gs,
                    build=Build(gpu_offload=bool(gs) and len(backends) > 1, backends=backends))


@pytest.fixture(scope="module")
def r1_shape(r1_header):
    return fit.ModelShape.from_info(read_header(r1_header, allow_truncated_data=True))


# The shape and the KV cache ------------------------------------------------------------------
def test_shape_of_the_real_7b(r1_shape):
    s = r1_shape
    assert (s.architecture, s.n_layer, s.n_embd, s.n_head, s.n_ff, s.n_vocab) == ("qwen2", 28, 3584, 28, 18944, 152064)
    assert s.n_head_kv == [4] * 28 and s.head_dim_k == s.head_dim_v == 128
    assert s.quant == "Q4_K_M" and s.n_ctx_train == 131072 and not s.tied_output
    assert s.weights_bytes == 4_677_120_000
    assert s.input_bytes == 152064 * 3584 // 256 * 144  # Q4_K token embedding
    assert s.file_size == 4_683_073_248


@pytest.mark.parametrize("n_ctx,kv_type,mib", [
    (4096, "f16", 224.0), (2048, "f16", 112.0), (32768, "f16", 1792.0),
    (3000, "f16", 168.0),  # rounded up to 3072 cells, as llama.cpp does
    (4096, "q8_0", 119.0), (4096, "q4_0", 63.0),
])
def test_kv_cache_size(r1_shape, n_ctx, kv_type, mib):
    assert r1_shape.kv_bytes(n_ctx, kv_type) == mib * MiB


def test_quantised_kv_without_flash_attention_is_flagged(r1_shape):
    plan = fit.estimate(r1_shape, n_ctx=4096, kv_type="q8_0")
    assert any("needs flash attention" in n for n in plan.notes)
    plan = fit.estimate(r1_shape, n_ctx=32768)
    assert any(re.match(r"flash attention would save about 2\.\d GB", n) for n in plan.notes), plan.notes


# Placement, as llama.cpp places tensors --------------------------------------------------------
def test_cpu_only_plan_holds_everything_in_ram(r1_shape):
    plan = fit.estimate(r1_shape, n_ctx=4096)
    assert plan.mode == "cpu" and plan.fits and plan.devices == [plan.cpu]
    cpu = plan.cpu
    assert cpu.weights == r1_shape.weights_bytes and cpu.kv == 224 * MiB
    # Resident compute at a full context: scores + mask + live rows + the f16 copy of the scores.
    scores = 4096 * 512 * 28
    assert cpu.compute == scores * 4 + 4096 * 512 * 4 + 512 * 4 * (3 * 3584 + 2 * 3584 + 2 * 512) + scores * 2


def test_gpu_layers_follow_llama_cpp(r1_shape):
    hw = machine((24, 23))
    n = r1_shape.n_layer
    # n_gpu_layers = n_layer: every repeating layer offloaded, the output layer stays in RAM.
    plan = fit.estimate(r1_shape, n_ctx=4096, hardware=hw, n_gpu_layers=n)
    assert plan.mode == "partial" and plan.gpus[0].layers == n and plan.cpu.layers == 0
    assert plan.cpu.weights == r1_shape.input_bytes + r1_shape.output_bytes
    # n_layer + 1 (or -1): the output layer too; the token embedding never leaves RAM.
    full = fit.estimate(r1_shape, n_ctx=4096, hardware=hw, n_gpu_layers=-1)
    assert full.mode == "gpu" and full.n_gpu_layers == n + 1
    assert full.cpu.weights == r1_shape.input_bytes
    assert full.gpus[0].weights == r1_shape.weights_bytes - r1_shape.input_bytes
    assert full.gpus[0].kv == 224 * MiB and full.cpu.kv == 0
    # The GPU holds the whole reserved graph (311 MiB is what llama.cpp reports for this model).
    assert full.gpus[0].compute == 311 * MiB and full.gpus[0].overhead == fit.CUDA_CONTEXT
    # Ten layers: the last ten, with their KV cache.
    ten = fit.estimate(r1_shape, n_ctx=4096, hardware=hw, n_gpu_layers=10)
    assert ten.gpus[0].layers == 10 and ten.gpus[0].weights == sum(r1_shape.layer_bytes[-10:])
    assert ten.gpus[0].kv == 80 * MiB and ten.cpu.kv == 144 * MiB


def test_tied_embeddings_need_a_gpu_copy_of_the_embedding():
    tied = C.Arch("qwen3", 36, 2560, 9728, 32, 8, 151936, 40960, head_dim=128, qk_norm=True, tied_embeddings=True)
    shape = fit.ModelShape.from_info(C.synthesize(tied, "Q8_0"))
    assert shape.tied_output
    plan = fit.estimate(shape, n_ctx=4096, hardware=machine((24, 23)), n_gpu_layers=-1)
    assert plan.cpu.weights == shape.input_bytes
    assert plan.gpus[0].weights == sum(shape.layer_bytes) + shape.output_bytes + shape.input_bytes


def test_two_gpus_split_layers_by_their_memory(r1_shape):
    hw = machine((24, 24), (12, 12))
    plan = fit.estimate(r1_shape, n_ctx=4096, hardware=hw, n_gpu_layers=-1)
    a, b = plan.gpus
    assert a.layers + b.layers == 28
    assert a.layers == pytest.approx(28 * 2 / 3, abs=1.5)
    # The output layer lives on the last GPU: only it reserves the logits.
    assert b.compute > a.compute and a.compute == fit.compute_sizes(r1_shape, 4096, flash_attn=False).reserved(False)


def test_auto_takes_the_most_layers_that_fit_and_no_more(r1_shape):
    previous = -1
    for vram in (2, 3, 4, 5, 6, 8, 12):
        hw = machine((vram, vram))
        plan = fit.estimate(r1_shape, n_ctx=8192, hardware=hw)
        assert plan.gpus == [] or all(d.fits for d in plan.gpus)
        assert plan.n_gpu_layers >= previous  # more VRAM never means fewer layers
        previous = plan.n_gpu_layers
        if plan.n_gpu_layers < r1_shape.n_layer + 1:
            more = fit.estimate(r1_shape, n_ctx=8192, hardware=hw, n_gpu_layers=plan.n_gpu_layers + 1)
            assert not all(d.fits for d in more.gpus)
        assert fit.default_gpu_layers(read_header_like(r1_shape), hw, 8192) == plan.n_gpu_layers
    assert previous == 29  # 12 GB holds it all


def read_header_like(shape):
    """default_gpu_layers takes a GGUFInfo; the synthesised header of the same model is one."""
    return C.synthesize(QWEN_7B, "Q4_K_M")


def test_no_usable_gpu_means_no_gpu_layers(r1_shape):
    info = C.synthesize(QWEN_7B, "Q4_K_M")
    assert fit.default_gpu_layers(info, machine(), 4096) == 0
    cpu_build = machine((24, 24), build_backends=["CPU"])  # a CUDA GPU, a CPU-only llama.cpp
    assert fit.default_gpu_layers(info, cpu_build, 4096) == 0
    plan = fit.estimate(info, n_ctx=4096, hardware=cpu_build, n_gpu_layers=20)
    assert plan.mode == "cpu" and any("no GPU this llama.cpp build can use" in n for n in plan.notes)


def test_apple_unified_memory_counts_gpu_and_cpu_together():
    hw = machine((16, 16), ram_gb=16, backend="metal", unified=True)
    info = C.synthesize(QWEN_7B, "Q8_0")
    plan = fit.estimate(info, n_ctx=8192, hardware=hw, planning=True)
    assert plan.mode == "gpu" and plan.gpus[0].device == "Metal"
    assert plan.gpus[0].budget == metal_working_set(16 * GiB) - fit.GPU_MARGIN_MIN
    assert plan.unified_total == plan.total_bytes and plan.unified_budget == 12 * GiB
    big = fit.estimate(C.synthesize(QWEN_7B, "F16"), n_ctx=8192, hardware=hw, planning=True)
    assert not big.fits and big.mode == "no_fit"


def test_a_model_that_does_not_fit_is_refused_with_the_numbers(r1_shape):
    small = machine(ram_gb=4)
    plan = fit.estimate(r1_shape, n_ctx=8192, hardware=small, planning=True)
    assert plan.mode == "no_fit" and not plan.fits
    with pytest.raises(NotEnoughMemory, match=r"CPU needs \d+\.\d GB of \d+\.\d GB"):
        fit.check(plan)


def test_one_ram_budget_when_planning_and_when_loading_now():
    """Total minus the reserve; loading now also within what is free, never more than planning allows."""
    hw = machine(ram_gb=16)  # 12.8 GiB free
    assert fit.ram_reserve(hw) == 4 * GiB
    assert fit.ram_budget(hw, planning=True) == 12 * GiB
    assert fit.ram_budget(hw) == 12 * GiB  # not 12.8 - 0.5: the reserve holds when loading too
    hw.ram_available = 8 * GiB  # other programs hold the rest
    assert fit.ram_budget(hw) == 8 * GiB - fit.RAM_MARGIN
    assert fit.ram_budget(hw, planning=True) == 12 * GiB
    assert fit.ram_budget(machine(ram_gb=4), planning=True) == 2 * GiB


def test_what_recommend_drops_the_load_check_refuses_too():
    """The issue's 24 GB machine: a 21.6 GB plan was "ok" against 22.3 GB free while recommend dropped it."""
    from r1desk.engine.models import recommend

    hw = Hardware.load(PROFILES / "cpu-24gb-2cores.json")
    model = C.load(C.CATALOG_PATH).get("deepseek-r1-distill-qwen-32b")
    qf = model.quant("Q4_K_M")
    planned = recommend.plan_for(model, qf, hw, 8192)
    now = recommend.plan_for(model, qf, hw, 8192, planning=False)
    assert planned.ram_bytes < hw.ram_available - fit.RAM_MARGIN  # it would have passed before
    assert not planned.fits and not now.fits
    assert now.cpu.budget == planned.cpu.budget == fit.ram_budget(hw, planning=True)
    assert (planned.planning, now.planning) == (True, False)
    assert "usable now" in now.describe() and "usable now" not in planned.describe()


# Against llama.cpp's own accounting (the real library, no_alloc) ---------------------------------
_PROBE = r"""
import ctypes, re, sys
import llama_cpp as L
lines = []
@L.llama_log_callback
def cb(level, text, ud):
    lines.append(text.decode("utf-8", "replace"))
L.llama_log_set(cb, ctypes.c_void_p(0))
path, n_ctx, fa, kv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
L.llama_backend_init()
mp = L.llama_model_default_params()
mp.no_alloc = True
mp.load_mode = L.LLAMA_LOAD_MODE_NONE
m = L.llama_model_load_from_file(path.encode(), mp)
assert m, "load failed"
cp = L.llama_context_default_params()
cp.n_ctx, cp.n_batch, cp.n_ubatch = n_ctx, 512, 512
cp.flash_attn_type = 1 if fa else 0
cp.type_k = cp.type_v = {"f16": 1, "q8_0": 8}[kv]
c = L.llama_init_from_model(m, cp)
assert c, "context failed"
text = "".join(lines)
kv_mib = float(re.search(r"llama_kv_cache: size =\s*([\d.]+) MiB", text).group(1))
compute_mib = float(re.search(r"CPU compute buffer size =\s*([\d.]+) MiB", text).group(1))
print(f"RESULT {kv_mib} {compute_mib}")
"""


def _llama_cpp_buffers(path: Path, n_ctx: int, flash_attn: bool, kv: str = "f16") -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(n_ctx), str(int(flash_attn)), kv],
                         capture_output=True, text=True, timeout=120)
    m = re.search(r"RESULT ([\d.]+) ([\d.]+)", out.stdout)
    assert m, out.stdout[-2000:] + out.stderr[-2000:]
    return float(m.group(1)), float(m.group(2))


def write_sparse_gguf(info, tokenizer_from: Path, path: Path) -> Path:
    """A loadable GGUF of ``info``'s shape: a real header (tokenizer copied from another model)
    and tensor data that is a hole in a sparse file (no disk used, zeros when read)."""
    import gguf

    donor = read_header(tokenizer_from, allow_truncated_data=True,
                        keep=("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"))
    md = donor.metadata
    w = gguf.GGUFWriter(str(path), info.architecture)
    w.add_block_count(info.block_count)
    w.add_context_length(info.context_length)
    w.add_embedding_length(info.arch_get("embedding_length"))
    w.add_feed_forward_length(info.arch_get("feed_forward_length"))
    w.add_head_count(info.arch_get("attention.head_count"))
    w.add_head_count_kv(info.arch_get("attention.head_count_kv"))
    if info.arch_get("attention.key_length"):
        w.add_key_length(info.arch_get("attention.key_length"))
        w.add_value_length(info.arch_get("attention.value_length"))
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1e6)
    w.add_file_type(info.file_type or 1)
    w.add_tokenizer_model(md["tokenizer.ggml.model"])
    if "tokenizer.ggml.pre" in md:
        w.add_tokenizer_pre(md["tokenizer.ggml.pre"])
    w.add_token_list(md["tokenizer.ggml.tokens"])
    w.add_token_types(md["tokenizer.ggml.token_type"])
    if "tokenizer.ggml.merges" in md:
        w.add_token_merges(md["tokenizer.ggml.merges"])
    w.add_bos_token_id(md["tokenizer.ggml.bos_token_id"])
    w.add_eos_token_id(md["tokenizer.ggml.eos_token_id"])
    for t in info.tensors:
        w.add_tensor_info(t.name, tuple(reversed(t.shape)), np.float32, t.nbytes,
                          raw_dtype=gguf.GGMLQuantizationType(t.type_id))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    header = read_header(path, allow_truncated_data=True)
    with open(path, "r+b") as fh:
        fh.truncate(header.expected_file_size)
    return path


@pytest.fixture(scope="module")
def shapes_on_disk(tmp_path_factory, r1_header, smollm2, tiny_r1):
    """Models of several shapes llama.cpp can load: real ones and sparse header-only ones."""
    d = tmp_path_factory.mktemp("shapes")
    seven = d / "r1-7b.gguf"
    seven.write_bytes(r1_header.read_bytes())
    with open(seven, "r+b") as fh:
        fh.truncate(4_683_073_248)
    qwen3_8b = C.Arch("qwen3", 36, 4096, 12288, 32, 8, 152064, 131072, head_dim=128, qk_norm=True)
    qwen3_4b = C.Arch("qwen3", 36, 2560, 9728, 32, 8, 152064, 40960, head_dim=128, qk_norm=True, tied_embeddings=True)
    llama_8b = C.Arch("llama", 32, 4096, 14336, 32, 8, 49152, 131072, rope_freqs=True)  # SmolLM2's vocabulary
    return {
        "qwen2-7b": seven,
        "qwen3-8b": write_sparse_gguf(C.synthesize(qwen3_8b, "Q4_K_M"), r1_header, d / "qwen3-8b.gguf"),
        "qwen3-4b-tied": write_sparse_gguf(C.synthesize(qwen3_4b, "Q8_0"), r1_header, d / "qwen3-4b.gguf"),
        "llama-8b": write_sparse_gguf(C.synthesize(llama_8b, "Q4_K_M"), smollm2, d / "llama-8b.gguf"),
        "smollm2": smollm2,
        "tiny-r1": tiny_r1,
    }


@pytest.mark.slow
@pytest.mark.parametrize("model,n_ctx,flash_attn,kv", [
    ("qwen2-7b", 4096, False, "f16"), ("qwen2-7b", 8192, False, "f16"), ("qwen2-7b", 32768, False, "f16"),
    ("qwen2-7b", 32768, True, "f16"), ("qwen2-7b", 3000, True, "q8_0"),
    ("qwen3-8b", 16384, False, "f16"), ("qwen3-8b", 16384, True, "f16"),
    ("qwen3-4b-tied", 16384, False, "f16"),
    ("llama-8b", 4096, True, "f16"), ("llama-8b", 16384, True, "f16"), ("llama-8b", 16384, False, "f16"),
    ("smollm2", 4096, False, "f16"), ("smollm2", 16384, False, "f16"),
    ("tiny-r1", 4096, False, "f16"),
])
def test_kv_and_compute_match_llama_cpp(shapes_on_disk, model, n_ctx, flash_attn, kv):
    path = shapes_on_disk[model]
    kv_mib, compute_mib = _llama_cpp_buffers(path, n_ctx, flash_attn, kv)
    shape = fit.ModelShape.from_info(read_header(path, allow_truncated_data=True))
    assert shape.kv_bytes(n_ctx, kv) / MiB == pytest.approx(kv_mib, abs=0.01)
    est = fit.compute_sizes(shape, n_ctx, flash_attn=flash_attn).reserved() / MiB
    assert est == pytest.approx(compute_mib, rel=0.02), (est, compute_mib)


def test_quant_rules():
    assert quants.from_file_type(15) == "Q4_K_M" and quants.from_file_type(7) == "Q8_0"
    assert quants.rank("Q8_0") < quants.rank("Q4_K_M") < quants.rank("IQ3_M") < quants.rank("Q2_K")
    assert quants.quality("Q4_K_M", 14e9) > quants.quality("Q8_0", 7e9)  # bigger at Q4 beats smaller at Q8
    assert not quants.allowed_for("Q2_K", 14e9) and quants.allowed_for("Q2_K", 70e9)
    assert not quants.allowed_for("Q3_K_M", 3e9) and quants.allowed_for("Q3_K_M", 8e9)
    assert not quants.allowed_for("IQ3_M", 8e9, cpu_only=True) and quants.allowed_for("IQ4_XS", 8e9, cpu_only=True)
    assert not quants.allowed_for("F16", 1e9) and quants.below_floor("Q3_K_L") and not quants.below_floor("Q5_K_M")


# Remote headers --------------------------------------------------------------------------------
@pytest.fixture
def sparse_7b(tmp_path, r1_header):
    path = tmp_path / "r1-7b.gguf"
    path.write_bytes(r1_header.read_bytes())
    with open(path, "r+b") as fh:
        fh.truncate(4_683_073_248)
    return path


def test_remote_header_reads_only_the_header(sparse_7b, r1_header):
    from r1desk.engine.gguf.remote import read_remote_header

    with RangeServer({"m.gguf": sparse_7b}) as server:
        info = read_remote_header(server.url("m.gguf"))
        sent = server.bytes_sent()
        assert all(rng and rng.startswith("bytes=") for _, rng, _ in server.log)
    local = read_header(r1_header, allow_truncated_data=True)
    assert info.metadata == local.metadata and info.tensors == local.tensors
    assert info.expected_file_size == 4_683_073_248 and info.file_size == 4_683_073_248
    assert local.header_size <= sent < 2 * local.header_size  # the header, not the 4.7 GB
    plan = fit.estimate(info, n_ctx=4096)
    assert plan.cpu.weights == 4_677_120_000


def test_remote_header_failures_are_user_errors(sparse_7b, tmp_path):
    from r1desk.engine.gguf.remote import read_remote_header

    with RangeServer({"m.gguf": sparse_7b}, ranges=False) as plain:
        with pytest.raises(DownloadError, match="does not support range requests"):
            read_remote_header(plain.url("m.gguf"))
        assert plain.bytes_sent() < 8 * MiB  # refused early, not downloaded
    with RangeServer({"m.gguf": sparse_7b}) as server:
        with pytest.raises(DownloadError, match="HTTP 404"):
            read_remote_header(server.url("missing.gguf"))
        with pytest.raises(CorruptModel, match="larger than 1 MiB"):
            read_remote_header(server.url("m.gguf"), budget=1 * MiB)
        assert server.bytes_sent() < 2 * MiB + 6 * MiB
    not_gguf = tmp_path / "x.bin"
    not_gguf.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with RangeServer({"x.bin": not_gguf}) as server:
        with pytest.raises(CorruptModel, match="not a GGUF model file"):
            read_remote_header(server.url("x.bin"))
    with pytest.raises(Offline):
        read_remote_header("http://127.0.0.1:9/m.gguf")


# Commands --------------------------------------------------------------------------------------
ENGLISH = {"LC_ALL": None, "LC_MESSAGES": None, "LANG": "C.UTF-8"}


def _run(*args, env=ENGLISH):
    from click.testing import CliRunner

    from r1desk.cli import cli

    return CliRunner().invoke(cli, list(args), env=env)


def _profile(name: str) -> str:
    return str(PROFILES / f"{name}.json")


def test_estimate_command_on_a_header_file(r1_header):
    result = _run("estimate", str(r1_header), "--ctx", "4096", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model"]["quant"] == "Q4_K_M" and data["model"]["file_size"] == 4_683_073_248
    cpu = data["plan"]["devices"][0]
    assert cpu["kv"] == 224 * MiB and cpu["weights"] == 4_677_120_000 and data["plan"]["mode"] == "cpu"
    text = _run("estimate", str(r1_header), "--ctx", "4096")
    assert text.exit_code == 0 and "CPU" in text.output and "KV" in text.output


def test_estimate_command_on_a_url_a_profile_and_a_catalog_id(sparse_7b):
    with RangeServer({"m.gguf": sparse_7b}) as server:
        result = _run("estimate", server.url("m.gguf"), "--profile", str(PROFILES / "nvidia-8gb.json"),
                      "--ctx", "8192", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)["plan"]
    assert plan["mode"] == "gpu" and plan["n_gpu_layers"] == 29 and plan["fits"]
    too_big = _run("estimate", "deepseek-r1-distill-llama-70b:Q8_0", "--profile", str(PROFILES / "cpu-16gb.json"))
    assert too_big.exit_code == 2 and "Does not fit" in too_big.output
    bad = _run("estimate", "no-such-model")
    assert bad.exit_code == 1 and "not a file, a URL or a model in r1desk's catalog" in bad.output


def test_recommend_command_with_a_profile():
    result = _run("recommend", "--profile", str(PROFILES / "nvidia-24gb.json"), "--json", "--limit", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["machine"] == "Workstation, RTX 4090 24 GB" and len(data["choices"]) == 3
    top = data["choices"][0]
    assert (top["model_id"], top["quant"]) == ("deepseek-r1-distill-qwen-32b", "Q4_K_L")
    assert top["plan"]["devices"][1]["device"] == "CUDA0"
    text = _run("recommend", "--profile", str(PROFILES / "cpu-8gb.json"), "--limit", "1")
    assert text.exit_code == 0 and "Runs on the CPU in RAM" in text.output


def test_estimate_and_recommend_say_one_budget():
    """The same usable RAM in recommend's reasons, estimate's table and hw's lines, said as such."""
    from r1desk.engine.units import human_bytes

    hw = Hardware.load(PROFILES / "cpu-24gb-2cores.json")
    usable = human_bytes(fit.ram_budget(hw, planning=True))
    assert usable == "17.7 GB"
    line = f"Usable for a model: {usable} of RAM (23.5 GB minus 5.9 GB kept for the system and other programs)"
    rec = _run("recommend", "--profile", _profile("cpu-24gb-2cores"), "--limit", "3")
    assert rec.exit_code == 0, rec.output
    assert line in rec.output and rec.output.count(f"of {usable} usable") == 3
    est = _run("estimate", "deepseek-r1-distill-qwen-32b:Q4_K_M", "--profile", _profile("cpu-24gb-2cores"))
    assert est.exit_code == 2, est.output
    assert line in est.output
    cpu_row = next(r for r in est.output.splitlines() if r.startswith("CPU "))
    assert cpu_row.endswith(f"{usable}  TOO BIG")
    assert f"of the {usable} usable" in est.output
    fits = _run("estimate", "deepseek-r1-distill-qwen-7b:Q4_K_M", "--profile", _profile("cpu-24gb-2cores"))
    assert fits.exit_code == 0 and "Right now: it would load (22.8 GB of RAM free)." in fits.output
    data = json.loads(_run("estimate", "deepseek-r1-distill-qwen-7b", "--profile", _profile("cpu-24gb-2cores"),
                           "--json").output)
    assert (data["plan"]["budget"], data["plan_now"]["budget"]) == ("planning", "now")


def test_estimate_names_sizes_one_way():
    """No GiB beside GB: every size through engine.units.human_bytes."""
    from r1desk.engine.units import human_bytes

    out = _run("estimate", "deepseek-r1-distill-qwen-7b:Q4_K_M", "--profile", _profile("cpu-16gb")).output
    assert "GiB" not in out
    plan = json.loads(_run("estimate", "deepseek-r1-distill-qwen-7b:Q4_K_M", "--profile", _profile("cpu-16gb"),
                           "--json").output)["plan"]
    cpu = plan["devices"][0]
    row = next(r for r in out.splitlines() if r.startswith("CPU "))
    for key in ("weights", "kv", "total", "budget"):
        assert human_bytes(cpu[key]) in row, key


def test_a_capped_context_is_said_in_the_plain_output():
    result = _run("recommend", "--profile", _profile("cpu-24gb-2cores"), "--ctx", "131072", "--json")
    choices = json.loads(result.output)["choices"]
    capped = [c for c in choices if c["ctx_capped"]]
    assert capped and all(c["n_ctx"] < c["n_ctx_asked"] == 131072 for c in capped)
    text = _run("recommend", "--profile", _profile("cpu-24gb-2cores"), "--ctx", "131072").output
    for c in capped:
        assert f"Context capped at {c['n_ctx']:,} tokens, the most this model was trained for." in text
    assert text.count("Context capped at") == len(capped)


def test_speeds_are_said_to_be_estimates():
    out = _run("recommend", "--profile", _profile("cpu-16gb"), "--limit", "2").output
    assert out.count("tokens/s, estimated") == 2
    out = _run("estimate", "deepseek-r1-distill-qwen-7b", "--profile", _profile("cpu-16gb")).output
    assert "tokens/s, estimated" in out


def test_a_shape_the_estimate_cannot_read_gets_no_gpu_layers():
    from r1desk.engine.gguf.header import GGUFInfo

    info = GGUFInfo("odd.gguf", 3, {"general.architecture": "mystery"}, [], 0, 0)
    assert fit.default_gpu_layers(info, machine((24, 24)), 4096) == 0


def test_notes_keep_their_kind_for_the_edges(r1_shape):
    """A plan's notes are English sentences that also carry what they say, for other languages."""
    import pickle

    plan = fit.estimate(r1_shape, n_ctx=200_000, kv_type="q8_0", hardware=machine(ram_gb=64))
    kinds = {n.kind: n for n in plan.notes}
    assert set(kinds) >= {"kv_needs_flash_attn", "ctx_beyond_training"}
    beyond = kinds["ctx_beyond_training"]
    assert beyond.values == {"n_ctx": 200_000, "n_ctx_train": 131072} and "200000" in beyond
    again = pickle.loads(pickle.dumps(beyond))
    assert (again, again.kind, again.values) == (beyond, beyond.kind, beyond.values)
    assert json.loads(json.dumps(plan.to_dict()))["notes"] == [str(n) for n in plan.notes]
