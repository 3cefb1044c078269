"""A local ``transformers`` causal LM as an ensemble member: loading (hub id, directory, GGUF) and
starting a session (:mod:`.session`) per request."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..backend import Sampling, TextMember
from ..errors import ModelLoadError, ModelNotFoundError, SpecFuseError, UnsafeCheckpointError
from ..messages import Conversation
from ..model_specs import check_hub_reachable, hub_load_error, resolve_model_spec
from ..prompt_format import PlainPromptFormat
from ..tokenizer_view import TokenizerView
from .onednn_linear import use_onednn_hidden_layers, use_onednn_output_layer
from .sampling import TokenChooser
from .session import LocalSession, ScoreJob

logger = logging.getLogger(__name__)


class Member(TextMember):
    """A local ``transformers`` causal LM usable as an ensemble member.

    Build with :meth:`from_pretrained` (hub id or directory) or :meth:`from_gguf` (a GGUF file,
    converted once to safetensors under the cache dir).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        plain_prompt: PlainPromptFormat | None = None,
        context_window: int | None = None,
        decode_block: int | None = None,
        onednn_output_layer: bool = True,
        onednn_hidden_layers: bool = True,
    ) -> None:
        """``decode_block``: how drafting decode passes shared by concurrent requests are shaped.
        ``None`` (default, fastest): a pass has as many rows as drafts in it and a lone request runs
        one row, so batching can change a greedy output only at a near-tie (logits differ in their
        last bits with the row count). An int: every pass has exactly that many rows (a lone request
        is padded), so a request's output never depends on batching; on a CPU that costs a lone
        request about 1.5-2x per decode step, on a GPU little (see :mod:`.rows`, docs/reliability.md).

        ``onednn_output_layer`` (default on): a float32 model on the CPU computes its output layer
        through oneDNN, on its own weight (no copy): about 12% faster per answer on the machine
        measured (:mod:`.onednn_linear`); other devices and dtypes are unaffected.
        ``onednn_hidden_layers`` (default on): the same for its other linear layers, each pass where
        the product is large enough for oneDNN to be faster (:class:`.onednn_linear.OneDnnHiddenLinear`)."""
        if decode_block is not None and decode_block < 1:
            raise ValueError(f"decode_block must be None (rows as needed) or >= 1, got {decode_block}")
        if not isinstance(onednn_output_layer, bool):
            raise ValueError(f"onednn_output_layer must be True or False, got {onednn_output_layer!r}")
        if not isinstance(onednn_hidden_layers, bool):
            raise ValueError(f"onednn_hidden_layers must be True or False, got {onednn_hidden_layers!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.tokens = TokenizerView(tokenizer, plain_prompt)
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.context_window = int(context_window or getattr(config, "max_position_embeddings", 0) or 2048)
        self.device = next(model.parameters()).device
        self.layer_types: list[str] | None = getattr(config, "layer_types", None)
        self.sliding_window: int | None = getattr(config, "sliding_window", None)
        self._cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.stop_token_ids = self._find_stop_token_ids()
        output = model.get_output_embeddings()
        # rows of the logits (may exceed len(tokenizer): padding rows); grammar masks are this wide
        self.vocab_size = int(output.weight.shape[0]) if output is not None else int(getattr(config, "vocab_size", len(tokenizer)))
        self.decode_block = decode_block
        self.row_invariant = _install_rows(model, name)
        self.onednn_output_layer = onednn_output_layer and use_onednn_output_layer(model)
        self.onednn_hidden_layers = onednn_hidden_layers and use_onednn_hidden_layers(model) > 0

    def draft_together(self, jobs: "Sequence[tuple[LocalSession, str, int, bool]]") -> None:
        """Draft for several requests at once (see :func:`.batched_draft.draft_together`)."""
        from .batched_draft import draft_together

        draft_together(self, jobs)

    def score_together(self, jobs: "Sequence[tuple[LocalSession, ScoreJob]]") -> list[Any]:
        """Several requests' scoring passes at once (see :func:`.batched_score.score_together`)."""
        from .batched_score import score_together

        return score_together(self, jobs)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        *,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
        device: str | None = "cpu",
        device_map: Any = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        plain_prompt: PlainPromptFormat | None = None,
        context_window: int | None = None,
        decode_block: int | None = None,
        onednn_output_layer: bool = True,
        onednn_hidden_layers: bool = True,
        **model_kwargs: Any,
    ) -> "Member":
        """Load a hub id or local directory. Safetensors only, unless ``allow_pickle=True``.

        The string is checked first (:func:`~specfuse_core.model_specs.resolve_model_spec`): a missing
        path, a directory without ``config.json`` or an uncached hub id while offline raise
        :class:`ModelNotFoundError`; a hub id that cannot be downloaded raises it too, in one line."""
        from huggingface_hub import try_to_load_from_cache
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kind, source = resolve_model_spec(path_or_id)
        if kind == "gguf":
            raise ModelNotFoundError(str(path_or_id), "is a GGUF file: load it with Member.from_gguf")
        path = Path(source)
        if path.is_dir() and not allow_pickle and not any(path.glob("*.safetensors")):
            if any(path.glob("*.bin")) or any(path.glob("*.pt")):
                raise UnsafeCheckpointError(
                    f"{path} holds only pickled weights (.bin/.pt), which can run code when loaded; convert "
                    "them to safetensors, or pass allow_pickle=True if you trust the source"
                )
        kwargs: dict[str, Any] = dict(trust_remote_code=trust_remote_code, **model_kwargs)
        if not allow_pickle:
            kwargs["use_safetensors"] = True
        kwargs["dtype"] = _resolve_dtype(dtype)
        if device_map is not None:
            kwargs["device_map"] = device_map
        local = path.is_dir()
        if not local and not isinstance(try_to_load_from_cache(source, "config.json"), str):
            check_hub_reachable(source)
        try:
            # Loading cached weights takes a second or two: no progress bars for that (downloads keep theirs).
            with _progress_bars(enabled=not local):
                tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
                model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except OSError as error:
            if not local:
                raise hub_load_error(source, error) from error
            raise ModelLoadError(f"could not load the model directory {path}: {_first_line(error)}") from error
        if device_map is None and device is not None:
            model = model.to(device)
        return cls(
            model,
            tokenizer,
            name=name or path.name or str(path_or_id),
            plain_prompt=plain_prompt,
            context_window=context_window,
            decode_block=decode_block,
            onednn_output_layer=onednn_output_layer,
            onednn_hidden_layers=onednn_hidden_layers,
        )

    @classmethod
    def from_gguf(
        cls,
        file: str | Path,
        *,
        name: str | None = None,
        sha256: str | None = None,
        **kwargs: Any,
    ) -> "Member":
        """Load a GGUF file (dequantised to fp32 once, then cached as safetensors)."""
        from ..weights_cache import converted_dir, verify_sha256

        file = Path(file).expanduser()
        if not file.is_file():
            where = "is a directory, not a file" if file.is_dir() else "does not exist"
            raise ModelNotFoundError(str(file), f"GGUF file {file.absolute()} {where}")
        if sha256 is not None:
            verify_sha256(file, sha256, "pass the digest of the file you meant to load")
        try:
            directory = converted_dir(file, sha256)
        except SpecFuseError:
            raise
        except Exception as error:  # a corrupt or unsupported file: one named error, cause chained
            raise ModelLoadError(f"could not convert the GGUF file {file}: {_first_line(error)}") from error
        return cls.from_pretrained(directory, name=name or file.stem, **kwargs)

    def describe(self) -> dict[str, Any]:
        """Small, serialisable identity of this member (no model objects)."""
        return {
            "name": self.name,
            "model": str(getattr(self.model.config, "_name_or_path", "")) or type(self.model).__name__,
            "architecture": getattr(self.model.config, "model_type", "unknown"),
            "context_window": self.context_window,
            "prompt_format": "plain" if self.plain_prompt else "chat_template",
            "device": str(self.device),
        }

    def start(self, conversation: Conversation, sampling: Sampling, reserved: int = 0) -> LocalSession:
        """A fresh session for one request; raises if the prompt (plus ``reserved`` tokens for a
        round) does not fit the context window."""
        prompt_ids = self.fitting_prompt_ids(conversation, reserved)
        return LocalSession(self, prompt_ids, TokenChooser.from_sampling(sampling), sampling.no_repeat_ngram_size)

    def _find_stop_token_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for value in (eos, self.tokenizer.eos_token_id, self.end_of_turn_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return frozenset(ids)


def _install_rows(model: Any, name: str) -> bool:
    """Route the model's attention through the row-invariant decode path; False (plain decode steps,
    no batched drafting) for a model whose attention cannot be switched."""
    from .rows import install

    try:
        install(model)
        return True
    except Exception as error:
        logger.warning("member %r: row-invariant decoding unavailable (%s); its drafts are not batched", name, type(error).__name__)
        return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """transformers' progress bars on or off for one load (process-wide setting, restored after)."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    if before == enabled:
        yield
        return
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()


def _resolve_dtype(dtype: str | torch.dtype | None) -> Any:
    if dtype is None or dtype == "auto":
        return "auto" if dtype == "auto" else torch.float32
    if isinstance(dtype, str):
        return getattr(torch, dtype)
    return dtype
