"""Extraction of each kind of file in the generated corpus: the text, its blocks, pages, lines,
headings and encodings; and the Problem, not an exception, for a file that cannot be read."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import pytest

from r1desk.engine.docs.extract import (
    BLOCK_KINDS,
    PROBLEMS,
    Extracted,
    Limits,
    Problem,
    Refused,
    decode,
    extract_file,
    kind_of,
)
from r1desk.engine.errors import DocumentError

from tests.support.corpus import build_hostile

pytestmark = pytest.mark.timeout(120)


def block_with(doc: Extracted, fact):
    hits = [b for b in doc.blocks if fact.found_in(b.text)]
    assert hits, f"{fact.id} is in no block of {doc.path}"
    return hits[0]


def test_every_fact_is_in_a_block_on_its_page_lines_and_under_its_heading(corpus, extracted) -> None:
    wrong = []
    for fact in corpus.facts:
        block = block_with(extracted[fact.file], fact)
        if fact.page is not None and block.page != fact.page:
            wrong.append((fact.id, "page", block.page, fact.page))
        if fact.line is not None and not block.start_line <= fact.line <= block.end_line:
            wrong.append((fact.id, "lines", (block.start_line, block.end_line), fact.line))
        if fact.heading is not None and (not block.headings or block.headings[-1] != fact.heading):
            wrong.append((fact.id, "headings", block.headings, fact.heading))
    assert wrong == []
    assert len(corpus.facts) >= 20 and len({f.file for f in corpus.facts}) >= 10


def test_each_block_is_the_slice_of_the_text_its_offsets_name(extracted) -> None:
    for doc in extracted.values():
        assert doc.blocks
        last = 0
        for block in doc.blocks:
            assert doc.text[block.start:block.end] == block.text
            assert block.kind in BLOCK_KINDS
            assert block.start >= last  # in reading order, never overlapping
            last = block.end
            assert block.text == block.text.strip() or block.kind == "code"


def test_a_pdf_keeps_its_pages_and_its_bookmarks_become_headings(extracted) -> None:
    doc = extracted["reactor_maintenance.pdf"]
    assert doc.kind == "pdf" and doc.pages == 6 and not doc.verbatim
    pages = [b.page for b in doc.blocks]
    assert pages == sorted(pages) and set(pages) == {1, 2, 3, 4, 5, 6}
    headings = [(b.text, b.page, b.level) for b in doc.blocks if b.kind == "heading"]
    assert headings == [("1 Site", 1, 1), ("2 Cooling", 2, 1), ("3 Turbines", 4, 1), ("4 Staff", 6, 1)]
    # A bookmark's title line is the heading, not the start of the paragraph after it.
    assert not any(b.text.startswith(("1 Site", "2 Cooling")) for b in doc.blocks if b.kind == "paragraph")
    page3 = [b for b in doc.blocks if b.page == 3]
    assert all(b.headings == ("2 Cooling",) for b in page3)  # a section runs on over its pages
    assert doc.title == "reactor_maintenance"


def test_chinese_comes_back_from_a_pdf_character_for_character(corpus, extracted) -> None:
    doc = extracted["年度报告.pdf"]
    assert "\ufffd" not in doc.text
    for fact in corpus.facts_in("年度报告.pdf"):
        assert fact.text in doc.text  # exactly: no spaces put between the characters of a wrapped line
        assert block_with(doc, fact).page == fact.page
    assert [b.text for b in doc.blocks if b.kind == "heading"] == ["一、经营概况", "二、供应链", "三、研发", "四、生产"]


def test_a_word_document_has_headings_from_its_styles_lists_and_table_rows(extracted) -> None:
    doc = extracted["project_handbook.docx"]
    assert doc.title == "Falcon Project Handbook"
    headings = [(b.text, b.level, b.headings) for b in doc.blocks if b.kind == "heading"]
    assert headings == [
        ("Falcon Project Handbook", 0, ()),
        ("Budget", 1, ("Falcon Project Handbook",)),
        ("Security", 1, ("Falcon Project Handbook",)),
        ("Badges", 2, ("Falcon Project Handbook", "Security")),
        ("Meetings", 1, ("Falcon Project Handbook",)),
    ]
    items = [b.text for b in doc.blocks if b.kind == "item"]
    assert items == ["Visitors must be accompanied at all times.", "Lost badges are reported to the front desk."]
    rows = [b.text for b in doc.blocks if b.kind == "row"]
    assert rows[0] == "Rule | Interval" and "Access badge renewal | every 18 months" in rows
    zh = extracted["员工手册.docx"]
    assert [b.text for b in zh.blocks if b.kind == "heading"][:3] == ["员工手册", "第一章 入职", "第二章 休假"]


def test_markdown_blocks_follow_its_structure_with_the_file_s_lines(corpus, extracted) -> None:
    doc = extracted["field_notes.md"]
    assert doc.verbatim and doc.title == "Field notes 2023"
    lines = (corpus.folder / "field_notes.md").read_text().split("\n")
    for block in doc.blocks:
        # verbatim: line n of the text is line n of the file
        parts = block.text.split("\n")
        assert parts[0] in lines[block.start_line - 1] and parts[-1] in lines[block.end_line - 1]
    assert "author: field team" not in [b.text for b in doc.blocks]  # front matter is metadata
    kinds = {b.kind for b in doc.blocks}
    assert kinds == {"heading", "paragraph", "item", "code", "row"}
    code = next(b for b in doc.blocks if b.kind == "code")
    assert code.text.startswith("import time") and code.text.endswith("time.sleep(2 ** attempt)")
    assert "```" not in code.text and code.headings == ("Field notes 2023", "Equipment")
    assert [b.text for b in doc.blocks if b.kind == "row"][0] == "| Item | Count |"


def test_html_drops_scripts_and_styles_and_keeps_headings_items_and_rows(corpus, extracted) -> None:
    doc = extracted["lab_report.html"]
    assert corpus.decoys["lab_report.html"] not in doc.text
    assert "font-family" not in doc.text and doc.title == "Lab report 7"
    assert [(b.text, b.level) for b in doc.blocks if b.kind == "heading"] == [
        ("Lab report 7", 1), ("Melting tests", 2), ("Storage", 2)]
    assert [b.text for b in doc.blocks if b.kind == "row"] == ["Sample | Result", "14A | 198", "14B | 212"]
    assert len([b for b in doc.blocks if b.kind == "item"]) == 2
    zh = extracted["新闻.html"]
    assert zh.encoding == "gb18030"  # from <meta ... charset=gb2312>, read as its superset


def test_text_encodings_are_detected_not_assumed(corpus, extracted) -> None:
    assert extracted["balloon_log.txt"].encoding == "utf-16-le"  # byte order mark, Windows line ends
    assert "\r" not in extracted["balloon_log.txt"].text
    assert extracted["cafe_notes.txt"].encoding == "cp1252"
    assert "Müller's café in Zürich" in extracted["cafe_notes.txt"].text
    assert extracted["会议纪要.txt"].encoding == "gb18030"
    assert corpus.fact("marketing-cut").text in extracted["会议纪要.txt"].text
    assert extracted["meeting_notes.txt"].encoding == "utf-8"


@pytest.mark.parametrize(("data", "encoding", "text"), [
    (codecs.BOM_UTF8 + "naïve".encode(), "utf-8", "naïve"),
    ("plain ascii\n".encode("utf-16-be"), "utf-16-be", "plain ascii\n"),  # no byte order mark
    ("plain ascii\n".encode("utf-16-le"), "utf-16-le", "plain ascii\n"),
    (codecs.BOM_UTF32_LE + "wide".encode("utf-32-le"), "utf-32-le", "wide"),
    ("电池供应商更换为宁德新能源，原因是交付延迟。与会人员一致同意。".encode("gbk"), "gb18030", None),
    ("Le café de Müller à Zürich coûte très cher. Ça va, Señor Niño?".encode("latin-1"), "cp1252", None),
])
def test_decode_finds_the_encoding(data: bytes, encoding: str, text: str | None) -> None:
    got, name, notes = decode(data)
    assert name == encoding and notes == []
    assert got == (text if text is not None else data.decode(encoding))


def test_decode_keeps_damaged_utf8_as_utf8_and_drops_a_character_cut_in_two() -> None:
    good = "Prüfung bestanden. " * 10
    damaged = bytearray(good.encode())
    damaged[5] = 0xFF
    text, name, notes = decode(bytes(damaged))
    assert name == "utf-8" and text.count("\ufffd") == 1 and "1 damaged UTF-8 sequences" in notes[0]
    cut = "电池".encode()[:-1]  # the read limit fell inside the last character
    assert decode(cut, partial=True) == ("电", "utf-8", [])


def test_decode_refuses_binary_data_with_the_reason() -> None:
    with pytest.raises(Refused) as err:
        decode(b"\x7fELF\x02\x01" + bytes(100))
    assert err.value.code == "binary" and "ELF" in err.value.reason
    with pytest.raises(Refused) as err:
        decode(b"text with a NUL\x00 in it")
    assert err.value.code == "binary"


def test_a_csv_file_is_rows_under_its_header(corpus, extracted) -> None:
    doc = extracted["inventory.csv"]
    header, *rows = doc.blocks
    assert (header.kind, header.text, header.start_line) == ("heading", "warehouse,city,item,quantity", 1)
    assert all(r.kind == "row" and r.headings == ("warehouse,city,item,quantity",) for r in rows)
    assert len(rows) == 42 and rows[0].start_line == 2


def test_a_csv_record_with_a_line_break_in_quotes_is_one_row(tmp_path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('name,note,count\nPump,"replaced\nin March",2\nValve,ok,3\n')
    doc = extract_file(path)
    assert [(b.text, b.start_line, b.end_line) for b in doc.blocks[1:]] == [
        ('Pump,"replaced\nin March",2', 2, 3), ("Valve,ok,3", 4, 4)]


def test_source_code_is_blocks_of_lines_with_its_indentation(corpus, extracted) -> None:
    doc = extracted["report_job.py"]
    assert doc.kind == "code" and all(b.kind == "code" for b in doc.blocks)
    fact = corpus.fact("nightly-report")
    block = block_with(doc, fact)
    assert block.start_line <= fact.line <= block.end_line
    assert '    """The nightly report job' in block.text  # indentation kept


def test_a_long_text_file_is_read_to_the_limit_and_cut_at_a_line(tmp_path) -> None:
    path = tmp_path / "long.log"
    line = "2024-03-01 12:00:00 INFO the batch was processed without errors\n"
    path.write_text(line * 50_000)  # 3.2 MB
    doc = extract_file(path, Limits(max_text_bytes=1 << 20))
    assert doc.truncated and "only the first 1.0 MB of 3.1 MB were read" in doc.notes
    assert len(doc.text.encode()) <= 1 << 20 and doc.text.endswith("errors")
    assert doc.text.count("\n") + 1 == doc.blocks[-1].end_line


def test_files_that_are_not_there_or_not_files_are_problems(tmp_path) -> None:
    assert extract_file(tmp_path / "missing.txt").code == "vanished"
    (tmp_path / "folder.txt").mkdir()
    assert extract_file(tmp_path / "folder.txt").code == "unreadable"
    os.symlink("self.md", tmp_path / "self.md")
    assert extract_file(tmp_path / "self.md").code == "symlink-loop"
    os.symlink("nothing.md", tmp_path / "dangling.md")
    assert extract_file(tmp_path / "dangling.md").reason == "a link to a file that does not exist"
    os.mkfifo(tmp_path / "pipe.txt")
    problem = extract_file(tmp_path / "pipe.txt")  # opened without blocking, then refused
    assert problem.code == "unreadable" and "not a regular file" in problem.reason
    (tmp_path / "photo.jpeg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    assert extract_file(tmp_path / "photo.jpeg").code == "unsupported"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_a_file_without_read_permission_is_unreadable(tmp_path) -> None:
    path = tmp_path / "private.txt"
    path.write_text("salary list")
    path.chmod(0)
    try:
        problem = extract_file(path)
    finally:
        path.chmod(0o600)
    assert (problem.code, problem.reason) == ("unreadable", "permission to read it was denied")


def test_every_hostile_file_gets_its_documented_code_in_this_process_too(tmp_path) -> None:
    expected = build_hostile(tmp_path, big=False)
    for name, code in expected.items():
        result = extract_file(tmp_path / name)
        got = result.code if isinstance(result, Problem) else None
        assert got == code, (name, result)
        if isinstance(result, Problem):
            assert result.code in PROBLEMS and "\n" not in result.reason
            error = result.error()
            assert isinstance(error, DocumentError) and error.facts == {"code": code, "path": str(tmp_path / name)}


def test_kinds_by_suffix_and_by_a_look_inside(tmp_path: Path) -> None:
    assert kind_of("a/b/Report.PDF") == "pdf" and kind_of("x.tsv") == "csv" and kind_of("y.yml") == "code"
    (tmp_path / "README").write_text("Read me first.\n")
    (tmp_path / "blob").write_bytes(b"\x00\x01\x02" * 100)
    assert kind_of(tmp_path / "README") == "text" and kind_of(tmp_path / "blob") is None
    assert kind_of(tmp_path / "archive.tar") is None
