"""LangChain standard integration tests for ChatSpecFuse on the real tiny preset (offline, CPU).

Tool calling, tool choice, structured output and JSON mode are on (constrained decoding in the core,
issue 12). Tests that answer with a tool call or JSON get room to finish (see ``ROOMY``); tests
that still fail on three sub-billion models carry an ``xfail`` saying why. Multimodal input is not
offered. A per-call ``model=`` override is refused (one instance is one ensemble).
"""

import re
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_specfuse import ChatSpecFuse

pytestmark = pytest.mark.integration


# Tests whose answer is a tool call or a JSON object: 16 tokens cut most of them off (a call of the
# standard tests' `magic_function` is about 25 tokens in Qwen's format, the Chinese arguments of the
# unicode test over 100). They get room to finish, no wall-clock timeout (the standard 60 s is a
# budget for a hosted model, not for a CPU ensemble), and the loop guard a user of greedy
# sub-billion models needs for JSON: without it the joke schema's string repeats "A cat is a cat,
# and" until the token cap (no_repeat_ngram_size, docs/structured_output.md).
ROOMY_TESTS = re.compile(r"tool|structured|json|agent")
ROOMY = {"max_tokens": 160, "timeout": None, "ensemble_kwargs": {"no_repeat_ngram_size": 6}}


class TestChatSpecFuseStandardIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatSpecFuse

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def structured_output_kwargs(self) -> dict:
        return {"method": "json_schema"}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def chat_model_params(self) -> dict:
        return {"preset": "tiny", "max_tokens": 16}

    @property
    def supports_model_override(self) -> bool:
        return False

    @pytest.fixture
    def model(self, request: Any) -> BaseChatModel:
        params = {**self.standard_chat_model_params, **self.chat_model_params, **(getattr(request, "param", None) or {})}
        if ROOMY_TESTS.search(request.node.name):
            params.update(ROOMY)
        return self.chat_model_class(**params)

    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    @pytest.mark.xfail(
        reason="binds get_weather with no tool_choice ('auto'): the tiny members answer 'What is the weather in "
        "San Francisco, CA?' in text instead of calling the tool (a capability limit of sub-billion models, "
        "documented in docs/langchain.md); with tool_choice='any' the same kind of call passes in test_tool_calling",
        strict=False,
    )
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)
