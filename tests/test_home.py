"""Every test runs in a home folder of its own (tests/conftest.py): it never sees the user's models or settings."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import platformdirs
import pytest

from r1desk.engine import paths
from r1desk.engine.db.database import open_db
from r1desk.engine.models.library import Library, default_roots

from tests.support import models
from tests.support.home import own_home, rederive_hub_constants


def inside(path: str | os.PathLike, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def test_a_test_sees_only_its_own_home(tmp_path: Path) -> None:
    from huggingface_hub import constants, get_token

    assert inside(Path.home(), tmp_path) and inside(os.path.expanduser("~"), tmp_path)
    assert inside(paths.home(), tmp_path)
    for kind, folder in default_roots():  # r1desk's own, the HF cache, LM Studio's two, Ollama's
        assert inside(folder, tmp_path), (kind, folder)
    xdg = {name: value for name, value in os.environ.items() if name.startswith("XDG_") and name.endswith("_HOME")}
    assert {"XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"} <= set(xdg)
    for name, value in xdg.items():
        assert inside(value, tmp_path), name
    for where in (platformdirs.user_data_dir, platformdirs.user_cache_dir, platformdirs.user_config_dir,
                  platformdirs.user_state_dir):
        assert inside(where("r1desk"), tmp_path), where.__name__
    # What huggingface_hub worked out when it was imported, before any test changed HOME.
    for name in ("HF_HOME", "HF_HUB_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE", "HF_TOKEN_PATH",
                 "HF_STORED_TOKENS_PATH"):
        assert inside(getattr(constants, name), tmp_path), name
    assert get_token() is None
    # The test models alone stay in the real home, cached between runs.
    assert not inside(models.cache_dir(), tmp_path)
    assert models.REAL_ENVIRON.get("HOME") != os.environ["HOME"]


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    """A GGUF the library accepts as a model, a few hundred bytes long (scans read its header only)."""
    import gguf
    import numpy as np

    path = tmp_path / "small.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("planted")
    writer.add_context_length(256)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b", "c", "d"])
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def plant_models(home: Path, model: Path) -> dict[str, Path]:
    """A model in each place r1desk looks in a user's home, as each app lays it out (hard links: no copies)."""
    def place(dst: Path) -> Path:
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(model, dst)
        except OSError:
            dst.write_bytes(model.read_bytes())
        return dst

    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    hf = home / ".cache" / "huggingface" / "hub" / "models--someone--planted-GGUF"
    blob = place(hf / "blobs" / digest)
    link = hf / "snapshots" / ("a" * 40) / "planted-hf.gguf"
    link.parent.mkdir(parents=True)
    os.symlink(os.path.relpath(blob, link.parent), link)
    (hf / "refs").mkdir()
    (hf / "refs" / "main").write_text("a" * 40)
    ollama = home / ".ollama" / "models"
    ollama_blob = place(ollama / "blobs" / f"sha256-{digest}")
    manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / "planted" / "latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
         "size": model.stat().st_size}]}))
    return {
        "hf": link,
        "lmstudio": place(home / ".lmstudio" / "models" / "someone" / "planted" / "planted-lmstudio.gguf"),
        "lmstudio, before 0.3": place(home / ".cache" / "lm-studio" / "models" / "someone" / "old" / "planted-old.gguf"),
        "ollama": ollama_blob,
    }


def found_on_this_computer() -> set[str]:
    """What the first start offers as "already on this computer": a scan of the default folders."""
    db = open_db()
    try:
        library = Library(db)
        report = library.scan()
        return {m.path for m in report.added}
    finally:
        db.conn.close()


def test_models_in_the_real_home_are_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               small_model: Path) -> None:
    # A stand-in for the user's real home, with a model where each app keeps them and a hub login.
    real = tmp_path / "real-home"
    planted = plant_models(real, small_model)
    (real / ".cache" / "huggingface" / "token").write_text("hf_the_users_own_token")
    # As the user's shell has it: HOME only, nothing overridden, huggingface_hub imported under it.
    monkeypatch.setenv("HOME", str(real))
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "HF_HOME",
                 "HF_HUB_CACHE", "OLLAMA_MODELS"):
        monkeypatch.delenv(name)
    rederive_hub_constants(monkeypatch)
    from huggingface_hub import get_token

    assert get_token() == "hf_the_users_own_token"
    monkeypatch.setenv("R1DESK_HOME", str(tmp_path / "r1desk-before"))
    assert found_on_this_computer() == {str(p) for p in planted.values()}, "the planted models are where r1desk looks"

    # What tests/conftest.py does before every test.
    monkeypatch.setenv("R1DESK_HOME", str(tmp_path / "r1desk-after"))
    own_home(tmp_path / "user-home-again", monkeypatch)
    assert get_token() is None
    assert found_on_this_computer() == set()
    from r1desk.app.firstrun import local_models

    assert local_models() == []
