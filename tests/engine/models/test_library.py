"""The model library: register, resolve, list, remove, and scan what other apps put on disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from r1desk.cli import cli
from r1desk.engine import paths
from r1desk.engine.db.database import open_db
from r1desk.engine.errors import CorruptModel, ModelNotFound
from r1desk.engine.gguf.header import read_header
from r1desk.engine.models import library
from r1desk.engine.models.library import Library, inspect_model

from tests.support.models import rewrite_gguf


@pytest.fixture(autouse=True)
def other_apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder of our own, so scans never see the real HF cache, LM Studio or Ollama."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / ".cache" / "huggingface" / "hub"))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    return home


@pytest.fixture
def lib() -> Library:
    db = open_db()
    yield Library(db)
    db.conn.close()


@pytest.fixture(scope="session")
def tiny_sha(tiny_r1: Path) -> str:
    return hashlib.sha256(tiny_r1.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def tiny_split(tiny_r1: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return rewrite_gguf(tiny_r1, tmp_path_factory.mktemp("lib-split") / "tiny-r1-Q8_0.gguf", split_max_tensors=10)


def place(src: Path, dst: Path) -> Path:
    """A file of its own at ``dst`` with ``src``'s bytes (a hard link when possible: no copy)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return dst


def hf_cache_entry(files: dict[str, Path], repo: str = "org/tiny-GGUF", commit: str = "c" * 40) -> Path:
    """An HF cache repo laid out as huggingface_hub makes it; returns its snapshot folder."""
    storage = paths.hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    for name, src in files.items():
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        blob = place(src, storage / "blobs" / digest)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(commit)
    return snapshot


def ollama_store(src: Path, digest: str, *, name: str = "tinyr1", tag: str = "latest",
                 namespace: str = "library") -> Path:
    root = paths.ollama_models_dir()
    blob = place(src, root / "blobs" / f"sha256-{digest}")
    manifest = root / "manifests" / "registry.ollama.ai" / namespace / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": "sha256:" + "0" * 64, "size": 10},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
             "size": src.stat().st_size},
            {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "1" * 64, "size": 5},
        ],
    }))
    return blob


# ---------------------------------------------------------------------------------------


def test_register_reads_the_model_facts(lib: Library, tiny_r1: Path, tmp_path: Path) -> None:
    path = place(tiny_r1, tmp_path / "DeepSeek-R1-tiny-Q8_0.gguf")
    model = lib.register(path)
    header = read_header(tiny_r1, allow_truncated_data=True)
    assert model.name == "DeepSeek-R1-tiny-Q8_0"
    assert (model.architecture, model.quant, model.context_length) == ("qwen2", "Q8_0", 4096)
    assert model.template_sha256 == header.template_sha256()
    assert model.parameters == header.parameter_count and model.size == tiny_r1.stat().st_size
    assert (model.status, model.origin) == ("ready", "local")
    assert model.metadata["qwen2.block_count"] == 2 and model.metadata["tokenizer.vocab_size"] == 152064
    again = lib.register(path, name="renamed")
    assert again.id == model.id and again.name == "renamed"
    assert len(lib.list()) == 1


def test_names_stay_unique(lib: Library, tiny_r1: Path, tmp_path: Path) -> None:
    a = lib.register(place(tiny_r1, tmp_path / "a" / "m.gguf"))
    b = lib.register(place(tiny_r1, tmp_path / "b" / "m.gguf"))
    assert (a.name, b.name) == ("m", "m-2")


def test_a_file_that_is_not_a_model_is_not_registered(lib: Library, tiny_r1: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_r1.read_bytes()[: tiny_r1.stat().st_size // 2])
    with pytest.raises(CorruptModel, match="truncated"):
        lib.register(cut)
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(CorruptModel, match="not a GGUF"):
        lib.register(text)
    assert lib.list() == []


def test_resolve_by_name_path_repo_and_prefix(lib: Library, tiny_r1: Path, tmp_path: Path) -> None:
    path = place(tiny_r1, tmp_path / "DeepSeek-R1-tiny-Q8_0.gguf")
    lib.register(path, source_repo="org/tiny-GGUF")
    assert lib.resolve("DeepSeek-R1-tiny-Q8_0") == path
    assert lib.resolve("deepseek-r1-tiny-q8_0") == path
    assert lib.resolve("org/tiny-GGUF:Q8_0") == path
    assert lib.resolve("DeepSeek-R1-ti") == path
    assert lib.resolve(str(path)) == path
    other = place(tiny_r1, tmp_path / "unregistered.gguf")
    assert lib.resolve(str(other)) == other, "a path works without registering"
    assert lib.get("DeepSeek-R1-tiny-Q8_0").last_used_at is not None
    with pytest.raises(ModelNotFound, match="did you mean DeepSeek-R1-tiny-Q8_0"):
        lib.resolve("DeepSeek-R1-tiny-Q9_0")  # a typo
    with pytest.raises(ModelNotFound, match="no such file"):
        lib.resolve(str(tmp_path / "gone.gguf"))


def test_module_resolve_is_what_the_chat_engine_calls(tiny_r1: Path, tmp_path: Path) -> None:
    path = place(tiny_r1, tmp_path / "m.gguf")
    db = open_db()
    Library(db).register(path, name="my model")
    db.conn.close()
    assert library.resolve("my model") == path
    from r1desk.engine.chat.service import resolve_model

    assert resolve_model("my model") == path


def test_missing_files_are_marked_not_fatal(lib: Library, tiny_r1: Path, tmp_path: Path) -> None:
    path = place(tiny_r1, tmp_path / "m.gguf")
    lib.register(path)
    lib.register(place(tiny_r1, tmp_path / "n.gguf"))
    moved = tmp_path / "elsewhere.gguf"
    path.rename(moved)
    listed = {m.name: m.status for m in lib.list()}
    assert listed == {"m": "missing", "n": "ready"}
    with pytest.raises(ModelNotFound, match="missing"):
        lib.resolve("m")
    moved.rename(path)
    assert {m.name: m.status for m in lib.list()} == {"m": "ready", "n": "ready"}


def test_remove_keeps_or_deletes_files(lib: Library, tiny_r1: Path, tmp_path: Path, tiny_sha: str) -> None:
    outside = place(tiny_r1, tmp_path / "mine.gguf")
    lib.register(outside)
    removal = lib.remove("mine", delete_files=True)
    assert removal.deleted == [] and outside.exists(), "a file the user put elsewhere is never deleted"
    assert removal.kept == [(outside, "it is outside r1desk's folders")]

    inside = paths.models_dir() / "made.gguf"
    inside.write_bytes(tiny_r1.read_bytes())
    lib.register(inside)
    removal = lib.remove("made", delete_files=True)
    assert removal.deleted == [inside] and not inside.exists()
    assert removal.freed == tiny_r1.stat().st_size

    snapshot = hf_cache_entry({"a.gguf": tiny_r1})
    second = paths.hf_cache_dir() / "models--org--tiny-GGUF" / "snapshots" / ("d" * 40)
    second.mkdir(parents=True)
    blob = (snapshot / "a.gguf").resolve()
    os.symlink(os.path.relpath(blob, second), second / "a.gguf")
    lib.register(snapshot / "a.gguf", origin="hub", name="hub1")
    removal = lib.remove("hub1", delete_files=True)
    assert removal.deleted == [snapshot / "a.gguf"] and blob.exists(), "another snapshot still uses the blob"
    lib.register(second / "a.gguf", origin="hub", name="hub2")
    removal = lib.remove("hub2", delete_files=True)
    assert removal.deleted == [second / "a.gguf", blob] and not blob.exists()

    ollama_blob = ollama_store(tiny_r1, tiny_sha)
    lib.register(ollama_blob, origin="ollama", name="tinyr1:latest")
    removal = lib.remove("tinyr1:latest", delete_files=True)
    assert removal.deleted == [] and ollama_blob.exists(), "Ollama's files are Ollama's"
    assert lib.list() == []


def test_a_link_in_the_models_folder_is_unlinked_and_its_target_kept(lib: Library, tiny_r1: Path,
                                                                     tmp_path: Path) -> None:
    target = place(tiny_r1, tmp_path / "users-own" / "big-model.gguf")
    link = paths.models_dir() / "big-model.gguf"
    os.symlink(target, link)
    lib.scan([("r1desk", paths.models_dir())])
    model = lib.get("big-model")
    assert model.path == str(link)
    assert not lib.owns_files(model), "a link the user made is not r1desk's file"
    removal = lib.remove("big-model", delete_files=True)
    assert target.exists() and target.stat().st_size == tiny_r1.stat().st_size, "the target outside stays"
    assert not os.path.lexists(link), "the link itself, in r1desk's folder, goes"
    assert removal.deleted == [link] and removal.freed == 0
    assert [p for p, _ in removal.kept] == [target]


def test_a_file_reached_through_a_linked_folder_is_kept(lib: Library, tiny_r1: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "users-folder"
    target = place(tiny_r1, elsewhere / "m.gguf")
    os.symlink(elsewhere, paths.models_dir() / "linked", target_is_directory=True)
    lib.register(paths.models_dir() / "linked" / "m.gguf", origin="quantized")
    assert not lib.owns_files(lib.get("m"))
    removal = lib.remove("m", delete_files=True)
    assert removal.deleted == [] and target.exists() and (paths.models_dir() / "linked").is_symlink()
    assert removal.kept == [(paths.models_dir() / "linked" / "m.gguf", "it is outside r1desk's folders")]


def test_a_hub_snapshot_link_to_a_file_outside_the_cache_keeps_the_file(lib: Library, tiny_r1: Path,
                                                                       tmp_path: Path) -> None:
    snapshot = hf_cache_entry({"a.gguf": tiny_r1})
    users = place(tiny_r1, tmp_path / "users-copy.gguf")
    (snapshot / "a.gguf").unlink()
    os.symlink(users, snapshot / "a.gguf")  # the user pointed the cache at a file of theirs
    lib.register(snapshot / "a.gguf", origin="hub", name="hub")
    removal = lib.remove("hub", delete_files=True)
    assert removal.deleted == [] and users.exists() and (snapshot / "a.gguf").is_symlink()


def test_models_rm_through_the_cli_never_deletes_a_links_target(tiny_r1: Path, tmp_path: Path) -> None:
    target = place(tiny_r1, tmp_path / "users-own" / "linked-Q8_0.gguf")
    link = paths.models_dir() / "linked-Q8_0.gguf"
    os.symlink(target, link)
    linked_dir = tmp_path / "users-folder"
    in_dir = place(tiny_r1, linked_dir / "indir-Q8_0.gguf")
    os.symlink(linked_dir, paths.models_dir() / "dir", target_is_directory=True)
    runner = CliRunner()
    assert runner.invoke(cli, ["models", "scan"]).exit_code == 0
    db = open_db()
    Library(db).register(paths.models_dir() / "dir" / "indir-Q8_0.gguf")
    db.conn.close()

    removed = runner.invoke(cli, ["models", "rm", "linked-Q8_0", "--delete-files"])
    assert removed.exit_code == 0, removed.output
    assert target.exists() and not os.path.lexists(link)
    assert "Deleted 1 file(s), 0 B freed." in removed.output
    assert f"Kept {target}: a link pointed to it" in removed.output
    removed = runner.invoke(cli, ["models", "rm", "indir-Q8_0", "--delete-files"])
    assert removed.exit_code == 0, removed.output
    assert in_dir.exists() and "Deleted" not in removed.output
    assert f"Kept {paths.models_dir() / 'dir' / 'indir-Q8_0.gguf'}: it is outside r1desk's folders." in removed.output


def test_split_model_is_one_entry_through_its_first_part(lib: Library, tiny_split: list[Path], tmp_path: Path) -> None:
    parts = [place(p, tmp_path / "s" / p.name) for p in tiny_split]
    model = lib.register(parts[0])
    assert model.name == "tiny-r1-Q8_0"
    assert model.parts == [str(p) for p in parts]
    assert model.size == sum(p.stat().st_size for p in parts)
    assert model.parameters == sum(read_header(p).parameter_count for p in parts)
    with pytest.raises(CorruptModel, match="open the first part"):
        lib.register(parts[1])
    parts[2].unlink()
    with pytest.raises(ModelNotFound, match="part 3 of 3 is missing"):
        inspect_model(parts[0])
    assert lib.list()[0].status == "missing"


def test_hash_cache_follows_the_file(lib: Library, tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    lib.remember_sha256(f, "f" * 64)
    assert lib.known_sha256(f) == "f" * 64
    f.write_bytes(b"abcd")
    assert lib.known_sha256(f) is None, "a changed file is hashed again"


# ---------------------------------------------------------------------------------------
# Scanning.


def test_scan_finds_models_of_every_app_without_copying(
    lib: Library, tiny_r1: Path, tiny_split: list[Path], tiny_sha: str, other_apps: Path, tmp_path: Path,
) -> None:
    own = place(tiny_r1, paths.models_dir() / "own-Q8_0.gguf")
    (paths.models_dir() / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 40)
    snapshot = hf_cache_entry({"tiny-r1-Q8_0.gguf": place(tiny_r1, tmp_path / "hf-src.gguf"),
                               **{p.name: p for p in tiny_split}}, repo="org/tiny-GGUF")
    lm = place(tiny_r1, other_apps / ".lmstudio" / "models" / "lmstudio-community" / "tiny-GGUF" / "tiny-Q8_0.gguf")
    blob = ollama_store(place(tiny_r1, tmp_path / "ollama-src.gguf"), tiny_sha)
    # A manifest whose digest tries to leave the blob store is ignored.
    evil = paths.ollama_models_dir() / "manifests" / "registry.ollama.ai" / "library" / "evil" / "latest"
    evil.parent.mkdir(parents=True)
    evil.write_text(json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model",
                                            "digest": "sha256:../../../../etc/passwd"}]}))

    report = lib.scan()
    found = {m.name: m for m in lib.list()}
    assert set(found) == {"own-Q8_0", "tiny-r1-Q8_0", "tiny-r1-Q8_0-2", "tiny-Q8_0", "tinyr1:latest"}
    by_path = {m.path: m for m in found.values()}
    assert by_path[str(own)].origin == "local"
    hf = by_path[str(snapshot / "tiny-r1-Q8_0.gguf")]
    assert (hf.origin, hf.source_repo, hf.source_revision) == ("hf-cache", "org/tiny-GGUF", "c" * 40)
    split = by_path[str(snapshot / tiny_split[0].name)]
    assert len(split.parts) == 3, "the split set is one entry"
    assert (by_path[str(lm)].origin, by_path[str(lm)].source_repo) == ("lmstudio", "lmstudio-community/tiny-GGUF")
    ollama = found["tinyr1:latest"]
    assert (ollama.path, ollama.origin, ollama.sha256) == (str(blob), "ollama", tiny_sha)
    assert ollama.source_repo == "registry.ollama.ai/library/tinyr1"
    assert [Path(p).name for p, _ in report.skipped] == ["broken.gguf"]
    assert {k for k, _ in report.roots} == {"r1desk", "hf", "lmstudio", "ollama"}

    again = lib.scan()
    assert again.added == [] and len(lib.list()) == 5, "a second scan adds nothing"

    lm.unlink()
    report = lib.scan()
    assert [m.name for m in report.missing] == ["tiny-Q8_0"]
    assert lib.get("tiny-Q8_0").status == "missing"


def test_the_same_file_seen_twice_is_one_entry(lib: Library, tiny_r1: Path, other_apps: Path) -> None:
    target = place(tiny_r1, paths.models_dir() / "one.gguf")
    link = other_apps / ".lmstudio" / "models" / "p" / "r" / "one.gguf"
    link.parent.mkdir(parents=True)
    os.symlink(target, link)
    lib.scan()
    assert [m.path for m in lib.list()] == [str(target)]


def test_models_command_shows_hf_cache_and_ollama_models(tiny_r1: Path, tiny_sha: str, tmp_path: Path) -> None:
    snapshot = hf_cache_entry({"tiny-r1-Q8_0.gguf": tiny_r1})
    blob = ollama_store(place(tiny_r1, tmp_path / "o.gguf"), tiny_sha)
    runner = CliRunner()
    scanned = runner.invoke(cli, ["models", "scan"])
    assert scanned.exit_code == 0, scanned.output
    assert "2 added" in scanned.output

    listed = runner.invoke(cli, ["models", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.output)}
    assert rows["tiny-r1-Q8_0"]["path"] == str(snapshot / "tiny-r1-Q8_0.gguf")
    assert rows["tiny-r1-Q8_0"]["origin"] == "hf-cache" and rows["tiny-r1-Q8_0"]["quant"] == "Q8_0"
    assert rows["tinyr1:latest"]["path"] == str(blob) and rows["tinyr1:latest"]["origin"] == "ollama"

    table = runner.invoke(cli, ["models"])
    assert "tiny-r1-Q8_0" in table.output and "tinyr1:latest" in table.output and "ollama" in table.output

    removed = runner.invoke(cli, ["models", "rm", "tinyr1:latest", "--delete-files"])
    assert removed.exit_code == 0 and "belongs to ollama and was kept" in removed.output
    assert blob.exists()
    missing = runner.invoke(cli, ["models", "rm", "nothing-here"])
    assert missing.exit_code == 1 and "Error: no model named 'nothing-here'" in missing.output
