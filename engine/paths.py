"""Where r1desk keeps its files, and where other apps keep theirs: one function per folder, each with its override."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import platformdirs

ENV_HOME = "R1DESK_HOME"


def home() -> Path:
    """The root of everything r1desk writes; ``R1DESK_HOME`` overrides the platform default."""
    override = os.environ.get(ENV_HOME)
    if override:
        return Path(override).expanduser().resolve()
    return Path(platformdirs.user_data_dir("r1desk", appauthor=False))


def asset(*parts: str) -> Path:
    """A file shipped inside the package (catalog, icons, style sheets, translations).

    Found through importlib.resources, so it is the same from a checkout, an installed wheel
    or a frozen bundle.
    """
    return Path(str(resources.files("r1desk.assets").joinpath(*parts)))


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    return _ensure(home())


def database_path() -> Path:
    return data_dir() / "r1desk.db"


def models_dir() -> Path:
    return _ensure(home() / "models")


def cache_dir() -> Path:
    return _ensure(home() / "cache")


def logs_dir() -> Path:
    return _ensure(home() / "logs")


def adapters_dir() -> Path:
    return _ensure(home() / "adapters")


# Other apps' folders: read from the environment at each call, with the variables those apps
# read (not the values huggingface_hub froze when it was imported), so a test or a user's
# override applies at once.


def _env_path(value: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(value)))


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it.

    ``HF_HUB_CACHE`` (or the older ``HUGGINGFACE_HUB_CACHE``), else ``HF_HOME``/hub, else
    ``XDG_CACHE_HOME``/huggingface/hub, else ~/.cache/huggingface/hub.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(var)
        if value:
            return _env_path(value)
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        return _env_path(hf_home) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = _env_path(xdg) if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def ollama_models_dir() -> Path:
    """Ollama's model store (manifests/ and blobs/): ``OLLAMA_MODELS``, else ~/.ollama/models.

    Ollama trims spaces and quotes around the value; so does this.
    """
    value = os.environ.get("OLLAMA_MODELS", "").strip().strip("\"'")
    return Path(value).expanduser() if value else Path.home() / ".ollama" / "models"


def lmstudio_models_dir() -> Path:
    """LM Studio's models folder since 0.3 (it has no environment override; moving it is a setting)."""
    return Path.home() / ".lmstudio" / "models"


def lmstudio_legacy_models_dir() -> Path:
    """Where LM Studio before 0.3 kept models (still used by installs that were never migrated)."""
    return Path.home() / ".cache" / "lm-studio" / "models"
