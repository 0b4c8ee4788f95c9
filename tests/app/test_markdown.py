"""Streaming Markdown: blocks rendered once, the same result whatever the chunking."""

from __future__ import annotations

import random

from r1desk.app.markdown import (
    BlockSplitter,
    CodeClose,
    CodeLine,
    CodeOpen,
    CodePartial,
    Tail,
    TextBlock,
    highlight_html,
    render_html,
    split_all,
)

REPLY = """# Plan

Here is **bold** and `inline`.
Second line.

- one
- two

```python
def f(x):
    return x * 2
```

| a | b |
|---|---|
| 1 | 2 |

~~~
raw ``` inside
~~~
Done."""


def final_ops(ops):
    return [op for op in ops if not isinstance(op, (Tail, CodePartial))]


def stream(text, pieces):
    splitter = BlockSplitter()
    ops = []
    for piece in pieces:
        ops += splitter.feed(piece)
    return ops + splitter.finish()


def chunks(text, rng):
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 7)
        out.append(text[i:i + n])
        i += n
    return out


def test_whole_reply_splits_into_blocks_and_code():
    ops = split_all(REPLY)
    assert ops == [
        TextBlock("# Plan"),
        TextBlock("Here is **bold** and `inline`.\nSecond line."),
        TextBlock("- one\n- two"),
        CodeOpen("python"), CodeLine("def f(x):\n"), CodeLine("    return x * 2\n"), CodeClose(),
        TextBlock("| a | b |\n|---|---|\n| 1 | 2 |"),
        CodeOpen(""), CodeLine("raw ``` inside\n"), CodeClose(),
        TextBlock("Done."),
    ]


def test_any_chunking_gives_the_same_blocks():
    rng = random.Random(7)
    for _ in range(50):
        assert final_ops(stream(REPLY, chunks(REPLY, rng))) == split_all(REPLY)


def test_tail_shows_the_block_being_written_and_only_it():
    splitter = BlockSplitter()
    assert splitter.feed("First para") == [Tail("First para")]
    assert splitter.feed("graph.\n\nSec") == [TextBlock("First paragraph."), Tail("Sec")]
    assert splitter.feed("ond") == [Tail("Second")]


def test_open_code_streams_lines_and_a_replaceable_partial_line():
    splitter = BlockSplitter()
    assert splitter.feed("```js\nlet a") == [CodeOpen("js"), CodePartial("let a")]
    assert splitter.feed(" = 1;\nlet") == [CodePartial(""), CodeLine("let a = 1;\n"), CodePartial("let")]
    assert splitter.feed(" b;\n``") == [CodePartial(""), CodeLine("let b;\n"), CodePartial("``")]
    assert splitter.feed("`\n") == [CodePartial(""), CodeClose()]


def test_unclosed_fence_is_closed_at_the_end():
    ops = split_all("```\nprint(1)")
    assert ops == [CodeOpen(""), CodeLine("print(1)\n"), CodeClose()]


def test_rendering_escapes_html_and_never_embeds_images():
    out = render_html('<script>x</script> ![cat](http://evil.example/?q=secret) **b**')
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<img" not in out
    assert '<a href="http://evil.example/?q=secret">cat</a>' in out
    assert "<strong>b</strong>" in out


def test_rendering_is_compact_for_qt():
    out = render_html("1. a\n\n2. b")
    assert "<li><p>" not in out and ">\n<" not in out


def test_code_is_highlighted_with_inline_colours():
    out = highlight_html("def f():\n    return 1\n", "python")
    assert out.startswith("<pre>") and "style=" in out and "def" in out
    assert highlight_html("x", "no-such-language") == "<pre>x</pre>"
