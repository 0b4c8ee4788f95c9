"""Errors the user can act on, kept apart from bugs; they become words only at the edge."""

from __future__ import annotations


class R1deskError(Exception):
    """Something the user can fix or must be told about; ``str()`` is a one-line message."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None, facts: dict | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint
        # What happened as data (a cause code, a server, a size), so an edge can say it in the
        # user's language; ``str()`` stays the English line for the command line and logs.
        self.facts: dict = dict(facts or {})

    def __str__(self) -> str:  # one line, always
        text = " ".join(str(self.args[0]).split()) if self.args else self.__class__.__name__
        return text


class ModelNotFound(R1deskError):
    """The named model is neither a file nor in the library."""


class CorruptModel(R1deskError):
    """The GGUF file is damaged (truncated, absurd sizes...). ``downloaded``: r1desk fetched it."""

    downloaded: bool = False


class NotAModel(CorruptModel):
    """The file never was a GGUF model: text, a folder, another format, an adapter."""


class ModelLoadFailed(R1deskError):
    """llama.cpp could not load the model (or its process died while loading)."""


class HostCrashed(R1deskError):
    """The model process died (llama.cpp abort, out of memory); a new load will start a fresh one."""

    reason: str = "stopped"  # how it ended, e.g. "was killed (SIGKILL; ...)"


class TemplateError(R1deskError):
    """The chat template could not be rendered (broken, hostile or too slow)."""


class NotEnoughMemory(R1deskError):
    """The model with these settings does not fit the machine."""


class ContextOverflow(R1deskError):
    """The message is too long for the model's context even after dropping older turns."""


class DatabaseError(R1deskError):
    """The history database is unusable (newer version, corrupt, read-only, locked)."""


class NotFound(R1deskError):
    """A conversation, message or other record does not exist."""


class Offline(R1deskError):
    """The model hub (or mirror) could not be reached."""


class DiskFull(R1deskError):
    """Not enough free disk space for the operation."""


class DownloadError(R1deskError):
    """A download failed verification or was refused."""


class Cancelled(R1deskError):
    """The user cancelled the operation."""


class ConversionError(R1deskError):
    """A conversion (re-quantising) was refused as pointless or harmful, or it failed."""


class AdapterError(R1deskError):
    """A LoRA adapter cannot be imported, or does not fit the model it is to be applied to.

    ``facts["code"]`` says which: not-lora, wrong-architecture, wrong-shape, wrong-layers,
    unsupported, duplicate, no-such-adapter, rejected (llama.cpp refused it).
    """


class DocumentError(R1deskError):
    """A document cannot be read for the index; ``facts["code"]`` is one of ``engine.docs.extract.PROBLEMS``."""


class CollectionError(R1deskError):
    """A collection of documents cannot do what was asked.

    ``facts["code"]`` says why: bad-collection-name, no-such-path, no-vectors (vector search
    in a collection indexed without an embedding model), other-embedding-model (the query's
    model is not the one that made the collection's vectors), not-embedding-model.
    """
