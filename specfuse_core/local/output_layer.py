"""The output layer of a CPU member through oneDNN: the same product, computed faster.

Why: on a CPU a decode step spends a large share of its time in the output layer (vocabulary x
hidden size: 545 MB of float32 weights for Qwen2.5-0.5B, 671 MB for Gemma-3-270M), and PyTorch's
default float32 product there (MKL) ran about twice as slow as oneDNN's on the machine measured
(docs/performance.md, "The output layer through oneDNN"). oneDNN reads the layer's own weight in
place, so nothing is copied: the layer only changes class (:class:`OneDnnOutputLinear`, a
``torch.nn.Linear``), and its parameters, state dict, tying, copies and pickles stay as they were.
Input that is not a CPU float32 pass of at most ``MAX_ONEDNN_ROWS`` rows outside autograd takes the
layer's own product.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

# Above this many rows a pass takes the layer's own product: oneDNN measured faster for the tiny
# preset's three output layers at 1-128 rows (0.37-0.94x the time) and no longer at 256 (0.90-1.16x).
MAX_ONEDNN_ROWS = 128


def onednn_linear_available() -> bool:
    """Whether this PyTorch build can run a float32 linear layer through oneDNN."""
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch._C._nn, "mkldnn_linear")


def _cpu_float32(*tensors: torch.Tensor | None) -> bool:
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in tensors)


class OneDnnOutputLinear(torch.nn.Linear):
    """A ``Linear`` whose small CPU float32 inference passes run through oneDNN (the class a layer is
    switched to by :func:`use_onednn_output_layer`; switching back to ``torch.nn.Linear`` undoes it)."""

    def _onednn_applies(self, hidden: torch.Tensor) -> bool:
        weight, bias = self.weight, self.bias
        rows = hidden.numel() // max(hidden.shape[-1], 1)
        needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
        return (
            0 < rows <= MAX_ONEDNN_ROWS and hidden.device.type == "cpu" and hidden.dtype == torch.float32 and not needs_grad
            and weight.is_contiguous() and _cpu_float32(weight, bias)
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self._onednn_applies(hidden):
            return F.linear(hidden, self.weight, self.bias)
        flat = hidden.reshape(-1, hidden.shape[-1]).contiguous()
        try:
            out = torch._C._nn.mkldnn_linear(flat.to_mkldnn(), self.weight, self.bias).to_dense()
        except RuntimeError:  # oneDNN refused this weight (e.g. one replaced by a view since): the own product
            return F.linear(hidden, self.weight, self.bias)
        return out.reshape(*hidden.shape[:-1], out.shape[-1])


def use_onednn_output_layer(model: Any) -> bool:
    """Switch ``model``'s output layer to :class:`OneDnnOutputLinear` where it applies (a float32
    ``torch.nn.Linear`` on the CPU, not wrapped by a hook, a PyTorch build with oneDNN) and the two
    products agree on a probe; returns whether the layer now runs through oneDNN."""
    layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if isinstance(layer, OneDnnOutputLinear):
        return True
    if type(layer) is not torch.nn.Linear or not onednn_linear_available() or "forward" in layer.__dict__:
        return False  # not a plain layer, no oneDNN, or its forward already wrapped (e.g. by a device hook)
    if not _cpu_float32(layer.weight, layer.bias):
        return False
    probe = torch.randn(3, layer.in_features, generator=torch.Generator().manual_seed(0)).to(layer.weight.device)
    with torch.inference_mode():
        dense = F.linear(probe, layer.weight, layer.bias)
        layer.__class__ = OneDnnOutputLinear
        try:  # the probe must take the oneDNN path (a contiguous weight) and agree with the own product
            agrees = layer._onednn_applies(probe) and torch.allclose(layer(probe), dense, rtol=1e-4, atol=1e-4 * (float(dense.abs().max()) or 1.0))
        except RuntimeError:  # a build whose oneDNN rejects this layer
            agrees = False
        if not agrees:
            layer.__class__ = torch.nn.Linear
    return agrees


def uses_onednn_output_layer(model: Any) -> bool:
    layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return isinstance(layer, OneDnnOutputLinear)
