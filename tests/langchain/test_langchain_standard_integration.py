"""LangChain standard integration tests for ChatSpecFuse on the real tiny preset (offline, CPU).

No tool calling, structured output, JSON mode or multimodal input: ``has_tool_calling`` and
``has_structured_output`` are False, so the standard suite skips those tests (``bind_tools`` and
``with_structured_output`` only raise ``UnsupportedFeatureError`` saying why). A per-call ``model=``
override is refused (one instance is one ensemble).
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

    # bind_tools/with_structured_output exist only to say why they are not offered
    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def chat_model_params(self) -> dict:
        return {"preset": "tiny", "max_tokens": 16}

    @property
    def supports_model_override(self) -> bool:
        return False
