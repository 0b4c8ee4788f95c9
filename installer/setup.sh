#!/usr/bin/env bash
# Set up r1desk from a source checkout into .venv/ at the repository root, then run it.
#
#   installer/setup.sh run     install and start the desktop app
#   installer/setup.sh test    install with the test tools and run the whole test suite
#
# llama.cpp is compiled for this machine's accelerator (CUDA when nvcc and an NVIDIA driver are
# present, Metal on Apple Silicon) but never with -march=native: a native build can enable AMX
# kernels that crash on some Xeon CPUs, and a portable build runs on any x86-64 CPU with AVX2.
# GGML_RPC adds llama.cpp's RPC backend, with which one model is split over several machines
# that run rpc-server. R1DESK_CMAKE_ARGS replaces the choice. The compiled wheel is kept in a cache keyed by those
# flags, so later runs take seconds.
set -euo pipefail

mode="${1:-run}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3}"
"$python" - <<'EOF' || { echo "r1desk needs Python 3.10 or newer (found $("$python" --version 2>&1))" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
EOF

# System libraries the Qt offscreen platform needs for GUI tests on a bare Debian/Ubuntu box.
if [ "$mode" = "test" ] && command -v apt-get >/dev/null 2>&1; then
    pkgs="libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0 fonts-noto-cjk"
    missing=""
    for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        sudo_cmd=""
        [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo_cmd="sudo"
        if [ "$(id -u)" -eq 0 ] || [ -n "$sudo_cmd" ]; then
            echo "Installing system libraries:$missing"
            $sudo_cmd apt-get update -qq >/dev/null 2>&1 || true
            DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends $missing >/dev/null
        else
            echo "Note: missing system libraries for Qt tests:$missing" >&2
        fi
    fi
fi

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip=".venv/bin/python -m pip"
$pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true

llama_version="$(grep -oE '"llama-cpp-python[=>]=[0-9.]+' pyproject.toml | grep -oE '[0-9.]+$' || true)"
llama_version="${llama_version:-0.3.36}"

if [ -n "${R1DESK_CMAKE_ARGS:-}" ]; then
    cmake_args="$R1DESK_CMAKE_ARGS"
else
    cmake_args="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DGGML_RPC=ON"
    if [ "$(uname -s)" = "Darwin" ]; then
        cmake_args="-DLLAVA_BUILD=OFF -DGGML_RPC=ON"  # Metal is on by default on Apple Silicon
    elif command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
        cmake_args="$cmake_args -DGGML_CUDA=on"
    fi
fi

key="$(printf '%s|%s|%s' "$llama_version" "$cmake_args" "$(.venv/bin/python -c 'import sys, platform; print(sys.version_info[:2], platform.machine())')" | sha256sum | cut -c1-16)"
wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/r1desk-build/llama-cpp-python/$key"
wheel="$(ls "$wheel_dir"/llama_cpp_python-"$llama_version"-*.whl 2>/dev/null | head -n 1 || true)"
if [ -z "$wheel" ]; then
    echo "Compiling llama.cpp ($cmake_args); this takes a few minutes once."
    mkdir -p "$wheel_dir"
    CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
        $pip wheel -q --disable-pip-version-check --no-deps --no-cache-dir -w "$wheel_dir" "llama-cpp-python==$llama_version"
    wheel="$(ls "$wheel_dir"/llama_cpp_python-"$llama_version"-*.whl | head -n 1)"
fi
installed="$(.venv/bin/python -c 'import importlib.metadata as m; print(m.distribution("llama-cpp-python").read_text("r1desk-build") or "")' 2>/dev/null || true)"
if [ "$installed" != "$key" ]; then
    $pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
    site="$(.venv/bin/python -c 'import importlib.metadata as m, pathlib; d = m.distribution("llama-cpp-python"); print(pathlib.Path(d._path))')"
    printf '%s' "$key" > "$site/r1desk-build"
fi

case "$mode" in
    run)
        $pip install -q --disable-pip-version-check -e . --config-settings editable_mode=strict
        exec .venv/bin/r1desk "$@"
        ;;
    test)
        $pip install -q --disable-pip-version-check -e ".[test]" --config-settings editable_mode=strict
        export QT_QPA_PLATFORM=offscreen
        export R1DESK_LLAMA_WHEEL="$wheel"  # tests/test_package.py installs it into a fresh venv
        .venv/bin/lint-imports
        set +e
        .venv/bin/python -m pytest "$@"
        status=$?
        set -e
        if [ "$status" -eq 5 ]; then
            echo "No tests were collected: that is a failure." >&2
            exit 1
        fi
        exit "$status"
        ;;
    *)
        echo "usage: installer/setup.sh run|test [args...]" >&2
        exit 2
        ;;
esac
