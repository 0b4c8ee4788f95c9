"""Events that engine generators yield: chat streaming and progress of long jobs.

Plain dataclasses, so the GUI, the CLI, the API server and tests consume the same stream.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Started:
    """A reply has begun; its rows already exist in the history database."""

    conversation_id: int
    user_message_id: int | None
    message_id: int


@dataclass
class ReasoningDelta:
    """More of the model's reasoning (the part inside <think>...</think>)."""

    text: str


@dataclass
class ContentDelta:
    """More of the answer."""

    text: str


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
    cached_tokens: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChatError:
    """The reply failed; the stream ends after this event. ``message`` is one line for the user."""

    message: str
    kind: str = "error"


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


ChatEvent = Started | ReasoningDelta | ContentDelta | Stats | ChatError
