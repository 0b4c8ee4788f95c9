"""Structured output, tool calls, plain completions, embeddings and the reasoning time budget,
through r1desk's server with the official openai client on loopback."""

from __future__ import annotations

import base64
import json

import httpx2 as httpx
import jsonschema
import numpy as np
import pytest

from r1desk.engine.inference.host import LoadOptions, ModelHost

from tests.server.test_api import Served
from tests.support.models import smollm2_tools_path, tiny_r1_expected

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
ORDER = {
    "type": "object",
    "properties": {
        "status": {"enum": ["open", "shipped", "cancelled"]},
        "paid": {"type": "boolean"},
        "when": {"type": "string", "format": "date"},
        "items": {"type": "array", "minItems": 1, "maxItems": 2,
                  "items": {"$ref": "#/$defs/item"}},
    },
    "required": ["status", "paid", "when", "items"],
    "additionalProperties": False,
    "$defs": {"item": {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"},
                                                        "count": {"type": "integer"}},
                       "required": ["sku", "count"], "additionalProperties": False}},
}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}


@pytest.fixture(scope="module")
def smol(smollm2):
    s = Served(smollm2)
    yield s
    s.close()


@pytest.fixture(scope="module")
def tools_model():
    s = Served(smollm2_tools_path())
    yield s
    s.close()


def _ask(client, schema, prompt, **kw):
    return client.chat.completions.create(
        model="m", temperature=0, max_tokens=300, messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}, **kw)


@pytest.mark.parametrize("schema, prompt", [(PERSON, "Describe a person as JSON."),
                                            (ORDER, "Give me an order as JSON.")])
def test_a_json_schema_is_followed(smol: Served, schema, prompt) -> None:
    out = _ask(smol.client(), schema, prompt)
    assert out.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(out.choices[0].message.content), schema)


def test_a_json_schema_is_followed_when_streaming_and_json_object_gives_an_object(smol: Served) -> None:
    text = "".join(c.choices[0].delta.content or "" for c in _ask(smol.client(), PERSON, "A person, please.", stream=True)
                   if c.choices)
    jsonschema.validate(json.loads(text), PERSON)
    out = smol.client().chat.completions.create(
        model="m", temperature=0, max_tokens=200, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "List three colours as a JSON object."}])
    if out.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(out.choices[0].message.content), dict)
    else:  # a free-form object may run to the limit; what came is still the start of an object
        assert out.choices[0].message.content.lstrip().startswith("{")


def test_a_schema_the_grammar_cannot_enforce_is_refused_naming_the_keyword(smol: Served) -> None:
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as err:
        _ask(smol.client(), {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}, "n?")
    assert "'minimum'" in err.value.body["message"] and err.value.body["param"] == "response_format"
    r = httpx.post(smol.url + "/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
    assert smol.client().models.list().data  # still serving


def test_a_named_tool_choice_gives_a_well_formed_call(tools_model: Served) -> None:
    client = tools_model.client()
    ask = dict(model="m", temperature=0, max_tokens=200, tools=[WEATHER_TOOL],
               tool_choice={"type": "function", "function": {"name": "get_weather"}},
               messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    out = client.chat.completions.create(**ask)
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])
    assert "<tool_call>" not in (choice.message.content or "")

    calls, finish = [], None
    for chunk in client.chat.completions.create(stream=True, **ask):
        delta = chunk.choices[0].delta
        assert "<tool_call>" not in (delta.content or "")
        calls += delta.tool_calls or []
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and calls[0].function.name == "get_weather"
    json.loads(calls[0].function.arguments)

    # The call and its result go back into the conversation, as an agent sends them.
    again = client.chat.completions.create(model="m", temperature=0, max_tokens=20, tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'}])
    assert again.choices[0].message.role == "assistant"


def test_required_tool_choice_calls_one_of_the_tools(tools_model: Served) -> None:
    other = {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"zone": {"type": "string", "maxLength": 20}}, "required": ["zone"],
        "additionalProperties": False}}}
    out = tools_model.client().chat.completions.create(
        model="m", temperature=0, max_tokens=200, tools=[WEATHER_TOOL, other], tool_choice="required",
        messages=[{"role": "user", "content": "What time is it in Tokyo?"}])
    call = out.choices[0].message.tool_calls[0]
    assert call.function.name in ("get_weather", "get_time")
    json.loads(call.function.arguments)


def test_a_model_without_tool_support_says_so(smol: Served) -> None:
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as err:
        smol.client().chat.completions.create(model="m", max_tokens=5, tools=[WEATHER_TOOL],
                                              messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "tools_not_supported" and "cannot call tools" in err.value.body["message"]


def test_plain_completions_stream_and_not(smol: Served) -> None:
    client = smol.client()
    out = client.completions.create(model="m", prompt="The capital of France is", max_tokens=8, temperature=0)
    assert out.object == "text_completion" and "Paris" in out.choices[0].text
    assert out.usage.prompt_tokens >= 5 and 0 < out.usage.completion_tokens <= 8
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="m", prompt="The capital of France is", max_tokens=8, temperature=0, stream=True) if c.choices)
    assert streamed == out.choices[0].text
    echoed = client.completions.create(model="m", prompt="One, two,", max_tokens=4, temperature=0, echo=True)
    assert echoed.choices[0].text.startswith("One, two,")
    r = httpx.post(smol.url + "/v1/completions", json={"prompt": "x", "suffix": "y"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "suffix"


def test_embeddings_with_the_converted_minilm(smollm2, minilm_gguf) -> None:
    embedder = ModelHost()
    embedder.load(minilm_gguf, LoadOptions(embedding=True))
    served = Served(smollm2, embedder=embedder)
    try:
        client = served.client()
        texts = ["The pump was replaced.", "电池的续航时间"]
        out = client.embeddings.create(model="m", input=texts)
        vectors = np.array([d.embedding for d in out.data], dtype=np.float32)
        assert vectors.shape == (2, 384) and [d.index for d in out.data] == [0, 1]
        assert np.allclose(vectors, embedder.embed(texts), atol=1e-6)
        assert out.usage.prompt_tokens == sum(embedder.count_tokens_of(texts))
        raw = httpx.post(served.url + "/v1/embeddings", json={"input": "The pump was replaced.",
                                                              "encoding_format": "base64"}).json()
        decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
        assert np.allclose(decoded, vectors[0], atol=1e-6)
        assert {m.id for m in client.models.list().data} == {served.chat.loaded.name, embedder.info.name}
        assert httpx.post(served.url + "/v1/embeddings", json={"input": [1, 2]}).status_code == 400
    finally:
        served.close()
        embedder.close()


def test_without_an_embedding_model_embeddings_are_404(smol: Served) -> None:
    r = httpx.post(smol.url + "/v1/embeddings", json={"input": "x"})
    assert r.status_code == 404 and "--embedding-model" in r.json()["error"]["message"]


def test_a_time_budget_closes_the_thinking_and_the_model_answers(tiny_r1) -> None:
    served = Served(tiny_r1)
    try:
        full_reasoning, _ = tiny_r1_expected()
        out = served.client().chat.completions.create(
            model="m", max_tokens=40, temperature=0, messages=[{"role": "user", "content": "hi"}],
            extra_body={"reasoning_seconds": 0.000001})
        message = out.choices[0].message
        reasoning = message.model_extra["reasoning_content"]
        assert reasoning and len(reasoning) < len(full_reasoning) and full_reasoning.startswith(reasoning.strip())
        assert message.content and "<think>" not in message.content and "</think>" not in message.content
    finally:
        served.close()


def test_adapters_by_name_and_scale_change_the_answer_and_unknown_ones_are_400(tiny_r1, tmp_path) -> None:
    from tests.engine.adapters.lora_files import write_lora

    served = Served(tiny_r1)
    try:
        served.chat.adapter_store.add(write_lora(tmp_path / "style.gguf", seed=1), name="style")
        ask = dict(model="m", temperature=0, max_tokens=24, messages=[{"role": "user", "content": "hi"}])
        client = served.client()
        budget = {"reasoning_budget": 16}  # random adapters may keep the tiny model thinking: bound it
        base = client.chat.completions.create(**ask, extra_body=budget).choices[0].message
        styled = client.chat.completions.create(**ask, extra_body=dict(budget, adapters=[{"name": "style", "scale": 2.0}]))
        styled = styled.choices[0].message
        assert (styled.content, styled.model_extra.get("reasoning_content")) != \
            (base.content, base.model_extra.get("reasoning_content"))
        again = client.chat.completions.create(**ask, extra_body=dict(budget, adapters=["style:2"])).choices[0].message
        assert again.content == styled.content  # the same adapter at the same scale, written as a string
        for bad in (["nope"], [{"name": "style", "scale": 5}], "style"):
            r = httpx.post(served.url + "/v1/chat/completions", json=dict(ask, adapters=bad, **budget))
            assert r.status_code == 400, (bad, r.text)
        assert client.chat.completions.create(**ask, extra_body=budget).choices[0].message.content == base.content
    finally:
        served.close()
