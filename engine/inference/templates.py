"""Chat templates from GGUF metadata, rendered in Jinja's immutable sandbox.

A GGUF file is untrusted input: its template runs in ``ImmutableSandboxedEnvironment`` (the fix
for CVE-2024-34359), cannot reach Python internals, and its output size is bounded. A template
that does not compile is replaced by ChatML with a warning, so the model stays usable.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from r1desk.engine.errors import TemplateError

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MAX_PROMPT_CHARS = 16 * 1024 * 1024


class _TemplateRefused(JinjaTemplateError):
    """The template itself called raise_exception: it refuses these messages (roles, order)."""


def _raise_exception(message: str) -> None:
    raise _TemplateRefused(message)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None,
            sort_keys: bool = False) -> str:
    # As Hugging Face renders templates: plain JSON, not Jinja's HTML-escaped kind (tool schemas
    # with "<" would otherwise reach the model as "\u003c").
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True,
        extensions=["jinja2.ext.loopcontrols"],
    )
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.filters["tojson"] = _tojson
    return env


@dataclass
class ChatTemplate:
    source: str
    bos_token: str = ""
    eos_token: str = ""
    fallback_reason: str | None = None

    def __post_init__(self) -> None:
        try:
            self._template = _environment().from_string(self.source)
        except JinjaTemplateError as exc:
            self.fallback_reason = f"the model's chat template does not compile ({exc}); using ChatML"
            self.source = CHATML
            self._template = _environment().from_string(CHATML)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    @property
    def is_reasoning(self) -> bool:
        """The template knows about <think> blocks (DeepSeek-R1 and its kin)."""
        return "</think>" in self.source

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True,
               **variables: Any) -> str:
        try:
            prompt = self._template.render(
                messages=messages, bos_token=self.bos_token, eos_token=self.eos_token,
                add_generation_prompt=add_generation_prompt, **variables,
            )
        except SecurityError as exc:
            raise TemplateError(f"the model's chat template tried something unsafe and was stopped ({exc})",
                                facts={"code": "template-unsafe"}) from None
        except _TemplateRefused as exc:
            raise TemplateError(f"the model's chat template refused these messages: {exc}",
                                facts={"code": "template-refused", "reason": str(exc)[:200]}) from None
        except (JinjaTemplateError, TypeError, ValueError, KeyError, AttributeError, IndexError,
                RecursionError, OverflowError, ZeroDivisionError) as exc:
            raise TemplateError(f"the model's chat template failed: {type(exc).__name__}: {exc}",
                                facts={"code": "template-failed", "error": type(exc).__name__}) from None
        if len(prompt) > MAX_PROMPT_CHARS:
            raise TemplateError("the model's chat template produced an absurdly long prompt",
                                facts={"code": "template-too-long", "chars": len(prompt), "limit": MAX_PROMPT_CHARS})
        return prompt
