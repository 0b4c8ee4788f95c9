"""Chunking: never over the maximum whatever the counter (the real embedding model's tokenizer
included), cut at sentence ends in English and Chinese, headings carried and never crossed,
overlap between neighbours, pages and lines right, and fast."""

from __future__ import annotations

import random
import time

import pytest

from r1desk.engine.docs.chunking import Chunk, approx_tokens, chunk_document, heading_line
from r1desk.engine.docs.extract import Block, Extracted, _markdown_blocks, _paragraph_blocks

pytestmark = pytest.mark.timeout(300)

CJK_ENDS = "。！？；…"


def text_doc(text: str, kind: str = "paragraph") -> Extracted:
    return Extracted("x.txt", "text", text, _paragraph_blocks(text, kind), len(text), 0.0, verbatim=True)


def markdown_doc(text: str) -> Extracted:
    blocks, title = _markdown_blocks(text)
    return Extracted("x.md", "markdown", text, blocks, len(text), 0.0, title=title, verbatim=True)


def chars(texts: list[str]) -> list[int]:
    """A counter unlike any tokenizer: one token per character."""
    return [len(t) for t in texts]


def lumpy(texts: list[str]) -> list[int]:
    """A counter that is not additive: 7 tokens of its own per text, as special tokens add."""
    return [n + 7 for n in approx_tokens(texts)]


def english(rng: random.Random, sentences: int) -> str:
    words = "the pump valve reactor crew inspected replaced survey budget north station report was on by".split()
    return " ".join(" ".join(rng.choice(words) for _ in range(rng.randint(5, 25))).capitalize() + "."
                    for _ in range(sentences))


def chinese(rng: random.Random, sentences: int) -> str:
    words = ["反应堆", "冷却泵", "更换", "检查", "小组", "预算", "报告", "北方", "站点", "调查", "工程师", "完成"]
    return "".join("".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + rng.choice(CJK_ENDS)
                   for _ in range(sentences))


def hostile_docs() -> list[Extracted]:
    rng = random.Random(4)
    return [
        text_doc(chinese(rng, 300)),  # one long Chinese paragraph, no spaces anywhere
        text_doc("没有任何标点符号的中文" * 400),  # nowhere to cut but between characters
        text_doc(english(rng, 200)),
        text_doc("x" * 20000),  # one enormous word
        text_doc("https://example.com/" + "a1b2c3/" * 2000),
        text_doc("\n".join(f"    value_{i} = compute({i}, {i * 7})  # step {i}" for i in range(2000)), "code"),
        markdown_doc("# " + "Heading " * 400 + "\n\n" + english(rng, 30)),  # a heading longer than a chunk
        markdown_doc("".join(f"{'#' * (i % 6 + 1)} Level {i}\n\nShort paragraph {i}.\n\n" for i in range(60))),
    ]


@pytest.mark.parametrize("counter", [approx_tokens, chars, lumpy], ids=["approx", "chars", "lumpy"])
@pytest.mark.parametrize("sizes", [(256, 512), (64, 128), (16, 32)], ids=["256-512", "64-128", "16-32"])
def test_no_chunk_counts_over_the_maximum(corpus, extracted, counter, sizes) -> None:
    target, maximum = sizes
    for doc in [*extracted.values(), *hostile_docs()]:
        chunks = chunk_document(doc, count_tokens=counter, target_tokens=target, max_tokens=maximum, reserve_tokens=4)
        assert chunks, doc.path
        counts = counter([c.embedding_text for c in chunks])
        assert max(counts) <= maximum - 4, doc.path
        assert [c.tokens for c in chunks] == counts
        assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_every_character_of_the_text_is_in_a_chunk(extracted) -> None:
    for doc in [*extracted.values(), *hostile_docs()]:
        chunks = chunk_document(doc, target_tokens=64, max_tokens=128)
        covered = bytearray(len(doc.text))
        for c in chunks:
            for part in c.text.split("\n"):
                at = doc.text.find(part, c.start, c.end)
                assert at >= 0, (doc.path, part)  # each line of a chunk lies in the span it names
                covered[at:at + len(part)] = b"\x01" * len(part)
        for block in doc.blocks:
            if block.kind != "heading":
                missing = [ch for ch, seen in zip(block.text, covered[block.start:block.end]) if not seen]
                assert "".join(missing).strip() == "", doc.path


def test_chinese_is_cut_at_its_sentence_ends(corpus) -> None:
    rng = random.Random(9)
    doc = text_doc(chinese(rng, 400))
    chunks = chunk_document(doc, target_tokens=100, max_tokens=200, overlap_tokens=0)
    assert len(chunks) > 10
    for before, after in zip(chunks, chunks[1:]):
        assert before.text[-1] in CJK_ENDS, before.text[-20:]
        assert doc.text[after.start - 1] in CJK_ENDS  # each starts where a sentence does
    assert all(" " not in c.text for c in chunks)


def test_english_is_cut_at_sentence_ends_but_not_after_abbreviations() -> None:
    rng = random.Random(2)
    sentences = [english(rng, 1) for _ in range(60)]
    sentences[10] = "Dr. Okafor checked the pump, e.g. the seals, at 3.5 bar with Mr. J. Smith present."
    doc = text_doc(" ".join(sentences))
    chunks = chunk_document(doc, target_tokens=40, max_tokens=80, overlap_tokens=0)
    starts = {c.text[:12] for c in chunks}
    assert not starts & {"Okafor check", "the seals, a", "5 bar with M", "Smith presen", "J. Smith pre"}
    assert all(c.text.endswith(".") for c in chunks)


def test_neighbouring_chunks_overlap_by_the_end_of_the_one_before() -> None:
    rng = random.Random(5)
    for text in (english(rng, 300), chinese(rng, 300)):
        doc = text_doc(text)
        chunks = chunk_document(doc, target_tokens=256, max_tokens=512)
        assert len(chunks) > 5
        for before, after in zip(chunks, chunks[1:]):
            shared = doc.text[after.start:before.end]
            assert before.end > after.start and before.text.endswith(shared) and after.text.startswith(shared)
            assert 0 < approx_tokens([shared])[0] <= 0.15 * 256 + 2
    no_overlap = chunk_document(text_doc(english(rng, 100)), target_tokens=64, max_tokens=128, overlap_tokens=0)
    assert all(a.end <= b.start for a, b in zip(no_overlap, no_overlap[1:]))


def test_headings_are_carried_into_each_chunk_and_never_crossed() -> None:
    rng = random.Random(6)
    text = (f"# Plant\n\n{english(rng, 3)}\n\n## Cooling\n\n{english(rng, 40)}\n\n## Turbines\n\n{english(rng, 2)}\n\n"
            f"### Unit 2\n\n{chinese(rng, 30)}\n")
    doc = markdown_doc(text)
    chunks = chunk_document(doc, target_tokens=64, max_tokens=128)
    sections = {c.headings for c in chunks}
    assert sections == {("Plant",), ("Plant", "Cooling"), ("Plant", "Turbines"), ("Plant", "Turbines", "Unit 2")}
    for c in chunks:
        inside = [b for b in doc.blocks if b.kind != "heading" and b.start < c.end and b.end > c.start]
        assert {b.headings for b in inside} == {c.headings}
        assert c.embedding_text == f"{heading_line(c.headings)}\n{c.text}"
        assert not any(h in c.text for h in ("## Cooling", "## Turbines", "### Unit 2"))
    # A heading path too long for a chunk is shortened, not allowed to crowd out the text.
    long = markdown_doc("# " + "Very long heading " * 200 + "\n\n" + english(rng, 20))
    for c in chunk_document(long, target_tokens=64, max_tokens=128):
        assert approx_tokens([heading_line(c.headings)])[0] <= 128 // 4


def test_paragraphs_and_code_blocks_that_fit_are_kept_whole(extracted) -> None:
    rng = random.Random(7)
    code = "\n".join(f"    total += item_{i} * weight[{i}]" for i in range(15))
    text = (f"# Notes\n\n{english(rng, 6)}\n\n```python\ndef score(items):\n{code}\n```\n\n"
            f"{english(rng, 5)}\n\n{english(rng, 4)}\n")
    doc = markdown_doc(text)
    chunks = chunk_document(doc, target_tokens=128, max_tokens=512)
    for block in doc.blocks:
        if block.kind != "heading":
            assert any(block.text in c.text for c in chunks), block.kind
    # Too long for a chunk: cut at line ends, each chunk whole lines of the code.
    long = text_doc("\n".join(f"result_{i} = transform(data[{i}], factor={i % 9})" for i in range(3000)), "code")
    lines = set(long.text.split("\n"))
    for c in chunk_document(long, target_tokens=128, max_tokens=256):
        assert all(line in lines for line in c.text.split("\n"))


def test_lines_and_pages_are_those_of_the_chunk_s_text(corpus, extracted) -> None:
    for doc in extracted.values():
        for c in chunk_document(doc, target_tokens=64, max_tokens=128):
            if doc.verbatim:
                assert c.start_line == doc.text.count("\n", 0, c.start) + 1
                assert c.end_line == doc.text.count("\n", 0, c.end - 1) + 1
            if doc.kind == "pdf":
                pages = {b.page for b in doc.blocks if b.kind != "heading" and b.start < c.end and b.end > c.start}
                assert (c.page, c.page_end) == (min(pages), max(pages))
            else:
                assert c.page is None
    # Each fact is whole in a chunk that names its page, its line and its heading.
    for fact in corpus.facts:
        chunks = [c for c in chunk_document(extracted[fact.file]) if fact.found_in(c.text)]
        assert chunks, fact.id
        c = chunks[0]
        if fact.page is not None:
            assert c.page <= fact.page <= c.page_end, fact.id
        if fact.line is not None:
            assert c.start_line <= fact.line <= c.end_line, fact.id
        if fact.heading is not None:
            assert c.headings[-1] == fact.heading, fact.id


def test_rows_carry_the_csv_header_and_join_with_one_line_break(extracted) -> None:
    doc = extracted["inventory.csv"]
    chunks = chunk_document(doc, target_tokens=64, max_tokens=128)
    assert all(c.headings == ("warehouse,city,item,quantity",) for c in chunks)
    assert all("\n\n" not in c.text for c in chunks)
    assert chunks[0].embedding_text.startswith("warehouse,city,item,quantity\nWH-")


def test_a_document_without_text_blocks_has_no_chunks() -> None:
    heading = Block("Only a heading", "heading", (), None, 1, 1, 2, 16, 1)
    doc = Extracted("h.md", "markdown", "# Only a heading", [heading], 16, 0.0, verbatim=True)
    assert chunk_document(doc) == []
    with pytest.raises(ValueError):
        chunk_document(doc, max_tokens=10, reserve_tokens=5)


def test_chunking_is_fast(capsys) -> None:
    rng = random.Random(8)
    paragraphs = [chinese(rng, rng.randint(2, 12)) if i % 3 == 0 else english(rng, rng.randint(1, 14))
                  for i in range(8000)]
    doc = text_doc("\n\n".join(paragraphs))
    started = time.perf_counter()
    chunks = chunk_document(doc)
    seconds = time.perf_counter() - started
    rate = len(chunks) / seconds
    with capsys.disabled():
        print(f"\nchunking: {len(chunks)} chunks from {len(doc.text) / 1e6:.1f} M characters in {seconds:.2f} s: "
              f"{rate:,.0f} chunks/s, {len(doc.text) / seconds / 1e6:.1f} M characters/s")
    assert rate > 500  # measured about 10,000/s on 2 busy cores; embedding one chunk takes far longer


@pytest.mark.slow
def test_with_the_embedding_model_s_own_tokenizer_nothing_is_cut_off(corpus, extracted, minilm_gguf, capsys) -> None:
    """all-MiniLM-L6-v2 through the model process: its tokenizer sizes the chunks, and every chunk
    fits its 512 positions, special tokens included, so the embedder never truncates one."""
    from r1desk.engine.inference.host import LoadOptions, ModelHost

    host = ModelHost()
    try:
        host.load(minilm_gguf, LoadOptions(embedding=True, n_threads=2))
        maximum = host.info.n_ctx
        assert maximum == 512
        ratios = {"en": [], "zh": []}  # how near the estimate comes, on the corpus's prose
        corpus_paths = {d.path for d in extracted.values()}
        for doc in [*extracted.values(), *hostile_docs()]:
            chunks = chunk_document(doc, count_tokens=host.count_tokens_of, max_tokens=maximum)
            real = host.count_tokens_of([c.embedding_text for c in chunks])
            assert max(real) <= maximum and real == [c.tokens for c in chunks], doc.path
            for c, n in zip(chunks, real if doc.path in corpus_paths else []):
                lang = "zh" if sum(ord(ch) > 0x2E80 for ch in c.text) > len(c.text) / 3 else "en"
                ratios[lang].append(approx_tokens([c.embedding_text])[0] / n)
        vectors = host.embed([c.embedding_text for c in chunk_document(extracted["reactor_maintenance.pdf"],
                                                                       count_tokens=host.count_tokens_of)])
        assert vectors.shape[1] == 384
    finally:
        host.close()
    mean = {k: sum(v) / len(v) for k, v in ratios.items()}
    with capsys.disabled():
        print(f"\napprox_tokens / MiniLM's count: English {mean['en']:.2f}, Chinese {mean['zh']:.2f}")
    assert 0.6 < mean["en"] < 1.6 and 0.6 < mean["zh"] < 1.6


def test_a_pdf_chunk_names_its_pages_and_no_lines(extracted) -> None:
    doc = extracted["reactor_maintenance.pdf"]
    c = chunk_document(doc)[0]
    assert isinstance(c, Chunk) and c.ordinal == 0 and c.tokens > 0 and c.headings == ("1 Site",)
    assert (c.page, c.start_line, c.end_line) == (1, None, None)
    assert c.start == doc.blocks[1].start and c.text.startswith(doc.blocks[1].text)
