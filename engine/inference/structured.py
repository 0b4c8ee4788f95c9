"""Output the caller can rely on: JSON that follows a schema, and function calls, as llama.cpp grammars.

A JSON schema becomes a GBNF grammar (llama.cpp's own converter, as shipped in the bindings)
that the model process applies to every answer token, so the answer parses and follows the
schema however small the model. The converter leaves some schema keywords out of the grammar
(number ranges, ``not``, ...); a schema that uses one is refused, naming it, rather than
answered with JSON that might not validate.

Function calling: a model can call tools when its chat template renders a ``tools`` list; the
template also shows how the model writes a call (Hermes/Qwen ``<tool_call>{...}</tool_call>``,
Mistral ``[TOOL_CALLS][...]``, Llama 3.1 bare JSON, DeepSeek's ``<｜tool▁call▁begin｜>``
blocks). Calls are parsed from the finished answer; when the caller names the function (or
requires some call), a grammar forces a well-formed call in the model's own style.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from r1desk.engine.errors import R1deskError


class InvalidSchema(R1deskError):
    """A JSON schema or tool definition r1desk cannot turn into a grammar; the message names why."""


# What the grammar converter turns into grammar, by keyword. Annotations change nothing the
# output has to satisfy, so they are allowed too.
_ENFORCED = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
    "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions",
    "pattern", "minLength", "maxLength", "format",
}
_ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
                "readOnly", "writeOnly", "nullable"}
_FORMATS = {"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"}
_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
MAX_SCHEMA_BYTES = 64 * 1024


def check_schema(schema: Any, where: str = "schema") -> None:
    """Refuse what the grammar could not enforce, naming the first such keyword and where it is."""
    if isinstance(schema, bool):
        if schema is False:
            raise InvalidSchema(f"{where} is false: nothing could match it", facts={"code": "schema-false"})
        return
    if not isinstance(schema, dict):
        raise InvalidSchema(f"{where} must be a JSON object", facts={"code": "schema-not-object"})
    for key, value in schema.items():
        here = f"{where}.{key}"
        if key in _ANNOTATIONS:
            continue
        if key not in _ENFORCED:
            raise InvalidSchema(f"the JSON schema keyword {key!r} (at {where}) is not supported in structured output",
                                facts={"code": "schema-unsupported", "keyword": key, "at": where})
        if key == "type":
            types = value if isinstance(value, list) else [value]
            bad = [t for t in types if t not in _TYPES]
            if bad:
                raise InvalidSchema(f"{here}: unknown type {bad[0]!r}", facts={"code": "schema-bad-type"})
        elif key == "format" and value not in _FORMATS and schema.get("type", "string") == "string":
            # Other formats are annotations in JSON Schema: kept as any string.
            continue
        elif key == "$ref":
            if not isinstance(value, str) or not value.startswith("#"):
                raise InvalidSchema(f"{here}: only references inside the schema (#/...) are supported",
                                    facts={"code": "schema-remote-ref", "at": where})
        elif key in ("properties", "$defs", "definitions"):
            if not isinstance(value, dict):
                raise InvalidSchema(f"{here} must be an object", facts={"code": "schema-bad-value", "at": here})
            for name, sub in value.items():
                check_schema(sub, f"{here}.{name}")
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            if not isinstance(value, list) or not value:
                raise InvalidSchema(f"{here} must be a non-empty list", facts={"code": "schema-bad-value", "at": here})
            for i, sub in enumerate(value):
                check_schema(sub, f"{here}[{i}]")
        elif key in ("items", "additionalProperties") and not isinstance(value, bool):
            check_schema(value, here)
        elif key == "required" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise InvalidSchema(f"{here} must be a list of property names", facts={"code": "schema-bad-value", "at": here})
        elif key == "enum" and not (isinstance(value, list) and value):
            raise InvalidSchema(f"{here} must be a non-empty list", facts={"code": "schema-bad-value", "at": here})
        elif key in ("minItems", "maxItems", "minLength", "maxLength") and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 100_000):
            raise InvalidSchema(f"{here} must be a whole number from 0 to 100000", facts={"code": "schema-bad-value", "at": here})
    if "oneOf" in schema and len(schema) > 1 and any(k in schema for k in ("properties", "type")):
        raise InvalidSchema(f"{where}: oneOf beside other constraints is not supported in structured output",
                            facts={"code": "schema-unsupported", "keyword": "oneOf", "at": where})


def schema_grammar(schema: Any) -> str:
    """The GBNF grammar for JSON that follows ``schema`` (checked first; InvalidSchema if not)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    text = json.dumps(schema)
    if len(text) > MAX_SCHEMA_BYTES:
        raise InvalidSchema(f"the JSON schema is over {MAX_SCHEMA_BYTES // 1024} KB", facts={"code": "schema-too-big"})
    check_schema(schema)
    try:
        grammar = json_schema_to_gbnf(text)
    except (AssertionError, KeyError, ValueError, TypeError, RecursionError, NotImplementedError) as exc:
        raise InvalidSchema(f"the JSON schema cannot be turned into a grammar ({type(exc).__name__}: {exc})",
                            facts={"code": "schema-unconvertible"}) from None
    # Control characters are not allowed raw inside JSON strings (json.loads refuses them).
    return grammar.replace('char ::= [^"\\\\] |', 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |')


def json_object_grammar() -> str:
    """Any JSON object (``response_format: {"type": "json_object"}``)."""
    from llama_cpp.llama_grammar import JSON_GBNF

    return JSON_GBNF


def _rename_root(grammar: str, name: str) -> str:
    """The same grammar with its root rule renamed (to embed it in a larger one)."""
    return re.sub(r"(?m)^root(\s*::=)", name + r"\1", grammar)


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a GBNF literal is a JSON-style quoted string


# Function calling ---------------------------------------------------------------------------
@dataclass
class ToolStyle:
    """How a model writes its calls, read from its chat template."""

    name: str  # hermes, mistral, llama3, deepseek
    args_key: str = "arguments"

    @classmethod
    def named(cls, name: str) -> "ToolStyle":
        return cls(name, args_key="parameters" if name == "llama3" else "arguments")

    @property
    def markers(self) -> tuple[str, ...]:
        """Text that begins a call in the answer (llama3: a JSON object as the whole answer)."""
        return {"hermes": ("<tool_call>",), "mistral": ("[TOOL_CALLS]",),
                "deepseek": ("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>"),
                "llama3": ("<|python_tag|>",)}[self.name]


def tool_style(template_source: str) -> ToolStyle | None:
    """The tool-call style of a chat template; None when it cannot be given tools."""
    if not re.search(r"\btools\b", template_source):
        return None
    if "<tool_call>" in template_source:
        return ToolStyle("hermes")
    if "[TOOL_CALLS]" in template_source:
        return ToolStyle("mistral")
    if "<｜tool▁call▁begin｜>" in template_source:
        return ToolStyle("deepseek")
    return ToolStyle("llama3", args_key="parameters")


@dataclass
class ToolCall:
    name: str
    arguments: str  # JSON text, as OpenAI's API carries it
    id: str = field(default_factory=lambda: "call_" + secrets.token_hex(12))

    def to_openai(self, index: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": "function",
                               "function": {"name": self.name, "arguments": self.arguments}}
        if index is not None:
            out["index"] = index
        return out


def check_tools(tools: Any) -> list[dict[str, Any]]:
    """OpenAI's ``tools`` list, checked: the functions with their parameter schemas."""
    if not isinstance(tools, list) or not tools or len(tools) > 128:
        raise InvalidSchema("tools must be a list of 1 to 128 functions", facts={"code": "tools-bad"})
    out = []
    names = set()
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", fn["name"]):
            raise InvalidSchema(f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\": ...}}}} with a "
                                "name of letters, digits, _ . - (at most 64)", facts={"code": "tools-bad"})
        if fn["name"] in names:
            raise InvalidSchema(f"tools[{i}]: the function name {fn['name']!r} is given twice", facts={"code": "tools-bad"})
        names.add(fn["name"])
        params = fn.get("parameters", {"type": "object", "properties": {}})
        check_schema(params, f"tools[{i}].function.parameters")
        out.append({"type": "function", "function": {"name": fn["name"], "description": fn.get("description", ""),
                                                     "parameters": params}})
    return out


def tool_call_grammar(style: ToolStyle, tools: list[dict[str, Any]], only: str | None = None) -> str:
    """A grammar for one well-formed call, in the model's style, of ``only`` or of any of ``tools``."""
    fns = [t["function"] for t in tools if only is None or t["function"]["name"] == only]
    if not fns:
        raise InvalidSchema(f"tool_choice names {only!r}, which is not among the tools", facts={"code": "tools-bad"})
    calls = []
    for fn in fns:
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        if style.name in ("deepseek",):
            calls.append({"name": fn["name"], "schema": params})
        else:
            calls.append({"type": "object",
                          "properties": {"name": {"const": fn["name"]}, style.args_key: params},
                          "required": ["name", style.args_key], "additionalProperties": False})
    if style.name == "deepseek":
        rules, alts = [], []
        for i, call in enumerate(calls):
            rules.append(_rename_root(schema_grammar(call["schema"]), f"args{i}"))
            alts.append(f'"function<｜tool▁sep｜>" {_literal(call["name"])} "\\n```json\\n" args{i} "\\n```<｜tool▁call▁end｜>"')
        # Each grammar defines the same helper rules (space, string, ...) identically; keep one of each.
        body = _merge_rules(rules)
        return (body + '\nroot ::= "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>" ( '
                + " | ".join(alts) + ' ) "<｜tool▁calls▁end｜>"\n')
    call = _rename_root(schema_grammar(calls[0] if len(calls) == 1 else {"anyOf": calls}), "call")
    if style.name == "hermes":
        return call + '\nroot ::= "<tool_call>\\n" call "\\n</tool_call>"\n'
    if style.name == "mistral":
        return call + '\nroot ::= "[TOOL_CALLS] [" call "]"\n'
    return call + "\nroot ::= call\n"


def _merge_rules(grammars: list[str]) -> str:
    seen: dict[str, str] = {}
    for grammar in grammars:
        for line in grammar.splitlines():
            m = re.match(r"^([A-Za-z0-9-]+)\s*::=", line)
            if m and m.group(1) not in seen:
                seen[m.group(1)] = line
    return "\n".join(seen.values())


def _json_values(text: str) -> list[Any]:
    """Every top-level JSON value in ``text``, in order (for calls written back to back)."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while i < len(text):
        start = min((j for j in (text.find("{", i), text.find("[", i)) if j >= 0), default=-1)
        if start < 0:
            break
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        out.append(value)
        i = end
    return out


def _as_call(value: Any, style: ToolStyle, names: set[str]) -> ToolCall | None:
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    args = value.get(style.args_key, value.get("arguments", value.get("parameters", {})))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    return ToolCall(value["name"], json.dumps(args, ensure_ascii=False))


def parse_tool_calls(text: str, style: ToolStyle, tools: list[dict[str, Any]]) -> tuple[str, list[ToolCall]]:
    """The answer split into (text the user sees, calls the model made); only named tools count."""
    names = {t["function"]["name"] for t in tools}
    calls: list[ToolCall] = []
    if style.name == "hermes":
        parts = re.split(r"<tool_call>(.*?)(?:</tool_call>|$)", text, flags=re.S)
        content = "".join(parts[0::2])
        for body in parts[1::2]:
            for value in _json_values(body)[:1]:
                call = _as_call(value, style, names)
                if call:
                    calls.append(call)
        return (content.strip() if calls else text), calls
    if style.name == "mistral":
        idx = text.find("[TOOL_CALLS]")
        if idx < 0:
            return text, []
        for value in _json_values(text[idx + len("[TOOL_CALLS]"):])[:1]:
            for item in value if isinstance(value, list) else [value]:
                call = _as_call(item, style, names)
                if call:
                    calls.append(call)
        return (text[:idx].strip() if calls else text), calls
    if style.name == "deepseek":
        pattern = r"<｜tool▁call▁begin｜>\s*(?:function)?<｜tool▁sep｜>([^\n]+)\n```(?:json)?\n(.*?)\n```\s*<｜tool▁call▁end｜>"
        for name, body in re.findall(pattern, text, flags=re.S):
            call = _as_call({"name": name.strip(), "arguments": body}, style, names)
            if call:
                calls.append(call)
        idx = text.find("<｜tool▁calls▁begin｜>")
        return (text[:idx].strip() if calls and idx >= 0 else text), calls
    # llama3: the whole answer is one JSON call (after an optional <|python_tag|>).
    stripped = text.strip().removeprefix("<|python_tag|>").strip()
    if stripped.startswith("{"):
        values = _json_values(stripped)
        for value in values:
            call = _as_call(value, style, names)
            if call:
                calls.append(call)
    return ("" if calls else text), calls


def arguments_as_objects(template_source: str) -> bool:
    """Whether the template writes a call's arguments with ``tojson`` (Qwen, Llama 3.1: it wants an
    object) rather than concatenating them (DeepSeek: it wants the JSON text)."""
    return bool(re.search(r"arguments\s*\|\s*tojson", template_source))


def tool_messages(messages: list[dict[str, Any]], as_objects: bool) -> list[dict[str, Any]]:
    """OpenAI-style assistant tool calls as the template reads them (see arguments_as_objects)."""
    out = []
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = c.get("function") or {}
                args: Any = fn.get("arguments") or "{}"
                if as_objects:
                    try:
                        args = json.loads(args)
                    except (json.JSONDecodeError, TypeError):
                        args = {}
                calls.append({"id": c.get("id"), "type": "function",
                              "function": {"name": fn.get("name", ""), "arguments": args}})
            m = dict(m, tool_calls=calls)
        out.append(m)
    return out
