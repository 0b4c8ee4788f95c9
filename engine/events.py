"""Events that engine generators yield: chat streaming and progress of long jobs.

Plain dataclasses, so the GUI, the CLI, the API server and tests consume the same stream.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable


class CancelToken:
    """One job's cancel handle: ``cancel()`` from any thread, at any time, even before it starts."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], Any]] = []
        self.cancelled_at: float | None = None  # time.monotonic() of the first cancel

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.cancelled_at = time.monotonic()
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def on_cancel(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback`` when cancelled (at once if already); returns a function that unhooks it."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)

                def unhook() -> None:
                    with self._lock:
                        if callback in self._callbacks:
                            self._callbacks.remove(callback)

                return unhook
        callback()
        return lambda: None


@dataclass
class Started:
    """A reply has begun; its rows already exist in the history database."""

    conversation_id: int
    user_message_id: int | None
    message_id: int


@dataclass
class Sources:
    """The passages of the conversation's collections given to the model with this reply.

    Sent after ``Started`` and before ``PromptRead``, only when the conversation answers from
    collections (``items`` may then be empty: nothing matched). ``items`` are
    ``engine.docs.retrieval.Source``, numbered as the answer's [n] markers and saved with the
    reply; ``notes`` say what the user should know about the search (full-text only, and why).
    """

    items: list[Any]
    notes: list[str] = field(default_factory=list)


@dataclass
class Queued:
    """The model is busy with other requests; ``position`` of them are ahead of this one."""

    position: int


@dataclass
class Loading:
    """The model is being (re)loaded before this reply; ``reason`` says why, for the edge to word.

    Reasons: ``"crashed"`` (the model process died; ``detail`` says how), ``"unresponsive"`` (it
    did not stop in time and was replaced), ``"template-timeout"`` (a chat template rendered too
    long and the process was replaced).
    """

    reason: str
    model: str
    detail: str = ""


@dataclass
class PromptRead:
    """The prompt is being read: ``tokens`` in all, ``cached`` of them already in the KV cache.

    ``reused_from`` says where the cached ones came from: "context" (the model had just answered
    this conversation), "memory" or "disk" (its saved state was restored).
    """

    tokens: int
    cached: int = 0
    dropped_turns: int = 0
    reused_from: str | None = None


@dataclass
class PromptProgress:
    """A long prompt is being evaluated: ``done`` of its ``total`` tokens so far (cached ones included).

    Sent about every quarter second while more than one batch of new tokens is read, the last
    one with ``done == total`` just before the reply's first token; short prompts send none.
    """

    done: int
    total: int


@dataclass
class ReasoningDelta:
    """More of the model's reasoning (the part inside <think>...</think>); ``tokens`` it took."""

    text: str
    tokens: int = 1


@dataclass
class ContentDelta:
    """More of the answer; ``tokens`` it took (pieces are gathered when tokens come fast)."""

    text: str
    tokens: int = 1


@dataclass
class Stats:
    """The reply is finished (or stopped); figures for the footer and the database."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    reasoning_seconds: float | None = None
    total_seconds: float = 0.0
    dropped_turns: int = 0
    finish_reason: str = "stop"  # stop | length | cancelled | budget-then-stop ...
    n_ctx: int = 0
    context_used: int = 0
    cached_tokens: int = 0  # prompt tokens reused from the KV cache, not read again
    prompt_tokens_read: int = 0  # prompt tokens read for this reply
    reused_from: str | None = None  # "context", "memory" or "disk" (see PromptRead)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChatError:
    """The reply failed; the stream ends after this event. ``message`` is one line for the user."""

    message: str
    kind: str = "error"
    facts: dict[str, Any] = field(default_factory=dict)  # the error's facts, for wording in any language


@dataclass
class Progress:
    """Progress of a long job (download, quantise, index)."""

    done: int
    total: int | None = None
    message: str = ""
    speed: float | None = None  # units per second
    eta: float | None = None  # seconds

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


ChatEvent = Started | Sources | Queued | Loading | PromptRead | PromptProgress | ReasoningDelta | ContentDelta | Stats | ChatError
