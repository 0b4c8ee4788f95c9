"""Chat templates run sandboxed: hostile templates cannot run code; broken ones fall back."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1desk.engine.errors import TemplateError
from r1desk.engine.gguf.header import read_header
from r1desk.engine.inference.templates import CHATML, ChatTemplate

# The CVE-2024-34359 payload: reach os.popen through Python internals from a chat template.
CVE_2024_34359 = (
    "{% for x in ().__class__.__base__.__subclasses__() %}"
    "{% if \"warning\" in x.__name__ %}"
    "{{ x()._module.__builtins__['__import__']('os').popen(\"touch MARKER\").read() }}"
    "{% endif %}{% endfor %}"
)


def test_cve_2024_34359_payload_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    t = ChatTemplate(CVE_2024_34359.replace("MARKER", str(marker)))
    with pytest.raises(TemplateError, match="unsafe"):
        t.render([{"role": "user", "content": "hi"}])
    assert not marker.exists()


@pytest.mark.parametrize(
    "source",
    [
        "{{ self.__init__.__globals__['os'].system('touch MARKER') }}",
        "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
        "{{ messages.append({'role': 'x'}) }}{{ 'touch MARKER' }}",  # mutation is blocked too
        "{% set x = namespace() %}{{ x.__class__.__mro__[1].__subclasses__() }}",
    ],
)
def test_other_escapes_are_blocked(tmp_path: Path, source: str) -> None:
    marker = tmp_path / "pwned"
    t = ChatTemplate(source.replace("MARKER", str(marker)))
    try:
        out = t.render([{"role": "user", "content": "hi"}])
    except TemplateError:
        out = ""
    assert not marker.exists()
    assert "subclass" not in out.lower()


def test_broken_template_falls_back_to_chatml() -> None:
    t = ChatTemplate("{% for m in messages %}{{ m.content ")
    assert t.fallback_reason and "ChatML" in t.fallback_reason
    assert t.source == CHATML
    assert t.render([{"role": "user", "content": "hi"}]).endswith("<|im_start|>assistant\n")


def test_raise_exception_becomes_template_error() -> None:
    t = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(TemplateError, match="roles must alternate"):
        t.render([])


def test_huge_output_is_refused() -> None:
    t = ChatTemplate("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}")
    with pytest.raises(TemplateError):
        t.render([])


def test_r1_template_drops_earlier_reasoning(r1_header: Path) -> None:
    info = read_header(r1_header, allow_truncated_data=True)
    t = ChatTemplate(info.chat_template, bos_token="<｜begin▁of▁sentence｜>", eos_token="<｜end▁of▁sentence｜>")
    assert t.is_reasoning
    prompt = t.render([
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
        {"role": "user", "content": "and 3+3?"},
    ])
    assert prompt.startswith("<｜begin▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜>")
    assert "add them" not in prompt
    assert prompt.endswith("<｜User｜>and 3+3?<｜Assistant｜>")
