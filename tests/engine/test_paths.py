"""Other apps' folders: found where those apps look, with the environment variables they read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1desk.engine import paths

HF_VARS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    for var in (*HF_VARS, "OLLAMA_MODELS"):
        monkeypatch.delenv(var, raising=False)
    return home


def _huggingface_hub_cache() -> Path:
    """Where huggingface_hub itself puts its cache, in a fresh process with this environment."""
    code = "from huggingface_hub import constants; print(constants.HF_HUB_CACHE)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    return Path(out.stdout.strip())


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "~/.cache/huggingface/hub"),
    ({"XDG_CACHE_HOME": "{tmp}/xdg"}, "{tmp}/xdg/huggingface/hub"),
    ({"XDG_CACHE_HOME": "{tmp}/xdg", "HF_HOME": "~/hf-home"}, "~/hf-home/hub"),
    ({"HF_HOME": "{tmp}/hf-home", "HUGGINGFACE_HUB_CACHE": "{tmp}/old-cache"}, "{tmp}/old-cache"),
    ({"HF_HOME": "{tmp}/hf-home", "HUGGINGFACE_HUB_CACHE": "{tmp}/old", "HF_HUB_CACHE": "$R1DESK_TEST_DIR/hub"},
     "{tmp}/from-var/hub"),
])
def test_hf_cache_follows_huggingface_hub(env: dict[str, str], expected: str, home: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1DESK_TEST_DIR", str(tmp_path / "from-var"))
    for var, value in env.items():
        monkeypatch.setenv(var, value.format(tmp=tmp_path))
    want = Path(expected.format(tmp=tmp_path).replace("~", str(home), 1))
    assert paths.hf_cache_dir() == want, "read at each call, not when the module was imported"
    assert paths.hf_cache_dir() == _huggingface_hub_cache()


def test_empty_hf_variables_are_unset(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", "")
    monkeypatch.setenv("HF_HOME", "")
    assert paths.hf_cache_dir() == home / ".cache" / "huggingface" / "hub"


def test_ollama_models_dir(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.ollama_models_dir() == home / ".ollama" / "models"
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    assert paths.ollama_models_dir() == tmp_path / "ollama"
    # Ollama trims spaces and quotes, as a systemd Environment= line or a Windows setx leaves them.
    monkeypatch.setenv("OLLAMA_MODELS", f' "{tmp_path / "quoted"}" ')
    assert paths.ollama_models_dir() == tmp_path / "quoted"
    monkeypatch.setenv("OLLAMA_MODELS", "~/models")
    assert paths.ollama_models_dir() == home / "models"
    monkeypatch.setenv("OLLAMA_MODELS", "")
    assert paths.ollama_models_dir() == home / ".ollama" / "models"


def test_lmstudio_models_dirs(home: Path) -> None:
    assert paths.lmstudio_models_dir() == home / ".lmstudio" / "models"
    assert paths.lmstudio_legacy_models_dir() == home / ".cache" / "lm-studio" / "models"


def test_library_scans_the_folders_paths_names(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from r1desk.engine.models.library import default_roots

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    assert default_roots() == [
        ("r1desk", paths.models_dir()),
        ("hf", tmp_path / "hf" / "hub"),
        ("lmstudio", home / ".lmstudio" / "models"),
        ("lmstudio", home / ".cache" / "lm-studio" / "models"),
        ("ollama", tmp_path / "ollama"),
    ]
