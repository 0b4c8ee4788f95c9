"""The models r1desk knows, by name: downloaded ones and GGUF files other apps already put on disk.

Rows live in the ``models`` table. Files are never copied: a model found in the Hugging Face
cache, LM Studio's folder or Ollama's blob store is used where it lies, and a file that has gone
away is marked missing rather than breaking the list. A split model (``-00001-of-00003.gguf``)
is one entry, addressed through its first part, which is how llama.cpp loads it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import sqlite_utils

from r1desk.engine import paths
from r1desk.engine.db.database import open_db, transaction
from r1desk.engine.errors import CorruptModel, ModelNotFound
from r1desk.engine.gguf import quants, splits
from r1desk.engine.gguf.header import ArraySummary, GGUFInfo, check_model, read_header

OLLAMA_MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
OLLAMA_DIGEST_RE = re.compile(r"sha256[:-]([0-9a-f]{64})")
MAX_MANIFEST_BYTES = 1 << 20
STATUSES = ("ready", "missing", "corrupt")


@dataclass
class Model:
    """One row of the library."""

    id: int
    name: str
    path: str
    status: str
    origin: str
    architecture: str | None = None
    parameters: int | None = None
    quant: str | None = None
    size: int | None = None
    context_length: int | None = None
    template_sha256: str | None = None
    sha256: str | None = None
    source_repo: str | None = None
    source_file: str | None = None
    source_revision: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    added_at: float = 0.0
    last_used_at: float | None = None

    @property
    def parts(self) -> list[str]:
        """Every file of the model; the first is what llama.cpp is given."""
        return list(self.metadata.get("parts") or [self.path])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Model":
        known = {f.name for f in fields(cls)}  # columns a later migration adds are ignored here
        data = {k: v for k, v in row.items() if k in known}
        data["metadata"] = json.loads(data.get("metadata") or "{}")
        return cls(**data)


@dataclass
class ScanReport:
    """What a scan found: new entries, entries whose file is gone, files it would not register."""

    added: list[Model] = field(default_factory=list)
    updated: list[Model] = field(default_factory=list)
    missing: list[Model] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    roots: list[tuple[str, str]] = field(default_factory=list)  # (kind, folder) that existed

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [m.to_dict() for m in self.added],
            "updated": [m.to_dict() for m in self.updated],
            "missing": [m.to_dict() for m in self.missing],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "roots": [{"kind": k, "path": p} for k, p in self.roots],
        }


# ---------------------------------------------------------------------------------------
# Where other tools keep GGUF files (the folders themselves are engine.paths').


def default_roots() -> list[tuple[str, Path]]:
    """(kind, folder) pairs that ``scan`` looks in by default."""
    return [
        ("r1desk", paths.models_dir()),
        ("hf", paths.hf_cache_dir()),
        ("lmstudio", paths.lmstudio_models_dir()),
        ("lmstudio", paths.lmstudio_legacy_models_dir()),
        ("ollama", paths.ollama_models_dir()),
    ]


# ---------------------------------------------------------------------------------------
# Reading a model's facts from its header(s).


def split_parts(first: Path, count: int) -> list[Path]:
    names = splits.part_names(first.name, count)
    if names is None:
        raise CorruptModel(
            f"{first}: the file says it is part 1 of a {count}-part model, but its name does not end "
            "in -00001-of-0000N.gguf, so llama.cpp cannot find the other parts"
        )
    return [first.with_name(name) for name in names]


def _plain_metadata(info: GGUFInfo) -> dict[str, Any]:
    """Scalar facts worth keeping (not the vocabulary, not the template text)."""
    out: dict[str, Any] = {}
    for key, value in info.metadata.items():
        if key.startswith("tokenizer.") or key == "tokenizer.chat_template":
            continue
        if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 512):
            out[key] = value
    vocab = info.vocab_size
    if vocab:
        out["tokenizer.vocab_size"] = vocab
    out["tokenizer.model"] = info.metadata.get("tokenizer.ggml.model")
    return out


@dataclass
class Inspection:
    """What the header(s) of a model say, gathered for the library row."""

    info: GGUFInfo
    parts: list[Path]
    size: int
    parameters: int

    def fields(self) -> dict[str, Any]:
        info = self.info
        first = self.parts[0]
        return {
            "architecture": info.architecture,
            "parameters": self.parameters,
            "quant": quants.from_file_type(info.file_type) or quants.from_filename(first.name),
            "size": self.size,
            "context_length": info.context_length,
            "template_sha256": info.template_sha256(),
        }


def inspect_model(path: str | os.PathLike) -> Inspection:
    """Check a model file (every part of a split model) without loading it."""
    first = Path(path)
    if not first.exists():
        raise ModelNotFound(f"{first}: no such file")
    header = read_header(first, keep=("tokenizer.ggml.tokens",))
    count = int(header.metadata.get("split.count", 1) or 1)
    if count > 1 and int(header.metadata.get("split.no", 0)) != 0:
        raise CorruptModel(f"{first}: is part {int(header.metadata['split.no']) + 1} of a split model; "
                           "open the first part (-00001-of-...)")
    if count > 1 and not header.tensors:
        # A first part holding only metadata: check what check_model would, minus the tensors.
        tokens = header.metadata.get("tokenizer.ggml.tokens")
        if "general.architecture" not in header.metadata or not isinstance(tokens, list) or not tokens:
            raise CorruptModel(f"{first}: not a model file (no architecture or vocabulary)")
        info = header
        info.metadata["tokenizer.ggml.tokens"] = ArraySummary(8, len(tokens))
    else:
        info = check_model(first)
    parts = [first] if count == 1 else split_parts(first, count)
    size = first.stat().st_size
    parameters = info.parameter_count
    n_tensors = len(info.tensors)
    for i, part in enumerate(parts[1:], start=2):
        if not part.exists():
            raise ModelNotFound(f"{first}: part {i} of {count} is missing ({part.name})")
        h = read_header(part)
        if int(h.metadata.get("split.no", -1)) != i - 1 or int(h.metadata.get("split.count", 0)) != count:
            raise CorruptModel(f"{part}: is not part {i} of {count} of {first.name}")
        size += part.stat().st_size
        parameters += h.parameter_count
        n_tensors += len(h.tensors)
    expected = header.metadata.get("split.tensors.count")
    if count > 1 and expected is not None and int(expected) != n_tensors:
        raise CorruptModel(f"{first}: the parts hold {n_tensors} tensors, the model needs {int(expected)}")
    return Inspection(info, parts, size, parameters)


def default_name(path: Path) -> str:
    name = path.name
    split = splits.parse(name)
    if split is not None:
        return split.prefix
    return name[:-5] if name.lower().endswith(".gguf") else name


# ---------------------------------------------------------------------------------------
# The library itself.


class Library:
    """The ``models`` table, plus the cache of file hashes."""

    def __init__(self, db: sqlite_utils.Database | None = None):
        self.db = db if db is not None else open_db()

    # -- reading -------------------------------------------------------------------------
    def _rows(self, where: str = "", params: Iterable[Any] = ()) -> list[Model]:
        cursor = self.db.execute(f"SELECT * FROM models {where}", list(params))
        cols = [c[0] for c in cursor.description]
        return [Model.from_row(dict(zip(cols, row))) for row in cursor.fetchall()]

    def list(self, *, refresh: bool = True) -> list[Model]:
        """Every model, ordered by name; ``refresh`` first re-checks that their files still exist."""
        if refresh:
            self.refresh()
        return self._rows("ORDER BY name COLLATE NOCASE")

    def get(self, name: str) -> Model:
        found = self._rows("WHERE name = ?", [name])
        if not found:
            raise self._not_found(name)
        return found[0]

    def by_path(self, path: str | os.PathLike) -> Model | None:
        found = self._rows("WHERE path = ?", [str(_absolute(path))])
        return found[0] if found else None

    def find(self, name_or_path: str) -> Model | None:
        """The entry meant by a name, ``repo:QUANT``, a unique prefix, or a path; None if none."""
        text = name_or_path.strip()
        for where, params in (
            ("WHERE name = ?", [text]),
            ("WHERE name = ? COLLATE NOCASE", [text]),
            ("WHERE path = ?", [str(_absolute(text))] if text else []),
        ):
            if params:
                rows = self._rows(where, params)
                if len(rows) == 1:
                    return rows[0]
        if ":" in text:
            repo, _, quant = text.rpartition(":")
            rows = self._rows("WHERE source_repo = ? COLLATE NOCASE AND quant = ? COLLATE NOCASE",
                              [repo, quant])
            if len(rows) == 1:
                return rows[0]
        rows = self._rows("WHERE source_repo = ? COLLATE NOCASE", [text])
        if len(rows) == 1:
            return rows[0]
        rows = [m for m in self._rows() if m.name.lower().startswith(text.lower())]
        return rows[0] if len(rows) == 1 else None

    def resolve(self, name_or_path: str | os.PathLike) -> Path:
        """The file to hand llama.cpp for a model name (or a path, returned as is when it exists)."""
        text = str(name_or_path)
        candidate = Path(text).expanduser()
        if candidate.is_file():
            return _absolute(candidate)
        model = self.find(text)
        if model is None:
            if candidate.suffix.lower() == ".gguf" or os.sep in text:
                raise ModelNotFound(f"{text}: no such file")
            raise self._not_found(text)
        missing = [p for p in model.parts if not Path(p).exists()]
        if missing:
            self._set_status(model, "missing")
            raise ModelNotFound(
                f"model {model.name}: its file {missing[0]} is missing (moved or deleted)",
                hint="run `r1desk models scan`, or pull it again",
            )
        if model.status == "corrupt":
            raise CorruptModel(f"model {model.name}: {model.metadata.get('error') or 'the file is damaged'}",
                               hint="delete it and pull it again")
        with transaction(self.db):
            self.db.execute("UPDATE models SET last_used_at = ?, status = 'ready' WHERE id = ?",
                            [time.time(), model.id])
        return Path(model.path)

    def _not_found(self, name: str) -> ModelNotFound:
        names = [m.name for m in self._rows()]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        if close:
            return ModelNotFound(f"no model named {name!r}; did you mean {', '.join(close)}?")
        return ModelNotFound(f"no model named {name!r} in the library",
                             hint="`r1desk models` lists them; `r1desk pull REPO` downloads one")

    # -- writing -------------------------------------------------------------------------
    def register(
        self,
        path: str | os.PathLike,
        *,
        name: str | None = None,
        origin: str = "local",
        source_repo: str | None = None,
        source_file: str | None = None,
        source_revision: str | None = None,
        sha256: str | None = None,
        metadata: dict[str, Any] | None = None,
        inspection: Inspection | None = None,
    ) -> Model:
        """Add (or update) the model at ``path``; raises CorruptModel for files that are not models."""
        path = _absolute(path)
        found = inspection or inspect_model(path)
        meta = _plain_metadata(found.info)
        stat = path.stat()
        meta.update({"mtime_ns": stat.st_mtime_ns, "file_size": stat.st_size})
        if len(found.parts) > 1:
            meta["parts"] = [str(p) for p in found.parts]
        meta.update(metadata or {})
        if sha256 is None:
            sha256 = self.known_sha256(path)
        values = found.fields() | {
            "path": str(path), "status": "ready", "origin": origin, "sha256": sha256,
            "source_repo": source_repo, "source_file": source_file, "source_revision": source_revision,
            "metadata": json.dumps(meta, ensure_ascii=False),
        }
        with transaction(self.db):
            existing = self.by_path(path)
            if existing is not None:
                if name and name != existing.name:
                    values["name"] = self._unique_name(name, exclude=existing.id)
                keep = {k: v for k, v in values.items() if v is not None or k in ("status",)}
                sets = ", ".join(f"{k} = ?" for k in keep)
                self.db.execute(f"UPDATE models SET {sets} WHERE id = ?", [*keep.values(), existing.id])
                model_id = existing.id
            else:
                values["name"] = self._unique_name(name or default_name(path))
                values["added_at"] = time.time()
                cols = ", ".join(values)
                marks = ", ".join("?" for _ in values)
                cursor = self.db.execute(f"INSERT INTO models ({cols}) VALUES ({marks})", list(values.values()))
                model_id = cursor.lastrowid
        return self._rows("WHERE id = ?", [model_id])[0]

    def _unique_name(self, wanted: str, exclude: int | None = None) -> str:
        wanted = " ".join(wanted.split()) or "model"
        taken = {m.name.lower() for m in self._rows() if m.id != exclude}
        if wanted.lower() not in taken:
            return wanted
        n = 2
        while f"{wanted}-{n}".lower() in taken:
            n += 1
        return f"{wanted}-{n}"

    def rename(self, name: str, new_name: str) -> Model:
        with transaction(self.db):  # the names taken are read under the write lock
            model = self.get(name)
            self.db.execute("UPDATE models SET name = ? WHERE id = ?",
                            [self._unique_name(new_name, exclude=model.id), model.id])
        return self._rows("WHERE id = ?", [model.id])[0]

    def remove(self, name: str, *, delete_files: bool = False) -> Removal:
        """Forget a model; with ``delete_files``, also delete the files r1desk wrote for it.

        Only regular files inside r1desk's models folder and Hugging Face cache blobs that
        r1desk downloaded are deleted. A link is unlinked (when it lies in r1desk's folder),
        never followed: what it points to stays. Other apps' files (Ollama, LM Studio, a Hugging
        Face cache r1desk did not fill) and files elsewhere are kept; the result says which and why.
        """
        with transaction(self.db):
            model = self.get(name)
            self.db.execute("DELETE FROM models WHERE id = ?", [model.id])
        removal = Removal(model)
        for part in model.parts:
            if delete_files:
                _delete_model_file(Path(part), model.origin, removal)
        return removal

    def owns_files(self, model: Model) -> bool:
        """Whether ``remove(..., delete_files=True)`` would delete every file of this model."""
        return all(_deletion_plan(Path(p), model.origin)[0] in ("file", "hf-link") for p in model.parts)

    def _set_status(self, model: Model, status: str, error: str | None = None) -> None:
        with transaction(self.db):
            # The row as it is now, not as ``model`` was read: another process's change is kept.
            row = self.db.execute("SELECT metadata FROM models WHERE id = ?", [model.id]).fetchone()
            if row is None:
                return
            meta = json.loads(row[0] or "{}")
            if error:
                meta["error"] = error
            else:
                meta.pop("error", None)
            self.db.execute("UPDATE models SET status = ?, metadata = ? WHERE id = ?",
                            [status, json.dumps(meta, ensure_ascii=False), model.id])
        model.status = status
        model.metadata = meta

    def refresh(self) -> list[Model]:
        """Mark entries whose files are gone as missing (and back to ready when they return)."""
        changed = []
        for model in self._rows():
            exists = all(Path(p).exists() for p in model.parts)
            if not exists and model.status != "missing":
                self._set_status(model, "missing")
                changed.append(model)
            elif exists and model.status == "missing":
                try:
                    self.register(model.path, origin=model.origin, source_repo=model.source_repo,
                                  source_file=model.source_file, source_revision=model.source_revision)
                except (CorruptModel, ModelNotFound) as exc:
                    self._set_status(model, "corrupt", str(exc))
                changed.append(model)
        return changed

    def touch(self, name: str) -> None:
        with transaction(self.db):
            self.db.execute("UPDATE models SET last_used_at = ? WHERE name = ?", [time.time(), name])

    # -- hashes --------------------------------------------------------------------------
    def known_sha256(self, path: str | os.PathLike) -> str | None:
        """The sha256 computed earlier for this file, if it has not changed since."""
        try:
            real = Path(path).resolve()
            stat = real.stat()
        except OSError:
            return None
        row = self.db.execute("SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
                              [str(real), stat.st_size, stat.st_mtime_ns]).fetchone()
        return row[0] if row else None

    def remember_sha256(self, path: str | os.PathLike, sha256: str) -> None:
        real = Path(path).resolve()
        stat = real.stat()
        with transaction(self.db):
            self.db.execute(
                "INSERT INTO file_hashes (path, size, mtime_ns, sha256, checked_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "sha256 = excluded.sha256, checked_at = excluded.checked_at",
                [str(real), stat.st_size, stat.st_mtime_ns, sha256, time.time()],
            )

    # -- scanning ------------------------------------------------------------------------
    def scan(self, roots: Iterable[tuple[str, str | os.PathLike]] | None = None) -> ScanReport:
        """Register GGUF models found in r1desk's folder, the HF cache, LM Studio and Ollama."""
        report = ScanReport()
        known = {m.path: m for m in self._rows()}
        seen_real = {str(Path(p).resolve()) for m in known.values() for p in m.parts if Path(p).exists()}
        for kind, root in (roots if roots is not None else default_roots()):
            root = Path(root).expanduser()
            if not root.is_dir():
                continue
            report.roots.append((kind, str(root)))
            finder = _FINDERS[kind]
            for found in finder(root):
                self._scan_one(found, known, seen_real, report)
        report.missing = [m for m in self.refresh() if m.status == "missing"]
        return report

    def _scan_one(self, found: "_Found", known: dict[str, Model], seen_real: set[str], report: ScanReport) -> None:
        path = _absolute(found.path)
        existing = known.get(str(path))
        try:
            stat = path.stat()
        except OSError as exc:
            report.skipped.append((str(path), f"cannot read ({exc.strerror})"))
            return
        if existing is not None:
            unchanged = (existing.status == "ready" and existing.metadata.get("file_size") == stat.st_size
                         and existing.metadata.get("mtime_ns") == stat.st_mtime_ns)
            if unchanged:
                return
        elif str(path.resolve()) in seen_real:
            return  # the same file is already in the library under another path
        try:
            inspection = inspect_model(path)
        except (CorruptModel, ModelNotFound) as exc:
            if existing is not None:
                self._set_status(existing, "corrupt", str(exc))
                report.updated.append(existing)
            else:
                report.skipped.append((str(path), str(exc)))
            return
        model = self.register(
            path, name=None if existing else found.name, origin=found.origin, source_repo=found.source_repo,
            source_file=found.source_file, source_revision=found.source_revision, sha256=found.sha256,
            inspection=inspection,
        )
        if found.sha256:
            self._remember_claimed(path, found.sha256)
        known[model.path] = model
        seen_real.update(str(Path(p).resolve()) for p in model.parts)
        (report.updated if existing else report.added).append(model)

    def _remember_claimed(self, path: Path, sha256: str) -> None:
        # Ollama checks each blob's digest when it pulls it; its digest is the file's sha256.
        if self.known_sha256(path) is None:
            self.remember_sha256(path, sha256)


# ---------------------------------------------------------------------------------------
# Finders: what each kind of folder holds.


@dataclass
class _Found:
    path: Path
    origin: str
    name: str | None = None
    source_repo: str | None = None
    source_file: str | None = None
    source_revision: str | None = None
    sha256: str | None = None


def _gguf_files(root: Path) -> Iterator[Path]:
    """``*.gguf`` under ``root`` (not following folder links), first parts of split models only."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if not filename.lower().endswith(".gguf"):
                continue
            split = splits.parse(filename)
            if split is not None and split.index != 1:
                continue
            yield Path(dirpath) / filename


def _find_plain(origin: str) -> Callable[[Path], Iterator[_Found]]:
    def finder(root: Path) -> Iterator[_Found]:
        for path in _gguf_files(root):
            repo = None
            rel = path.relative_to(root).parts
            if origin == "lmstudio" and len(rel) >= 3:  # models/<publisher>/<repo>/<file>
                repo = f"{rel[0]}/{rel[1]}"
            yield _Found(path, origin, source_repo=repo, source_file=path.name if repo else None)
    return finder


def _find_hf(root: Path) -> Iterator[_Found]:
    for repo_dir in sorted(root.glob("models--*")):
        parts = repo_dir.name.split("--")
        repo = "/".join(parts[1:]) if len(parts) > 1 else None
        snapshots = repo_dir / "snapshots"
        if not snapshots.is_dir():
            continue
        main = (repo_dir / "refs" / "main")
        main_commit = main.read_text().strip() if main.is_file() else None
        # Newest snapshot (the one main points to) first, so it wins when several hold the same blob.
        ordered = sorted(snapshots.iterdir(), key=lambda d: (d.name != main_commit, d.name))
        for snap in ordered:
            if not snap.is_dir():
                continue
            for path in _gguf_files(snap):
                # The blob is named after the hub's sha256, but nothing checked the bytes against it
                # (huggingface_hub checks sizes only), so no hash is recorded here.
                yield _Found(path, "hf-cache", source_repo=repo, source_file=path.relative_to(snap).as_posix(),
                             source_revision=snap.name)


def _find_ollama(root: Path) -> Iterator[_Found]:
    manifests = root / "manifests"
    blobs = root / "blobs"
    if not manifests.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(manifests):
        dirnames.sort()
        for filename in sorted(filenames):
            manifest = Path(dirpath) / filename
            rel = manifest.relative_to(manifests).parts  # registry / namespace / model / tag
            try:
                if manifest.stat().st_size > MAX_MANIFEST_BYTES:
                    continue
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            layers = data.get("layers") if isinstance(data, dict) else None
            if not isinstance(layers, list):
                continue
            for layer in layers:
                if not isinstance(layer, dict) or layer.get("mediaType") != OLLAMA_MODEL_MEDIA_TYPE:
                    continue
                # A digest is trusted only as exactly sha256 + 64 hex digits: anything else could
                # point the blob path outside the store.
                m = OLLAMA_DIGEST_RE.fullmatch(str(layer.get("digest", "")))
                if not m:
                    continue
                digest = m.group(1)
                blob = blobs / f"sha256-{digest}"
                if not blob.exists() and (blobs / f"sha256:{digest}").exists():
                    blob = blobs / f"sha256:{digest}"
                yield _Found(blob, "ollama", name=_ollama_name(rel), source_repo=_ollama_repo(rel),
                             sha256=digest)


def _ollama_name(rel: tuple[str, ...]) -> str:
    if len(rel) < 2:
        return "/".join(rel)
    *repo, tag = rel
    if len(repo) == 3 and repo[0] == "registry.ollama.ai" and repo[1] == "library":
        return f"{repo[2]}:{tag}"
    if len(repo) == 3 and repo[0] == "registry.ollama.ai":
        return f"{repo[1]}/{repo[2]}:{tag}"
    return f"{'/'.join(repo)}:{tag}"


def _ollama_repo(rel: tuple[str, ...]) -> str:
    return "/".join(rel[:-1])


_FINDERS: dict[str, Callable[[Path], Iterator[_Found]]] = {
    "r1desk": _find_plain("local"),
    "local": _find_plain("local"),
    "lmstudio": _find_plain("lmstudio"),
    "hf": _find_hf,
    "ollama": _find_ollama,
}


# ---------------------------------------------------------------------------------------


def _absolute(path: str | os.PathLike) -> Path:
    # Not resolve(): a split model in the HF cache is a set of links named -0000N-of-0000M.gguf,
    # and llama.cpp finds the other parts from the first part's name, not from the blob's.
    return Path(os.path.abspath(Path(path).expanduser()))


def _is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` really lies in ``folder``: every link on the way followed, on both sides.

    So a file reached through a linked folder that points elsewhere is not "within".
    """
    try:
        Path(os.path.realpath(path)).relative_to(Path(os.path.realpath(folder)))
        return True
    except ValueError:
        return False


# Origins whose files are other apps' (or the user's Hugging Face cache, filled by another tool).
FOREIGN_ORIGINS = ("ollama", "lmstudio", "hf-cache")


@dataclass
class Removal:
    """What ``Library.remove`` did: the entry it forgot, what went from disk, what stayed and why."""

    model: Model
    deleted: list[Path] = field(default_factory=list)  # files and links removed, in order
    freed: int = 0  # bytes; removing a link frees nothing
    kept: list[tuple[Path, str]] = field(default_factory=list)  # (path, why it stayed)


def _hf_repo_dir(path: Path) -> Path | None:
    """The ``models--org--name`` folder of a Hugging Face cache snapshot file, or None."""
    for parent in path.parents:
        if parent.name.startswith("models--"):
            return parent if path.is_relative_to(parent / "snapshots") else None
    return None


def _deletion_plan(path: Path, origin: str) -> tuple[str, str]:
    """What deleting this model file may do, and why: ("file" | "hf-link" | "link" | "keep", reason).

    "file": a regular file r1desk wrote; "hf-link": a Hugging Face snapshot link to a blob r1desk
    downloaded (the link goes, the blob too once no snapshot uses it); "link": a link in r1desk's
    folder, unlinked while what it points to stays; "keep": left alone.
    """
    if origin in FOREIGN_ORIGINS:
        return "keep", f"it belongs to {origin}"
    if not os.path.lexists(path):
        return "keep", "it is already gone"
    repo_dir = _hf_repo_dir(path) if origin == "hub" else None
    if os.path.islink(path):
        if repo_dir is not None:
            blob = os.path.realpath(path)
            if (os.path.dirname(blob) == os.path.realpath(repo_dir / "blobs") and os.path.isfile(blob)
                    and not os.path.islink(blob)):
                return "hf-link", "a Hugging Face cache file r1desk downloaded"
        if _is_within(path.parent, paths.models_dir()):
            return "link", "a link in r1desk's models folder"
        return "keep", "a link r1desk did not make"
    if not os.path.isfile(path):
        return "keep", "not a regular file"
    if _is_within(path, paths.models_dir()):
        return "file", "a file in r1desk's models folder"
    if repo_dir is not None and _is_within(path, repo_dir / "snapshots"):
        return "file", "a Hugging Face cache file r1desk downloaded"  # a cache made without links
    return "keep", "it is outside r1desk's folders"


def _delete_model_file(path: Path, origin: str, removal: Removal) -> None:
    """Delete one file of a model if r1desk wrote it (see ``_deletion_plan``); record what happened."""
    action, why = _deletion_plan(path, origin)
    if action == "keep":
        if why != "it is already gone":
            removal.kept.append((path, why))
        return
    if action == "link":
        target = Path(os.path.realpath(path))
        if _unlink(path, removal):
            removal.kept.append((target, "a link pointed to it; r1desk never deletes what a link points to"))
        return
    if action == "file":
        _unlink(path, removal)
        return
    # A Hugging Face snapshot link: the link, then its blob once no other snapshot links to it.
    blob = Path(os.path.realpath(path))
    repo_dir = _hf_repo_dir(path)
    if not _unlink(path, removal) or repo_dir is None:
        return
    for dirpath, dirnames, filenames in os.walk(repo_dir / "snapshots"):
        for name in dirnames + filenames:
            other = os.path.join(dirpath, name)
            if os.path.islink(other) and os.path.realpath(other) == str(blob):
                return
    _unlink(blob, removal)


def _unlink(path: Path, removal: Removal) -> bool:
    """Remove one name (a link itself, never its target); a failure is recorded, not raised."""
    try:
        st = os.lstat(path)
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        removal.kept.append((path, f"it could not be deleted ({exc.strerror or exc})"))
        return False
    removal.deleted.append(path)
    if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:  # a link, or a name of a file with others, frees nothing
        removal.freed += st.st_size
    return True


def file_sha256(path: str | os.PathLike, *, chunk: int = 1 << 20,
                progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            data = fh.read(chunk)
            if not data:
                break
            digest.update(data)
            if progress is not None:
                progress(len(data))
    return digest.hexdigest()


def resolve(name_or_path: str | os.PathLike) -> Path:
    """The file to load for ``r1desk chat MODEL``: a path, or a name in the library."""
    db = open_db()
    try:
        return Library(db).resolve(name_or_path)
    finally:
        db.conn.close()
