"""Chatting with a model: history in, streamed events out, every reply saved as it streams.

``ChatService`` is what the GUI, the CLI and the API server call. It builds the prompt from the
conversation (earlier reasoning left out, R1's prompting rules applied), streams the model
host's output as events, and writes the reply to SQLite at least every half second, so a
killed process leaves the partial reply behind, marked interrupted.

A conversation may answer from collections of the user's documents: each reply then searches
them for the latest message, puts the passages that fit the context into that turn as quoted
data (engine/docs/answers.py), says which in a ``Sources`` event and saves them with the reply.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Sequence

from r1desk.engine.adapters.check import ModelShape, check_fits, model_shape
from r1desk.engine.adapters.store import Adapters
from r1desk.engine.chat.history import History
from r1desk.engine.docs import answers
from r1desk.engine.docs import store as doc_store
from r1desk.engine.docs.retrieval import Source, VectorCache, retrieve
from r1desk.engine.errors import (
    AdapterError,
    CorruptModel,
    HostCrashed,
    ModelLoadFailed,
    ModelNotFound,
    NotFound,
    R1deskError,
)
from r1desk.engine.events import (
    CancelToken,
    ChatError,
    ContentDelta,
    Loading,
    PromptProgress,
    PromptRead,
    Queued,
    ReasoningDelta,
    Sources,
    Started,
    Stats,
)
from r1desk.engine.inference.host import LoadOptions, ModelHost, ModelInfo
from r1desk.engine.inference.snapshots import DEFAULT_DISK_BUDGET, SnapshotStore

SAVE_INTERVAL_SECONDS = 0.5
MAX_ADAPTER_SCALE = 2.0  # an adapter's effect from 0 (off) to twice what it was trained to do

# DeepSeek's recommendation for the R1 distills: temperature 0.5-0.7 (0.6), top_p 0.95,
# no system prompt (instructions go into the user turn).
R1_DEFAULTS = {"temperature": 0.6, "top_p": 0.95, "top_k": 40, "min_p": 0.0, "repeat_penalty": 1.0}
GENERIC_DEFAULTS = {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.0}
# Answer tokens a reply may have unless the caller says otherwise (0: no limit). Without one a
# small model at temperature 0 can loop on one phrase until the context is full (SmolLM2-135M:
# 11 minutes for 8,192 tokens). R1's thinking is not counted: its budget is reasoning_budget.
DEFAULT_MAX_TOKENS = 2048
# Sources from the conversation's collections: they get what the context has left after the
# conversation and the reply's room; when the conversation already fills it, they still get up to
# a quarter of it and older turns make room (as for any long message). Under MIN_SOURCE_TOKENS
# not even one passage would fit.
SOURCES_FLOOR_FRACTION = 0.25
MIN_SOURCE_TOKENS = 64
COUNT_MARGIN = 1.1  # estimated token counts are raised this much; the whole prompt is counted exactly at the end
_GGUF_SAMPLING_KEYS = {"temp": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
                       "penalty_repeat": "repeat_penalty"}


@dataclass
class SamplingParams:
    """How to sample a reply; ``None`` means the model's recommended default."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    max_tokens: int | None = None  # answer tokens, thinking not counted; None: DEFAULT_MAX_TOKENS, 0: no limit
    seed: int | None = None
    reasoning_budget: int | None = None  # max thinking tokens; None = unlimited
    reasoning_seconds: float | None = None  # max thinking time from the first token; None = unlimited
    grammar: str | None = None  # GBNF the answer must follow (see engine.inference.structured)
    json_schema: dict | None = None  # the schema that grammar came from (a remote model takes this instead)

    def resolved(self, model: ModelInfo) -> dict[str, Any]:
        base = dict(R1_DEFAULTS if model.is_r1 else GENERIC_DEFAULTS)
        for key, name in _GGUF_SAMPLING_KEYS.items():
            if key in model.sampling:
                base[name] = model.sampling[key]
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        out = base | given
        if out.get("max_tokens") is None:
            out["max_tokens"] = DEFAULT_MAX_TOKENS
        out.setdefault("seed", None)
        out.setdefault("reasoning_budget", None)
        out.setdefault("reasoning_seconds", None)
        if out["reasoning_seconds"] is not None and float(out["reasoning_seconds"]) <= 0:
            raise R1deskError("the reasoning time budget must be more than 0 seconds")
        if out["temperature"] < 0 or not 0 < out["top_p"] <= 1:
            raise R1deskError("temperature must be >= 0 and top_p in (0, 1]")
        if int(out["max_tokens"]) < 0:
            raise R1deskError("the reply limit must be 0 (no limit) or more tokens")
        return out


def resolve_model(model: str | Path) -> Path:
    """A .gguf path, or the name of a model in the library."""
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise ModelNotFound(f"{model}: is a folder, not a GGUF file")
    from r1desk.engine.models import library

    return Path(library.resolve(str(model)))


def build_messages(history: list, *, r1: bool) -> list[dict[str, str]]:
    """The conversation as the model sees it: finished text only, reasoning left out."""
    out: list[dict[str, str]] = []
    for m in history:
        if m.role == "assistant":
            if m.status in ("error", "streaming") or not m.content.strip():
                continue
            out.append({"role": "assistant", "content": m.content})
        else:
            out.append({"role": m.role, "content": m.content})
    if r1:
        # R1 works best without a system prompt: its instructions lead the first user turn.
        system = "\n\n".join(m["content"] for m in out if m["role"] == "system" and m["content"].strip())
        out = [m for m in out if m["role"] != "system"]
        if system:
            for m in out:
                if m["role"] == "user":
                    m["content"] = f"{system}\n\n{m['content']}"
                    break
    # Templates expect alternating turns: merge consecutive messages of the same role.
    merged: list[dict[str, str]] = []
    for m in out:
        if merged and merged[-1]["role"] == m["role"] and m["role"] != "system":
            merged[-1] = {"role": m["role"], "content": merged[-1]["content"] + "\n\n" + m["content"]}
        else:
            merged.append(dict(m))
    return merged


def reply_room(resolved: dict[str, Any], n_ctx: int) -> int:
    """Tokens kept free for the answer, as the model process keeps them."""
    return min(resolved.get("max_tokens") or 1024, n_ctx // 4)


@dataclass
class Grounding:
    """A conversation made ready to answer from documents (see ``ChatService.with_sources``).

    ``history``: the conversation with its latest user message replaced by
    ``answers.documents_prompt`` (the question with its sources, quoted as data); ``query``: what
    was searched for; ``budget``: the tokens the sources could take.
    """

    history: list[Any]
    sources: list[Source]
    notes: list[str] = field(default_factory=list)
    query: str = ""
    budget: int = 0


class _Counter:
    """Token counts of the chat model for retrieval, at the cost of one or two calls to the model process.

    Retrieval counts passages many times over while it fits them to the budget; each exact count
    would be a round trip to the model process, which waits behind any reply being generated.
    So the first text of each kind (mostly Chinese, Japanese or Korean, or not) is counted
    exactly, and later ones are estimated at that ratio, raised by COUNT_MARGIN. The caller
    counts the finished prompt exactly.
    """

    def __init__(self, host: Any):
        self.exact = getattr(host, "count_tokens_of", None)
        self.ratio: dict[bool, float] = {}

    @staticmethod
    def _cjk(text: str) -> bool:
        return len(doc_store._CJK_RUN.sub("", text)) < len(text) * 0.7

    def __call__(self, texts: list[str]) -> list[int]:
        from r1desk.engine.docs.chunking import approx_tokens

        estimates = approx_tokens(list(texts))
        kinds = [self._cjk(t) for t in texts]
        todo = [i for i, k in enumerate(kinds) if k not in self.ratio]
        exact: dict[int, int] = {}
        if todo and self.exact is not None:
            counted = self.exact([texts[i] for i in todo])
            for i, n in zip(todo, counted):
                exact[i] = int(n)
            for kind in {kinds[i] for i in todo}:
                mine = [i for i in todo if kinds[i] == kind]
                self.ratio[kind] = max(sum(exact[i] for i in mine) / max(1, sum(estimates[i] for i in mine)), 0.05)
        return [exact[i] if i in exact else math.ceil(estimates[i] * self.ratio.get(kinds[i], 1.0) * COUNT_MARGIN)
                for i in range(len(texts))]


@dataclass
class Budget:
    """What sending a message would do, counted with the model's own tokenizer and template.

    ``outcome``: "fits"; "drops-older" (older turns will be left out to make room); "little-room"
    (the message fits alone, with less room to answer than asked); "too-long" (it cannot fit).
    """

    message_tokens: int  # the message alone, as one user turn
    prompt_tokens: int  # the whole conversation with it, as the model would read it
    n_ctx: int
    n_ctx_train: int
    reply_room: int  # tokens kept free for the answer
    outcome: str


class Reply:
    """One reply's event stream with its own ``cancel()``.

    Iterate it from any thread (one at a time); ``cancel()`` and ``close()`` work from any
    thread at any moment, before the first event included. Cancelling one reply never touches
    another caller's.
    """

    def __init__(self, make: Callable[[CancelToken], Iterator[Any]]):
        self.token = CancelToken()
        self._events = make(self.token)
        self._lock = threading.Lock()

    def __iter__(self) -> "Reply":
        return self

    def __next__(self) -> Any:
        with self._lock:
            return next(self._events)

    def cancel(self) -> None:
        """Stop this reply; its stream still ends with a ``Stats`` (``finish_reason="cancelled"``)."""
        self.token.cancel()

    def close(self) -> None:
        """Stop reading: cancel, and finish the stream now if no other thread is inside it."""
        self.token.cancel()
        if self._lock.acquire(blocking=False):
            try:
                self._events.close()
            finally:
                self._lock.release()


class ChatService:
    """Conversations with the loaded model, for any number of callers on any threads."""

    def __init__(self, history: History | None = None, host: ModelHost | None = None):
        self.history = history if history is not None else History()
        if host is None:
            host = ModelHost(snapshots=SnapshotStore(budget=self.snapshot_budget()))
        self.host = host
        self._local = host  # the model process; a remote model stands in its place while loaded
        self.history.forgotten.append(lambda session: self.host.forget(session))
        self.adapter_store = Adapters(self.history.db)
        self._shapes: dict[tuple[str, int, int], ModelShape] = {}
        # The embedding model for questions to the collections: its own model process, loaded
        # the first time a reply needs it and kept until the service closes.
        self._embedder: Any = None
        self._embedder_lock = threading.Lock()
        self._vectors = VectorCache()

    # Saved conversation state -------------------------------------------------------------
    def snapshot_budget(self) -> int:
        """Disk space conversations' saved KV state may take (the setting ``cache.kv_disk_bytes``)."""
        from r1desk.engine.db.database import get_setting

        return int(get_setting(self.history.db, "cache.kv_disk_bytes", DEFAULT_DISK_BUDGET))

    def set_snapshot_budget(self, nbytes: int) -> None:
        """Change the disk budget (0 turns saving off); the oldest snapshots over it go at once."""
        from r1desk.engine.db.database import set_setting

        if nbytes < 0:
            raise R1deskError("the space for saved conversation state must be 0 or more bytes")
        set_setting(self.history.db, "cache.kv_disk_bytes", int(nbytes))
        store = SnapshotStore(self._snapshot_folder(), int(nbytes))
        store.trim()
        self._local.set_snapshots(store)

    def snapshot_usage(self) -> tuple[int, int]:
        """(bytes, conversations) of saved KV state on disk."""
        store = self._local.snapshots
        return store.usage() if store is not None else (0, 0)

    def clear_snapshots(self) -> int:
        """Delete all saved KV state on disk (the model's memory keeps what it holds); bytes freed."""
        store = self._local.snapshots
        return store.clear() if store is not None else 0

    def _snapshot_folder(self):
        store = self._local.snapshots
        return store.folder if store is not None else None

    # Model --------------------------------------------------------------------------------
    def load_model(self, model: str | Path, options: LoadOptions | None = None, *,
                   remember: bool = False) -> ModelInfo:
        """Load a model file or library name; ``remember`` lists a file from elsewhere in the library.

        The model is then called by its library name (or its file name), the same name
        everywhere, not by the name written inside the file.
        """
        from r1desk.engine.chat import remotes
        from r1desk.engine.models.library import Library, default_name

        remote = remotes.get(str(model), self.history.db)
        if remote is not None or str(model).startswith(("http://", "https://")):
            return self._load_remote(remote or remotes.Remote(str(model), str(model)), options)
        if self.host is not self._local:
            self.host.close()
            self.host = self._local
        path = resolve_model(model)
        library = Library(self.history.db)
        try:
            info = self.host.load(path, options)
        except CorruptModel as exc:
            # "Download it again" is advice only for a file r1desk downloaded.
            known = library.by_path(path)
            exc.downloaded = known is not None and known.origin == "hub"
            raise
        known = library.by_path(info.path)
        if known is None and remember:
            try:
                known = library.register(info.path)
            except R1deskError:  # listing it is a convenience; the model is loaded anyway
                known = None
        info.name = known.name if known is not None else default_name(Path(info.path))
        return info

    def _load_remote(self, remote, options: LoadOptions | None) -> ModelInfo:
        """A model behind an OpenAI-compatible server in the model process's place (freed first)."""
        from r1desk.engine.inference.remote import RemoteHost

        if options is not None and options.rpc_servers:
            raise ModelLoadFailed("RPC servers apply to a model loaded here, not to a remote one",
                                  facts={"code": "remote-no-rpc"})
        host = RemoteHost(remote.url, remote.api_key, remote.model,
                          name=remote.name if remote.name != remote.url else None)
        info = host.load()
        if self.host is not self._local:
            self.host.close()
        self._local.unload()
        self.host = host
        return info

    @property
    def loaded(self) -> ModelInfo | None:
        return self.host.info

    def unload(self) -> None:
        self.host.unload()

    def close(self) -> None:
        if self.host is not self._local:
            self.host.close()
        self._local.close()
        with self._embedder_lock:
            if self._embedder is not None:
                self._embedder.close()
                self._embedder = None

    def measure(self, conversation_id: int | None, text: str, params: SamplingParams | None = None, *,
                system: str | None = None) -> Budget:
        """Before sending: how ``text`` fits the context with the conversation so far (or, for a
        new conversation, with the system prompt ``system`` it would start with).

        Counts through the model process, so it waits for a reply being generated: callers
        measure while the model is idle.
        """
        from types import SimpleNamespace

        model = self._require_model()
        resolved = (params or SamplingParams()).resolved(model)
        if conversation_id is not None:
            earlier = self.history.messages(conversation_id)
        elif system and system.strip():
            earlier = [SimpleNamespace(role="system", content=system, status="complete")]
        else:
            earlier = []
        draft = SimpleNamespace(role="user", content=text, status="complete")
        prompt = self.host.count_tokens(build_messages([*earlier, draft], r1=model.is_r1))
        alone = self.host.count_tokens(build_messages([draft], r1=model.is_r1))
        n_ctx = model.n_ctx
        room = reply_room(resolved, n_ctx)
        if prompt + room <= n_ctx:
            outcome = "fits"
        elif alone + room <= n_ctx:
            outcome = "drops-older"
        elif alone + 16 <= n_ctx:
            outcome = "little-room"
        else:
            outcome = "too-long"
        return Budget(message_tokens=alone, prompt_tokens=prompt, n_ctx=n_ctx, n_ctx_train=model.n_ctx_train,
                      reply_room=room, outcome=outcome)

    # Adapters -----------------------------------------------------------------------------
    def set_adapters(self, conversation_id: int, adapters: list[tuple[str, float]]) -> None:
        """The LoRA adapters this conversation's replies are made with, by name, each with a scale
        from 0 to 2 (1: as trained); [] for the base model alone. From the next reply on."""
        chosen: list[dict[str, Any]] = []
        for name, scale in adapters:
            scale = float(scale)
            if not 0.0 <= scale <= MAX_ADAPTER_SCALE:
                raise AdapterError(f"the scale of adapter {name} must be from 0 to {MAX_ADAPTER_SCALE:g}, not {scale:g}",
                                   facts={"code": "bad-scale", "adapter": name, "scale": scale})
            self.adapter_store.get(name)  # refused now if there is no such adapter
            if any(c["name"] == name for c in chosen):
                raise AdapterError(f"adapter {name} is given twice", facts={"code": "duplicate", "name": name})
            chosen.append({"name": name, "scale": scale})
        self.history.update_settings(conversation_id, adapters=chosen)

    def adapters(self, conversation_id: int) -> list[tuple[str, float]]:
        """The conversation's adapters and their scales, as ``set_adapters`` took them."""
        settings = self.history.get_conversation(conversation_id).settings
        return [(a["name"], float(a["scale"])) for a in settings.get("adapters") or []]

    def _model_shape(self, model: ModelInfo) -> ModelShape:
        st = os.stat(model.path)
        key = (model.path, st.st_size, st.st_mtime_ns)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = model_shape(model.path)
        shape.name = model.name
        return shape

    def _resolve_adapters(self, conversation_id: int, model: ModelInfo) -> tuple[list[list[Any]], list[dict[str, Any]]]:
        """(what the model process applies, what the reply records) for the conversation's adapters,
        each checked against the loaded model first."""
        return self.resolve_adapters(self.adapters(conversation_id), model)

    def resolve_adapters(self, chosen: Sequence[tuple[str, float]], model: ModelInfo) -> tuple[list[list[Any]], list[dict[str, Any]]]:
        """(what the model process applies, what a reply records) for imported adapters by name and
        scale, each checked against the loaded model first (AdapterError, NotFound if not)."""
        request: list[list[Any]] = []
        record: list[dict[str, Any]] = []
        for name, scale in chosen:
            adapter = self.adapter_store.get(name)
            check_fits(adapter.facts, self._model_shape(model), adapter=name)
            path = self.adapter_store.file_for(adapter)
            request.append([str(path), scale, adapter.sha256, name])
            record.append({"name": name, "sha256": adapter.sha256, "scale": scale})
        return request, record

    # Documents ----------------------------------------------------------------------------
    def set_collections(self, conversation_id: int, names: Sequence[str]) -> list[str]:
        """The collections of documents this conversation answers from ([] for none), from the
        next reply on; saved with the conversation. Returns their names as stored. An unknown
        name is refused (NotFound, ``facts["code"] == "no-such-collection"``) and the earlier
        choice kept."""
        self.history.get_conversation(conversation_id)  # NotFound for a conversation that is gone
        return doc_store.set_conversation_collections(self.history.db, conversation_id, list(names))

    def collections(self, conversation_id: int) -> list[str]:
        """The conversation's collections (a deleted collection drops out by itself)."""
        return doc_store.conversation_collections(self.history.db, conversation_id)

    def sources(self, message_id: int) -> list[Source]:
        """The sources a reply was given, numbered as its [n] markers, as they were when it was
        written: a file re-indexed or deleted since keeps its path, place and excerpt here
        (``document_id`` and ``chunk_id`` are then None)."""
        self.history.get_message(message_id)  # NotFound for a message that is gone
        out = []
        for s in doc_store.message_sources(self.history.db, message_id):
            out.append(Source(
                n=s.n, collection=s.collection or "", path=s.path, text=s.excerpt,
                score=s.score if s.score is not None else 0.0, document_id=s.document_id, chunk_id=s.chunk_id,
                chunk_ids=[s.chunk_id] if s.chunk_id is not None else [], page=s.page, page_end=s.page_end,
                line_start=s.line_start, line_end=s.line_end, headings=list(s.headings),
                char_start=s.char_start, char_end=s.char_end, similarity=s.similarity))
        return out

    def with_sources(self, history: list[Any], collections: Sequence[str], params: SamplingParams | dict | None = None,
                     *, render: Callable[[list[Any]], list[dict[str, Any]]] | None = None) -> Grounding:
        """The conversation ``history`` (messages with ``role`` and ``content``, oldest first) made
        ready to answer its latest user message from ``collections``.

        Searches for that message (with the one before when it is a follow-up: see
        ``answers.retrieval_query``), fits the passages into what the loaded model's context has
        left after the conversation and the reply's room, and puts them into the latest user
        turn as quoted data (``answers.documents_prompt``). ``render`` turns a history into the
        chat template's messages (default: ``build_messages``); the API server passes its own.
        ``params``: the reply's sampling (or its resolved dict), for the reply's room. Without an
        embedding model for the collections, full-text search alone finds the passages, and the
        notes say so.
        """
        model = self._require_model()
        resolved = params if isinstance(params, dict) else (params or SamplingParams()).resolved(model)
        render = render or (lambda h: build_messages(h, r1=model.is_r1))
        db = self.history.db
        users = [i for i, m in enumerate(history) if m.role == "user"]
        chosen = [doc_store.get_collection(db, name) for name in collections]
        if not users or not chosen:
            return Grounding(list(history), [], [])
        last = users[-1]
        question = history[last].content or ""
        previous = history[users[-2]].content if len(users) > 1 else None
        query = answers.retrieval_query(question, previous)

        n_ctx = model.n_ctx
        room = reply_room(resolved, n_ctx)
        count = _Counter(self.host)
        framing = (self.host.count_tokens_of([answers.framing_text()])[0] if count.exact is not None
                   else count([answers.framing_text()])[0])
        budget = n_ctx - room - self.host.count_tokens(render(list(history))) - framing
        alone = budget < n_ctx * SOURCES_FLOOR_FRACTION

        def fitted(h: list[Any]) -> list[Any]:
            # What must fit: the whole conversation, or when it no longer can, the system prompt
            # and the latest turn (older turns are left out to make room).
            return h if not alone else [m for m in h[:last] if m.role == "system"] + [h[last]]

        if alone:
            least = self.host.count_tokens(render(fitted(list(history))))
            budget = max(budget, min(int(n_ctx * SOURCES_FLOOR_FRACTION), n_ctx - room - least - framing))
        notes: list[str] = []
        sources: list[Source] = []
        if budget >= MIN_SOURCE_TOKENS:
            embedder = self._embedder_for(chosen, notes)
            try:
                sources = retrieve(db, chosen, query, budget, embedder, count_tokens=count, cache=self._vectors,
                                   notes=notes)
            except (HostCrashed, ModelLoadFailed) as exc:
                if embedder is None:
                    raise
                # The embedding model's process failed: answer from full-text search, and load
                # it again for the next reply.
                self._drop_embedder(embedder)
                notes.append(f"the embedding model stopped ({exc}): full-text search only for this reply")
                sources = retrieve(db, chosen, query, budget, None, count_tokens=count, notes=[])
        else:
            notes.append("the message leaves no room in the context for passages of the documents")

        def grounded(with_sources: list[Source]) -> list[Any]:
            turn = SimpleNamespace(**{**vars(history[last]),
                                      "content": answers.documents_prompt(question, with_sources)})
            return [*history[:last], turn, *history[last + 1:]]

        out = grounded(sources)
        # The passages were fitted with estimated counts; the prompt is counted exactly, and the
        # last passages go while it does not fit.
        while sources and self.host.count_tokens(render(fitted(out))) + room > n_ctx:
            sources = sources[:-1]
            out = grounded(sources)
        return Grounding(out, sources, notes, query, max(budget, 0))

    def _embedder_for(self, collections: list[Any], notes: list[str]) -> Any:
        """The embedding model that made the first of ``collections`` that has vectors (loaded once,
        kept for later replies); None, with a note, when there is none or it cannot be loaded."""
        from r1desk.engine.docs.embedder import HostEmbedder, model_file

        made = next((c for c in collections if c.embedding_model), None)
        if made is None:
            return None
        with self._embedder_lock:
            held = self._embedder
            if held is not None and held.model_id == made.embedding_model:
                return held
            try:
                path = model_file(self.history.db, None, made)
                if path is None:
                    return None  # retrieval says: no embedding model, full-text search only
                if held is not None and Path(held.host.info.path).resolve() == Path(path).resolve():
                    return held
                loaded = HostEmbedder.load(path)
            except R1deskError as exc:
                notes.append(f"the embedding model of {made.name} could not be loaded ({exc}): full-text search only")
                return None
            if held is not None:
                held.close()
            self._embedder = loaded
            return loaded

    def _drop_embedder(self, embedder: Any) -> None:
        with self._embedder_lock:
            if self._embedder is embedder:
                self._embedder = None
        embedder.close()

    # Conversation -------------------------------------------------------------------------
    # Each of these returns the reply at once; nothing happens until it is read, and its
    # cancel() from this moment on stops that reply, even before anyone starts reading it.
    def send(self, conversation_id: int | None, text: str, params: SamplingParams | None = None, *,
             system: str | None = None, collections: Sequence[str] | None = None) -> Reply:
        """Add the user's message and stream the reply; ``system`` is the system prompt a new
        conversation starts with (ignored for an existing one, which keeps its own);
        ``collections``, when given, become the conversation's collections first (see
        ``set_collections``)."""
        return Reply(lambda token: self._send(conversation_id, text, params or SamplingParams(), token, system,
                                              collections))

    def regenerate(self, conversation_id: int, params: SamplingParams | None = None) -> Reply:
        """Replace the last reply with a new one."""
        return Reply(lambda token: self._regenerate(conversation_id, params or SamplingParams(), token))

    def edit_and_resend(self, message_id: int, text: str, params: SamplingParams | None = None) -> Reply:
        """Change an earlier user message, forget everything after it, and answer again."""
        return Reply(lambda token: self._edit_and_resend(message_id, text, params or SamplingParams(), token))

    def _send(self, conversation_id, text, params, token, system=None, collections=None) -> Iterator[Any]:
        model = self._require_model()
        if collections is not None:
            for name in collections:  # refused before anything is written
                doc_store.get_collection(self.history.db, name)
        if conversation_id is None:
            conversation_id = self.history.create_conversation(model=model.name)
            if system and system.strip():
                self.history.set_system_prompt(conversation_id, system)
        if collections is not None:
            self.set_collections(conversation_id, collections)
        user_id = self.history.add_message(conversation_id, "user", text)
        yield from self._reply(conversation_id, user_id, params, token)

    def _regenerate(self, conversation_id, params, token) -> Iterator[Any]:
        self._require_model()
        messages = self.history.messages(conversation_id)
        users = [m for m in messages if m.role == "user"]
        if not users:
            raise NotFound(f"conversation {conversation_id} has no message to answer")
        last_user = users[-1]
        later = [m for m in messages if m.id > last_user.id]
        # The earlier reply stays, as an alternative the user can flip back to.
        group = self.history.set_aside_from(later[0].id) if later else None
        yield from self._reply(conversation_id, last_user.id, params, token, alternative_of=group)

    def _edit_and_resend(self, message_id, text, params, token) -> Iterator[Any]:
        self._require_model()
        msg = self.history.get_message(message_id)
        if msg.role != "user":
            raise R1deskError("only your own messages can be edited")
        user_id = self.history.replace_from(message_id, text)  # one transaction: all or nothing
        yield from self._reply(msg.conversation_id, user_id, params, token)

    def _require_model(self) -> ModelInfo:
        if self.host.info is None:
            raise ModelLoadFailed("no model is loaded; choose a model first")
        return self.host.info

    def _reply(self, conversation_id: int, user_id: int | None, params: SamplingParams,
               token: CancelToken, *, alternative_of: int | None = None) -> Iterator[Any]:
        model = self._require_model()
        resolved = params.resolved(model)
        earlier = self.history.messages(conversation_id)
        messages = build_messages(earlier, r1=model.is_r1)
        try:
            adapters, used = self._resolve_adapters(conversation_id, model)
        except R1deskError as exc:
            # Said like any failed reply; the model and the conversation stay as they were.
            adapters, used, refused = [], [], exc
        else:
            refused = None
        message_id = self.history.start_reply(conversation_id, model.name, resolved, alternative_of=alternative_of,
                                              adapters=used)
        yield Started(conversation_id, user_id, message_id)
        if refused is not None:
            self.history.finish_reply(message_id, "", "", "error", error=str(refused))
            yield ChatError(str(refused), type(refused).__name__, dict(refused.facts))
            return
        collections = self.collections(conversation_id)
        if collections:
            try:
                grounding = self.with_sources(earlier, collections, resolved)
                # Saved before the answer streams: a reply cut off by a crash still has its sources.
                doc_store.save_sources(self.history.db, message_id, grounding.sources)
            except R1deskError as exc:
                self.history.finish_reply(message_id, "", "", "error", error=str(exc))
                yield ChatError(str(exc), type(exc).__name__, dict(exc.facts))
                return
            messages = build_messages(grounding.history, r1=model.is_r1)
            yield Sources(grounding.sources, grounding.notes)
        content: list[str] = []
        reasoning: list[str] = []
        last_save = time.monotonic()
        status = "interrupted"
        stats: dict[str, Any] = {}
        asked = time.monotonic()
        first_token: float | None = None
        reloaded = False
        # R1 distills whose template does not open the reasoning get "<think>\n" to start with.
        stream = self.host.chat(messages, dict(resolved, open_thinking=model.is_r1), cancel=token,
                                session=self.history.session_key(conversation_id), adapters=adapters)
        try:
            for event in stream:
                kind = event[0]
                if kind == "queued":
                    yield Queued(event[1])
                    continue
                if kind == "loading":
                    reloaded = True
                    yield Loading(event[1], model.name, event[2])
                    continue
                if kind == "rendered":
                    yield PromptRead(event[1], event[3], event[2], event[4] if len(event) > 4 else None)
                    continue
                if kind == "prompt":
                    yield PromptProgress(event[1], event[2])
                    continue
                if first_token is None and kind in ("c", "r"):
                    first_token = time.monotonic()
                if kind == "c":
                    content.append(event[1])
                    yield ContentDelta(event[1], event[2] if len(event) > 2 else 1)
                elif kind == "r":
                    reasoning.append(event[1])
                    yield ReasoningDelta(event[1], event[2] if len(event) > 2 else 1)
                elif kind == "done":
                    stats = event[1]
                    break
                now = time.monotonic()
                if now - last_save >= SAVE_INTERVAL_SECONDS:
                    self.history.save_partial(message_id, "".join(content), "".join(reasoning))
                    last_save = now
        except R1deskError as exc:
            status = "error"
            self.history.finish_reply(message_id, "".join(content), "".join(reasoning), "error", error=str(exc))
            yield ChatError(str(exc), type(exc).__name__, dict(exc.facts))
            return
        finally:
            stream.close()
            if status == "interrupted" and not stats:
                # The consumer stopped reading (window closed, Ctrl+C): keep what arrived.
                self.history.finish_reply(message_id, "".join(content), "".join(reasoning), "interrupted")
        finish = stats.get("finish_reason", "stop")
        status = "cancelled" if finish == "cancelled" else "complete"
        if first_token is not None:
            # The wait the user saw: queue and reload included, not only the prompt's evaluation.
            stats["ttft_ms"] = (first_token - asked) * 1000
        if reloaded:
            stats["notes"] = [*stats.get("notes", []), "the model was reloaded before this reply"]
        known = {f.name for f in fields(Stats)}
        result = Stats(**{k: v for k, v in stats.items() if k in known})
        self.history.finish_reply(message_id, "".join(content), "".join(reasoning), status, asdict(result))
        yield result
