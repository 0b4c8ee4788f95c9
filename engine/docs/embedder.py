"""The embedding model as the document index uses it: vectors for chunks and questions, token counts, and a name for the vectors.

The model runs in a model process of its own (``ModelHost`` loaded with ``embedding=True``),
never in the app's process. Vectors from two models cannot be compared, so every vector the
index keeps is labelled with ``model_id``: the model file's name, size and vector width.

Some models read questions and passages differently: Qwen3-Embedding expects an instruction
before a question, nomic-embed a "search_query: " prefix. ``query_prefix`` and
``document_prefix`` carry that (the catalog knows them for the models it offers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from r1desk.engine.errors import CollectionError
from r1desk.engine.events import CancelToken

# The setting naming the embedding model new collections use (a library name or a path).
DEFAULT_SETTING = "docs.embedding_model"
# Where each embedding model that made vectors was loaded from, by ``model_id`` (so a search
# finds the model of a collection indexed with a file that is not in the library).
FILES_SETTING = "docs.embedding_files"

# Prefixes of embedding model families outside r1desk's catalog, by a piece of their file name.
KNOWN_PREFIXES: dict[str, tuple[str, str]] = {
    "nomic-embed": ("search_query: ", "search_document: "),
    "multilingual-e5": ("query: ", "passage: "),
    "e5-": ("query: ", "passage: "),
}


class Embedder(Protocol):
    """What the index needs from an embedding model."""

    model_id: str
    dim: int
    max_tokens: int

    def embed_documents(self, texts: list[str], token: CancelToken | None = None) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...


def model_id_for(path: str | os.PathLike, size: int, dim: int) -> str:
    return f"{Path(path).name} ({size} bytes, {dim} dimensions)"


def model_file(db: Any, name: str | None = None, collection: Any = None) -> Path | None:
    """The embedding model file to use: ``name`` (a library name or a path) if given, else the
    one that made ``collection``'s vectors while it is still there, else the default setting;
    None when there is none (full-text search only)."""
    from r1desk.engine.db.database import get_setting
    from r1desk.engine.models.library import Library

    library = Library(db)
    if name:
        return library.resolve(name)
    made = getattr(collection, "embedding_model", None)
    if made:
        known = (get_setting(db, FILES_SETTING) or {}).get(made)
        if known and Path(known).is_file() and model_id_for(known, Path(known).stat().st_size, _dim_in(made)) == made:
            return Path(known)
        for model in library.list(refresh=False):
            if model_id_for(model.path, int(model.size or 0), _dim_in(made)) == made and Path(model.path).exists():
                return Path(model.path)
    default = get_setting(db, DEFAULT_SETTING)
    return library.resolve(default) if default else None


def remember(db: Any, embedder: "HostEmbedder") -> None:
    """Note where ``embedder``'s model file is, for searches of the collections it embeds;
    the first embedding model used becomes the default one."""
    from r1desk.engine.db.database import change_setting, get_setting, set_setting

    path = str(Path(embedder.host.info.path).resolve())
    change_setting(db, FILES_SETTING, lambda known: {**(known or {}), embedder.model_id: path}, {})
    if not get_setting(db, DEFAULT_SETTING):
        set_setting(db, DEFAULT_SETTING, path)


def _dim_in(model_id: str) -> int:
    try:
        return int(model_id.rsplit(", ", 1)[1].split()[0])
    except (IndexError, ValueError):
        return 0


def prefixes_for(path: str | os.PathLike) -> tuple[str, str]:
    """(query prefix, document prefix) for the embedding model in ``path``: the catalog's for its
    models (any uploader's file of them), else those of a known family, else none."""
    from r1desk.engine.models.catalog import embedding_entry, load

    name = Path(path).name.lower()
    catalog = load()
    entry = embedding_entry(name, catalog) or next(
        (m for m in catalog.embedding_models if name.startswith(m.name.lower() + "-")), None)
    if entry is not None:
        return entry.query_prefix, entry.document_prefix
    for piece, prefixes in KNOWN_PREFIXES.items():
        if piece in name:
            return prefixes
    return "", ""


@dataclass
class HostEmbedder:
    """An ``Embedder`` over a model host that has an embedding model loaded."""

    host: Any  # engine.inference.host.ModelHost
    query_prefix: str = ""
    document_prefix: str = ""

    def __post_init__(self) -> None:
        info = self.host.info
        if info is None or not getattr(info, "is_embedding", False):
            name = getattr(info, "name", "the model")
            raise CollectionError(f"{name} is not loaded as an embedding model",
                                  facts={"code": "not-embedding-model", "model": name})
        self.dim = int(info.embedding_length)
        self.model_id = model_id_for(info.path, int(info.file_size or 0), self.dim)
        self.name = Path(info.path).name
        # The model process cuts a text to one batch; chunks are sized to fit it.
        self.max_tokens = int((info.options or {}).get("n_ctx") or info.n_ctx or 512)
        self.max_tokens = min(self.max_tokens, int(info.n_ctx_train or self.max_tokens), 8192)

    @classmethod
    def load(cls, path: str | os.PathLike, *, n_threads: int | None = None, host: Any = None) -> "HostEmbedder":
        """Load the embedding model at ``path`` into a model process of its own (or ``host``)."""
        from r1desk.engine.inference.host import LoadOptions, ModelHost

        host = host or ModelHost()
        host.load(path, LoadOptions(embedding=True, n_threads=n_threads))
        query, document = prefixes_for(path)
        return cls(host, query_prefix=query, document_prefix=document)

    def embed_documents(self, texts: list[str], token: CancelToken | None = None) -> np.ndarray:
        if self.document_prefix:
            texts = [self.document_prefix + t for t in texts]
        return self.host.embed(list(texts), token=token)

    def embed_query(self, text: str) -> np.ndarray:
        return self.host.embed([self.query_prefix + text])[0]

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.host.count_tokens_of(list(texts))

    @property
    def reserve_tokens(self) -> int:
        """Tokens the document prefix takes from every chunk."""
        if not self.document_prefix:
            return 0
        with_prefix, bare = self.count_tokens([self.document_prefix, ""])
        return with_prefix - bare

    def close(self) -> None:
        self.host.close()
