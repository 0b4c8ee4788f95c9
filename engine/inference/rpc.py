"""A model split over several machines with llama.cpp's RPC backend: remote devices, and a worker.

Each helper machine runs an RPC worker (``r1desk rpc-server``, which is llama.cpp's own
``ggml_backend_rpc_start_server`` from the same build, or llama.cpp's ``rpc-server`` tool). The
machine that loads the model registers each worker as a device in ggml's backend registry, as
llama.cpp's own ``--rpc`` option does (``ggml_backend_rpc_add_server`` found through the RPC
backend's proc-address table, then ``ggml_backend_register``); llama.cpp then offloads layers to
those devices like GPUs, in proportion to their free memory, and the fit estimate counts them so.

The bindings no longer take ``rpc_servers``, so the registry is reached through ctypes, in the
copy of libggml that libllama itself uses (a wheel may hold two). Only the model process calls
``add_servers``; a worker is a process of its own.

The RPC protocol has no authentication or encryption: a worker must only listen on a network
the user trusts (it refuses to listen beyond loopback unless told to).
"""

from __future__ import annotations

import ctypes
import socket
from dataclasses import dataclass
from typing import Any

from r1desk.engine.errors import ModelLoadFailed
from r1desk.engine.hardware import ggml
from r1desk.engine.hardware.kernels import load_backends

DEFAULT_PORT = 50052  # llama.cpp's rpc-server default
CONNECT_SECONDS = 5.0


@dataclass
class RemoteDevice:
    endpoint: str  # host:port
    name: str  # ggml's device name, e.g. "RPC0"
    description: str
    free: int
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "name": self.name, "description": self.description,
                "free": self.free, "total": self.total}


def parse_endpoint(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6; the port defaults to 50052), checked."""
    text = text.strip()
    if not text:
        raise ModelLoadFailed("an RPC server address is empty", facts={"code": "rpc-bad-address"})
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        port = -1
    if not host or not 0 < port < 65536:
        raise ModelLoadFailed(f"{text!r} is not an RPC server address (host:port)", facts={"code": "rpc-bad-address",
                                                                                         "address": text})
    return host, port


def _lib() -> Any:
    """ggml's registry functions, looked up through libllama (so in the libggml it uses)."""
    from llama_cpp import llama_cpp

    return ggml.bind(llama_cpp._lib, (
        "ggml_backend_load_all", "ggml_backend_reg_by_name", "ggml_backend_reg_get_proc_address",
        "ggml_backend_register", "ggml_backend_reg_dev_count", "ggml_backend_reg_dev_get", "ggml_backend_dev_name",
        "ggml_backend_dev_description", "ggml_backend_dev_memory", "ggml_backend_dev_by_type"))


def _rpc_function(lib: Any, name: str, restype: Any, argtypes: list) -> Any:
    reg = lib.ggml_backend_reg_by_name(b"RPC")
    if not reg:
        load_backends()  # a bundle's llama.cpp loads its backends, RPC among them, from its own folder
        reg = lib.ggml_backend_reg_by_name(b"RPC")
    if not reg:
        raise ModelLoadFailed("this llama.cpp build has no RPC backend (it needs -DGGML_RPC=ON)",
                              facts={"code": "rpc-not-built"})
    address = lib.ggml_backend_reg_get_proc_address(reg, name.encode())
    if not address:
        raise ModelLoadFailed(f"this llama.cpp build's RPC backend lacks {name}", facts={"code": "rpc-not-built"})
    return ctypes.CFUNCTYPE(restype, *argtypes)(address)


def reachable(host: str, port: int, timeout: float = CONNECT_SECONDS) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_added: dict[str, list[RemoteDevice]] = {}


def add_servers(endpoints: list[str]) -> list[RemoteDevice]:
    """Register each RPC worker's devices with llama.cpp (once per process); their memory as reported.

    A worker that cannot be reached is refused before llama.cpp tries it (ggml aborts the
    process on a connection it cannot make).
    """
    devices: list[RemoteDevice] = []
    lib = None
    for text in endpoints:
        host, port = parse_endpoint(text)
        endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if endpoint not in _added:
            if not reachable(host, port):
                raise ModelLoadFailed(f"cannot reach the RPC server at {endpoint}: is rpc-server running there, and "
                                      "is the port open?", facts={"code": "rpc-unreachable", "address": endpoint})
            lib = lib or _lib()
            add = _rpc_function(lib, "ggml_backend_rpc_add_server", ctypes.c_void_p, [ctypes.c_char_p])
            reg = add(endpoint.encode())
            if not reg:
                raise ModelLoadFailed(f"the RPC server at {endpoint} did not answer as llama.cpp's rpc-server does "
                                      "(another program, or another llama.cpp version)",
                                      facts={"code": "rpc-refused", "address": endpoint})
            lib.ggml_backend_register(reg)
            found = []
            for i in range(lib.ggml_backend_reg_dev_count(reg)):
                dev = lib.ggml_backend_reg_dev_get(reg, i)
                free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
                lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
                found.append(RemoteDevice(endpoint, (lib.ggml_backend_dev_name(dev) or b"").decode(),
                                          (lib.ggml_backend_dev_description(dev) or b"").decode(),
                                          int(free.value), int(total.value)))
            _added[endpoint] = found
        devices += _added[endpoint]
    return devices


def with_remote_devices(hw: Any, devices: list[RemoteDevice]) -> Any:
    """The hardware with the remote devices counted as GPUs the build can offload to."""
    from dataclasses import replace

    from r1desk.engine.hardware.probe import GPU

    if not devices:
        return hw
    gpus = list(hw.gpus) + [GPU(name=f"{d.name} {d.description} at {d.endpoint}", vendor="remote", backend="rpc",
                                total=d.total, free=d.free, index=len(hw.gpus) + i) for i, d in enumerate(devices)]
    backends = list(hw.build.backends) + ([] if hw.build.has("rpc") else ["RPC"])
    return replace(hw, gpus=gpus, build=replace(hw.build, gpu_offload=True, backends=backends))


def serve(host: str, port: int, *, threads: int | None = None, cache_dir: str | None = None) -> None:
    """Run an RPC worker with this machine's devices (the CPU, or its GPUs) until the process ends."""
    import os

    lib = _lib()
    load_backends()
    start = _rpc_function(lib, "ggml_backend_rpc_start_server", None,
                          [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t,
                           ctypes.POINTER(ctypes.c_void_p)])
    gpu = lib.ggml_backend_dev_by_type(ggml.DEVICE_GPU)
    device = gpu or lib.ggml_backend_dev_by_type(ggml.DEVICE_CPU)
    if not device:
        raise ModelLoadFailed("llama.cpp found no device to serve", facts={"code": "rpc-no-device"})
    devices = (ctypes.c_void_p * 1)(device)
    n_threads = threads or max(1, (os.cpu_count() or 2) // 2)
    endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    start(endpoint.encode(), cache_dir.encode() if cache_dir else None, n_threads, 1, devices)


def main(argv: list[str] | None = None) -> None:
    """``python -m r1desk.engine.inference.rpc HOST PORT [THREADS]``: a worker, as a child process."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    serve(args[0], int(args[1]), threads=int(args[2]) if len(args) > 2 else None)


if __name__ == "__main__":
    main()
