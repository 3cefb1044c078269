"""A CPU member's linear layers through oneDNN: the same products, computed faster.

Why: on a CPU a forward pass spends most of its time in linear layers, and PyTorch's default float32
product (MKL) ran about twice as slow as oneDNN's on the machine measured, for the output layer
(vocabulary x hidden size: 545 MB of float32 weights for Qwen2.5-0.5B) and for the hidden layers
(attention and MLP projections) alike, except the narrow key/value projections, where oneDNN's fixed
cost per call loses (docs/performance.md, "The output layer through oneDNN", "The hidden layers
through oneDNN", "The hidden-layer rule in whole passes" and "oneDNN without conversions"). oneDNN
reads a layer's own weight in place, so nothing is copied: a layer only changes class
(:class:`OneDnnOutputLinear` or :class:`OneDnnHiddenLinear`, both ``torch.nn.Linear``), and its
parameters, state dict, tying, copies and pickles stay as they were. A pass that is not a CPU float32
pass outside autograd, or that its class's rule finds too narrow, takes the layer's own product.

The product is oneDNN's linear primitive on plain (dense) tensors (``mkldnn::_linear_pointwise``,
the op PyTorch's own compiler emits for CPU linear layers). The older entry point,
``mkldnn_linear``, wants its input converted to oneDNN's tensor type and its output converted back:
the same bits, but the two copies cost 35-50 microseconds a call (6% of a decode step of Qwen2.5-0.5B
at 8 rows) and more for large outputs. Builds without the plain-tensor op use the converting one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

# Hidden layers: a layer of at least 256 outputs takes oneDNN at any row count. Timed one layer at a
# time (benchmarks/onednn_hidden_products.py), MKL won on small products (under about 4 million
# multiply-adds), but there the layer's weights stay in the processor's cache between repeats. In
# whole decode passes, which read every layer's weights from memory once, sending the small layers
# too took 0.83-1.00x the time at one row, 0.63-0.93x at 2-3 rows and about the same from 6 rows on
# the tiny preset's three members, so the sixteenth session's work and layer-size thresholds were
# dropped (benchmarks/onednn_hidden_rule.py). The narrow key/value projections (128-192 outputs) keep
# MKL: oneDNN's fixed cost per call loses there below about 32 rows, and they are 2-6% of a layer's
# multiply-adds. The row caps of earlier sessions (128 rows for output layers, 512 for hidden ones)
# are gone: measured again (twenty-first session, this PyTorch build), oneDNN without conversions took
# 0.44-0.61x MKL's time from 512 to 8192 rows on the preset's hidden-layer shapes and 0.35-0.56x on
# its output layers from 128 to 2048 rows (the converting entry point, too, beat MKL at 256-512 rows).
MIN_HIDDEN_OUTPUTS = 256

ProductFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _plain_product(flat: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")


def _converting_product(flat: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch._C._nn.mkldnn_linear(flat.to_mkldnn(), weight, bias).to_dense()


def _has_plain_product() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._linear_pointwise is not None
    except (AttributeError, RuntimeError):  # a build without the op
        return False


def _pick_product() -> ProductFn | None:
    if _has_plain_product():
        return _plain_product
    if torch.backends.mkldnn.is_available() and hasattr(torch._C._nn, "mkldnn_linear"):
        return _converting_product
    return None


#: the oneDNN product this build offers (None: none), chosen once
PRODUCT: ProductFn | None = _pick_product()


def onednn_linear_available() -> bool:
    """Whether this PyTorch build can run a float32 linear layer through oneDNN."""
    return PRODUCT is not None


def _cpu_float32(*tensors: torch.Tensor | None) -> bool:
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in tensors)


class _OneDnnLinear(torch.nn.Linear):
    """A ``Linear`` whose CPU float32 inference passes run through oneDNN where :meth:`_worth_it` says so."""

    def _worth_it(self, rows: int) -> bool:
        raise NotImplementedError

    def _onednn_applies(self, hidden: torch.Tensor) -> bool:
        rows = hidden.numel() // max(hidden.shape[-1], 1)
        if rows == 0 or not self._worth_it(rows):  # the cheap test first: most small passes stop here
            return False
        weight, bias = self.weight, self.bias
        needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
        return (
            hidden.device.type == "cpu" and hidden.dtype == torch.float32 and not needs_grad
            and weight.is_contiguous() and _cpu_float32(weight, bias)
        )

    def _onednn_product(self, hidden: torch.Tensor) -> torch.Tensor:
        flat = hidden.reshape(-1, hidden.shape[-1]).contiguous()
        out = PRODUCT(flat, self.weight, self.bias)
        return out.reshape(*hidden.shape[:-1], out.shape[-1])

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self._onednn_applies(hidden):
            return F.linear(hidden, self.weight, self.bias)
        try:
            return self._onednn_product(hidden)
        except RuntimeError:  # oneDNN refused this weight (e.g. one replaced by a view since): the own product
            return F.linear(hidden, self.weight, self.bias)


class OneDnnOutputLinear(_OneDnnLinear):
    """The output layer: through oneDNN at any row count."""

    def _worth_it(self, rows: int) -> bool:
        return True


class OneDnnHiddenLinear(_OneDnnLinear):
    """A hidden layer: through oneDNN when it has at least ``MIN_HIDDEN_OUTPUTS`` outputs."""

    def _worth_it(self, rows: int) -> bool:
        return self.out_features >= MIN_HIDDEN_OUTPUTS


def _switch(layer: Any, kind: type[_OneDnnLinear]) -> bool:
    """Switch ``layer`` to ``kind`` if it is a plain float32 CPU ``torch.nn.Linear`` not wrapped by a
    hook and oneDNN's product agrees with its own on a probe; returns whether it switched."""
    if isinstance(layer, kind):
        return True
    if type(layer) is not torch.nn.Linear or not onednn_linear_available() or "forward" in layer.__dict__:
        return False  # not a plain layer, no oneDNN, or its forward already wrapped (e.g. by a device hook)
    if not _cpu_float32(layer.weight, layer.bias) or not layer.weight.is_contiguous():
        return False
    probe = torch.randn(3, layer.in_features, generator=torch.Generator().manual_seed(0)).to(layer.weight.device)
    with torch.inference_mode():
        dense = F.linear(probe, layer.weight, layer.bias)
        layer.__class__ = kind
        try:  # oneDNN's product must agree with the own one on the probe
            agrees = torch.allclose(layer._onednn_product(probe), dense, rtol=1e-4, atol=1e-4 * (float(dense.abs().max()) or 1.0))
        except RuntimeError:  # a build whose oneDNN rejects this layer
            agrees = False
        if not agrees:
            layer.__class__ = torch.nn.Linear
    return agrees


def _output_layer(model: Any) -> Any:
    return model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None


def use_onednn_output_layer(model: Any) -> bool:
    """Switch ``model``'s output layer to :class:`OneDnnOutputLinear` where it applies (a float32
    ``torch.nn.Linear`` on the CPU, not wrapped by a hook, a PyTorch build with oneDNN) and the two
    products agree on a probe; returns whether the layer now runs through oneDNN."""
    return _switch(_output_layer(model), OneDnnOutputLinear)


def uses_onednn_output_layer(model: Any) -> bool:
    return isinstance(_output_layer(model), OneDnnOutputLinear)


def use_onednn_hidden_layers(model: Any) -> int:
    """Switch every plain float32 CPU ``torch.nn.Linear`` of ``model`` other than its output layer to
    :class:`OneDnnHiddenLinear` (each checked as :func:`use_onednn_output_layer` checks the output
    layer); returns how many layers now run through oneDNN where their rule says so."""
    output = _output_layer(model)
    return sum(_switch(module, OneDnnHiddenLinear) for module in model.modules()
               if module is not output and isinstance(module, torch.nn.Linear) and not isinstance(module, OneDnnOutputLinear))


def onednn_hidden_layer_count(model: Any) -> int:
    return sum(isinstance(module, OneDnnHiddenLinear) for module in model.modules())
