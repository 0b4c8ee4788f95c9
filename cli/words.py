"""The command line's sentences in the user's language: English, or Chinese from a small table.

The command line never imports Qt (an import-linter contract), so it cannot use the app's
translations; its Chinese is kept here, worded like the app's (assets/translations/
r1desk_zh_CN.ts, context "Fit"). The English text is the key, as in Qt; a test checks that
every sentence the command line words has its Chinese, with the same placeholders.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

import click

LANGUAGES = ("en", "zh")
LABEL_WIDTH = 11  # columns of the labels in ``r1desk hw``


def language_from_environment(environ: Mapping[str, str] = os.environ) -> str:
    """"zh" when the locale that decides messages is Chinese, else "en".

    The first of LC_ALL, LC_MESSAGES and LANG that is set decides, as for any POSIX program
    (LC_ALL=C over LANG=zh_CN.UTF-8 means English).
    """
    for key in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(key)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def lang_option(command: Callable) -> Callable:
    """``--lang en|zh`` for a command that prints sentences."""
    return click.option("--lang", type=click.Choice(LANGUAGES), default=None,
                        help="Language of the output: en or zh (default: from LC_ALL, LC_MESSAGES or LANG).")(command)


class Words:
    """``w("{n} of {m} usable", n=..., m=...)``: the sentence in the chosen language, filled in."""

    def __init__(self, lang: str | None = None):
        self.lang = lang or language_from_environment()
        self.table = ZH if self.lang == "zh" else {}

    def __call__(self, text: str, **values: Any) -> str:
        text = self.table.get(text, text)
        return text.format(**values) if values else text

    def row(self, label: str, text: str) -> str:
        """A labelled line, the labels in one column."""
        if not label:
            return " " * LABEL_WIDTH + text
        head = label + ("：" if self.lang == "zh" else ":")
        return head + " " * max(LABEL_WIDTH - width(head), 1) + text

    @staticmethod
    def ljust(text: str, columns: int) -> str:
        return text + " " * max(columns - width(text), 0)

    @staticmethod
    def rjust(text: str, columns: int) -> str:
        return " " * max(columns - width(text), 0) + text


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


ZH: dict[str, str] = {
    # Separators
    ".": "。",
    "; ": "；",
    ", ": "，",
    ", {quant}": "，{quant}",
    "; {flags}": "；{flags}",
    # r1desk hw
    "Machine": "机器",
    "unknown OS": "未知操作系统",
    "  (profile: {name})": "（描述文件：{name}）",
    "CPU": "处理器",
    "{name} — {cores} cores / {threads} threads": "{name} — {cores} 核 / {threads} 线程",
    "RAM": "内存",
    "{total} total": "共 {total}",
    ", {free} available": "，当前空闲 {free}",
    "{usable} for a model ({kept} kept for the system and other programs)":
        "可用于模型 {usable}（为系统和其他程序保留 {kept}）",
    "; {now} right now": "；此刻可用 {now}",
    "GPU": "显卡",
    "GPU {index}": "显卡 {index}",
    "none found": "没有找到",
    "unified memory, Metal may use {size}": "统一内存，Metal 最多可用 {size}",
    "{total} VRAM, {free} free": "显存 {total}，空闲 {free}",
    "driver {version}": "驱动 {version}",
    "compute {version}": "计算能力 {version}",
    "usable; {size} for a model": "可以使用；可用于模型 {size}",
    "NOT usable by this build": "当前版本无法使用",
    "backends {backends}; GPU offload {offload}": "后端 {backends}；GPU 加速 {offload}",
    "CPU kernels: {variant} ({features}), chosen for this CPU from {count} variants":
        "处理器内核：{variant}（{features}），从 {count} 个版本中为这颗处理器选出",
    "CPU kernels: {variant}": "处理器内核：{variant}",
    "CPU kernels: one fixed set, built for {features}": "处理器内核：固定的一套，为 {features} 编译",
    "; llama-cpp-python {version}": "；llama-cpp-python {version}",
    "none": "无",
    "yes": "是",
    "no": "否",
    "Note": "说明",
    # The budget every verdict is against
    "Usable for a model: {usable} of RAM ({total} minus {kept} kept for the system and other programs)":
        "可用于模型的内存：{usable}（共 {total}，减去为系统和其他程序保留的 {kept}）",
    "Usable for a model on {gpu}: {usable} of its {total} of video memory":
        "{gpu} 上可用于模型的显存：{usable}（共 {total}）",
    # r1desk estimate
    "{name}  ({arch}, {params}B parameters{quant}, {size} file)": "{name}（{arch}，{params}B 参数{quant}，文件 {size}）",
    "Settings: context {ctx}, KV cache {kv}, flash attention {fa}, GPU layers {ngl} of {all}":
        "设置：上下文 {ctx}，KV 缓存 {kv}，Flash Attention {fa}，GPU 层数 {ngl} / {all}",
    "on": "开",
    "off": "关",
    "device": "设备",
    "layers": "层数",
    "weights": "权重",
    "compute": "计算",
    "fixed": "固定",
    "total": "合计",
    "usable": "可用",
    "ok": "放得下",
    "TOO BIG": "太大",
    "Unified memory: {used} of {budget} usable": "统一内存：{used} / 可用 {budget}",
    "Everything on the GPU ({where}; {ram} of RAM){speed}": "全部在显卡上（{where}；内存 {ram}）{speed}",
    "{size} on {device}": "{device} 上 {size}",
    "{k} of {n} layers on the GPU ({where}), the rest in RAM ({gpu} GPU + {ram} RAM){speed}":
        "{n} 层中的 {k} 层在显卡上（{where}），其余在内存中（显存 {gpu} + 内存 {ram}）{speed}",
    "{layers} on {device}": "{device} 上 {layers} 层",
    "On the CPU, in RAM ({ram}){speed}": "在处理器上运行，占用内存 {ram}{speed}",
    "Does not fit: {what}": "放不下：{what}",
    "{device} needs {need} of the {budget} usable": "{device} 需要 {need}，可用的只有 {budget}",
    "{device} needs {need} of the {budget} usable now": "{device} 需要 {need}，此刻可用的只有 {budget}",
    "memory needs {need} of the {budget} usable": "内存需要 {need}，可用的只有 {budget}",
    "memory needs {need} of the {budget} usable now": "内存需要 {need}，此刻可用的只有 {budget}",
    "not enough memory": "内存不足",
    "Right now: it would load ({free} of RAM free).": "此刻可以加载（空闲内存 {free}）。",
    "Right now: it would not load ({free} of RAM free; {what}); close other programs first.":
        "此刻无法加载（空闲内存 {free}；{what}）；请先关闭其他程序。",
    "Note: {note}": "说明：{note}",
    "a quantised KV cache needs flash attention; llama.cpp refuses it otherwise":
        "量化的 KV 缓存需要开启 Flash Attention，否则 llama.cpp 会拒绝加载",
    "context {n_ctx} is longer than the model was trained for ({n_ctx_train})":
        "上下文 {n_ctx} 超过了模型训练时的长度（{n_ctx_train}）",
    "no GPU this llama.cpp build can use: every layer stays in RAM":
        "没有当前 llama.cpp 版本能使用的显卡：所有层都留在内存中",
    "flash attention would save about {size} at this context":
        "在这个上下文长度下，开启 Flash Attention 约可节省 {size}",
    # r1desk recommend: the reasons, worded as the app words them (context "Fit")
    "Nothing in the catalog fits this machine at this context length; try --ctx 2048.":
        "目录中没有能在这个上下文长度下放进这台电脑的模型；可以试试 --ctx 2048。",
    " (size estimated)": "（大小为估计值）",
    "Context capped at {ctx} tokens, the most this model was trained for.":
        "上下文限制为 {ctx} 个词元，这是该模型训练时支持的最大长度。",
    "about {tps} tokens/s, estimated": "估计约每秒 {tps} 个词元",
    "under 1 token/s, estimated": "估计每秒不到 1 个词元",
    "{quant} is below the usual Q4_K_M floor, the most of this model that fits":
        "{quant} 低于通常的 Q4_K_M 质量底线，是这个模型能放下的最好版本",
    "{quant} is the best quality that fits": "{quant} 是能放下的最高质量版本",
    "Runs entirely on {gpus} ({used} of {budget} usable with a {ctx} context), {speed}; {quality} with room to spare.":
        "完全在 {gpus} 上运行（{ctx} 上下文占用 {used} / 可用 {budget}），{speed}；{quality}，并留有余量。",
    "{k} of {n} layers on {gpus} ({gpu}), the rest in RAM ({ram}), {speed}; {quality}":
        "{n} 层中的 {k} 层放在 {gpus}（{gpu}），其余在内存中（{ram}），{speed}；{quality}",
    "; slow, but nothing faster of this quality fits.": "；速度较慢，但没有更快的同等质量选择。",
    "unified memory": "统一内存",
    "Runs on the CPU in {where} ({ram} of {budget} usable), {speed}; {quality}":
        "在处理器上运行，使用{where}（{ram} / 可用 {budget}），{speed}；{quality}",
    "; slow, but it is what fits.": "；速度较慢，但这是能放下的选择。",
}
