"""Where r1desk keeps its files: one function per kind of path, one environment override."""

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
