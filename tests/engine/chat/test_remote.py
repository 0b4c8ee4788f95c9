"""A remote model (another r1desk serve on loopback) in the chat service: conversations, reasoning,
history, structured output and the errors a user meets, as with a local model."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from r1desk.engine.chat import remotes
from r1desk.engine.chat.service import ChatService, SamplingParams
from r1desk.engine.errors import ModelLoadFailed, Offline
from r1desk.engine.events import ContentDelta, ReasoningDelta, Started, Stats
from r1desk.engine.inference.structured import schema_grammar

from tests.server.test_api import Served
from tests.support.models import tiny_r1_expected

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _reply(service: ChatService, conversation_id, text: str, params: SamplingParams | None = None):
    started, content, reasoning, stats = None, [], [], None
    for ev in service.send(conversation_id, text, params):
        if isinstance(ev, Started):
            started = ev
        elif isinstance(ev, ContentDelta):
            content.append(ev.text)
        elif isinstance(ev, ReasoningDelta):
            reasoning.append(ev.text)
        elif isinstance(ev, Stats):
            stats = ev
    return started, "".join(reasoning), "".join(content), stats


def test_a_conversation_with_a_remote_r1_keeps_reasoning_apart_and_is_saved(tiny_r1) -> None:
    served = Served(tiny_r1, api_key="k3y")
    service = ChatService()
    try:
        remotes.add("box", served.url, api_key="k3y", db=service.history.db)
        info = service.load_model("box")
        assert info.name == "box" and info.architecture == "remote" and service.host.pid is None
        started, reasoning, answer, stats = _reply(service, None, "hi", SamplingParams(temperature=0))
        want_reasoning, want_answer = tiny_r1_expected()
        assert reasoning.strip() == want_reasoning.strip() and answer.strip() == want_answer.strip()
        assert stats.completion_tokens > 0 and stats.reasoning_tokens > 0 and stats.finish_reason == "stop"
        saved = service.history.messages(started.conversation_id)
        assert [m.role for m in saved] == ["user", "assistant"]
        assert saved[1].content.strip() == want_answer.strip() and saved[1].reasoning.strip() == want_reasoning.strip()
        # A second turn goes through the same way, with the history sent along.
        _, _, again, _ = _reply(service, started.conversation_id, "and again?", SamplingParams(temperature=0))
        assert again.strip() == want_answer.strip()
    finally:
        service.close()
        served.close()


def test_structured_output_through_a_remote_model(smollm2) -> None:
    served = Served(smollm2)
    service = ChatService()
    schema = {"type": "object", "properties": {"colour": {"enum": ["red", "green", "blue"]},
                                               "count": {"type": "integer"}},
              "required": ["colour", "count"], "additionalProperties": False}
    try:
        service.load_model(served.url)  # a URL works without adding it first
        params = SamplingParams(temperature=0, grammar=schema_grammar(schema), json_schema=schema, max_tokens=60)
        _, _, answer, _ = _reply(service, None, "Pick a colour and a number.", params)
        jsonschema.validate(json.loads(answer), schema)
    finally:
        service.close()
        served.close()


def test_a_wrong_key_and_an_absent_server_are_said_plainly(tiny_r1) -> None:
    served = Served(tiny_r1, api_key="right")
    service = ChatService()
    try:
        remotes.add("box", served.url, api_key="wrong", db=service.history.db)
        with pytest.raises(ModelLoadFailed) as err:
            service.load_model("box")
        assert err.value.facts["code"] == "remote-key"
    finally:
        served.close()
    with pytest.raises(Offline) as err:
        service.load_model("box")  # the server is gone now
    assert err.value.facts["code"] == "remote-unreachable" and "cannot reach the remote model" in str(err.value)
    service.close()


def test_the_command_line_adds_lists_and_chats_with_a_remote(tiny_r1) -> None:
    served = Served(tiny_r1)
    try:
        run = [sys.executable, "-m", "r1desk.cli"]
        added = subprocess.run(run + ["remote", "add", "other-r1desk", served.url], capture_output=True, text=True,
                               timeout=60)
        assert added.returncode == 0, added.stderr
        listed = json.loads(subprocess.run(run + ["remote", "list", "--json"], capture_output=True, text=True,
                                           timeout=60).stdout)
        assert listed[0]["name"] == "other-r1desk" and listed[0]["url"] == served.url + "/v1"
        chat = subprocess.run(run + ["chat", "other-r1desk", "-p", "hi", "--json", "--temperature", "0"],
                              capture_output=True, text=True, timeout=120)
        assert chat.returncode == 0, chat.stderr
        out = json.loads(chat.stdout)
        assert out["answer"].strip() == tiny_r1_expected()[1].strip() and out["reasoning"]
        assert subprocess.run(run + ["remote", "rm", "other-r1desk"], capture_output=True, timeout=60).returncode == 0
    finally:
        served.close()
