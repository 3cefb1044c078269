"""Settings of one remote member, validated by pydantic. The API key is read from an environment
variable at connect time and never stored here, so neither ``repr`` nor ``describe()`` can leak it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..prompt_format import PlainPromptFormat


class RemoteMemberConfig(BaseModel):
    """One member served over the OpenAI-compatible ``/v1/completions`` endpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)  # a key pasted by mistake stays out of errors

    base_url: str = Field(description="server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted)")
    model: str = Field(description="the model name the server knows (vLLM: --served-model-name)")
    tokenizer: str | None = Field(
        default=None,
        description="local tokenizer: a directory, a tokenizer.json, a .gguf file or a hub id already in the "
        "local cache; defaults to `model`. Renders the chat template and counts tokens.",
    )
    name: str | None = Field(default=None, description="member name in the ensemble (default: the model name)")
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the API key")
    context_window: int = Field(default=2048, gt=16, description="the server's context length (vLLM --max-model-len)")
    chat_template: str | None = Field(default=None, description="Jinja chat template overriding the tokenizer's")
    plain_prompt: PlainPromptFormat | None = Field(default=None, description="plain format for base models")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=60.0, gt=0, description="per HTTP call (one draft or one scoring)")
    retries: int = Field(default=2, ge=0, le=10, description="extra attempts after a failed call")
    backoff_s: float = Field(default=0.25, ge=0, description="first retry delay; doubles per attempt")
    backoff_max_s: float = Field(default=4.0, ge=0)
    max_connections: int = Field(default=8, ge=1, description="pooled keep-alive connections to this server")
    score_batching: Literal["auto", "list", "per_candidate"] = Field(
        default="auto",
        description="'list': all candidates in one request (vLLM); 'per_candidate': one request each "
        "(llama-cpp-python's server accepts one prompt per request); 'auto': try a list once, fall back",
    )
    score_max_tokens: int = Field(
        default=1, ge=0, le=1, description="max_tokens of a scoring request (most servers refuse 0; the token is ignored)"
    )
    extra_params: dict[str, Any] = Field(
        default_factory=lambda: {"min_p": 0.0, "repeat_penalty": 1.0, "top_k": 0},
        description="sent with every request; the defaults switch off llama-cpp-python's own sampling "
        "defaults (min_p 0.05, repeat_penalty 1.1, top_k 40) so sampling matches a local member",
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value[: -len("/v1")] if value.endswith("/v1") else value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model must name the served model")
        return value.strip()

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or not value.replace("_", "").isalnum()):
            raise ValueError(
                "api_key_env is the NAME of an environment variable (letters, digits, _), not the key itself"
            )
        return value

    @property
    def member_name(self) -> str:
        return self.name or self.model

    @property
    def completions_url(self) -> str:
        return f"{self.base_url}/v1/completions"
