"""A document corpus the tests make: English and Chinese files with facts in known places, and hostile files.

``build_corpus(folder)`` writes about fifteen documents (PDF, DOCX, Markdown, HTML, plain text
in UTF-8, GB18030, UTF-16 and cp1252, CSV, Python) and returns the facts placed in them: the
sentence as written, its file, page or line and section, and a question that says it in other
words (for recall: a retriever that only matches words does not find every one). Around each
fact is generated text on the same subjects, with near misses (another reactor, another year),
so finding the right passage is a real test. The same seed gives the same bytes.

The hostile files (``build_hostile``) are the ones users' folders really hold: password-locked,
damaged, truncated and endlessly slow PDFs, a zip bomb in Word clothing, programs and images
named .txt, a 500 MB log file (sparse: cheap to make), bad encodings, links in loops and to
nowhere, a pipe, a file that vanishes, one that may not be read. ``balloon`` and ``segfault``
stand in for a parser that eats memory or crashes inside C code (``Extractor(parsers=...)``).
"""

from __future__ import annotations

import io
import os
import random
import struct
import textwrap
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20


@dataclass(frozen=True)
class Fact:
    """A fact placed in the corpus. ``page`` (PDF) or ``line`` (text-like files, the line it
    starts on) says where; ``heading`` the section it is under; ``needles`` what a passage must
    contain to hold it (white space aside; the sentence itself unless said otherwise)."""

    id: str
    file: str
    text: str
    question: str
    lang: str
    page: int | None = None
    line: int | None = None
    heading: str | None = None
    needles: tuple[str, ...] = ()

    def found_in(self, passage: str) -> bool:
        squeezed = "".join(passage.split())
        return all("".join(n.split()) in squeezed for n in (self.needles or (self.text,)))


@dataclass
class Corpus:
    folder: Path
    files: list[Path]
    facts: list[Fact]
    decoys: dict[str, str] = field(default_factory=dict)  # file -> text in it that must not be extracted

    def fact(self, fact_id: str) -> Fact:
        return next(f for f in self.facts if f.id == fact_id)

    def facts_in(self, name: str) -> list[Fact]:
        return [f for f in self.facts if f.file == name]


# --- generated text around the facts --------------------------------------------------------

_EN_SUBJECTS = [
    "The maintenance crew", "The survey team", "The northern depot", "The steering board", "The night shift",
    "The Borealis reactor", "The finance office", "The field station", "The warehouse in Bergen", "Unit 3",
    "The inspection team", "The regional manager", "The supplier in Gdansk", "The test laboratory",
]
_EN_VERBS = [
    "reviewed", "postponed", "inspected", "approved", "replaced", "recorded", "cleaned", "rescheduled", "measured",
    "documented", "reported", "repaired", "shipped", "audited",
]
_EN_OBJECTS = [
    "the feedwater valve", "the quarterly schedule", "the spare parts list", "the safety checklist",
    "the turbine logs", "the cooling tower fans", "the budget forecast", "the loading bay doors",
    "the sensor calibration", "the staff rota", "the delivery contract", "the ventilation ducts",
    "the backup generator", "the water samples",
]
_EN_TAILS = [
    "in early spring", "after the storm", "before the audit", "on a Tuesday", "without any delay",
    "at the request of the board", "for the second time", "during the night", "ahead of the holidays",
    "in June 2017", "in late 2018", "after a short review", "as planned", "two weeks later",
]
_ZH_SUBJECTS = ["项目组", "北方仓库", "质检部门", "财务处", "销售团队", "华南分公司", "研发小组", "物流中心",
                "行政部", "技术支持组", "采购部", "人事部"]
_ZH_VERBS = ["检查了", "推迟了", "批准了", "更新了", "整理了", "讨论了", "调整了", "完成了", "核对了", "提交了"]
_ZH_OBJECTS = ["年度预算", "供货合同", "安全手册", "设备清单", "培训计划", "客户名单", "库存记录", "维修报告",
               "出差安排", "考勤制度", "网络设备", "办公用品"]
_ZH_TAILS = ["在上个月", "于本周一", "在年底之前", "按照计划", "经过讨论后", "在会议上", "比预期更早",
             "在第二季度", "由于天气原因", "在总部"]
_ZH_ENDS = "。。。。！；"


class Filler:
    """Sentences on the corpus's subjects, the same for the same seed."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def en(self) -> str:
        r = self.rng
        return f"{r.choice(_EN_SUBJECTS)} {r.choice(_EN_VERBS)} {r.choice(_EN_OBJECTS)} {r.choice(_EN_TAILS)}."

    def en_paragraph(self, sentences: int = 5, facts: tuple[str, ...] = ()) -> str:
        parts = [self.en() for _ in range(sentences)]
        for i, fact in enumerate(facts):
            parts.insert(min(len(parts), 1 + 2 * i), fact)
        return " ".join(parts)

    def zh(self) -> str:
        r = self.rng
        parts = (_ZH_SUBJECTS, _ZH_TAILS, _ZH_VERBS, _ZH_OBJECTS, _ZH_ENDS)
        return "".join(r.choice(p) for p in parts)

    def zh_paragraph(self, sentences: int = 5, facts: tuple[str, ...] = ()) -> str:
        parts = [self.zh() for _ in range(sentences)]
        for i, fact in enumerate(facts):
            parts.insert(min(len(parts), 1 + 2 * i), fact)
        return "".join(parts)


# --- PDF ----------------------------------------------------------------------------------------

def _register_fonts() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))  # Adobe's Chinese font: pypdf reads it back


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Lines of ``text`` no wider than ``width``: at spaces, or anywhere in text without them."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    lines, line = [], ""
    tokens = text.split(" ") if " " in text else list(text)
    joiner = " " if " " in text else ""
    for token in tokens:
        candidate = f"{line}{joiner}{token}" if line else token
        if stringWidth(candidate, font, size) > width and line:
            lines.append(line)
            line = token
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


def write_pdf(path: Path, pages: list[list[tuple[str, str]]], *, font: str = "Helvetica",
              outline: bool = True, encrypt=None) -> None:
    """A PDF whose page n holds ``pages[n-1]``: ("heading", text) lines (also bookmarks) and
    ("para", text) paragraphs, wrapped to the page."""
    from reportlab.pdfgen import canvas

    _register_fonts()
    c = canvas.Canvas(str(path), pagesize=(612, 792), encrypt=encrypt, invariant=1)
    c.setTitle(path.stem)
    for number, items in enumerate(pages, 1):
        y = 740
        for kind, text in items:
            if kind == "heading":
                c.setFont(font, 14)
                c.drawString(60, y, text)
                if outline:
                    key = f"p{number}-{y}"
                    c.bookmarkPage(key)
                    c.addOutlineEntry(text, key, level=0)
                y -= 24
                continue
            c.setFont(font, 10)
            for line in _wrap(text, font, 10, 490):
                c.drawString(60, y, line)
                y -= 14
            y -= 10
        if y < 50:
            raise ValueError(f"page {number} of {path.name} overflows")
        c.showPage()
    c.save()


# --- the corpus -----------------------------------------------------------------------------

def _pdf_en(folder: Path, fill: Filler) -> list[Fact]:
    name = "reactor_maintenance.pdf"
    facts = [
        Fact("aurora-pump", name, "The Aurora reactor's coolant pump was replaced on 14 March 2019.",
             "When did the Aurora reactor get a new coolant pump?", "en", page=3, heading="2 Cooling"),
        Fact("turbine-crack", name, "Inspector Halvorsen found a hairline crack in the turbine housing of Unit 2.",
             "Who discovered the fracture in the casing of Unit 2's turbine?", "en", page=5, heading="3 Turbines"),
        Fact("lake-water", name, "The plant draws its cooling water from Lake Mirren, up to 40,000 litres a minute.",
             "Which lake supplies the station with cooling water, and at what maximum rate?", "en", page=1,
             heading="1 Site"),
        Fact("night-lead", name, "The night shift at the plant is led by Dr. Imogen Okafor.",
             "Who is in charge of the overnight crew?", "en", page=6, heading="4 Staff"),
    ]
    f = {x.id: x.text for x in facts}
    more = lambda: ("para", fill.en_paragraph(6))  # noqa: E731
    pages = [
        [("heading", "1 Site"), ("para", fill.en_paragraph(6, (f["lake-water"],))), ("para", fill.en_paragraph(7)),
         ("para", fill.en_paragraph(5)), more(), more()],
        [("heading", "2 Cooling"), ("para", fill.en_paragraph(7)),
         ("para", "The Borealis reactor's feedwater valve was inspected on 2 June 2017. " + fill.en_paragraph(5)),
         more(), more()],
        [("para", fill.en_paragraph(6)), ("para", fill.en_paragraph(4, (f["aurora-pump"],))),
         ("para", "A spare coolant pump for the Aurora site was ordered in late 2018. " + fill.en_paragraph(4)),
         more(), more()],
        [("heading", "3 Turbines"), ("para", fill.en_paragraph(8)), ("para", fill.en_paragraph(6)), more(), more()],
        [("para", fill.en_paragraph(6)), ("para", fill.en_paragraph(5, (f["turbine-crack"],))),
         ("para", "The turbine hall of Unit 1 was repainted after the inspection. " + fill.en_paragraph(4)),
         more(), more()],
        [("heading", "4 Staff"), ("para", fill.en_paragraph(5, (f["night-lead"],))), ("para", fill.en_paragraph(6)),
         ("para", "The day shift is led by Mr. Tomas Lindqvist. " + fill.en_paragraph(4)), more()],
    ]
    write_pdf(folder / name, pages)
    return facts


def _pdf_zh(folder: Path, fill: Filler) -> list[Fact]:
    name = "年度报告.pdf"
    facts = [
        Fact("battery-supplier", name, "公司于二〇二二年将电池供应商更换为宁德新能源。",
             "公司后来改由哪家企业提供电池？", "zh", page=2, heading="二、供应链"),
        Fact("rnd-move", name, "研发中心已于去年十月迁往苏州工业园区。", "研发部门搬到了什么地方？", "zh", page=3,
             heading="三、研发"),
        Fact("washer-output", name, "华东工厂全年生产洗衣机十二万台。", "华东那边的厂子一年造多少台洗衣机？", "zh",
             page=4,
             heading="四、生产"),
    ]
    f = {x.id: x.text for x in facts}
    more = lambda: ("para", fill.zh_paragraph(9))  # noqa: E731
    pages = [
        [("heading", "一、经营概况"), ("para", fill.zh_paragraph(8)), ("para", fill.zh_paragraph(6)), more(), more()],
        [("heading", "二、供应链"), ("para", fill.zh_paragraph(6, (f["battery-supplier"],))),
         ("para", "电机的供应商仍然是原来的合作伙伴。" + fill.zh_paragraph(5)), more(), more()],
        [("heading", "三、研发"), ("para", fill.zh_paragraph(7)), ("para", fill.zh_paragraph(5, (f["rnd-move"],))),
         ("para", "研发人员去年增加了三十人。" + fill.zh_paragraph(6)), more()],
        [("heading", "四、生产"), ("para", fill.zh_paragraph(6, (f["washer-output"],))),
         ("para", "华南工厂主要生产冰箱，全年产量八万台。" + fill.zh_paragraph(4)), more(), more()],
    ]
    write_pdf(folder / name, pages, font="STSong-Light")
    return facts


def _docx_en(folder: Path, fill: Filler) -> list[Fact]:
    import docx

    name = "project_handbook.docx"
    facts = [
        Fact("falcon-budget", name, "The steering board capped the Falcon budget at 2.4 million euros.",
             "What spending ceiling did the board set for Falcon?", "en", heading="Budget"),
        Fact("badge-renewal", name, "Access badge renewal | every 18 months",
             "How often must staff renew their entry passes?", "en", heading="Badges",
             needles=("Access badge renewal", "every 18 months")),
        Fact("status-meeting", name, "Status meetings for Falcon take place every second Thursday in room B214.",
             "Where and how often does the Falcon team meet to report on progress?", "en", heading="Meetings"),
    ]
    d = docx.Document()
    d.add_heading("Falcon Project Handbook", 0)
    d.add_heading("Budget", 1)
    d.add_paragraph(fill.en_paragraph(5))
    d.add_paragraph(fill.en_paragraph(4, (facts[0].text,)))
    d.add_paragraph("The Osprey project was given a budget of 1.1 million euros. " + fill.en_paragraph(3))
    d.add_heading("Security", 1)
    d.add_paragraph(fill.en_paragraph(5))
    d.add_heading("Badges", 2)
    d.add_paragraph("Visitors must be accompanied at all times.", style="List Bullet")
    d.add_paragraph("Lost badges are reported to the front desk.", style="List Bullet")
    table = d.add_table(rows=4, cols=2)
    rules = [("Rule", "Interval"), ("Fire drill", "every 6 months"), ("Access badge renewal", "every 18 months"),
             ("Password change", "every 90 days")]
    for row, (a, b) in zip(table.rows, rules):
        row.cells[0].text, row.cells[1].text = a, b
    d.add_heading("Meetings", 1)
    d.add_paragraph(fill.en_paragraph(4, (facts[2].text,)))
    d.add_paragraph(fill.en_paragraph(5))
    d.core_properties.title = "Falcon Project Handbook"
    d.save(str(folder / name))
    return facts


def _docx_zh(folder: Path, fill: Filler) -> list[Fact]:
    import docx

    name = "员工手册.docx"
    facts = [
        Fact("probation", name, "新员工的试用期为三个月，期满后由部门经理进行评估。",
             "刚入职的人要经过多久的考察期？", "zh",
             heading="第一章 入职"),
        Fact("annual-leave", name, "正式员工每年享有十五天带薪年假。", "转正以后一年能休几天有薪水的假？", "zh",
             heading="第二章 休假"),
    ]
    d = docx.Document()
    d.add_heading("员工手册", 0)
    d.add_heading("第一章 入职", 1)
    d.add_paragraph(fill.zh_paragraph(5, (facts[0].text,)))
    d.add_paragraph(fill.zh_paragraph(6))
    d.add_paragraph("实习生的考察期为一个月。" + fill.zh_paragraph(8))
    d.add_paragraph(fill.zh_paragraph(9))
    d.add_heading("第二章 休假", 1)
    d.add_paragraph(fill.zh_paragraph(4))
    d.add_paragraph("病假需要提供医院证明。" + fill.zh_paragraph(3, (facts[1].text,)))
    d.add_paragraph(fill.zh_paragraph(9))
    d.add_heading("第三章 报销", 1)
    d.add_paragraph("出差补贴每天一百五十元。" + fill.zh_paragraph(8))
    d.save(str(folder / name))
    return facts


class _Lines:
    """A text file written line by line, remembering where things went."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, *lines: str) -> int:
        """Append lines; returns the number (from 1) of the first."""
        first = len(self.lines) + 1
        self.lines.extend(lines)
        return first

    def paragraph(self, text: str, width: int = 0, mark: str | None = None) -> int | None:
        """A paragraph (wrapped at ``width`` if given) and a blank line; the line where ``mark`` starts."""
        lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) if width else [text]
        first = self.add(*lines, "")
        if mark is None:
            return None
        flat = " ".join(lines)
        at = flat.index(mark)
        for i, line in enumerate(lines):
            if at < len(line) + 1:
                return first + i
            at -= len(line) + 1
        raise ValueError(mark)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _markdown_en(folder: Path, fill: Filler) -> list[Fact]:
    name = "field_notes.md"
    owls = "The owl survey counted 37 nesting pairs along the Kestrel Ridge trail."
    retries = "MAX_UPLOAD_RETRIES = 7  # the uploader gives up after seven attempts"
    doc = _Lines()
    doc.add("---", "author: field team", "date: 2023-05-01", "---", "")
    doc.add("# Field notes 2023", "")
    doc.paragraph(fill.en_paragraph(4), 78)
    doc.add("## Owls", "")
    owls_line = doc.paragraph(fill.en_paragraph(4, (owls,)), 78, owls)
    doc.add("- Barn owls were seen near the old mill.", "- Two tawny owls were ringed in April.", "")
    doc.paragraph("The heron count on the same trail was 12 birds. " + fill.en_paragraph(3), 78)
    doc.add("## Equipment", "")
    doc.paragraph(fill.en_paragraph(3), 78)
    doc.add("```python", "import time", "")
    retries_line = doc.add(retries)
    doc.add("", "def upload(data):", "    for attempt in range(MAX_UPLOAD_RETRIES):",
            "        time.sleep(2 ** attempt)", "```", "")
    doc.add("| Item | Count |", "|------|-------|", "| Camera traps | 14 |", "| GPS units | 6 |", "")
    (folder / name).write_text(doc.text(), encoding="utf-8")
    return [
        Fact("owl-pairs", name, owls, "How many breeding owl couples were recorded on the Kestrel Ridge path?", "en",
             line=owls_line, heading="Owls"),
        Fact("upload-retries", name, retries, "How many times does the uploader try before it stops?", "en",
             line=retries_line, heading="Equipment", needles=("MAX_UPLOAD_RETRIES = 7",)),
    ]


def _markdown_zh(folder: Path, fill: Filler) -> list[Fact]:
    name = "技术说明.md"
    backup = "数据库每天凌晨三点自动备份到上海机房。"
    port = "内部接口统一使用八四四三端口。"
    doc = _Lines()
    doc.add("# 系统技术说明", "")
    doc.paragraph(fill.zh_paragraph(9))
    doc.paragraph(fill.zh_paragraph(9))
    doc.add("## 备份", "")
    backup_line = doc.paragraph(fill.zh_paragraph(4, (backup,)), mark=backup)
    doc.paragraph("日志文件保留三十天。" + fill.zh_paragraph(3))
    doc.paragraph("备份文件每周复制一份到北京机房。" + fill.zh_paragraph(8))
    doc.add("## 网络", "")
    port_line = doc.paragraph(fill.zh_paragraph(3, (port,)), mark=port)
    doc.add("1. 外网访问需要通过网关。", "2. 办公网络与生产网络隔离。", "")
    (folder / name).write_text(doc.text(), encoding="utf-8")
    return [
        Fact("db-backup", name, backup, "系统的数据在什么时候、备份到哪里？", "zh", line=backup_line, heading="备份"),
        Fact("internal-port", name, port, "内网服务用的是哪个端口号？", "zh", line=port_line, heading="网络"),
    ]


def _html_en(folder: Path, fill: Filler) -> tuple[list[Fact], str]:
    name = "lab_report.html"
    melt = "Sample 14B showed a melting point of 212 degrees Celsius."
    store = "Reagents must be stored below 8 degrees in fridge C."
    decoy = "The vault code is 9931"
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Lab report 7</title>
<style>body {{ font-family: sans-serif; }} .hidden {{ display: none }}</style>
<script>var note = "{decoy}"; console.log(note);</script>
</head>
<body>
<h1>Lab report 7</h1>
<p>{fill.en_paragraph(4)}</p>
<h2>Melting tests</h2>
<p>{fill.en_paragraph(3, (melt,))}</p>
<p>Sample 14A melted at 198 degrees. {fill.en_paragraph(3)}</p>
<h2>Storage</h2>
<ul>
  <li>{store}</li>
  <li>Solvents are kept in the locked cabinet.</li>
</ul>
<table><tr><th>Sample</th><th>Result</th></tr><tr><td>14A</td><td>198</td></tr><tr><td>14B</td><td>212</td></tr></table>
<noscript>{decoy}</noscript>
</body></html>
"""
    (folder / name).write_text(page, encoding="utf-8")
    return [
        Fact("melting-point", name, melt, "At what temperature did specimen 14B melt?", "en", heading="Melting tests"),
        Fact("reagent-storage", name, store, "Where and how cold should the reagents be kept?", "en",
             heading="Storage"),
    ], decoy


def _html_zh(folder: Path, fill: Filler) -> list[Fact]:
    name = "新闻.html"
    library = "市图书馆自七月一日起将开放时间延长至晚上十点。"
    page = f"""<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">
<title>本地新闻</title></head>
<body><h1>本地新闻</h1><h2>文化</h2><p>{fill.zh_paragraph(3, (library,))}</p>
<p>博物馆的开放时间不变。{fill.zh_paragraph(3)}</p><p>{fill.zh_paragraph(9)}</p>
<h2>交通</h2><p>{fill.zh_paragraph(8)}</p><p>地铁三号线将于明年通车。{fill.zh_paragraph(8)}</p></body></html>
"""
    (folder / name).write_bytes(page.encode("gb18030"))
    return [Fact("library-hours", name, library, "图书馆从哪天开始开到更晚，最晚几点关门？", "zh", heading="文化")]


def _text_files(folder: Path, fill: Filler) -> list[Fact]:
    facts = []
    # UTF-8, English, wrapped at 78 columns
    lisbon = "The Lisbon office will close permanently at the end of September."
    hiring = "Two data engineers will join the Warsaw team in the first quarter."
    doc = _Lines()
    doc.add("Minutes of the operations meeting", "")
    for _ in range(3):
        doc.paragraph(fill.en_paragraph(5), 78)
    lisbon_line = doc.paragraph(fill.en_paragraph(4, (lisbon,)), 78, lisbon)
    doc.paragraph("The Porto office will move to a larger floor. " + fill.en_paragraph(4), 78)
    hiring_line = doc.paragraph(fill.en_paragraph(3, (hiring,)), 78, hiring)
    for _ in range(3):
        doc.paragraph(fill.en_paragraph(6), 78)
    (folder / "meeting_notes.txt").write_text(doc.text(), encoding="utf-8")
    facts += [
        Fact("lisbon-closing", "meeting_notes.txt", lisbon, "Which branch is shutting down for good, and when?", "en",
             line=lisbon_line),
        Fact("warsaw-hiring", "meeting_notes.txt", hiring, "How many new people is the Warsaw group getting, and when?",
             "en", line=hiring_line),
    ]
    # GB18030, Chinese, one paragraph a line
    cut = "下季度的市场推广预算削减百分之二十。"
    trip = "第三季度的客户拜访将集中在成都和重庆。"
    doc = _Lines()
    doc.add("会议纪要", "")
    for _ in range(3):
        doc.paragraph(fill.zh_paragraph(8))
    cut_line = doc.paragraph(fill.zh_paragraph(4, (cut,)), mark=cut)
    doc.paragraph("研发预算保持不变。" + fill.zh_paragraph(4))
    trip_line = doc.paragraph(fill.zh_paragraph(3, (trip,)), mark=trip)
    for _ in range(3):
        doc.paragraph(fill.zh_paragraph(8))
    (folder / "会议纪要.txt").write_bytes(doc.text().encode("gb18030"))
    facts += [
        Fact("marketing-cut", "会议纪要.txt", cut, "接下来一个季度的营销经费要减少多少？", "zh", line=cut_line),
        Fact("client-visits", "会议纪要.txt", trip, "第三季度主要去哪些城市见客户？", "zh", line=trip_line),
    ]
    # UTF-16 with a byte order mark, Windows line ends
    balloon = "Station K7 lost contact with the weather balloon at an altitude of 18,500 metres."
    doc = _Lines()
    doc.add("Radio log, launch 42", "")
    doc.paragraph(fill.en_paragraph(4), 78)
    balloon_line = doc.paragraph(fill.en_paragraph(3, (balloon,)), 78, balloon)
    (folder / "balloon_log.txt").write_bytes(doc.text().replace("\n", "\r\n").encode("utf-16"))
    facts.append(Fact("balloon-altitude", "balloon_log.txt", balloon,
                      "How high was the balloon when the link to it was lost?", "en", line=balloon_line))
    # cp1252 (what "Latin-1" files from Windows are)
    strudel = "Müller's café in Zürich sells its apple strudel for 4.50 francs."
    doc = _Lines()
    doc.add("Café notes", "")
    doc.paragraph("Le café de la gare à Genève ferme à 18 heures. " + fill.en_paragraph(3), 78)
    strudel_line = doc.paragraph(fill.en_paragraph(3, (strudel,)), 78, strudel)
    doc.paragraph("Señor Núñez prefers the crème brûlée at the bistro on the Straße am Hafen.", 78)
    (folder / "cafe_notes.txt").write_bytes(doc.text().encode("cp1252"))
    facts.append(Fact("strudel-price", "cafe_notes.txt", strudel,
                      "How much does the strudel cost at the Zurich coffee house?", "en", line=strudel_line))
    return facts


def _csv_file(folder: Path, fill: Filler) -> list[Fact]:
    name = "inventory.csv"
    rng = fill.rng
    cities = ["Bergen", "Tromsø", "Gdansk", "Malmö", "Aarhus", "Turku"]
    items = ["pallet jacks", "shrink wrap rolls", "safety helmets", "label printers", "hand trucks"]
    rows = ["warehouse,city,item,quantity"]
    for i in range(40):
        rows.append(f"WH-{i + 20},{rng.choice(cities)},{rng.choice(items)},{rng.randint(3, 400)}")
    fact_row = "WH-17,Oslo,forklift batteries,212"
    rows.insert(23, fact_row)
    rows.insert(8, "WH-18,Oslo,forklift tyres,48")
    (folder / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return [Fact("forklift-batteries", name, fact_row, "How many forklift batteries does the Oslo warehouse hold?",
                 "en", line=rows.index(fact_row) + 1, heading="warehouse,city,item,quantity")]


def _python_file(folder: Path, fill: Filler) -> list[Fact]:
    name = "report_job.py"
    fact = "The nightly report job runs at 02:30 UTC and emails the finance team."
    doc = _Lines()
    doc.add('"""Scheduled jobs of the reporting service."""', "", "import datetime", "import smtplib", "")
    for job, hour in (("inventory_sync", 1), ("cache_cleanup", 4)):
        doc.add(f"def {job}():", f'    """Runs at {hour:02d}:00 UTC."""', f"    return datetime.time({hour}, 0)",
                "", "")
    doc.add("def nightly_report(recipients):")
    line = doc.add(f'    """{fact}"""')
    doc.add("    at = datetime.time(2, 30)", "    with smtplib.SMTP('mail.example.com') as smtp:",
            "        for person in recipients:", "            smtp.sendmail('jobs@example.com', person, 'report')",
            "    return at", "")
    (folder / name).write_text(doc.text(), encoding="utf-8")
    return [Fact("nightly-report", name, fact, "When does the overnight reporting task run and who gets its output?",
                 "en", line=line)]


def _distractors(folder: Path, fill: Filler) -> None:
    """Files with no fact in them, on the same subjects, some sentences close to a fact."""
    doc = _Lines()
    doc.add("Maintenance log 2018", "")
    near = ["The Aurora reactor's control rods were tested on 9 May 2018.",
            "The coolant pump at the Borealis site was serviced in 2016.",
            "A crack in the cooling tower paint of Unit 4 was noted and left for later.",
            "The Lisbon warehouse renewed its lease until 2030."]
    for i in range(12):
        doc.paragraph(fill.en_paragraph(6, (near[i],) if i < len(near) else ()), 78)
    (folder / "maintenance_log_2018.txt").write_text(doc.text(), encoding="utf-8")
    doc = _Lines()
    doc.add("# 采购记录", "")
    near_zh = ["公司于二〇二〇年更换了包装材料供应商。", "华东仓库全年发出冰箱三万台。",
               "数据中心每周日晚上检查一次空调。"]
    for i, title in enumerate(["## 包装", "## 仓储", "## 机房"]):
        doc.add(title, "")
        doc.paragraph(fill.zh_paragraph(8, (near_zh[i],)))
        doc.paragraph(fill.zh_paragraph(8))
    (folder / "采购记录.md").write_text(doc.text(), encoding="utf-8")
    body = "".join(f"<h2>Visit {i + 1}</h2><p>{fill.en_paragraph(6)}</p><p>{fill.en_paragraph(5)}</p>"
                   for i in range(5))
    (folder / "site_visits.html").write_text(
        f"<html><head><title>Site visits</title></head><body><h1>Site visits</h1>"
        f"<p>Sample 12C was sent to the laboratory in Tromsø for testing.</p>{body}</body></html>\n", encoding="utf-8")


def build_corpus(folder: str | os.PathLike, seed: int = 12) -> Corpus:
    """Write the corpus into ``folder`` (made if missing) and return its facts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fill = Filler(seed)
    facts: list[Fact] = []
    facts += _pdf_en(folder, fill)
    facts += _pdf_zh(folder, fill)
    facts += _docx_en(folder, fill)
    facts += _docx_zh(folder, fill)
    facts += _markdown_en(folder, fill)
    facts += _markdown_zh(folder, fill)
    html_facts, decoy = _html_en(folder, fill)
    facts += html_facts
    facts += _html_zh(folder, fill)
    facts += _text_files(folder, fill)
    facts += _csv_file(folder, fill)
    facts += _python_file(folder, fill)
    _distractors(folder, fill)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return Corpus(folder, files, facts, {"lab_report.html": decoy})


# --- hostile files ------------------------------------------------------------------------------

def _small_pdf(pages: int = 3) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=1)
    for p in range(pages):
        c.setFont("Helvetica", 11)
        for i in range(30):
            c.drawString(60, 740 - 16 * i, f"Page {p + 1}, line {i + 1}: the quarterly figures were checked again.")
        c.showPage()
    c.save()
    return buf.getvalue()


def encrypted_pdf(path: Path) -> Path:
    """A PDF that needs a password to open."""
    from reportlab.lib import pdfencrypt

    write_pdf(path, [[("para", "Secret figures for the board only.")]],
              encrypt=pdfencrypt.StandardEncryption("open-sesame", ownerPassword="owner", strength=128))
    return path


def owner_locked_pdf(path: Path) -> Path:
    """A PDF encrypted with an owner password only (printing forbidden): anyone may open and read it."""
    from reportlab.lib import pdfencrypt

    write_pdf(path, [[("para", "The annual picnic takes place at Lake Mirren.")]],
              encrypt=pdfencrypt.StandardEncryption("", ownerPassword="owner", canPrint=0, strength=128))
    return path


def corrupt_pdf(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.7\n" + random.Random(3).randbytes(4000))
    return path


def truncated_pdf(path: Path) -> Path:
    data = _small_pdf()
    path.write_bytes(data[: len(data) // 2])
    return path


def _pdf_with_stream(content: bytes, *, raw_deflate: bytes | None = None) -> bytes:
    """A one-page PDF whose content stream is ``content`` (Flate-compressed), or given compressed bytes."""
    import pypdf
    from pypdf.generic import DictionaryObject, NameObject, StreamObject

    writer = pypdf.PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
    stream = StreamObject()
    stream._data = raw_deflate if raw_deflate is not None else zlib.compress(content, 9)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    page[NameObject("/Contents")] = writer._add_object(stream)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def slow_pdf(path: Path, operators: int = 1_000_000) -> Path:
    """A 30 KB PDF whose one page draws a million one-letter strings: pypdf takes minutes over it."""
    path.write_bytes(_pdf_with_stream(b"BT /F1 12 Tf 72 700 Td (a) Tj ET\n" * operators))
    return path


def _zeros_deflated(mib: int, *, wrapper: str) -> bytes:
    """``mib`` MiB of zero bytes, deflated, made in milliseconds: after a full flush the compressor
    starts afresh, so every further MiB compresses to the same bytes and is repeated, not computed."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(MiB)
    first = co.compress(block) + co.flush(zlib.Z_FULL_FLUSH)
    again = co.compress(block) + co.flush(zlib.Z_FULL_FLUSH)
    body = first + again * (mib - 1) + co.flush(zlib.Z_FINISH)
    if wrapper == "raw":
        return body
    adler = 1
    for _ in range(mib):
        adler = zlib.adler32(block, adler)
    return b"\x78\xda" + body + struct.pack(">I", adler)


def flate_bomb_pdf(path: Path, mib: int = 2048) -> Path:
    """A PDF of about 2 MB whose page content inflates to ``mib`` MiB."""
    path.write_bytes(_pdf_with_stream(b"", raw_deflate=_zeros_deflated(mib, wrapper="zlib")))
    return path


def scanned_pdf(path: Path) -> Path:
    """A PDF with pages but no text layer (what a scanner makes, less the image)."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), invariant=1)
    for _ in range(2):
        c.rect(100, 100, 300, 500, fill=1)
        c.showPage()
    c.save()
    return path


_CRC_OF_ZEROS: dict[int, int] = {}


def zip_bomb_docx(path: Path, inflated_mib: int = 2048) -> Path:
    """A real Word document plus one part of zeros that inflates to ``inflated_mib`` MiB (a 2 MB file
    that would take 2 GB to open). Written by hand: zipfile would have to compress the zeros."""
    import docx

    buf = io.BytesIO()
    d = docx.Document()
    d.add_paragraph("Quarterly summary.")
    d.save(buf)
    members = [(i.filename, zipfile.ZipFile(buf).read(i.filename)) for i in zipfile.ZipFile(buf).infolist()]
    if inflated_mib not in _CRC_OF_ZEROS:
        crc, block = 0, bytes(MiB)
        for _ in range(inflated_mib):
            crc = zlib.crc32(block, crc)
        _CRC_OF_ZEROS[inflated_mib] = crc
    entries = [(name, data, zlib.crc32(data), len(data)) for name, data in members]
    entries.append(("word/media/image1.bin", None, _CRC_OF_ZEROS[inflated_mib], inflated_mib * MiB))
    out = io.BytesIO()
    central = []
    for name, data, crc, size in entries:
        if data is None:
            packed = _zeros_deflated(inflated_mib, wrapper="raw")
        else:
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            packed = co.compress(data) + co.flush()
        offset = out.tell()
        raw_name = name.encode()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(packed), size, len(raw_name), 0))
        out.write(raw_name)
        out.write(packed)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(packed), size,
                                   len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name)
    start = out.tell()
    for record in central:
        out.write(record)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), out.tell() - start, start, 0))
    path.write_bytes(out.getvalue())
    return path


def laughing_docx(path: Path) -> Path:
    """A Word document whose XML defines the "billion laughs" entities (3 GB if expanded) and uses them."""
    import docx

    buf = io.BytesIO()
    docx.Document().save(buf)
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    body = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f"<!DOCTYPE w:document [{entities}]>"
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
            "<w:p><w:r><w:t>Quarterly summary.</w:t></w:r></w:p><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>"
            "</w:body></w:document>")
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, body if info.filename == "word/document.xml" else src.read(info.filename))
    return path


def encrypted_docx(path: Path) -> Path:
    """What Word saves with a password: an OLE compound file holding an "EncryptedPackage" stream."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    directory = "EncryptedPackage".encode("utf-16-le") + bytes(64) + "EncryptionInfo".encode("utf-16-le")
    path.write_bytes(header + directory + random.Random(5).randbytes(8192))
    return path


def elf_named_txt(path: Path) -> Path:
    path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + random.Random(7).randbytes(6000))
    return path


def png_named_txt(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(8).randbytes(3000))
    return path


def exe_named_pdf(path: Path) -> Path:
    path.write_bytes(b"MZ\x90\x00\x03" + bytes(59) + random.Random(9).randbytes(5000))
    return path


def text_named_docx(path: Path) -> Path:
    path.write_text("This was never a Word document.\n", encoding="utf-8")
    return path


def big_log(path: Path, size: int = 500 * MiB, written: int = 9 * MiB) -> Path:
    """A ``size``-byte log file whose first ``written`` bytes are log lines; the rest is a hole in the
    file (sparse), so it costs no time or disk to make. A reader that honours its text limit reads
    only lines; one that reads the whole file reads 500 MB."""
    line = "2024-03-01 12:00:{:06d} INFO worker-{} processed batch {} in {} ms\n"
    chunk = "".join(line.format(i, i % 8, i, i % 97) for i in range(20000)).encode("ascii")
    with open(path, "wb") as fh:
        done = 0
        while done < written:
            fh.write(chunk)
            done += len(chunk)
        fh.truncate(size)
    return path


def damaged_utf8(path: Path) -> Path:
    """UTF-8 text with a few bytes damaged: read, the damage replaced and noted."""
    text = ("Die Prüfung der Anlage in Köln ergab keine Mängel. Das Gerät läuft störungsfrei. " * 20).encode("utf-8")
    damaged = bytearray(text)
    for at in (100, 700, 1300):
        damaged[at] = 0xFF
    path.write_bytes(bytes(damaged))
    return path


def undecodable_txt(path: Path) -> Path:
    """High bytes in no encoding's order: no text in them."""
    rng = random.Random(11)
    path.write_bytes(bytes(rng.randrange(0x80, 0x100) for _ in range(6000)))
    return path


def empty_txt(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def build_hostile(folder: str | os.PathLike, *, big: bool = True) -> dict[str, str | None]:
    """Write the hostile files into ``folder``: their names and the problem code each must get
    (None: it must be read despite appearances). Names that cannot exist here (a pipe on Windows)
    are left out."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}

    def add(name: str, code: str | None, make) -> None:
        make(folder / name)
        expected[name] = code

    add("locked.pdf", "encrypted", encrypted_pdf)
    add("print-protected.pdf", None, owner_locked_pdf)
    add("damaged.pdf", "corrupt", corrupt_pdf)
    add("half.pdf", "corrupt", truncated_pdf)
    add("bomb.pdf", "too-large", lambda p: flate_bomb_pdf(p, 512))
    add("scan.pdf", "no-text", scanned_pdf)
    add("setup.pdf", "corrupt", exe_named_pdf)
    add("bomb.docx", "too-large", zip_bomb_docx)
    add("locked.docx", "encrypted", encrypted_docx)
    add("laughs.docx", "corrupt", laughing_docx)  # libxml2 refuses the expansion
    add("notes.docx", "corrupt", text_named_docx)
    add("program.txt", "binary", elf_named_txt)
    add("picture.txt", "binary", png_named_txt)
    add("mojibake.txt", "undecodable", undecodable_txt)
    add("damaged-utf8.txt", None, damaged_utf8)
    add("empty.txt", "no-text", empty_txt)
    if big:
        add("huge.log", None, big_log)
    os.symlink("loop.md", folder / "loop.md")
    expected["loop.md"] = "symlink-loop"
    os.symlink("nowhere.md", folder / "dangling.md")
    expected["dangling.md"] = "vanished"
    (folder / "sub").mkdir()
    os.symlink("..", folder / "sub" / "up")  # a folder link back up: walked once, no problem
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "pipe.txt")  # passed over by discover; never opened for reading
    return expected


# --- parsers that misbehave, for Extractor(parsers=...) ------------------------------------------

def balloon(path: Path, limits) -> None:
    """A parser that eats memory until it is stopped."""
    hoard = []
    while True:
        hoard.append(bytearray(64 * MiB))
        hoard[-1][::4096] = b"x" * len(hoard[-1][::4096])  # touched, so it is resident, not just reserved


def segfault(path: Path, limits) -> None:
    """A parser that crashes inside C code."""
    import ctypes

    ctypes.string_at(0)
