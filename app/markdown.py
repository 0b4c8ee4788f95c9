"""Model replies as Markdown rendered for Qt's rich text, split into blocks as they stream.

A streaming reply is cut into blocks at blank lines and code fences. A finished block is
rendered once; only the block being written is rendered again when text arrives, so the work
per token depends on the length of that block, not of the whole reply. Code inside a fence is
appended as plain text while it streams and highlighted once, when the fence closes.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt

# A fence opens with 3+ backticks or tildes (indented at most 3 spaces), then an info string.
_FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
_FENCE_CLOSE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*$")


# Operations a splitter hands to the view, in order.
@dataclass(frozen=True)
class Tail:
    """The text block being written is now ``markdown`` (replaces the previous tail)."""

    markdown: str


@dataclass(frozen=True)
class TextBlock:
    """The text block being written is finished as ``markdown``; a new, empty tail follows."""

    markdown: str


@dataclass(frozen=True)
class CodeOpen:
    language: str


@dataclass(frozen=True)
class CodeLine:
    """A finished line of code, with its newline."""

    text: str


@dataclass(frozen=True)
class CodePartial:
    """The unfinished last line of the open code block (replaces the previous one)."""

    text: str


@dataclass(frozen=True)
class CodeClose:
    pass


Op = Tail | TextBlock | CodeOpen | CodeLine | CodePartial | CodeClose


class BlockSplitter:
    """Feed text as it streams; get the operations that bring the view up to date."""

    def __init__(self) -> None:
        self._partial: list[str] = []  # pieces of the line being written
        self._lines: list[str] = []  # finished lines of the current text block
        self._fence: str | None = None  # the opening fence while inside code
        self._last_tail = ""
        self._last_partial = ""

    @property
    def in_code(self) -> bool:
        return self._fence is not None

    def feed(self, text: str) -> list[Op]:
        ops: list[Op] = []
        while text:
            cut = text.find("\n")
            if cut < 0:
                self._partial.append(text)
                break
            self._partial.append(text[:cut])
            line = "".join(self._partial)
            self._partial = []
            self._line(line, ops)
            text = text[cut + 1:]
        self._show_unfinished(ops)
        return ops

    def finish(self) -> list[Op]:
        """The reply is complete: flush the last line, close an open fence."""
        ops: list[Op] = []
        if self._partial:
            line = "".join(self._partial)
            self._partial = []
            self._line(line, ops)
        if self._fence is not None:
            if self._last_partial:
                ops.append(CodePartial(""))
                self._last_partial = ""
            ops.append(CodeClose())
            self._fence = None
        if self._lines:
            ops.append(TextBlock("\n".join(self._lines)))
            self._lines = []
            self._last_tail = ""
        return ops

    def _line(self, line: str, ops: list[Op]) -> None:
        if self._fence is not None:
            close = _FENCE_CLOSE.match(line)
            if close and close["fence"][0] == self._fence[0] and len(close["fence"]) >= len(self._fence):
                if self._last_partial:
                    ops.append(CodePartial(""))
                    self._last_partial = ""
                ops.append(CodeClose())
                self._fence = None
            else:
                if self._last_partial:
                    self._last_partial = ""
                    ops.append(CodePartial(""))
                ops.append(CodeLine(line + "\n"))
            return
        opening = _FENCE_OPEN.match(line)
        if opening and not (opening["fence"][0] == "`" and "`" in opening["info"]):
            self._end_text_block(ops)
            self._fence = opening["fence"]
            info = opening["info"].split()
            ops.append(CodeOpen(info[0] if info else ""))
            return
        if not line.strip():
            self._end_text_block(ops)
            return
        self._lines.append(line)

    def _end_text_block(self, ops: list[Op]) -> None:
        if self._lines:
            ops.append(TextBlock("\n".join(self._lines)))
            self._lines = []
        elif self._last_tail:
            ops.append(Tail(""))
        self._last_tail = ""

    def _show_unfinished(self, ops: list[Op]) -> None:
        partial = "".join(self._partial)
        if len(self._partial) > 1:
            self._partial = [partial]
        if self._fence is not None:
            if partial != self._last_partial:
                ops.append(CodePartial(partial))
                self._last_partial = partial
            return
        tail = "\n".join([*self._lines, partial]) if partial else "\n".join(self._lines)
        if tail != self._last_tail:
            ops.append(Tail(tail))
            self._last_tail = tail


def split_all(text: str) -> list[Op]:
    """The operations for a whole message at once (a reply loaded from history)."""
    splitter = BlockSplitter()
    ops = [op for op in splitter.feed(text) if not isinstance(op, (Tail, CodePartial))]
    return ops + [op for op in splitter.finish() if not isinstance(op, (Tail, CodePartial))]


# ---------------------------------------------------------------------------------------
# Rendering


def _render_image(self, tokens, idx, options, env) -> str:  # noqa: ANN001 - markdown-it API
    # Images in model output are never fetched (they can leak the conversation to a server);
    # they are shown as a link the user may choose to open.
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{html.escape(src, quote=True)}">{html.escape(alt)}</a>'


# A citation of the reply's sources: [1], [1, 3], [1][2] (two), full-width ［1］.
CITATION = re.compile(r"[\[［]\s*(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]］]")
CITATION_SCHEME = "cite"


def _render_text(self, tokens, idx, options, env) -> str:  # noqa: ANN001 - markdown-it API
    # [n] markers that name one of the reply's sources become links to it ("cite:n"); never
    # inside a link of the answer's own.
    text = tokens[idx].content
    cited = env.get("citations") if env else None
    if not cited or not CITATION.search(text):
        return html.escape(text, quote=False)
    depth = sum(1 if t.type == "link_open" else -1 for t in tokens[:idx] if t.type in ("link_open", "link_close"))
    if depth > 0:
        return html.escape(text, quote=False)

    def link(m: re.Match) -> str:
        numbers = [int(n) for n in re.split(r"\s*[,，、]\s*", m.group(1))]
        if not any(n in cited for n in numbers):
            return html.escape(m.group(0), quote=False)
        if len(numbers) == 1:
            return f'<a href="{CITATION_SCHEME}:{numbers[0]}">[{numbers[0]}]</a>'
        inner = ", ".join(f'<a href="{CITATION_SCHEME}:{n}">{n}</a>' if n in cited else str(n) for n in numbers)
        return f"[{inner}]"

    out, last = [], 0
    for m in CITATION.finditer(text):
        out.append(html.escape(text[last:m.start()], quote=False))
        out.append(link(m))
        last = m.end()
    out.append(html.escape(text[last:], quote=False))
    return "".join(out)


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.options["highlight"] = lambda code, lang, attrs: highlight_html(code, lang)
    md.add_render_rule("image", _render_image)
    md.add_render_rule("text", _render_text)
    return md


_BETWEEN_TAGS = re.compile(r">\n(?=<)")
_LOOSE_ITEM_OPEN = re.compile(r"<li>\s*<p>")
_LOOSE_ITEM_CLOSE = re.compile(r"</p>\s*</li>")


def render_html(markdown: str, citations: frozenset[int] | set[int] | None = None) -> str:
    """HTML for Qt's rich-text engine: raw HTML in the text is shown as text, not obeyed.
    ``citations``: the numbers of the reply's sources; its [n] markers become links to them."""
    out = _markdown().render(markdown, {"citations": citations} if citations else None)
    # Qt turns the newlines markdown-it puts between tags into spaces and extra blocks.
    out = _BETWEEN_TAGS.sub(">", out).strip()
    out = _LOOSE_ITEM_OPEN.sub("<li>", out)
    out = _LOOSE_ITEM_CLOSE.sub("</li>", out)
    return out


_dark_code = False


def set_dark_code(dark: bool) -> None:
    """Highlight code for a dark or a light background from now on."""
    global _dark_code
    _dark_code = dark
    _formatter.cache_clear()


@lru_cache(maxsize=2)
def _formatter():
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(nowrap=True, noclasses=True, style="github-dark" if _dark_code else "xcode")


@lru_cache(maxsize=64)
def _lexer(language: str):
    from pygments.lexers import TextLexer, get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(language.lower(), stripnl=False, ensurenl=False) if language else TextLexer()
    except ClassNotFound:
        return TextLexer()


def highlight_html(code: str, language: str = "") -> str:
    """Code as ``<pre>`` with inline colours (Qt's rich text has no style sheets for classes)."""
    from pygments import highlight

    body = highlight(code.rstrip("\n"), _lexer(language or ""), _formatter())
    return f"<pre>{body.rstrip(chr(10))}</pre>"


def plain_code_html(code: str) -> str:
    return f"<pre>{html.escape(code.rstrip(chr(10)))}</pre>"


def warm_up() -> None:
    """Import Pygments and its common lexers ahead of time (a worker calls this at start-up), so
    the first code block of a reply does not pause the stream while modules load."""
    for language in ("python", "bash", "javascript", "json", "c", "cpp", "java", "rust", "go", "sql", "html"):
        highlight_html("x = 1\n", language)
