"""Text out of the user's files, as blocks that keep the document's structure and places.

The index needs more than a string per file: where each passage sits (a PDF's page, a text
file's lines) so a citation opens at the right place, and the headings above it so a chunk
carries its context. Each format goes through a maintained, permissively licensed library
(pypdf, python-docx, markdown-it-py, the standard library's HTML and CSV parsers,
charset-normalizer for encodings) and comes out the same way: an ``Extracted`` with the
document's text and its ``Block``s, each one a slice of that text.

A file that cannot be read comes out as a ``Problem``: a code from ``PROBLEMS`` and a line of
English, never an exception, so one bad file in a folder of thousands costs only itself.

``extract_file`` runs in the calling process and trusts the parsers not to crash, hang or
balloon. Files from the user's disk are hostile often enough (damaged PDFs, zip bombs) that
the index calls it through ``engine.docs.worker.Extractor``, in a child process with a time
and memory limit.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import errno
import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

from r1desk.engine.errors import DocumentError

# What each problem code means; the GUI words them, the CLI prints the reason.
PROBLEMS: dict[str, str] = {
    "unsupported": "not a kind of file r1desk reads (by its name and its first bytes)",
    "binary": "named as text but holds binary data (NUL bytes, or a program, image or archive inside)",
    "undecodable": "text in no encoding r1desk can recognise",
    "encrypted": "needs a password to open (a PDF with a user password, an encrypted Word file)",
    "corrupt": "damaged, truncated or not what its name says: its parser refused it",
    "too-large": "bigger than the limit on disk, or would inflate past it (a zip bomb, a PDF flate bomb)",
    "no-text": "holds no text to index (an empty file, a scanned PDF without a text layer)",
    "timeout": "reading it took longer than the time limit; the reader was stopped",
    "too-much-memory": "reading it needed more memory than the limit; the reader was stopped",
    "crashed": "the reader process died while reading it (a crash in a parser, or killed from outside)",
    "unreadable": "the system refused to read it (permissions, an I/O error, not a regular file)",
    "symlink-loop": "a symbolic link that leads back to itself",
    "vanished": "no longer exists (deleted or moved since it was found), or a link that points nowhere",
}

# File kinds and the names that announce them; files without a suffix are sniffed as text.
EXTENSIONS: dict[str, str] = {".pdf": "pdf", ".docx": "docx", ".csv": "csv", ".tsv": "csv"}
EXTENSIONS |= dict.fromkeys((".md", ".markdown", ".mdown", ".mkd", ".mdx"), "markdown")
EXTENSIONS |= dict.fromkeys((".html", ".htm", ".xhtml"), "html")
EXTENSIONS |= dict.fromkeys((".txt", ".text", ".log", ".rst", ".org", ".adoc", ".asciidoc", ".tex", ".srt"), "text")
EXTENSIONS |= dict.fromkeys((
    ".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".kts", ".scala", ".go", ".rs",
    ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".m", ".mm", ".swift", ".rb", ".php", ".pl", ".pm",
    ".lua", ".r", ".jl", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".cmd", ".sql", ".css", ".scss", ".less",
    ".vue", ".svelte", ".dart", ".hs", ".ml", ".mli", ".ex", ".exs", ".erl", ".clj", ".el", ".lisp", ".scm",
    ".vim", ".cmake", ".gradle", ".proto", ".graphql", ".tf", ".nix", ".json", ".yaml", ".yml", ".toml",
    ".ini", ".cfg", ".conf", ".xml",
), "code")
KINDS = ("pdf", "docx", "markdown", "html", "text", "code", "csv")
TEXT_KINDS = frozenset({"markdown", "html", "text", "code", "csv"})
BLOCK_KINDS = ("heading", "paragraph", "item", "code", "row")

SNIFF_BYTES = 8192
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one file may cost. ``seconds`` and ``memory_bytes`` are enforced by the worker."""

    seconds: float = 120.0  # wall clock per file, parsing and handing the text back
    memory_bytes: int = 2048 * MiB  # the worker's address space (Linux, macOS) and resident memory
    max_text_bytes: int = 8 * MiB  # text files: bytes read; other kinds: characters of text kept
    max_file_bytes: int = 256 * MiB  # PDF and DOCX files larger than this are refused
    max_inflated_bytes: int = 512 * MiB  # a DOCX whose parts inflate to more is refused unopened
    max_pages: int = 10_000  # PDF pages read; the rest are left with a note


@dataclass(slots=True)
class Block:
    """One piece of a document: ``text`` is ``Extracted.text[start:end]``.

    ``kind``: heading, paragraph, item (of a list), code, row (of a table or CSV file).
    ``headings``: the enclosing headings, outermost first (a heading's own excludes itself).
    ``page``: the PDF page, from 1. ``start_line``/``end_line``: the lines of the file it
    came from, from 1 and inclusive (text-like files, HTML). ``level``: a heading's level.
    """

    text: str
    kind: str
    headings: tuple[str, ...] = ()
    page: int | None = None
    start_line: int | None = None
    end_line: int | None = None
    start: int = 0
    end: int = 0
    level: int = 0


@dataclass
class Extracted:
    """A document's text and its blocks, with what the index keeps about the file.

    ``verbatim``: ``text`` is the file's own text (newlines made ``\\n``), so its line n is
    the file's line n; otherwise ``text`` is the blocks joined by blank lines.
    ``truncated``: only part of the file was read (``notes`` says how much and why).
    """

    path: str
    kind: str
    text: str
    blocks: list[Block]
    size: int
    mtime: float
    encoding: str | None = None
    title: str | None = None
    pages: int | None = None
    verbatim: bool = False
    truncated: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """Why a file was not extracted: ``code`` from ``PROBLEMS``, ``reason`` one line of English."""

    path: str
    code: str
    reason: str

    def error(self) -> DocumentError:
        return DocumentError(f"{self.path}: {self.reason}", facts={"code": self.code, "path": self.path})


class Refused(Exception):
    """Raised inside a parser: the file gets ``Problem(code, reason)``."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


Parser = Callable[[Path, Limits], "Extracted | Problem"]


# --- what a file is -------------------------------------------------------------------------

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"), (b"PK\x03\x04", "a zip archive or Office document"),
    (b"\x89PNG", "a PNG image"), (b"GIF87a", "a GIF image"), (b"GIF89a", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"), (b"\x1f\x8b", "gzip data"), (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"), (b"\x7fELF", "a program (ELF)"), (b"\xd0\xcf\x11\xe0", "an old Office document"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"\x00asm", "WebAssembly"), (b"OggS", "Ogg media"),
    (b"fLaC", "FLAC audio"), (b"ID3", "MP3 audio"), (b"\xca\xfe\xba\xbe", "a Java class or macOS program"),
    (b"\xcf\xfa\xed\xfe", "a macOS program"), (b"\xfe\xed\xfa", "a macOS program"), (b"wOFF", "a web font"),
    (b"BZh91AY&SY", "bzip2 data"), (b"\xfd7zXZ\x00", "xz data"), (b"GGUF", "a GGUF model"),
)
_RIFF = {b"WAVE": "WAV audio", b"AVI ": "AVI video", b"WEBP": "a WebP image"}
_CONTROL = bytes(set(range(32)) - {8, 9, 10, 11, 12, 13, 27})


def binary_reason(head: bytes) -> str | None:
    """Why these first bytes of a file are not text, or None if they may be (UTF-16/32 are text)."""
    wide, skip = _bom(head)
    wide = wide or _utf16_without_bom(head)
    if wide:
        sample = head[skip:len(head) - len(head) % 4].decode(wide, errors="replace")
        controls = sum(1 for ch in sample if ch < " " and ch not in "\t\n\r\f\v\b\x1b")
        return "it is mostly control characters" if controls > 0.03 * max(1, len(sample)) else None
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"it is {what}"
    if head.startswith(b"MZ") and b"\x00" in head[:64]:
        return "it is a Windows program"
    if head.startswith(b"RIFF") and head[8:12] in _RIFF:
        return f"it is {_RIFF[head[8:12]]}"
    if b"\x00" in head:
        return "it holds NUL bytes"
    if head and len(head.translate(None, _CONTROL)) < 0.97 * len(head):
        return "it is mostly control characters"
    return None


def kind_of(path: str | os.PathLike, head: bytes | None = None) -> str | None:
    """The kind of file (one of ``KINDS``) by its suffix; a file without one is text if it looks so."""
    p = Path(path)
    kind = EXTENSIONS.get(p.suffix.lower())
    if kind is not None:
        return kind
    if p.suffix and not re.fullmatch(r"\.\d+", p.suffix):  # "notes.2024" has no real suffix
        return None
    if head is None:
        try:
            with open(p, "rb") as fh:
                head = fh.read(SNIFF_BYTES)
        except OSError:
            return None
    if not head.strip() or binary_reason(head) is not None:
        return None
    return "text"


# --- encodings --------------------------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Among encodings charset-normalizer finds equally plausible, the one most files really are in
# (it ranks cp1250 above cp1252 for French or German text that decodes the same in both).
_PREFERRED = ("utf_8", "gb18030", "cp1252", "big5", "shift_jis", "euc_jp", "euc_kr", "cp1251", "koi8_r",
              "iso8859_15", "cp1250")
_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "hz": "gb18030", "ascii": "utf_8", "latin_1": "cp1252",
            "iso8859_1": "cp1252"}
_WIDE = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le", "utf_7"]


def _bom(data: bytes) -> tuple[str | None, int]:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, len(bom)
    return None, 0


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text without a byte order mark, told by the zero bytes of its ASCII characters."""
    sample = head[:4096]
    half = len(sample) // 2
    if half < 8:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd > 0.3 * half and even < 0.02 * half:
        return "utf-16-le"
    if even > 0.3 * half and odd < 0.02 * half:
        return "utf-16-be"
    return None


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        norm = codecs.lookup(name).name.replace("-", "_")
    except LookupError:
        return None
    return _ALIASES.get(norm, norm)


def decode(data: bytes, *, declared: str | None = None, partial: bool = False) -> tuple[str, str, list[str]]:
    """``data`` as text: (text, encoding, notes). Detected, not assumed: a byte order mark, then
    UTF-8, then the encoding a document declares (HTML), then charset-normalizer's best guess.
    ``partial``: the data was cut off, so a last character split in two is dropped, not replaced.
    Raises ``Refused`` ("binary", "undecodable").
    """
    name, skip = _bom(data)
    name = name or _utf16_without_bom(data)
    if name is None:
        reason = binary_reason(data[:SNIFF_BYTES])
        if reason is not None:
            raise Refused("binary", f"not text: {reason}")
    notes: list[str] = []
    if name is None:
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(data, final=not partial)
            return text, "utf-8", notes
        except UnicodeDecodeError:
            pass
        loose = data.decode("utf-8", errors="replace")
        bad = loose.count("\ufffd")
        good = len(re.findall(r"[^\x00-\x7f\ufffd]", loose))
        if good >= 4 * bad:  # UTF-8 with a few damaged bytes, not text in another encoding
            notes.append(f"{bad} damaged UTF-8 sequences were replaced")
            return loose, "utf-8", notes
        name = _declared_or_detected(data, declared)
    try:
        text = codecs.getincrementaldecoder(name)(errors="replace").decode(data[skip:], final=not partial)
    except LookupError:
        raise Refused("undecodable", f"its encoding {name} is not known") from None
    bad = text.count("\ufffd")
    if bad:
        notes.append(f"{bad} characters could not be decoded as {name} and were replaced")
    return text, name, notes


def _declared_or_detected(data: bytes, declared: str | None) -> str:
    codec = _codec(declared)
    if codec is not None and codec not in _WIDE:
        try:
            data.decode(codec)
            return codec
        except (UnicodeDecodeError, LookupError):
            pass
    import charset_normalizer

    sample = data[:64 * 1024]
    if len(data) > len(sample) and b"\n" in sample:
        sample = sample[: sample.rindex(b"\n") + 1]  # never a multi-byte character cut in two
    results = charset_normalizer.from_bytes(sample, cp_exclusion=_WIDE)
    best = results.best()
    if best is None:
        raise Refused("undecodable", "not text in any encoding r1desk recognises")
    plausible = [r for r in results if r.chaos <= best.chaos + 0.02 and r.coherence >= best.coherence - 0.02]
    names = [_codec(r.encoding) or r.encoding for r in plausible]
    ranked = sorted(names, key=lambda n: _PREFERRED.index(n) if n in _PREFERRED else len(_PREFERRED))
    return ranked[0]


# --- building blocks --------------------------------------------------------------------------

def _clean_heading(text: str) -> str:
    return " ".join(text.split())[:200]


class _Headings:
    """The headings above the current point: a heading of level n closes those of level >= n."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, str]] = []

    def enter(self, level: int, text: str) -> tuple[str, ...]:
        """Open a heading; returns its parents."""
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        parents = self.path
        self.stack.append((level, _clean_heading(text)))
        return parents

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(t for _, t in self.stack)


class _Joined:
    """Blocks whose text is made here (PDF, DOCX, HTML): joined by blank lines into one text."""

    def __init__(self, max_chars: int):
        self.parts: list[str] = []
        self.blocks: list[Block] = []
        self.pos = 0
        self.max_chars = max_chars
        self.full = False

    def add(self, text: str, kind: str, headings: tuple[str, ...], *, page: int | None = None,
            start_line: int | None = None, end_line: int | None = None, level: int = 0) -> None:
        text = text.strip()
        if not text or self.full:
            return
        if self.parts:
            self.parts.append("\n\n")
            self.pos += 2
        start = self.pos
        self.parts.append(text)
        self.pos += len(text)
        self.blocks.append(Block(text, kind, headings, page, start_line, end_line, start, self.pos, level))
        if self.pos >= self.max_chars:
            self.full = True

    def text(self) -> str:
        return "".join(self.parts)


class _Lines:
    """Line numbers of a verbatim text: where each line starts."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(self, offset: int) -> int:
        """The line (from 1) holding character ``offset``."""
        return bisect.bisect_right(self.starts, offset)

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Offsets of lines ``first``..``last`` (from 0, inclusive), without the final newline."""
        start = self.starts[first]
        end = self.starts[last + 1] - 1 if last + 1 < len(self.starts) else len(self.text)
        return start, end

    def block(self, start: int, end: int, kind: str, headings: tuple[str, ...], level: int = 0,
              *, keep_indent: bool = False) -> Block | None:
        """The block for ``text[start:end]`` with surrounding blank space trimmed (None if empty)."""
        text = self.text
        while end > start and text[end - 1].isspace():
            end -= 1
        if keep_indent:
            while start < end and text[start] == "\n":
                start += 1
        else:
            while start < end and text[start].isspace():
                start += 1
        if start >= end:
            return None
        return Block(text[start:end], kind, headings, None, self.line_of(start), self.line_of(end - 1),
                     start, end, level)


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the runs of lines between blank lines."""
    spans, pos = [], 0
    for m in re.finditer(r"\n[ \t\f\v]*\n", text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    return spans


_CJK = ("\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
        "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef")
_CJK_BREAK = re.compile(rf"(?<=[{_CJK}])\s*\n\s*(?=[{_CJK}])")
_SPACE = re.compile(r"\s+")


def collapse_space(text: str) -> str:
    """Runs of white space as one space, and none at a line break between two CJK characters
    (a wrapped Chinese line is one word run; a space there would split it for search)."""
    return _SPACE.sub(" ", _CJK_BREAK.sub("", text)).strip()


# --- reading files ----------------------------------------------------------------------------

def _os_problem(path: str, exc: OSError) -> Problem:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        if os.path.islink(path):
            return Problem(path, "vanished", "a link to a file that does not exist")
        return Problem(path, "vanished", "the file no longer exists")
    if exc.errno == errno.ELOOP:
        return Problem(path, "symlink-loop", "a symbolic link that leads back to itself")
    if isinstance(exc, PermissionError):
        return Problem(path, "unreadable", "permission to read it was denied")
    return Problem(path, "unreadable", f"the system could not read it: {exc.strerror or exc}")


def _open(path: Path) -> tuple[BinaryIO, os.stat_result]:
    """The file, opened without blocking on a pipe or device that took its place."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("unreadable", "not a regular file (a folder, pipe or device)")
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def _mb(n: int) -> str:
    return f"{n / MiB:.1f} MB" if n >= MiB else f"{n / 1024:.0f} KB"


def _read_text(fh: BinaryIO, st: os.stat_result, limits: Limits,
               declared: Callable[[bytes], str | None] | None = None) -> tuple[str, str, bool, list[str]]:
    """The start of a text file, decoded: (text, encoding, truncated, notes)."""
    data = fh.read(limits.max_text_bytes + 1)
    truncated = len(data) > limits.max_text_bytes
    if truncated:
        data = data[: limits.max_text_bytes]
    text, encoding, notes = decode(data, declared=declared(data) if declared else None, partial=truncated)
    if truncated:
        cut = text.rfind("\n")
        if cut > 0:
            text = text[:cut]
        notes.append(f"only the first {_mb(limits.max_text_bytes)} of {_mb(max(st.st_size, len(data)))} were read")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        notes.append(f"{text.count(chr(0))} NUL characters were dropped")
        text = text.replace("\x00", "")
    if text.startswith("\ufeff"):
        text = " " + text[1:]  # a second byte order mark: kept as a space so offsets stay the file's
    return text, encoding, truncated, notes


# --- plain text, code, CSV --------------------------------------------------------------------

def _paragraph_blocks(text: str, kind: str) -> list[Block]:
    lines = _Lines(text)
    blocks = []
    for start, end in _paragraph_spans(text):
        block = lines.block(start, end, kind, (), keep_indent=kind == "code")
        if block is not None:
            blocks.append(block)
    return blocks


def _csv_blocks(text: str, path: Path) -> list[Block]:
    lines = _Lines(text)
    sample = text[:64 * 1024]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    try:
        has_header = csv.Sniffer().has_header(sample)
    except csv.Error:
        has_header = False
    spans: list[tuple[int, int]] = []
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, len(text) + 1))
    try:
        reader = csv.reader(io.StringIO(text, newline=""), dialect)
        done = 0
        for row in reader:
            first, done = done, reader.line_num
            if any(cell.strip() for cell in row):
                spans.append((first, done - 1))
    except csv.Error:
        spans = [(i, i) for i in range(len(lines.starts))]  # not well-formed CSV: one row a line
    finally:
        csv.field_size_limit(old_limit)
    blocks: list[Block] = []
    header: tuple[str, ...] = ()
    for first, last in spans:
        start, end = lines.span(first, min(last, len(lines.starts) - 1))
        if has_header and not blocks:
            block = lines.block(start, end, "heading", (), 1)
            if block is not None:
                header = (_clean_heading(block.text),)
        else:
            block = lines.block(start, end, "row", header)
        if block is not None:
            blocks.append(block)
    return blocks


# --- Markdown -----------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A(---|\+\+\+)\n.*?\n(?:---|\+\+\+|\.\.\.)[ \t]*(?:\n|\Z)", re.S)


def _markdown_blocks(text: str) -> tuple[list[Block], str | None]:
    from markdown_it import MarkdownIt

    source = text
    front = _FRONT_MATTER.match(text[: 64 * 1024])
    if front:  # YAML/TOML front matter is metadata, not prose; blanked so lines and offsets stay
        text = re.sub(r"[^\n]", " ", text[: front.end()]) + text[front.end():]
    lines = _Lines(source)
    tokens = MarkdownIt("commonmark", {"maxNesting": 40}).enable("table").parse(text)
    outline = _Headings()
    blocks: list[Block] = []
    title: str | None = None
    lists = 0

    def locate(content: str, first: int, last: int) -> tuple[int, int]:
        """Offsets of an inline ``content`` inside source lines first..last (markers left out)."""
        start, end = lines.span(first, last)
        parts = [p.strip() for p in content.split("\n") if p.strip()]
        if parts:
            found = source.find(parts[0], start, end)
            if found >= 0:
                start = found
            found = source.rfind(parts[-1], start, end)
            if found >= 0:
                end = found + len(parts[-1])
        return start, end

    for i, tok in enumerate(tokens):
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            lists += 1
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            lists -= 1
        if tok.map is None:
            continue
        first, last = tok.map[0], tok.map[1] - 1
        block = None
        if tok.type == "heading_open":
            content = tokens[i + 1].content
            level = int(tok.tag[1])
            start, end = locate(content, first, last)
            parents = outline.enter(level, content)
            block = lines.block(start, end, "heading", parents, level)
            if block is not None and title is None and level == 1:
                title = _clean_heading(content)
        elif tok.type == "paragraph_open":
            start, end = locate(tokens[i + 1].content, first, last)
            block = lines.block(start, end, "item" if lists else "paragraph", outline.path)
        elif tok.type == "fence":
            closed = last > first and lines.text[slice(*lines.span(last, last))].strip().startswith(tok.markup)
            if last - first >= (2 if closed else 1):
                start, end = lines.span(first + 1, last - 1 if closed else last)
                block = lines.block(start, end, "code", outline.path, keep_indent=True)
        elif tok.type == "code_block":
            start, end = lines.span(first, last)
            block = lines.block(start, end, "code", outline.path, keep_indent=True)
        elif tok.type == "tr_open":
            start, end = lines.span(first, first)
            block = lines.block(start, end, "row", outline.path)
        if block is not None:
            blocks.append(block)
    return blocks, title


# --- HTML ------------------------------------------------------------------------------------

_HTML_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas",
                        "select", "textarea"})
_HTML_BLOCK = frozenset({
    "p", "div", "section", "article", "main", "aside", "header", "footer", "nav", "li", "dt", "dd", "blockquote",
    "figure", "figcaption", "table", "thead", "tbody", "tfoot", "ul", "ol", "dl", "form", "fieldset", "address",
    "details", "summary", "hr", "caption", "center", "body", "html", "br",
})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _HTMLText(HTMLParser):
    """Headings, paragraphs, list items, table rows and preformatted code of an HTML page."""

    def __init__(self, out: _Joined):
        super().__init__(convert_charrefs=True)
        self.out = out
        self.outline = _Headings()
        self.parts: list[str] = []
        self.first_line: int | None = None
        self.last_line = 0
        self.skip: list[str] = []
        self.heading = 0
        self.pre = 0
        self.row = False
        self.cells = 0
        self.items = 0
        self.in_head = False
        self.in_title = False
        self.title = ""

    def flush(self, kind: str = "paragraph") -> None:
        raw = "".join(self.parts)
        self.parts = []
        first, last = self.first_line, self.last_line
        self.first_line = None
        if kind == "code":
            text = raw.strip("\n").rstrip()
        else:
            text = collapse_space(raw)
        if not text:
            return
        if kind == "heading":
            parents = self.outline.enter(self.heading, text)
            self.out.add(text, "heading", parents, start_line=first, end_line=last, level=self.heading)
        else:
            if kind == "paragraph" and self.items:
                kind = "item"
            self.out.add(text, kind, self.outline.path, start_line=first, end_line=last)

    def _kind(self) -> str:
        if self.heading:
            return "heading"
        if self.pre:
            return "code"
        if self.row:
            return "row"
        return "paragraph"

    def handle_starttag(self, tag: str, attrs) -> None:
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.append(tag)
            return
        if tag in _HTML_SKIP:
            self.skip.append(tag)
            return
        if tag == "head":
            self.in_head = True
            return
        if tag == "title":
            self.in_title = True
            return
        if tag in _HEADINGS or tag in _HTML_BLOCK or tag in ("pre", "tr"):
            self.in_head = False
        if tag == "br":
            self.parts.append("\n")
            return
        if tag in ("td", "th"):
            if self.cells:
                self.parts.append(" | ")
            self.cells += 1
            return
        if tag in _HEADINGS:
            self.flush(self._kind())
            self.heading = _HEADINGS[tag]
        elif tag == "pre":
            self.flush(self._kind())
            self.pre += 1
        elif tag == "tr":
            self.flush(self._kind())
            self.row, self.cells = True, 0
        elif tag in _HTML_BLOCK and not self.pre:
            self.flush(self._kind())
            if tag == "li":
                self.items += 1

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag not in _HTML_SKIP:  # <svg/> opens nothing to skip
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.pop()
            return
        if tag == "head":
            self.in_head = False
        elif tag == "title":
            self.in_title = False
        elif tag in _HEADINGS and self.heading:
            self.flush("heading")
            self.heading = 0
        elif tag == "pre" and self.pre:
            self.flush("code")
            self.pre -= 1
        elif tag == "tr" and self.row:
            self.flush("row")
            self.row = False
        elif tag in _HTML_BLOCK and not self.pre and not self.heading:
            self.flush(self._kind())
            if tag == "li" and self.items:
                self.items -= 1

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.in_title:
            self.title += data
            return
        if self.in_head:
            return
        line = self.getpos()[0]
        stripped = data.lstrip()
        if stripped:
            if self.first_line is None:
                self.first_line = line + data.count("\n", 0, len(data) - len(stripped))
            self.last_line = line + data.rstrip().count("\n")
        self.parts.append(data)

    def close(self) -> None:
        super().close()
        self.flush(self._kind())


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.I)


def _html_charset(data: bytes) -> str | None:
    m = _META_CHARSET.search(data[:4096])
    return m.group(1).decode("ascii") if m else None


# --- PDF --------------------------------------------------------------------------------------

def _pdf_outline(reader) -> dict[int, list[tuple[int, str]]]:
    """The PDF's bookmarks by page index: [(level, title)] in order. A broken outline only loses headings."""
    found: dict[int, list[tuple[int, str]]] = {}
    count = 0

    def walk(items, level: int) -> None:
        nonlocal count
        for item in items:
            if count >= 5000:
                return
            if isinstance(item, list):
                if level < 16:
                    walk(item, level + 1)
                continue
            count += 1
            try:
                page = reader.get_destination_page_number(item)
                title = _clean_heading(str(item.title or ""))
            except Exception:  # noqa: BLE001 - pypdf raises many kinds on damaged outlines
                continue
            if title and page is not None and page >= 0:
                found.setdefault(page, []).append((level, title))

    try:
        walk(reader.outline, 1)
    except Exception:  # noqa: BLE001
        pass
    return found


_PARA_END = re.compile(r"[.!?。！？:：;；\"'”’)）]\s*$")


def _pdf_paragraphs(text: str, titles: frozenset[str] = frozenset()) -> list[list[str]]:
    """A page's lines grouped into paragraphs: at blank lines, after a short line that ends a
    sentence, and around a line that is one of ``titles`` (the page's bookmarks)."""
    lines = [ln.rstrip() for ln in text.split("\n")]
    widths = sorted(len(ln) for ln in lines if ln.strip())
    if not widths:
        return []
    full = widths[int(len(widths) * 0.9)] if len(widths) > 3 else widths[-1]
    paras: list[list[str]] = [[]]
    for ln in lines:
        if not ln.strip():
            if paras[-1]:
                paras.append([])
            continue
        if titles and _clean_heading(ln) in titles:
            paras += [[ln], []]
            continue
        paras[-1].append(ln)
        if _PARA_END.search(ln) and len(ln) < 0.8 * full:
            paras.append([])
    return [p for p in paras if p]


def _pdf(fh: BinaryIO, st: os.stat_result, path: Path, limits: Limits) -> Extracted:
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

    if st.st_size > limits.max_file_bytes:
        raise Refused("too-large", f"{_mb(st.st_size)} is over the {_mb(limits.max_file_bytes)} limit for PDFs")
    head = fh.read(1024)
    fh.seek(0)
    if b"%PDF-" not in head:
        what = binary_reason(head)
        raise Refused("corrupt", f"not a PDF: {what}" if what else "not a PDF (no PDF header)")
    try:
        reader = pypdf.PdfReader(fh, strict=False)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise Refused("encrypted", "the PDF needs a password to open")
            except DependencyError:
                raise Refused("encrypted", "the PDF's encryption needs the cryptography package") from None
        pages = reader.pages
        count = len(pages)
    except (FileNotDecryptedError,) as exc:
        raise Refused("encrypted", f"the PDF needs a password to open ({exc})") from None
    except LimitReachedError as exc:
        raise Refused("too-large", f"a stream in the PDF inflates past the reader's limit ({exc})") from None
    outline = _pdf_outline(reader)
    try:
        title = _clean_heading(str(reader.metadata.title)) if reader.metadata and reader.metadata.title else None
        if title and title.lower() in ("untitled", "untitled document"):
            title = None
    except Exception:  # noqa: BLE001 - damaged metadata costs only the title
        title = None
    out = _Joined(limits.max_text_bytes)
    headings = _Headings()
    notes: list[str] = []
    failed: list[int] = []
    read = 0
    for index in range(min(count, limits.max_pages)):
        if out.full:
            break
        number = index + 1
        try:
            page_text = pages[index].extract_text() or ""
        except LimitReachedError as exc:
            raise Refused("too-large", f"page {number} inflates past the reader's limit ({exc})") from None
        except (MemoryError, RecursionError):
            raise
        except Exception:  # noqa: BLE001 - one damaged page costs that page
            failed.append(number)
            continue
        read = number
        marks = list(outline.get(index, []))
        paras = _pdf_paragraphs(page_text, frozenset(title for _, title in marks))
        # A bookmark whose title is a line of the page starts there; one that is not, at the page's top.
        for level, name in [m for m in marks if not any(_clean_heading(" ".join(p)) == m[1] for p in paras)]:
            out.add(name, "heading", headings.enter(level, name), page=number, level=level)
        for para in paras:
            joined = _clean_heading(" ".join(para))
            mark = next((m for m in marks if m[1] == joined), None)
            if mark is not None:
                out.add(mark[1], "heading", headings.enter(mark[0], mark[1]), page=number, level=mark[0])
                marks.remove(mark)
                continue
            out.add(collapse_space("\n".join(para)), "paragraph", headings.path, page=number)
    if failed:
        listed = ", ".join(map(str, failed[:10])) + (" ..." if len(failed) > 10 else "")
        notes.append(f"{len(failed)} pages could not be read: {listed}")
        if not read:
            raise Refused("corrupt", f"none of its {count} pages could be read")
    truncated = False
    if count > limits.max_pages or (out.full and read < count):
        truncated = True
        notes.append(f"only the first {read} of {count} pages were read")
    if not any(b.kind != "heading" for b in out.blocks):
        raise Refused("no-text", "the PDF has no text layer (a scanned document?)" if count else "the PDF has no pages")
    return Extracted(str(path), "pdf", out.text(), out.blocks, st.st_size, st.st_mtime, None, title, count,
                     False, truncated, notes)


# --- DOCX -------------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"^(?:heading|标题|überschrift|titre|título|titolo|見出し)\s*(\d)$", re.I)


def _check_zip(fh: BinaryIO, st: os.stat_result, limits: Limits) -> None:
    """Refuse a Word file that is not one, or whose parts would inflate past the limit, before opening it."""
    if st.st_size > limits.max_file_bytes:
        raise Refused("too-large", f"{_mb(st.st_size)} is over the {_mb(limits.max_file_bytes)} limit")
    head = fh.read(64 * 1024)
    fh.seek(0)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        if "EncryptedPackage".encode("utf-16-le") in head:
            raise Refused("encrypted", "the Word document needs a password to open")
        raise Refused("unsupported", "an old Word 97-2003 document (.doc) with a .docx name")
    try:
        with zipfile.ZipFile(fh) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        what = binary_reason(head)
        raise Refused("corrupt", f"not a Word document: {what or exc}") from None
    finally:
        fh.seek(0)
    if len(infos) > 10_000:
        raise Refused("corrupt", f"a Word document with {len(infos)} parts")
    inflated = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos) or 1
    if inflated > limits.max_inflated_bytes:
        raise Refused("too-large", f"would inflate to {_mb(inflated)} from {_mb(packed)} "
                                   f"(over the {_mb(limits.max_inflated_bytes)} limit: a zip bomb?)")


def _docx_level(paragraph) -> int:
    """A paragraph's heading level (0 for a title, -1 if it is not a heading)."""
    from docx.oxml.ns import qn

    style = paragraph.style
    name = style.name if style is not None else ""
    if name == "Title":
        return 0
    m = _HEADING_STYLE.match(name or "")
    if m:
        return int(m.group(1))
    for element in (paragraph._p.pPr, style.element.pPr if style is not None else None):
        if element is not None:
            lvl = element.find(qn("w:outlineLvl"))
            if lvl is not None and (lvl.get(qn("w:val")) or "").isdigit() and int(lvl.get(qn("w:val"))) < 9:
                return int(lvl.get(qn("w:val"))) + 1
    return -1


def _docx(fh: BinaryIO, st: os.stat_result, path: Path, limits: Limits) -> Extracted:
    import docx
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    _check_zip(fh, st, limits)
    document = docx.Document(fh)
    out = _Joined(limits.max_text_bytes)
    outline = _Headings()
    title = None
    try:
        title = _clean_heading(document.core_properties.title or "") or None
    except Exception:  # noqa: BLE001 - damaged properties cost only the title
        pass

    def body(parent, depth: int = 0) -> None:
        nonlocal title
        for child in parent.iterchildren():
            if out.full:
                return
            if child.tag == qn("w:p"):
                paragraph = Paragraph(child, document)
                text = paragraph.text
                if not text.strip():
                    continue
                level = _docx_level(paragraph)
                if level >= 0:
                    out.add(text, "heading", outline.enter(level, text), level=level)
                    if title is None and level <= 1:
                        title = _clean_heading(text)
                    continue
                listed = child.pPr is not None and child.pPr.numPr is not None
                kind = "item" if listed or "List" in (paragraph.style.name if paragraph.style else "") else "paragraph"
                out.add(text, kind, outline.path)
            elif child.tag == qn("w:tbl"):
                for row in Table(child, document).rows:
                    cells, seen = [], set()
                    for cell in row.cells:
                        if id(cell._tc) in seen:  # a merged cell repeats
                            continue
                        seen.add(id(cell._tc))
                        cells.append(collapse_space(cell.text))
                    out.add(" | ".join(c for c in cells if c), "row", outline.path)
            elif child.tag == qn("w:sdt") and depth < 8:  # content controls hold paragraphs too
                content = child.find(qn("w:sdtContent"))
                if content is not None:
                    body(content, depth + 1)

    body(document.element.body)
    if not out.blocks:
        raise Refused("no-text", "the Word document holds no text")
    notes = ["only the start of the document was read (text limit)"] if out.full else []
    return Extracted(str(path), "docx", out.text(), out.blocks, st.st_size, st.st_mtime, None, title, None,
                     False, out.full, notes)


# --- the text-like kinds ------------------------------------------------------------------------

def _text_like(kind: str, fh: BinaryIO, st: os.stat_result, path: Path, limits: Limits) -> Extracted:
    if kind == "html":
        text, encoding, truncated, notes = _read_text(fh, st, limits, declared=_html_charset)
        out = _Joined(limits.max_text_bytes)
        parser = _HTMLText(out)
        parser.feed(text)
        parser.close()
        blocks, joined, title, verbatim = out.blocks, out.text(), collapse_space(parser.title) or None, False
    else:
        text, encoding, truncated, notes = _read_text(fh, st, limits)
        joined, verbatim, title = text, True, None
        if kind == "markdown":
            blocks, title = _markdown_blocks(text)
        elif kind == "csv":
            blocks = _csv_blocks(text, path)
        else:
            blocks = _paragraph_blocks(text, "code" if kind == "code" else "paragraph")
    if not blocks:
        raise Refused("no-text", "the file is empty" if st.st_size == 0 else "the file holds no text")
    return Extracted(str(path), kind, joined, blocks, st.st_size, st.st_mtime, encoding, title, None,
                     verbatim, truncated, notes)


def _say(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def extract_file(path: str | os.PathLike, limits: Limits | None = None, *,
                 parsers: Mapping[str, Parser] | None = None) -> Extracted | Problem:
    """The file's text and blocks, or the ``Problem`` that kept it out; never raises for a bad file.

    In this process: call it through ``engine.docs.worker.Extractor`` for files not known to be safe.
    ``parsers`` maps a suffix (".xyz") to a parser of its own, used before the built-in ones.
    """
    limits = limits or Limits()
    p = Path(path)
    name = str(path)
    kind = None
    try:
        custom = parsers.get(p.suffix.lower()) if parsers else None
        if custom is not None:
            return custom(p, limits)
        fh, st = _open(p)
        with fh:
            head = fh.read(SNIFF_BYTES)
            fh.seek(0)
            kind = kind_of(p, head)
            if kind is None:
                what = binary_reason(head)
                return Problem(name, "unsupported", f"not a kind of file r1desk reads{': ' + what if what else ''}")
            if kind == "pdf":
                return _pdf(fh, st, p, limits)
            if kind == "docx":
                return _docx(fh, st, p, limits)
            return _text_like(kind, fh, st, p, limits)
    except Refused as exc:
        return Problem(name, exc.code, exc.reason)
    except OSError as exc:
        return _os_problem(name, exc)
    except MemoryError:
        return Problem(name, "too-much-memory", "reading it needed more memory than the limit")
    except RecursionError:
        return Problem(name, "corrupt", "its structure is nested too deeply to read")
    except Exception as exc:  # noqa: BLE001 - the parsers raise anything on damaged files
        what = {"pdf": "PDF", "docx": "Word document"}.get(kind or "", "file")
        return Problem(name, "corrupt", f"the {what} could not be read ({_say(exc)})")
