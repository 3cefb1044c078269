"""LangChain standard integration tests for ChatSpecFuse on the real tiny preset (offline, CPU).

Tool calling, tool choice, structured output and JSON mode are on (constrained decoding in the
core, issue 12); multimodal input is not. A per-call ``model=`` override is refused (one instance is
one ensemble).
"""

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_specfuse import ChatSpecFuse

pytestmark = pytest.mark.integration


class TestChatSpecFuseStandardIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatSpecFuse

    # tools and structured output run through constrained decoding in the core
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
