"""Split GGUF names (``-00001-of-00004.gguf``): the one place that reads and writes them.

llama.cpp's ``gguf-split`` names the parts of a model ``PREFIX-NNNNN-of-MMMMM.gguf`` and, given
the first part, finds the others by that name alone; so the library, the catalog and downloads
all have to agree on it. Names may carry folders ("Q8_0/m-Q8_0-00001-of-00002.gguf"): the prefix
keeps them, so part names come out in the same folder.
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple

_SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE | re.DOTALL)


class Split(NamedTuple):
    prefix: str  # everything before "-00001-of-...", folders included
    index: int  # 1 for the first part
    count: int


def parse(name: str) -> Split | None:
    """``"m-Q8_0-00002-of-00003.gguf"`` -> ``("m-Q8_0", 2, 3)``; None for a name that is not a part."""
    m = _SPLIT_RE.match(name)
    if not m:
        return None
    return Split(m["prefix"], int(m["index"]), int(m["count"]))


def part_name(prefix: str, index: int, count: int) -> str:
    """The name llama.cpp gives part ``index`` (from 1) of ``count``."""
    return f"{prefix}-{index:05d}-of-{count:05d}.gguf"


def part_names(name: str, count: int | None = None) -> list[str] | None:
    """Every part's name, in order, of the split set ``name`` belongs to; None if it is not a part.

    ``count`` overrides the count in the name (the first part's header says how many there are).
    """
    split = parse(name)
    if split is None:
        return None
    n = split.count if count is None else count
    return [part_name(split.prefix, i, n) for i in range(1, n + 1)]


def group(names: Iterable[str]) -> dict[str, list[str | None]]:
    """A repo listing -> {each model's name: its files in order}, None for a part the listing lacks.

    A model is keyed by the name llama.cpp is given: the file itself, or its first part (even when
    that part is the one missing). In the order models first appear.
    """
    out: dict[str, list[str | None]] = {}
    for name in names:
        split = parse(name)
        if split is None:
            out.setdefault(name, [name])
            continue
        if not 1 <= split.index <= split.count:
            continue  # "-00000-of-..." or "-00003-of-00002": no part of any set
        key = part_name(split.prefix, 1, split.count)
        parts = out.setdefault(key, [None] * split.count)
        parts[split.index - 1] = name
    return out
