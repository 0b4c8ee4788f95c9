"""A conversation's system prompt: set, changed, removed, and given to a new conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1desk.engine.chat.history import History
from r1desk.engine.chat.service import ChatService
from r1desk.engine.errors import NotFound
from r1desk.engine.events import Started, Stats
from r1desk.engine.inference.host import LoadOptions


def test_set_change_and_remove_a_system_prompt() -> None:
    h = History()
    cid = h.create_conversation("x")
    h.add_message(cid, "user", "hi")
    assert h.system_prompt(cid) == ""
    h.set_system_prompt(cid, "  Answer in French.  ")
    assert h.system_prompt(cid) == "Answer in French."
    h.set_system_prompt(cid, "Answer in German.")
    roles = [(m.role, m.content) for m in h.messages(cid)]
    assert roles == [("user", "hi"), ("system", "Answer in German.")]  # one system prompt, changed in place
    h.set_system_prompt(cid, "")
    assert [m.role for m in h.messages(cid)] == ["user"]
    with pytest.raises(NotFound):
        h.set_system_prompt(cid + 100, "x")


@pytest.mark.slow
def test_a_new_conversation_starts_with_the_default_system_prompt(smollm2: Path) -> None:
    service = ChatService()
    try:
        service.load_model(smollm2, LoadOptions(n_ctx=1024))
        pirate = "You are a pirate. Speak like one."
        prompted = list(service.send(None, "hi", system=pirate))
        cid = next(e for e in prompted if isinstance(e, Started)).conversation_id
        assert service.history.system_prompt(cid) == pirate
        # The model read it: the prompt is the system prompt and the message, as the template puts them.
        read = service.host.count_tokens([{"role": "system", "content": pirate}, {"role": "user", "content": "hi"}])
        assert prompted[-1].prompt_tokens == read != service.host.count_tokens([{"role": "user", "content": "hi"}])
        # An existing conversation keeps its own system prompt.
        again = list(service.send(cid, "more", system="Something else"))
        assert isinstance(again[-1], Stats) and service.history.system_prompt(cid) == "You are a pirate. Speak like one."
    finally:
        service.close()
