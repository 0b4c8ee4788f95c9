"""Test set-up: every test gets its own R1DESK_HOME; real models come from tests/support."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def r1desk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "r1desk-home"
    monkeypatch.setenv("R1DESK_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
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
def r1_header() -> Path:
    from tests.support.models import r1_header_path

    return r1_header_path()
