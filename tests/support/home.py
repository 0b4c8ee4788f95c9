"""A home folder of the test's own, so a test sees only the files it made, never the user's.

r1desk looks for models other apps left in the home folder (the Hugging Face cache, LM Studio,
Ollama), and Qt, platformdirs and huggingface_hub find their folders through HOME and XDG_*.
``own_home`` points all of them into one temporary folder laid out as a home.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# Relative to the home folder, as on a Linux desktop with nothing overridden.
FOLDERS = {
    "XDG_CACHE_HOME": ".cache",
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
    "HF_HOME": ".cache/huggingface",
    "HF_HUB_CACHE": ".cache/huggingface/hub",
    "OLLAMA_MODELS": ".ollama/models",
}
# Overrides a user may have exported that would point outside the test's home (or hand a test their token).
UNSET = ("HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HUGGINGFACE_ASSETS_CACHE", "HF_XET_CACHE", "HF_TOKEN_PATH",
         "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT")


def own_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``home`` the home folder, with every XDG and model folder inside it.

    The home folder is created, empty, as a real one exists; the folders inside it are left to
    whatever makes them, as on a new account.
    """
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    for name, relative in FOLDERS.items():
        monkeypatch.setenv(name, str(home / relative))
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    rederive_hub_constants(monkeypatch)
    return home


def rederive_hub_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give huggingface_hub the cache and token paths it would work out from today's environment.

    It reads HOME, HF_HOME, HF_HUB_CACHE... once, when first imported (under the real home, before
    any test ran), into ``huggingface_hub.constants`` and into the modules that copied them from
    there; its functions read them at call time. So its constants module is run again, on its own,
    and every plain value that came out differently replaces the imported one, for this test only.
    """
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    spec = importlib.util.find_spec("huggingface_hub.constants")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    plain = (str, bytes, bool, int, float, type(None), Path)
    changed = {name: value for name, value in vars(fresh).items()
               if not name.startswith("__") and isinstance(value, plain)
               and name in vars(constants) and vars(constants)[name] != value}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "huggingface_hub" or module_name.startswith("huggingface_hub.")):
            continue
        for name, value in changed.items():
            if name in vars(module) and isinstance(vars(module)[name], plain):
                monkeypatch.setattr(module, name, value)
