"""Chunks for the index: passages that follow a document's structure, sized in the embedding model's tokens.

Cutting every N characters at a space (what GPT4All's LocalDocs does) splits sentences, mixes
sections and, in Chinese, which has no spaces, cuts anywhere. Here a chunk never crosses a
heading (its headings travel with it, and into the text that is embedded), a paragraph or a
code block that fits stays whole, and a longer one is cut at sentence ends, Chinese ones
(。！？；…) included, then at line breaks, then at clauses or spaces, and only as a last
resort inside a word. Chunks in the same section overlap by a few sentences, so a fact that
straddles a cut is still whole in one of them.

Sizes are in tokens of the embedding model: ``count_tokens`` is its tokenizer, called with
many texts at once (it may live in another process). ``approx_tokens`` stands in when there
is no embedding model: about one token per CJK character and 1.3 per other word, as BERT-style
tokenizers count. Whatever counter is given, no chunk's ``embedding_text`` counts more than
``max_tokens - reserve_tokens``: each chunk is counted again whole before it is returned.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from typing import Callable

from r1desk.engine.docs.extract import Block, Extracted

CountTokens = Callable[[list[str]], list[int]]

TARGET_TOKENS = 256
MAX_TOKENS = 512  # the context of MiniLM/BERT-style embedding models
OVERLAP_FRACTION = 0.12


@dataclass(slots=True)
class Chunk:
    """A passage of a document for the index.

    ``text`` is the passage: its blocks' text (each a slice of ``Extracted.text``) joined by line
    breaks, without what lies between them in a Markdown source (fences, table rules);
    ``start``..``end`` are the character offsets in ``Extracted.text`` it spans (for highlighting);
    ``ordinal`` counts the file's chunks from 0; ``tokens`` is the count of ``embedding_text``;
    ``page``..``page_end`` are the PDF pages it spans; ``start_line``..``end_line`` the file's
    lines (from 1, inclusive) where the format has lines; ``headings`` the enclosing headings,
    outermost first.
    """

    text: str
    ordinal: int
    tokens: int
    headings: tuple[str, ...]
    page: int | None
    page_end: int | None
    start_line: int | None
    end_line: int | None
    start: int
    end: int

    @property
    def embedding_text(self) -> str:
        """What the embedding model reads: the heading path on a line of its own, then the passage."""
        return f"{heading_line(self.headings)}\n{self.text}" if self.headings else self.text


def heading_line(headings: tuple[str, ...]) -> str:
    return " > ".join(headings)


# --- the default counter ------------------------------------------------------------------------

_PUNCT_BYTES = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def approx_tokens(texts: list[str]) -> list[int]:
    """About as many tokens as a BERT-style tokenizer makes: a CJK character 1, a word 1.3, an
    ASCII punctuation mark 1. Counted on the UTF-8 bytes, where a CJK character is the one kind
    of letter with two extra bytes (an accented Latin letter has one), so it costs no regex."""
    counts = []
    for text in texts:
        raw = text.encode("utf-8", "surrogatepass")
        punct = len(raw) - len(raw.translate(None, _PUNCT_BYTES))
        counts.append(math.ceil((len(raw) - len(text)) / 2 + 1.3 * len(raw.split()) + punct))
    return counts


# --- where a passage may be cut --------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st sr jr vs etc eg ie al fig figs no nos vol pp ch sec approx dept inc ltd co corp jan feb "
    "mar apr jun jul aug sep sept oct nov dec".split()
)
# A sentence ends after a CJK end mark (no space follows one in Chinese); after ! ? ; or ...
# before a space; after a full stop before a space and a word that does not start in lower
# case, unless it ends an abbreviation or an initial. Closing quotes and brackets stay with the
# sentence they close. Marks are found by one character class (fast), then judged here.
_MARKS = re.compile(r"[。！？｡；…!?;.]+")
_CLOSERS = re.compile(r"[\"'”’」』）)\]】》〉]*")
_CJK_ENDS = frozenset("。！？｡；…")
_NEXT_WORD = re.compile(r"\s*(\S)")
_WORD_BEFORE = re.compile(r"\w+$")
_CLAUSE = re.compile(r"[，、,:：—]+\s*")
_SPACES = re.compile(r"\s+")
_NEWLINE = re.compile(r"\n")


def _sentence_cuts(text: str, start: int, end: int) -> list[int]:
    """Offsets in ``start``..``end`` where a sentence begins (after the one before and its closers)."""
    cuts = []
    for m in _MARKS.finditer(text, start, end):
        stop = _CLOSERS.match(text, m.end(), end).end()
        if stop >= end:
            continue
        run = m.group()
        if not any(ch in _CJK_ENDS for ch in run):
            if not text[stop].isspace():
                continue
            if run == ".":
                following = _NEXT_WORD.match(text, stop, end)
                if following is not None and following.group(1).islower():
                    continue
                before = _WORD_BEFORE.search(text, max(start, m.start() - 12), m.start())
                word = before.group() if before else ""
                if not word or word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper()):
                    continue
        cuts.append(stop)
    return cuts


def _pattern_cuts(pattern: re.Pattern, text: str, start: int, end: int) -> list[int]:
    return [m.end() for m in pattern.finditer(text, start, end) if start < m.end() < end]


def _pieces(text: str, start: int, end: int, cuts: list[int]) -> list[tuple[int, int]]:
    """The spans between cuts, with white space trimmed from both ends (empty ones dropped)."""
    spans = []
    for a, b in zip([start, *cuts], [*cuts, end]):
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            spans.append((a, b))
    return spans


def _sized_cuts(text: str, start: int, end: int, tokens: int, budget: int) -> list[tuple[int, int]]:
    """A span too long for ``budget`` cut into pieces of about ``budget`` tokens: at clause marks,
    else at spaces, else anywhere (CJK text without punctuation has no other place)."""
    length = end - start
    size = max(1, int(length * budget / max(tokens, 1) * 0.9))
    boundaries = _pattern_cuts(_CLAUSE, text, start, end) or _pattern_cuts(_SPACES, text, start, end)
    spans, a = [], start
    while end - a > size:
        limit = a + size
        i = bisect.bisect_right(boundaries, limit) - 1
        cut = boundaries[i] if i >= 0 and boundaries[i] > a + size // 3 else limit
        spans.append((a, cut))
        a = cut
    spans.append((a, end))
    return _pieces(text, start, end, [b for _, b in spans[:-1]])


# --- chunking ---------------------------------------------------------------------------------

_TIGHT = frozenset({"row", "item"})  # consecutive rows or list items join with one line break, others with two

Piece = tuple[int, int, int, int]  # start, end, block index, tokens


def chunk_document(doc: Extracted, *, count_tokens: CountTokens = approx_tokens, target_tokens: int = TARGET_TOKENS,
                   max_tokens: int = MAX_TOKENS, overlap_tokens: int | None = None,
                   reserve_tokens: int = 0) -> list[Chunk]:
    """``doc``'s chunks, in order.

    ``target_tokens``: the size chunks are filled to; ``max_tokens``: the embedding model's
    context, which no chunk's ``embedding_text`` exceeds, less ``reserve_tokens`` (for a prefix
    the embedder adds, such as "search_document: "); ``overlap_tokens``: how much of the end of
    a chunk the next one in the same section repeats (12% of the target if not given).
    ``count_tokens`` is called a few times per document, each time with many texts.
    """
    limit = max_tokens - reserve_tokens
    if limit < 8:
        raise ValueError(f"max_tokens - reserve_tokens = {limit} leaves no room for text")
    target = max(1, min(target_tokens, limit))
    overlap = round(target * OVERLAP_FRACTION) if overlap_tokens is None else max(0, overlap_tokens)
    text = doc.text
    blocks = [b for b in doc.blocks if b.kind != "heading" and b.end > b.start]
    if not blocks:
        return []

    # Sections: runs of blocks under the same headings. The heading line costs tokens in every
    # chunk of its section, so it is counted first and kept to a quarter of the room.
    section_of: list[int] = []
    sections: list[tuple[str, ...]] = []
    for block in blocks:
        if not sections or block.headings != sections[-1]:
            sections.append(block.headings)
        section_of.append(len(sections) - 1)
    sections = _fit_headings(sections, count_tokens, limit // 4)
    heading_cost = count_tokens([heading_line(h) for h in sections])
    budgets = [limit - (cost + 2 if h else 0) for h, cost in zip(sections, heading_cost)]

    pieces = _pieces_of(text, blocks, section_of, budgets, target, count_tokens)

    # Fill chunks to the target with whole blocks, or with the sentences (lines) of a block
    # too long for a chunk of its own; a new chunk in the same section starts with the end of
    # the one before.
    groups: list[list[Piece]] = []
    cur: list[Piece] = []
    cur_tokens = 0
    fresh = 0  # pieces in ``cur`` that are not repeated from the chunk before
    for piece in pieces:
        bi, tokens = piece[2], piece[3]
        budget = budgets[section_of[bi]]
        if cur and section_of[cur[-1][2]] != section_of[bi]:
            if fresh:
                groups.append(cur)
            cur, cur_tokens, fresh = [], 0, 0
        if fresh and cur_tokens + tokens > target:
            groups.append(cur)
            cur = _tail(text, blocks, cur, min(overlap, budget - tokens))
            cur_tokens, fresh = sum(p[3] for p in cur), 0
        if cur_tokens + tokens > budget:
            cur, cur_tokens = [], 0
        cur.append(piece)
        cur_tokens += tokens
        fresh += 1
    if fresh:
        groups.append(cur)
    return _assemble(doc, blocks, section_of, sections, groups, count_tokens, limit)


def _tail(text: str, blocks: list[Block], group: list[Piece], room: int) -> list[Piece]:
    """The end of a chunk that the next one repeats, within ``room`` tokens: whole pieces from the
    end while they fit, then the end of the piece that does not: its last sentences (lines, for
    code and rows), else its last clause, else its last sentence if it is at most twice the room,
    else its last words; inside a run of text with no sentence mark, its last characters.
    Never the whole chunk, and nothing when nothing fits."""
    out: list[Piece] = []
    left = room
    for i in range(len(group) - 1, -1, -1):
        s, e, bi, tokens = group[i]
        if i > 0 and tokens <= left:
            out.insert(0, group[i])
            left -= tokens
            continue
        if left <= 0 or (out and i > 0):
            break  # what is repeated starts at a piece's start when it can
        # Only the end of the piece can be repeated: cuts are looked for there. The part before
        # the first cut is taken only if it is whole and not the chunk's first piece.
        window = max(s, e - max(256, 16 * left))
        skip = 1 if window > s or i == 0 else 0
        scale = tokens / max(1, approx_tokens([text[s:e]])[0])  # the counter in use, not the estimate, decides

        def last(cuts: list[int], allowed: int) -> list[Piece]:
            parts = _pieces(text, window, e, cuts)[skip:]
            estimates = approx_tokens([text[a:b] for a, b in parts])
            taken: list[Piece] = []
            spent = 0
            for (a, b), estimate in zip(reversed(parts), reversed(estimates)):
                cost = math.ceil(estimate * scale)
                if spent + cost > allowed:
                    break
                taken.insert(0, (a, b, bi, cost))
                spent += cost
            return taken

        if blocks[bi].kind in ("code", "row"):
            out[:0] = last(_pattern_cuts(_NEWLINE, text, window, e), left)
            break
        sentences = _sentence_cuts(text, window, e)
        taken = last(sentences, left)
        if not taken and not out:
            taken = last(_pattern_cuts(_CLAUSE, text, window, e), left) or last(sentences, 2 * left)
            if not taken and _MARKS.search(text, s, e) is not None:
                taken = last(_pattern_cuts(_SPACES, text, window, e), left)
            elif not taken and e - s > 1:
                size = int((e - s) * left / max(tokens, 1))
                if 0 < size < e - s:
                    taken = [(e - size, e, bi, left)]
        out[:0] = taken
        break
    return out


def _fit_headings(sections: list[tuple[str, ...]], count_tokens: CountTokens, room: int) -> list[tuple[str, ...]]:
    """Heading paths shortened to ``room`` tokens: outer headings dropped first, then the last one cut."""
    fitted = list(sections)
    for _ in range(12):
        costs = count_tokens([heading_line(h) for h in fitted])
        over = [i for i, c in enumerate(costs) if c > room]
        if not over:
            return fitted
        for i in over:
            path = fitted[i]
            if len(path) > 1:
                fitted[i] = path[1:]
            else:
                name = path[0]
                fitted[i] = (name[: max(1, int(len(name) * room / costs[i] * 0.9))],)
    return [h if approx_tokens([heading_line(h)])[0] <= room else () for h in fitted]


def _pieces_of(text: str, blocks: list[Block], section_of: list[int], budgets: list[int], target: int,
               count_tokens: CountTokens) -> list[Piece]:
    """Each block whole if it fits its section's budget; else its sentences (prose) or lines
    (code, rows), and any of those still over the budget cut to size (see ``_sized_cuts``)."""
    spans = [(b.start, b.end, bi, 0) for bi, b in enumerate(blocks)]  # level 0 whole, 1 sentences/lines, 2 sized
    tokens = count_tokens([b.text for b in blocks])
    for _ in range(32):
        over = [i for i, (_, _, bi, _) in enumerate(spans) if tokens[i] > budgets[section_of[bi]]]
        if not over:
            break
        replaced: dict[int, list[tuple[int, int, int, int]]] = {}
        for i in over:
            s, e, bi, level = spans[i]
            parts: list[tuple[int, int]] = []
            if level == 0:
                cuts = _pattern_cuts(_NEWLINE, text, s, e) if blocks[bi].kind in ("code", "row") else \
                    _sentence_cuts(text, s, e)
                parts = _pieces(text, s, e, cuts)
            if level == 1 or (level == 0 and len(parts) < 2 and blocks[bi].kind not in ("code", "row")):
                parts = _pieces(text, s, e, _pattern_cuts(_NEWLINE, text, s, e))
            if len(parts) < 2:
                parts = _sized_cuts(text, s, e, tokens[i], min(target, budgets[section_of[bi]]))
                level = 2
            replaced[i] = [(a, b, bi, min(level + 1, 2)) for a, b in parts]
        new_tokens = iter(count_tokens([text[a:b] for i in over for a, b, _, _ in replaced[i]]))
        merged_spans, merged_tokens = [], []
        for i, span in enumerate(spans):
            if i in replaced:
                for part in replaced[i]:
                    merged_spans.append(part)
                    merged_tokens.append(next(new_tokens))
            else:
                merged_spans.append(span)
                merged_tokens.append(tokens[i])
        spans, tokens = merged_spans, merged_tokens
    return [(s, e, bi, t) for (s, e, bi, _), t in zip(spans, tokens)]


def _assemble(doc: Extracted, blocks: list[Block], section_of: list[int], sections: list[tuple[str, ...]],
              groups: list[list[Piece]], count_tokens: CountTokens, limit: int) -> list[Chunk]:
    """Chunks from groups of pieces, each counted again whole; one over the limit is split in two."""
    text = doc.text
    newlines = [m.start() for m in _NEWLINE.finditer(text)] if doc.verbatim else None

    def make(group: list[Piece]) -> Chunk:
        start, end = group[0][0], group[-1][1]
        b0, b1 = blocks[group[0][2]], blocks[group[-1][2]]
        if newlines is not None:
            lines = (bisect.bisect_left(newlines, start) + 1, bisect.bisect_left(newlines, end - 1) + 1)
        else:
            lines = (b0.start_line, b1.end_line)
        parts: list[str] = []
        run_start = start
        for previous, piece in zip(group, group[1:]):
            if piece[2] != previous[2]:
                parts.append(text[run_start:previous[1]])
                kind, before = blocks[piece[2]].kind, blocks[previous[2]].kind
                parts.append("\n" if kind == before and kind in _TIGHT else "\n\n")
                run_start = piece[0]
        parts.append(text[run_start:end])
        return Chunk("".join(parts), 0, 0, sections[section_of[group[0][2]]], b0.page, b1.page,
                     lines[0], lines[1], start, end)

    pending = [(g, make(g)) for g in groups]
    done: list[Chunk] = []
    for _ in range(64):
        counts = count_tokens([c.embedding_text for _, c in pending])
        retry: list[tuple[list[Piece], Chunk]] = []
        for (group, chunk), count in zip(pending, counts):
            if count <= limit:
                chunk.tokens = count
                done.append(chunk)
                continue
            if len(group) == 1:  # one piece over the limit whole (counters are not quite additive)
                s, e, bi, _ = group[0]
                heading = count_tokens([heading_line(chunk.headings)])[0] + 2 if chunk.headings else 0
                cuts = _sized_cuts(text, s, e, count, max(1, limit - heading))
                if len(cuts) < 2:
                    if e - s < 2:  # one character over the limit: it goes without its headings
                        chunk.headings = ()
                        retry.append((group, chunk))
                        continue
                    cuts = [(s, (s + e) // 2), ((s + e) // 2, e)]
                group = [(a, b, bi, 0) for a, b in cuts]
            half = len(group) // 2
            for part in (group[:half], group[half:]):
                retry.append((part, make(part)))
        if not retry:
            break
        pending = retry
    else:
        raise RuntimeError("chunks could not be brought under the token limit")
    done.sort(key=lambda c: (c.start, c.end))
    for i, chunk in enumerate(done):
        chunk.ordinal = i
    return done
