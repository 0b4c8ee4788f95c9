"""What this machine has (CPU, RAM, GPUs) and what the installed llama.cpp build can use of it.

Every probe that can fail (no NVIDIA driver, no pynvml, not a Mac, an old llama.cpp build)
leaves an empty answer and a reason instead of raising: a machine without a GPU is normal.
The result is a plain dataclass whose JSON is also the ``--profile`` format, so a described
machine can stand in for the real one (``r1desk recommend --profile laptop.json``).

Apple Silicon: Metal may use at most the GPU's ``recommendedMaxWorkingSetSize`` of the unified
memory, and llama.cpp refuses to allocate past it. macOS does not expose that figure outside
Metal, so it is derived the way macOS sets it: two thirds of RAM up to 36 GiB, three quarters
above (measured reports: 8 GiB -> 5.3 GiB, 16 GiB -> 10.7 GiB, 64 GiB -> 48 GiB), unless the
user raised it with ``sysctl iogpu.wired_limit_mb``, which is then used as is.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from r1desk.engine.hardware import ggml

GiB = 1024**3
MiB = 1024**2

CUDA_BUILD_HINT = (
    "install NVIDIA's CUDA toolkit (nvcc) and run installer/setup.sh again, which then builds "
    'llama.cpp with CUDA (or set R1DESK_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CUDA=on")'
)
METAL_BUILD_HINT = (
    'run installer/setup.sh again with R1DESK_CMAKE_ARGS="-DGGML_METAL=on" to build llama.cpp with Metal'
)

# Instruction sets llama.cpp's CPU kernels care about, as /proc/cpuinfo names them.
_CPU_FLAGS = ("avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "f16c", "fma",
              "amx_int8", "amx_bf16", "neon", "asimd", "sve", "dotprod", "i8mm")

# Apple chips: memory bandwidth in GB/s (Apple's published figures) for the speed estimate.
APPLE_BANDWIDTH = {
    "M1": 68, "M1 Pro": 200, "M1 Max": 400, "M1 Ultra": 800,
    "M2": 100, "M2 Pro": 200, "M2 Max": 400, "M2 Ultra": 800,
    "M3": 100, "M3 Pro": 150, "M3 Max": 400, "M3 Ultra": 819,
    "M4": 120, "M4 Pro": 273, "M4 Max": 546,
}


@dataclass
class CPU:
    name: str = "unknown CPU"
    arch: str = ""
    physical_cores: int = 1
    logical_cores: int = 1
    flags: list[str] = field(default_factory=list)
    bandwidth: float | None = None  # bytes/s of main memory, when known (profiles may give it)


@dataclass
class GPU:
    name: str
    vendor: str  # "nvidia", "apple", "amd", "intel"
    backend: str  # the llama.cpp backend that drives it: "cuda", "metal", "vulkan"
    total: int  # bytes of memory the GPU has (unified memory for Apple)
    free: int  # bytes free now
    index: int = 0
    driver: str | None = None
    cuda_version: str | None = None
    compute_capability: str | None = None
    unified: bool = False  # shares RAM with the CPU (Apple Silicon)
    working_set: int | None = None  # Metal's usable share of unified memory
    bandwidth: float | None = None  # bytes/s, when known


@dataclass
class Build:
    """What the installed llama.cpp (llama-cpp-python's bundled libraries) can do."""

    gpu_offload: bool = False
    backends: list[str] = field(default_factory=lambda: ["CPU"])  # ggml backend registry names
    devices: list[dict[str, Any]] = field(default_factory=list)  # ggml devices, with memory
    system_info: str = ""
    version: str | None = None
    # The CPU kernels in use: a variant chosen at run time for this CPU ("haswell", "skylakex", ...)
    # in a dynamic-backend build, "" in a build with one fixed CPU backend; what they use (AVX2, ...).
    cpu_variant: str = ""
    cpu_features: list[str] = field(default_factory=list)
    cpu_variants: list[str] = field(default_factory=list)  # every variant the build ships

    def has(self, backend: str) -> bool:
        return backend.lower() in (b.lower() for b in self.backends)


@dataclass
class Hardware:
    os: str = ""
    cpu: CPU = field(default_factory=CPU)
    ram_total: int = 0
    ram_available: int | None = None
    gpus: list[GPU] = field(default_factory=list)
    build: Build = field(default_factory=Build)
    notes: list[str] = field(default_factory=list)  # why a probe found nothing, what to do
    source: str = "detected"  # "detected" or the profile's name

    # Which GPUs the build can drive -------------------------------------------------------
    def usable_gpus(self) -> list[GPU]:
        return [g for g in self.gpus if self.build.gpu_offload and self.build.has(g.backend)]

    def unusable_gpus(self) -> list[GPU]:
        usable = {id(g) for g in self.usable_gpus()}
        return [g for g in self.gpus if id(g) not in usable]

    @property
    def unified_memory(self) -> bool:
        return any(g.unified for g in self.gpus)

    # JSON (also the --profile format) -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Hardware":
        data = dict(data)
        cpu = _build(CPU, data.pop("cpu", None) or {})
        gpus = []
        for i, g in enumerate(data.pop("gpus", None) or []):
            gpus.append(_build(GPU, {"index": i, **g}))
        for g in gpus:
            if g.unified and g.working_set is None:
                g.working_set = metal_working_set(g.total)
        build_data = data.pop("build", None)
        if build_data is None:
            # A described machine is assumed to run a build made for its GPUs.
            backends = ["CPU"] + sorted({g.backend.upper() if g.backend != "metal" else "Metal" for g in gpus})
            build = Build(gpu_offload=bool(gpus), backends=backends)
        else:
            build = _build(Build, build_data)
        hw = _build(cls, data)
        hw.cpu, hw.gpus, hw.build = cpu, gpus, build
        if not hw.ram_total:
            raise ValueError("a hardware profile needs ram_total")
        return hw

    @classmethod
    def from_json(cls, text: str) -> "Hardware":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Hardware":
        from r1desk.engine.errors import R1deskError

        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            hw = cls.from_dict(data)
        except FileNotFoundError:
            raise R1deskError(f"{path}: no such hardware profile") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise R1deskError(f"{path}: not a valid hardware profile ({exc})") from None
        if hw.source == "detected":
            hw.source = str(data.get("name") or path.stem)
        return hw


_SIZE_RE = re.compile(r"^\s*([\d.]+)\s*([KMGT]?)(i?)B?\s*$", re.IGNORECASE)
_SIZE_FIELDS = {"total", "free", "working_set", "ram_total", "ram_available"}
_PROFILE_ONLY = {"name", "description", "expect"}  # keys a hand-written profile may add


def parse_size(value: Any) -> int | None:
    """Bytes from an int or from text such as "16 GiB", "8GB", "512 MiB" (profiles are hand-written).

    Memory is sold in binary units, so "16 GB" of RAM or VRAM means 16 GiB here."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"not a size: {value!r}")
    number, unit = float(m.group(1)), m.group(2).upper()
    power = " KMGT".index(unit) if unit else 0
    return int(number * 1024**power)


def _parse_bandwidth(value: Any) -> float | None:
    """bytes/s from a number of bytes/s or from text such as "400 GB/s"."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = re.match(r"^\s*([\d.]+)\s*([KMGT]?)B?(?:/S)?\s*$", str(value).upper())
    if not m:
        raise ValueError(f"not a bandwidth: {value!r}")
    return float(m.group(1)) * 1000 ** (" KMGT".index(m.group(2)) if m.group(2) else 0)


def _build(cls, data: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names - (_PROFILE_ONLY if cls is Hardware else set())
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            continue
        if k in _SIZE_FIELDS:
            v = parse_size(v)
        elif k == "bandwidth":
            v = _parse_bandwidth(v)
        kwargs[k] = v
    return cls(**kwargs)


def metal_working_set(total: int) -> int:
    """Metal's recommendedMaxWorkingSetSize as macOS sets it (see the module docstring)."""
    return total * 3 // 4 if total > 36 * GiB else total * 2 // 3


# Probes ------------------------------------------------------------------------------------
def detect() -> Hardware:
    """Probe this machine. Never raises for a missing GPU, driver or library."""
    import psutil

    notes: list[str] = []
    vm = psutil.virtual_memory()
    hw = Hardware(
        os=f"{platform.system()} {platform.release()}".strip(),
        cpu=probe_cpu(),
        ram_total=int(vm.total),
        ram_available=int(vm.available),
        notes=notes,
    )
    nvidia, reason = probe_nvidia()
    if reason:
        notes.append(reason)
    apple, apple_reason = probe_apple(hw.ram_total)
    if apple_reason and sys.platform == "darwin":
        notes.append(apple_reason)
    hw.gpus = nvidia + apple
    hw.build = probe_build()
    for gpu in hw.unusable_gpus():
        if gpu.backend == "cuda":
            notes.append(f"CUDA GPU found ({gpu.name}), but this llama.cpp build is CPU-only: "
                         f"{CUDA_BUILD_HINT}")
        elif gpu.backend == "metal":
            notes.append(f"Apple GPU found ({gpu.name}), but this llama.cpp build has no Metal: "
                         f"{METAL_BUILD_HINT}")
    return hw


def probe_cpu() -> CPU:
    import psutil

    name = platform.processor() or ""
    flags: set[str] = set()
    arch = platform.machine().lower()
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware", "cpu model") and value.strip():
                name = value.strip()
            elif key in ("flags", "features"):
                flags.update(value.split())
    elif sys.platform == "darwin":
        name = _sysctl("machdep.cpu.brand_string") or name
        for flag, key in (("neon", "hw.optional.neon"), ("dotprod", "hw.optional.arm.FEAT_DotProd"),
                          ("i8mm", "hw.optional.arm.FEAT_I8MM"), ("avx2", "hw.optional.avx2_0"),
                          ("f16c", "hw.optional.f16c")):
            if _sysctl(key) == "1":
                flags.add(flag)
    if arch in ("arm64", "aarch64") and ("asimd" in flags or sys.platform == "darwin"):
        flags.add("neon")
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    return CPU(name=name or arch or "unknown CPU", arch=arch, physical_cores=int(physical),
               logical_cores=int(logical), flags=sorted(f for f in flags if f in _CPU_FLAGS))


def probe_nvidia() -> tuple[list[GPU], str | None]:
    """Every NVIDIA GPU through NVML; ([], reason) when there is no library, driver or GPU."""
    try:
        import pynvml
    except ImportError:
        return [], "NVIDIA: the pynvml package is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], f"NVIDIA: no driver found ({_nvml_reason(exc)})"
    gpus: list[GPU] = []
    try:
        driver = _text(_try(pynvml.nvmlSystemGetDriverVersion))
        cuda = _try(pynvml.nvmlSystemGetCudaDriverVersion)
        cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) and cuda else None
        count = pynvml.nvmlDeviceGetCount()
        for i in range(count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
                cc = _try(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
                bus = _try(pynvml.nvmlDeviceGetMemoryBusWidth, handle)
                clock = _try(pynvml.nvmlDeviceGetMaxClockInfo, handle, getattr(pynvml, "NVML_CLOCK_MEM", 2))
                # Peak bandwidth: bus width (bits) x memory clock (MHz) x 2 transfers per clock.
                bandwidth = bus / 8 * clock * 1e6 * 2 if bus and clock else None
                gpus.append(GPU(
                    name=_text(pynvml.nvmlDeviceGetName(handle)), vendor="nvidia", backend="cuda",
                    total=int(mem.total), free=int(mem.free), index=i, driver=driver,
                    cuda_version=cuda_version,
                    compute_capability=f"{cc[0]}.{cc[1]}" if cc else None, bandwidth=bandwidth,
                ))
            except Exception as exc:
                return gpus, f"NVIDIA: GPU {i} could not be read ({_nvml_reason(exc)})"
        if not gpus:
            return [], "NVIDIA: the driver is installed but reports no GPU"
        return gpus, None
    except Exception as exc:
        return gpus, f"NVIDIA: {_nvml_reason(exc)}"
    finally:
        _try(pynvml.nvmlShutdown)


def probe_apple(ram_total: int) -> tuple[list[GPU], str | None]:
    """The Apple Silicon GPU: chip name, unified memory, Metal's usable share."""
    if sys.platform != "darwin":
        return [], "Apple GPU: not a Mac"
    if platform.machine().lower() != "arm64":
        return [], "Apple GPU: an Intel Mac (no Apple Silicon GPU for llama.cpp)"
    chip = _sysctl("machdep.cpu.brand_string") or "Apple Silicon"
    total = int(_sysctl("hw.memsize") or ram_total)
    wired = _sysctl("iogpu.wired_limit_mb")
    working_set = int(wired) * MiB if wired and wired.isdigit() and int(wired) > 0 else metal_working_set(total)
    import psutil

    free = int(psutil.virtual_memory().available)
    bandwidth = None
    for key in sorted(APPLE_BANDWIDTH, key=len, reverse=True):
        if key in chip:
            bandwidth = APPLE_BANDWIDTH[key] * 1e9
            break
    return [GPU(name=chip, vendor="apple", backend="metal", total=total, free=min(free, working_set),
                unified=True, working_set=working_set, bandwidth=bandwidth)], None


_probed_build: Build | None = None


def probe_build() -> Build:
    """What the bundled llama.cpp was built with and which devices it sees (asked once per process).

    Only the model process loads llama.cpp: loading it here, in the GUI say, would hold its
    libraries (and with CUDA, GPU memory) for the app's lifetime. So unless this process has
    llama.cpp loaded already, the question goes to a short-lived child process.
    """
    global _probed_build
    if _probed_build is None:
        _probed_build = _probe_build_here() if "llama_cpp" in sys.modules else _probe_build_in_child()
    return _probed_build


def _probe_build_in_child() -> Build:
    from r1desk.engine.processes import child_command

    try:
        out = subprocess.run(child_command("r1desk.engine.hardware.probe", "--build"), capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
        if out.returncode == 0:
            return _build(Build, json.loads(out.stdout))
        reason = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        reason = str(exc)
    return Build(gpu_offload=False, backends=[], system_info=f"llama.cpp could not be asked ({reason})")


def _probe_build_here() -> Build:
    try:
        import llama_cpp
    except ImportError:
        return Build(gpu_offload=False, backends=[], system_info="llama-cpp-python is not installed")
    from r1desk.engine.hardware import kernels

    build = Build(version=getattr(llama_cpp, "__version__", None))
    try:
        cpu = kernels.cpu_kernels()  # loads a dynamic build's backends before anything asks for them
        build.cpu_variant, build.cpu_features, build.cpu_variants = cpu.variant, cpu.features, cpu.choices
    except Exception as exc:
        build.cpu_variant = f"unknown ({exc})"
    try:
        build.gpu_offload = bool(llama_cpp.llama_supports_gpu_offload())
        build.system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    except Exception as exc:
        build.system_info = f"unavailable ({exc})"
    try:
        build.backends, build.devices = _ggml_registry()
    except Exception as exc:
        build.devices = [{"error": f"device registry unavailable ({exc})"}]
    else:
        # llama.cpp says "yes" for any build with its RPC backend: offloading then needs other
        # machines' workers (see engine.inference.rpc), not a GPU of this one.
        if build.gpu_offload and not any(b.upper() not in ("CPU", "RPC", "BLAS") for b in build.backends):
            build.gpu_offload = False
    return build




def _ggml_registry() -> tuple[list[str], list[dict[str, Any]]]:
    from llama_cpp import _ggml

    lib = ggml.bind(_ggml.libggml, (
        "ggml_backend_reg_count", "ggml_backend_reg_get", "ggml_backend_reg_name", "ggml_backend_dev_count",
        "ggml_backend_dev_get", "ggml_backend_dev_name", "ggml_backend_dev_description", "ggml_backend_dev_type",
        "ggml_backend_dev_memory"))
    c_size = ctypes.c_size_t
    backends = [lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)).decode()
                for i in range(lib.ggml_backend_reg_count())]
    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        free, total = c_size(0), c_size(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        devices.append({
            "name": lib.ggml_backend_dev_name(dev).decode(errors="replace"),
            "description": (lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace"),
            "type": ggml.DEVICE_TYPES.get(lib.ggml_backend_dev_type(dev), "unknown"),
            "free": int(free.value), "total": int(total.value),
        })
    return backends, devices


def _sysctl(key: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return value if out.returncode == 0 and value else None


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception:
        return None


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _nvml_reason(exc: Exception) -> str:
    name = type(exc).__name__.replace("NVMLError_", "")
    text = str(exc)
    return f"{name}: {text}" if text and text not in name else name


# Human words --------------------------------------------------------------------------------
if __name__ == "__main__":  # the child that probe_build() asks: print the build as JSON
    if sys.argv[1:] == ["--build"]:
        print(json.dumps(asdict(_probe_build_here())))
