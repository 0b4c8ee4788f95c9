"""Test set-up: every test gets its own R1DESK_HOME and home folder; real models come from tests/support."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Imported while HOME is still the real one: the test models are cached under it (see cache_dir()).
from tests.support import models  # noqa: F401
from tests.support.home import own_home

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def r1desk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """r1desk's data folder for this test, inside a home folder of the test's own.

    So a test never reads or writes the user's files: no models from their Hugging Face cache,
    LM Studio or Ollama folders, no Qt settings, no hub token.
    """
    home = tmp_path / "r1desk-home"
    monkeypatch.setenv("R1DESK_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    own_home(tmp_path / "user-home", monkeypatch)
    return home


@pytest.fixture(scope="session")
def smollm2() -> Path:
    from tests.support.models import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def tiny_r1() -> Path:
    from tests.support.models import tiny_r1_path

    return tiny_r1_path()


@pytest.fixture(scope="session")
def minilm_gguf() -> Path:
    from tests.support.models import minilm_gguf_path

    return minilm_gguf_path()


@pytest.fixture(scope="session")
def r1_header() -> Path:
    from tests.support.models import r1_header_path

    return r1_header_path()
