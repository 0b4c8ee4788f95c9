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

# Prefixes known for embedding models, by a piece of their file name (lower case).
KNOWN_PREFIXES: dict[str, tuple[str, str]] = {
    "qwen3-embedding": ("Instruct: Given a question, retrieve passages of the user's documents that answer it\nQuery:", ""),
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


def prefixes_for(path: str | os.PathLike) -> tuple[str, str]:
    name = Path(path).name.lower()
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
