"""ChatService's defaults: what a reply gets when the caller does not say."""

from __future__ import annotations

import pytest

from r1desk.engine.chat.service import DEFAULT_MAX_TOKENS, SamplingParams
from r1desk.engine.errors import R1deskError
from r1desk.engine.inference.host import ModelInfo


def model(name: str = "SmolLM2-135M-Instruct", reasoning: bool = False) -> ModelInfo:
    return ModelInfo(path=f"/m/{name}.gguf", name=name, architecture="llama", n_ctx=8192, n_ctx_train=8192,
                     n_vocab=49152, is_reasoning=reasoning, chat_template_sha256="0" * 64)


@pytest.mark.parametrize("info", [model(), model("DeepSeek-R1-Distill-Qwen-7B", reasoning=True)])
def test_a_reply_has_a_default_limit_that_can_be_raised_or_lifted(info: ModelInfo) -> None:
    assert DEFAULT_MAX_TOKENS == 2048
    assert SamplingParams().resolved(info)["max_tokens"] == DEFAULT_MAX_TOKENS
    assert SamplingParams(max_tokens=100_000).resolved(info)["max_tokens"] == 100_000
    assert SamplingParams(max_tokens=0).resolved(info)["max_tokens"] == 0  # no limit, said explicitly
    # Thinking has a budget of its own, unlimited unless asked.
    assert SamplingParams().resolved(info)["reasoning_budget"] is None
    with pytest.raises(R1deskError, match="reply limit"):
        SamplingParams(max_tokens=-1).resolved(info)
