"""The command line in the user's language: --lang, the locale, and a Chinese table kept complete."""

from __future__ import annotations

import ast
import re
import string
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from r1desk.cli import cli
from r1desk.cli import words as W

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "tests" / "data" / "profiles"
CPU_24 = str(PROFILES / "cpu-24gb-2cores.json")
NVIDIA_8 = str(PROFILES / "nvidia-8gb.json")
NO_LOCALE = {"LC_ALL": None, "LC_MESSAGES": None, "LANG": None}


def _run(*args, **env):
    return CliRunner().invoke(cli, list(args), env=NO_LOCALE | env)


@pytest.mark.parametrize("environ,lang", [
    ({"LANG": "zh_CN.UTF-8"}, "zh"),
    ({"LANG": "zh_TW.UTF-8"}, "zh"),
    ({"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),
    ({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL decides, as for any program
    ({"LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),
    ({"LANG": "en_GB.UTF-8"}, "en"),
    ({}, "en"),
])
def test_the_language_comes_from_the_locale(environ, lang):
    assert W.language_from_environment(environ) == lang


def _worded(path: Path) -> set[str]:
    """Every sentence a module hands to a Words object (called ``w`` by convention)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "w":
            assert node.args and isinstance(node.args[0], ast.Constant), \
                f"{path.name}:{node.lineno}: w() takes a literal sentence, so that it can be checked here"
            found.add(node.args[0].value)
    return found


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_sentence_has_its_chinese_with_the_same_placeholders():
    used = set().union(*(_worded(p) for p in (ROOT / "cli").glob("*.py")))
    assert used, "the command line words its sentences through cli/words.py"
    assert sorted(used - W.ZH.keys()) == [], "sentences without Chinese"
    assert sorted(W.ZH.keys() - used) == [], "Chinese for sentences no longer used"
    for english, chinese in W.ZH.items():
        assert _fields(english) == _fields(chinese), english
        assert not re.search(r"[A-Za-z]{4,}", re.sub(r"\{\w+\}|Flash Attention|llama[-.]cpp(-python)?|Metal|"
                                                     r"Q4_K_M|--ctx|GPU|KV|CPU", "", chinese)), chinese


def test_the_chinese_is_the_apps_where_the_app_says_the_same():
    """Worded like the app's translations (context "Fit"): one voice in the window and the terminal."""
    app = {}
    root = ET.parse(ROOT / "assets" / "translations" / "r1desk_zh_CN.ts").getroot()
    for context in root.iter("context"):
        if context.findtext("name") == "Fit":
            for message in context.iter("message"):
                app[message.findtext("source")] = message.findtext("translation")
    shared = [s for s in W.ZH if s in app]
    assert len(shared) >= 8, shared
    for source in shared:
        assert W.ZH[source] == app[source], source
    # The reasons the two word alike, the app saying "processor" where the CLI says "CPU".
    assert (W.ZH["Runs on the CPU in {where} ({ram} of {budget} usable), {speed}; {quality}"]
            == app["Runs on the processor in {where} ({ram} of {budget} usable), {speed}; {quality}"])


def test_recommend_speaks_chinese_when_asked_or_when_the_locale_is_chinese():
    english = _run("recommend", "--profile", CPU_24, "--limit", "2", "--ctx", "131072")
    assert english.exit_code == 0, english.output
    assert "Runs on the CPU in RAM" in english.output and "Context capped" in english.output
    for result in (_run("recommend", "--profile", CPU_24, "--limit", "2", "--ctx", "131072", "--lang", "zh"),
                   _run("recommend", "--profile", CPU_24, "--limit", "2", "--ctx", "131072", LANG="zh_CN.UTF-8")):
        assert result.exit_code == 0, result.output
        out = result.output
        assert "在处理器上运行，使用内存（" in out and "估计约每秒" in out and "可用于模型的内存：17.7 GB" in out
        assert "上下文限制为" in out
        assert "Runs on" not in out and "tokens/s" not in out and "usable" not in out
    assert "Runs on the CPU" in _run("recommend", "--profile", CPU_24, "--limit", "1", "--lang", "en",
                                     LANG="zh_CN.UTF-8").output
    gpu = _run("recommend", "--profile", NVIDIA_8, "--limit", "1", "--lang", "zh").output
    assert "完全在 NVIDIA GeForce RTX 4060 上运行" in gpu and "显存" in gpu


def test_estimate_and_hw_speak_chinese():
    est = _run("estimate", "deepseek-r1-distill-qwen-7b", "--profile", CPU_24, "--ctx", "140000", "--flash-attn",
               "--lang", "zh")
    assert est.exit_code == 0, est.output
    out = est.output
    for words in ("设置：上下文 140,000", "可用于模型的内存", "设备", "放得下", "在处理器上运行，占用内存",
                  "此刻可以加载（空闲内存 22.8 GB）。", "说明：上下文 140,000 超过了模型训练时的长度（131,072）"):
        assert words in out, words
    assert "Settings" not in out and "usable" not in out
    too_big = _run("estimate", "deepseek-r1-distill-qwen-32b:Q4_K_M", "--profile", CPU_24, "--lang", "zh")
    assert too_big.exit_code == 2 and "放不下：CPU 需要" in too_big.output and "太大" in too_big.output
    hw = _run("hw", "--lang", "zh")
    assert hw.exit_code == 0, hw.output
    assert "内存：" in hw.output and "可用于模型" in hw.output and "RAM:" not in hw.output


def test_hw_labels_line_up_in_both_languages():
    """A Chinese character takes two columns in a terminal."""
    for lang, labels in (("en", ["Machine", "RAM", "GPU 0", ""]), ("zh", ["机器", "内存", "显卡 0", ""])):
        w = W.Words(lang)
        for label in labels:
            line = w.row(label, "TEXT")
            assert W.width(line[:line.index("TEXT")]) == W.LABEL_WIDTH, (lang, label)
