"""Hardware probe: the real CPU/RAM/llama.cpp probes run for real; NVIDIA and Apple are faked at
their library boundary (pynvml's functions, the sysctl command), since neither exists here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import psutil
import pytest

from r1desk.engine.errors import R1deskError
from r1desk.engine.hardware import probe as hw

PROFILES = Path(__file__).resolve().parents[2] / "data" / "profiles"
GiB = 1024**3


# The real probes ----------------------------------------------------------------------------
def test_cpu_and_ram_are_read_from_this_machine():
    machine = hw.detect()
    assert machine.ram_total == psutil.virtual_memory().total
    assert 0 < machine.ram_available <= machine.ram_total
    assert machine.cpu.logical_cores == os.cpu_count()
    assert 1 <= machine.cpu.physical_cores <= machine.cpu.logical_cores
    assert machine.cpu.name and machine.cpu.name != "unknown CPU"
    if sys.platform.startswith("linux"):
        cpuinfo = Path("/proc/cpuinfo").read_text()
        flags = set(next(line for line in cpuinfo.splitlines() if line.startswith("flags")).split(":")[1].split())
        assert ("avx2" in machine.cpu.flags) == ("avx2" in flags)
        assert ("f16c" in machine.cpu.flags) == ("f16c" in flags)
        assert set(machine.cpu.flags) <= flags | {"neon"}


def test_llama_cpp_build_is_read_from_the_bindings():
    import llama_cpp

    build = hw.probe_build()
    gpu_backends = [b for b in build.backends if b.upper() not in ("CPU", "RPC", "BLAS")]
    # llama.cpp says it can offload whenever its RPC backend is built in; r1desk only with a GPU backend.
    assert build.gpu_offload == (bool(llama_cpp.llama_supports_gpu_offload()) and bool(gpu_backends))
    assert "CPU" in build.backends
    cpu_devices = [d for d in build.devices if d["type"] == "cpu"]
    assert len(cpu_devices) == 1
    # ggml's CPU device reports the machine's memory.
    assert abs(cpu_devices[0]["total"] - psutil.virtual_memory().total) < 0.05 * psutil.virtual_memory().total
    assert "CPU" in build.system_info
    assert build.version == llama_cpp.__version__


def test_no_nvidia_library_here_is_an_empty_list_and_a_reason():
    gpus, reason = hw.probe_nvidia()
    assert gpus == []
    assert reason and reason.startswith("NVIDIA:")
    machine = hw.detect()  # never raises
    assert not [g for g in machine.gpus if g.vendor == "nvidia"]
    assert any(n.startswith("NVIDIA:") for n in machine.notes)


def test_hardware_round_trips_through_json():
    machine = hw.detect()
    again = hw.Hardware.from_json(machine.to_json())
    assert again == machine
    data = json.loads(machine.to_json())
    assert data["ram_total"] == machine.ram_total and data["build"]["backends"] == machine.build.backends


# NVIDIA, faked at pynvml ----------------------------------------------------------------------
class _NVMLError(Exception):
    pass


class NVMLError_DriverNotLoaded(_NVMLError):  # noqa: N801 (pynvml's naming)
    pass


def _fake_nvml(monkeypatch, devices, *, init_error=None, fail_on=None):
    import pynvml

    calls = []

    def init():
        calls.append("init")
        if init_error:
            raise init_error

    def handle(i):
        if fail_on == i:
            raise _NVMLError("Unknown Error")
        return devices[i]

    monkeypatch.setattr(pynvml, "nvmlInit", init)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(pynvml, "nvmlSystemGetDriverVersion", lambda: "560.94")
    monkeypatch.setattr(pynvml, "nvmlSystemGetCudaDriverVersion", lambda: 12060)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: len(devices))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", handle)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lambda h: h["name"].encode())
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo",
                        lambda h: types.SimpleNamespace(total=h["total"], free=h["free"], used=h["total"] - h["free"]))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCudaComputeCapability", lambda h: h["cc"])
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryBusWidth", lambda h: h["bus"])
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMaxClockInfo", lambda h, kind: h["mem_clock"])
    return calls


RTX_4060 = {"name": "NVIDIA GeForce RTX 4060", "total": 8 * GiB, "free": 7 * GiB, "cc": (8, 9),
            "bus": 128, "mem_clock": 8501}
RTX_3090 = {"name": "NVIDIA GeForce RTX 3090", "total": 24 * GiB, "free": 23 * GiB, "cc": (8, 6),
            "bus": 384, "mem_clock": 9751}


def test_nvidia_gpus_are_read_through_nvml(monkeypatch):
    calls = _fake_nvml(monkeypatch, [RTX_4060, RTX_3090])
    gpus, reason = hw.probe_nvidia()
    assert reason is None
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 4060", "NVIDIA GeForce RTX 3090"]
    assert [g.index for g in gpus] == [0, 1]
    g = gpus[1]
    assert (g.total, g.free) == (24 * GiB, 23 * GiB)
    assert (g.vendor, g.backend, g.driver, g.cuda_version, g.compute_capability) == \
        ("nvidia", "cuda", "560.94", "12.6", "8.6")
    # 384-bit bus at 9751 MHz, two transfers per clock: 936 GB/s, the 3090's published figure.
    assert g.bandwidth == pytest.approx(936e9, rel=0.01)
    assert calls[0] == "init" and calls[-1] == "shutdown"


def test_missing_driver_is_a_reason_not_an_exception(monkeypatch):
    _fake_nvml(monkeypatch, [], init_error=NVMLError_DriverNotLoaded("Driver Not Loaded"))
    gpus, reason = hw.probe_nvidia()
    assert gpus == [] and "no driver" in reason and "DriverNotLoaded" in reason


def test_driver_without_gpu_and_a_failing_gpu(monkeypatch):
    _fake_nvml(monkeypatch, [])
    assert hw.probe_nvidia() == ([], "NVIDIA: the driver is installed but reports no GPU")
    _fake_nvml(monkeypatch, [RTX_4060, RTX_3090], fail_on=1)
    gpus, reason = hw.probe_nvidia()
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 4060"] and "GPU 1" in reason


def test_missing_pynvml_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert hw.probe_nvidia() == ([], "NVIDIA: the pynvml package is not installed")


def test_a_cuda_gpu_this_cpu_only_build_cannot_use_is_shown_with_the_fix(monkeypatch):
    _fake_nvml(monkeypatch, [RTX_4060])
    machine = hw.detect()
    if machine.build.has("CUDA"):
        pytest.skip("this llama.cpp build has CUDA")
    assert [g.name for g in machine.gpus] == ["NVIDIA GeForce RTX 4060"]
    assert machine.usable_gpus() == []
    note = next(n for n in machine.notes if "CUDA GPU found" in n)
    assert "this llama.cpp build is CPU-only" in note and "-DGGML_CUDA=on" in note
    from r1desk.cli.hardware import describe

    lines = "\n".join(describe(machine))
    assert "NOT usable by this build" in lines and "RTX 4060" in lines
    # What the model host asks for "auto": nothing on the GPU with this build.
    from r1desk.engine.hardware import fit
    from r1desk.engine.models.catalog import Arch, synthesize

    info = synthesize(Arch("qwen2", 28, 3584, 18944, 28, 4, 152064, 131072, attn_bias=True), "Q4_K_M")
    assert fit.default_gpu_layers(info, machine, 4096) == 0


# Apple, faked at the sysctl command ------------------------------------------------------------
def _fake_mac(monkeypatch, values: dict[str, str]):
    real_run = subprocess.run

    def run(cmd, *args, **kwargs):
        if cmd[:2] == ["sysctl", "-n"]:
            key = cmd[2]
            if key in values:
                return subprocess.CompletedProcess(cmd, 0, values[key] + "\n", "")
            return subprocess.CompletedProcess(cmd, 1, "", f"sysctl: unknown oid '{key}'\n")
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(hw.subprocess, "run", run)
    monkeypatch.setattr(hw.sys, "platform", "darwin")
    monkeypatch.setattr(hw.platform, "machine", lambda: "arm64")


def test_apple_m1_8gb_metal_share(monkeypatch):
    _fake_mac(monkeypatch, {"machdep.cpu.brand_string": "Apple M1", "hw.memsize": str(8 * GiB),
                            "iogpu.wired_limit_mb": "0", "hw.optional.neon": "1"})
    gpus, reason = hw.probe_apple(8 * GiB)
    assert reason is None and len(gpus) == 1
    g = gpus[0]
    assert (g.name, g.vendor, g.backend, g.unified, g.total) == ("Apple M1", "apple", "metal", True, 8 * GiB)
    assert g.working_set == 8 * GiB * 2 // 3  # macOS's recommendedMaxWorkingSetSize for 8 GB
    assert g.bandwidth == 68e9
    cpu = hw.probe_cpu()
    assert cpu.name == "Apple M1" and "neon" in cpu.flags


def test_apple_large_memory_and_a_raised_wired_limit(monkeypatch):
    _fake_mac(monkeypatch, {"machdep.cpu.brand_string": "Apple M3 Max", "hw.memsize": str(64 * GiB)})
    (g,), _ = hw.probe_apple(64 * GiB)
    assert g.working_set == 48 * GiB and g.bandwidth == 400e9
    _fake_mac(monkeypatch, {"machdep.cpu.brand_string": "Apple M2", "hw.memsize": str(16 * GiB),
                            "iogpu.wired_limit_mb": "14336"})
    (g,), _ = hw.probe_apple(16 * GiB)
    assert g.working_set == 14336 * 1024**2  # the user's sysctl wins


def test_not_a_mac():
    if sys.platform == "darwin":
        pytest.skip("a Mac")
    assert hw.probe_apple(8 * GiB) == ([], "Apple GPU: not a Mac")


# Profiles ---------------------------------------------------------------------------------------
def test_every_profile_loads_and_means_what_it_says():
    files = sorted(PROFILES.glob("*.json"))
    assert len(files) >= 15
    for f in files:
        m = hw.Hardware.load(f)
        data = json.loads(f.read_text())
        assert m.source == data["name"]
        assert m.ram_total >= 8 * GiB
        for g in m.gpus:
            assert g.total > 0 and 0 < g.free <= g.total
            if g.unified:
                assert g.working_set == hw.metal_working_set(g.total)
        # A described machine runs a build made for its GPUs.
        assert len(m.usable_gpus()) == len(m.gpus)


def test_profile_errors_are_one_line_user_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"ram_total": "16 GiB", "gpus": [{"name": "x", "vendor": "nvidia", "backend": "cuda", '
                   '"total": "8 GiB", "free": "8 GiB", "colour": "green"}]}')
    with pytest.raises(R1deskError, match="unknown GPU field"):
        hw.Hardware.load(bad)
    bad.write_text("{not json")
    with pytest.raises(R1deskError, match="not a valid hardware profile"):
        hw.Hardware.load(bad)
    with pytest.raises(R1deskError, match="no such hardware profile"):
        hw.Hardware.load(tmp_path / "missing.json")
    bad.write_text('{"cpu": {}}')
    with pytest.raises(R1deskError, match="ram_total"):
        hw.Hardware.load(bad)


@pytest.mark.parametrize("text,expected", [
    ("16 GiB", 16 * GiB), ("8GB", 8 * GiB), ("512 MiB", 512 * 1024**2), (1234, 1234), ("100", 100),
])
def test_sizes_in_profiles(text, expected):
    assert hw.parse_size(text) == expected


def test_bandwidth_in_profiles_is_decimal():
    assert hw.Hardware.from_dict({"ram_total": "8 GiB", "cpu": {"bandwidth": "68 GB/s"}}).cpu.bandwidth == 68e9


def test_hw_command(tmp_path):
    from click.testing import CliRunner

    from r1desk.cli import cli

    result = CliRunner().invoke(cli, ["hw", "--json"])
    assert result.exit_code == 0, result.output
    machine = hw.Hardware.from_json(result.output)
    assert machine.ram_total == psutil.virtual_memory().total
    result = CliRunner().invoke(cli, ["hw"], env={"LC_ALL": None, "LC_MESSAGES": None, "LANG": "C.UTF-8"})
    assert result.exit_code == 0 and "RAM:" in result.output and "llama.cpp:" in result.output


def test_asking_the_build_does_not_load_llama_cpp_in_this_process():
    """The GUI probes hardware too; llama.cpp (and with CUDA, its GPU memory) stays in the model process."""
    code = ("import sys; from r1desk.engine.hardware import probe; b = probe.detect().build; "
            "print('llama_cpp' in sys.modules, 'CPU' in b.backends, b.version)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    import llama_cpp

    assert out == ["False", "True", llama_cpp.__version__]
