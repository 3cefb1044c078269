"""The output layer of a CPU member through oneDNN: the same product, computed faster.

Why: on a CPU a decode step spends a large share of its time in the output layer (vocabulary x
hidden size: 545 MB of float32 weights for Qwen2.5-0.5B, 671 MB for Gemma-3-270M), and PyTorch's
default float32 product there ran about twice as slow as oneDNN's on the machine measured
(docs/performance.md, "The output layer through oneDNN"). The layer keeps its own weight, so tying,
saving and moving the model behave as before; a oneDNN copy of the weight is made once (again if the weight changes) and
used only while the input is a CPU float32 tensor of at most ``MAX_ONEDNN_ROWS`` rows outside autograd
and the weight is unchanged.
Everything else falls back to the layer's own ``F.linear``. Costs one extra copy of the weight in
memory (the output layer is usually tied to the input embeddings, which keep the original).
"""

from __future__ import annotations

import threading
from typing import Any

import torch
import torch.nn.functional as F

# Above this many rows a pass takes the layer's own product: oneDNN measured faster for the tiny
# preset's three output layers at 1-128 rows (0.37-0.94x the time) and no longer at 256 (0.90-1.16x).
MAX_ONEDNN_ROWS = 128


def onednn_linear_available() -> bool:
    """Whether this PyTorch build can run a float32 linear layer through oneDNN."""
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch._C._nn, "mkldnn_linear")


def _state(tensor: torch.Tensor | None) -> tuple[int, int] | None:
    return None if tensor is None else (tensor.data_ptr(), tensor._version)


class OneDnnOutputForward:
    """Replaces ``layer.forward`` (an instance attribute: the module, its weight and its state dict stay
    as they are; ``del layer.forward`` restores the original).

    The copy is made again when the weight or bias is replaced or changed in place (their address or
    version moves). Writes that bypass version counting (through ``.data`` or numpy) are not seen:
    call :meth:`refresh` after them. A ``copy.copy`` of the layer shares this object, so it computes
    with the original layer's weight; ``copy.deepcopy`` gets its own."""

    __slots__ = ("layer", "_lock", "_packed")  # no __dict__: a hook wrapping this object copies nothing

    def __init__(self, layer: torch.nn.Linear) -> None:
        self.layer = layer
        self._lock = threading.Lock()
        # (sources, their states, oneDNN weight, oneDNN bias); the sources are held so that their memory
        # cannot be reused by a new weight at the same address and version
        self._packed: tuple[tuple[Any, ...], tuple[Any, ...], torch.Tensor, torch.Tensor | None] | None = None

    def refresh(self) -> None:
        """Drop the oneDNN copy; the next pass makes it again from the layer's current weight."""
        with self._lock:
            self._packed = None

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The oneDNN copy of the current weight and bias (made again if either was replaced or changed)."""
        layer = self.layer
        states = (_state(layer.weight), _state(layer.bias))
        packed = self._packed
        if packed is None or packed[1] != states:
            with self._lock:
                packed = self._packed
                if packed is None or packed[1] != states:
                    with torch.no_grad():
                        sources = (layer.weight.detach(), None if layer.bias is None else layer.bias.detach())
                        weight = sources[0].to_mkldnn()
                        bias = None if sources[1] is None else sources[1].to_mkldnn()
                    packed = self._packed = (sources, states, weight, bias)
        return packed[2], packed[3]

    def usable_for(self, hidden: torch.Tensor) -> bool:
        weight, bias = self.layer.weight, self.layer.bias
        rows = hidden.numel() // max(hidden.shape[-1], 1)
        needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
        return 0 < rows <= MAX_ONEDNN_ROWS and hidden.device.type == "cpu" and hidden.dtype == torch.float32 and _cpu_float32(self.layer) and not needs_grad

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.usable_for(hidden):
            if self._packed is not None and not _cpu_float32(self.layer):  # moved or cast: the copy is of no more use
                self.refresh()
            return F.linear(hidden, self.layer.weight, self.layer.bias)
        weight, bias = self._weights()
        flat = hidden.reshape(-1, hidden.shape[-1]).contiguous()
        out = torch._C._nn.mkldnn_linear(flat.to_mkldnn(), weight, bias).to_dense()
        return out.reshape(*hidden.shape[:-1], out.shape[-1])

    def __deepcopy__(self, memo: dict[int, Any]) -> "OneDnnOutputForward":
        # the copy's layer is already in ``memo`` (a module is registered before its attributes are copied)
        return OneDnnOutputForward(memo.get(id(self.layer), self.layer))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return OneDnnOutputForward, (self.layer,)


def _cpu_float32(layer: torch.nn.Linear) -> bool:
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in (layer.weight, layer.bias))


def use_onednn_output_layer(model: Any) -> bool:
    """Route ``model``'s output layer through oneDNN where it applies (a float32 ``nn.Linear`` on the
    CPU, a build with oneDNN, no other wrapper on its ``forward``) and the two products agree on a
    probe; returns whether it did."""
    if uses_onednn_output_layer(model):
        return True
    layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if type(layer) is not torch.nn.Linear or not onednn_linear_available():
        return False
    if "forward" in layer.__dict__ or hasattr(layer, "_hf_hook"):  # already wrapped (e.g. accelerate's device hooks): leave it
        return False
    forward = OneDnnOutputForward(layer)
    probe = torch.randn(3, layer.in_features, generator=torch.Generator().manual_seed(0), dtype=layer.weight.dtype, device=layer.weight.device)
    with torch.inference_mode():
        if not forward.usable_for(probe):
            return False
        try:
            fast = forward(probe)
        except RuntimeError:  # a build whose oneDNN rejects these shapes: keep the layer as it is
            return False
        dense = F.linear(probe, layer.weight, layer.bias)
    scale = float(dense.abs().max()) or 1.0
    if not torch.allclose(fast, dense, rtol=1e-4, atol=1e-4 * scale):
        return False
    layer.forward = forward
    return True


def uses_onednn_output_layer(model: Any) -> bool:
    layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return layer is not None and isinstance(layer.__dict__.get("forward"), OneDnnOutputForward)
