"""LangChain standard unit tests for ChatSpecFuse (no weights are loaded: construction is lazy)."""

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_specfuse import ChatSpecFuse

# The standard params include api_key and max_retries, which a local model ignores (with a warning);
# their timeout is ChatSpecFuse's per-request time limit.
pytestmark = pytest.mark.filterwarnings("ignore:ChatSpecFuse ignores:UserWarning")


class TestChatSpecFuseStandardUnit(ChatModelUnitTests):
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
        return {"preset": "tiny"}
