"""Split a reasoning model's stream into thinking and answer, as it streams.

DeepSeek-R1 writes ``<think>reasoning</think>answer``; some of its templates open ``<think>``
in the generation prompt, so the output starts inside the thinking with only ``</think>`` to
come. Tags may arrive split across pieces, so a tail that could be the start of a tag is held
back until the next piece decides it. Blank lines right after either tag are dropped.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"


class ThinkSplitter:
    """Feed text pieces; get (kind, text) pairs where kind is "reasoning" or "content"."""

    def __init__(self, *, in_reasoning: bool = False, detect_open: bool = True):
        # in_reasoning: the prompt already opened <think>.
        # detect_open: a <think> at the very start of the output opens reasoning.
        self.in_reasoning = in_reasoning
        self.opened = in_reasoning
        self.closed = False
        self._may_open = detect_open and not in_reasoning
        self._pending = ""
        self._lstrip = in_reasoning  # drop newlines at the start of the current part

    def _emit(self, out: list[tuple[str, str]], kind: str, text: str) -> None:
        if self._lstrip:
            text = text.lstrip("\r\n")
            if not text:
                return
            self._lstrip = False
        out.append((kind, text))

    def feed(self, text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        buf = self._pending + text
        self._pending = ""
        while buf:
            if self._may_open:
                stripped = buf.lstrip()
                if len(stripped) < len(OPEN) and OPEN.startswith(stripped):
                    self._pending = buf  # could still become <think>
                    return out
                if stripped.startswith(OPEN):
                    self._may_open = False
                    self.in_reasoning = self.opened = True
                    self._lstrip = True
                    buf = stripped[len(OPEN):]
                    continue
                self._may_open = False
            if self.in_reasoning:
                idx = buf.find(CLOSE)
                if idx >= 0:
                    if idx:
                        self._emit(out, "reasoning", buf[:idx])
                    self.in_reasoning = False
                    self.closed = True
                    self._lstrip = True
                    buf = buf[idx + len(CLOSE):]
                    continue
                keep = partial_suffix(buf, CLOSE)
                if len(buf) > keep:
                    self._emit(out, "reasoning", buf[: len(buf) - keep])
                self._pending = buf[len(buf) - keep:]
                return out
            self._emit(out, "content", buf)
            return out
        return out

    def close_reasoning(self) -> None:
        """The engine closed the thinking itself (reasoning budget reached)."""
        self._pending = ""
        self.in_reasoning = False
        self.closed = True
        self._may_open = False
        self._lstrip = True

    def flush(self) -> list[tuple[str, str]]:
        """End of stream: whatever was held back belongs to the current part."""
        pending, self._pending = self._pending, ""
        out: list[tuple[str, str]] = []
        if pending:
            self._emit(out, "reasoning" if self.in_reasoning else "content", pending)
        return out


def partial_suffix(buf: str, tag: str) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(buf)), 0, -1):
        if buf.endswith(tag[:n]):
            return n
    return 0
