"""Linear layers through oneDNN (specfuse_core.local.onednn_linear): the same logits as the model's
own layers, the module's weights and state untouched, and a layer's own product wherever its rule
does not apply (the output layer's and the hidden layers')."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from specfuse_core import Member
from specfuse_core.local import onednn_linear
from specfuse_core.local.onednn_linear import (
    MIN_HIDDEN_OUTPUTS,
    OneDnnHiddenLinear,
    OneDnnOutputLinear,
    onednn_hidden_layer_count,
    onednn_linear_available,
    use_onednn_hidden_layers,
    use_onednn_output_layer,
    uses_onednn_output_layer,
)

from .conftest import random_model, wide_random_model

pytestmark = pytest.mark.skipif(not onednn_linear_available(), reason="this PyTorch build has no oneDNN")

IDS = torch.tensor([[5, 17, 42, 9, 300, 11]])


def _logits(model, ids=IDS):
    with torch.inference_mode():
        return model(input_ids=ids).logits


def _agrees(layer, hidden):
    with torch.inference_mode():
        torch.testing.assert_close(layer(hidden), torch.nn.functional.linear(hidden, layer.weight, layer.bias), rtol=1e-4, atol=1e-4)


class _Head(torch.nn.Module):
    """The smallest model with an output layer that has a bias."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(16, 40)

    def get_output_embeddings(self) -> torch.nn.Linear:
        return self.head


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_logits_match_the_models_own_layer(arch):
    model = random_model(arch, 500, seed=4)
    before = _logits(model)
    keys = set(model.state_dict())
    assert use_onednn_output_layer(model)
    assert uses_onednn_output_layer(model) and type(model.get_output_embeddings()) is OneDnnOutputLinear
    torch.testing.assert_close(_logits(model), before, rtol=1e-4, atol=1e-4)
    # no copy: the same parameters, still tied to the input embeddings
    assert set(model.state_dict()) == keys
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert use_onednn_output_layer(model)  # a second call is a no-op


def test_weights_changed_in_any_way_are_followed_and_autograd_takes_the_own_product():
    model = _Head().eval()
    assert use_onednn_output_layer(model)
    layer, hidden = model.head, torch.randn(4, 16)
    _agrees(layer, hidden)
    with torch.no_grad():
        layer.bias.add_(1.0)
        layer.weight.mul_(2.0)
    _agrees(layer, hidden)
    layer.weight.data.copy_(torch.randn(40, 16))  # a write autograd does not see
    _agrees(layer, hidden)
    model.half()
    with torch.inference_mode():  # half precision: the layer's own product
        assert layer(hidden.half()).dtype == torch.float16
    model.float()
    _agrees(layer, hidden)
    hidden.requires_grad_(True)
    layer(hidden).sum().backward()  # the own product, so gradients flow
    assert hidden.grad is not None and layer.weight.grad is not None and layer.bias.grad is not None


def test_many_rows_take_onednn_too(monkeypatch):
    model = random_model("llama", 500, seed=7)
    assert use_onednn_output_layer(model)
    layer = model.get_output_embeddings()
    calls = _counting_onednn(monkeypatch)
    _agrees(layer, torch.randn(1024, layer.in_features))  # hundreds of rows: a pooled scoring pass
    assert calls == [1024]


def test_the_plain_and_the_converting_products_give_the_same_bits():
    if not onednn_linear._has_plain_product():
        pytest.skip("this PyTorch build has no plain-tensor oneDNN linear")
    generator = torch.Generator().manual_seed(3)
    for rows, outputs, bias in ((1, 300, True), (8, 4864, False), (80, 896, True)):
        hidden = torch.randn(rows, 64, generator=generator)
        weight = torch.randn(outputs, 64, generator=generator)
        b = torch.randn(outputs, generator=generator) if bias else None
        with torch.inference_mode():
            assert torch.equal(onednn_linear._plain_product(hidden, weight, b), onednn_linear._converting_product(hidden, weight, b))


def test_a_build_without_the_plain_product_converts(monkeypatch):
    model = random_model("qwen2", 500, seed=5)
    before = _logits(model)
    monkeypatch.setattr(onednn_linear, "_has_plain_product", lambda: False)
    monkeypatch.setattr(onednn_linear, "PRODUCT", onednn_linear._pick_product())
    assert onednn_linear.PRODUCT is onednn_linear._converting_product
    assert use_onednn_output_layer(model) and use_onednn_hidden_layers(model)
    torch.testing.assert_close(_logits(model), before, rtol=1e-4, atol=1e-4)


def test_copies_and_pickles_keep_their_own_weights():
    model = random_model("qwen2", 500, seed=6)
    assert use_onednn_output_layer(model)
    before = _logits(model)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.get_output_embeddings().weight.zero_()  # tied: the copy's embeddings are zero too
    assert uses_onednn_output_layer(twin)
    assert torch.count_nonzero(_logits(twin)) == 0
    torch.testing.assert_close(_logits(model), before, rtol=1e-4, atol=1e-4)  # the original is unaffected
    thawed = pickle.loads(pickle.dumps(model))
    assert uses_onednn_output_layer(thawed)
    torch.testing.assert_close(_logits(thawed), before, rtol=1e-4, atol=1e-4)


def test_not_used_for_half_precision_or_a_wrapped_forward():
    assert not use_onednn_output_layer(random_model("llama", 500, seed=8).to(torch.bfloat16))
    model = _Head().eval()
    model.head.forward = lambda x: torch.zeros(x.shape[0], 40)  # as a device hook wraps a layer
    assert not use_onednn_output_layer(model)
    assert type(model.head) is torch.nn.Linear
    assert torch.count_nonzero(model.head(torch.randn(2, 16))) == 0


def test_member_option(real_tokenizers):
    tokenizer = real_tokenizers["smollm2-135m"]
    plain = Member(random_model("llama", len(tokenizer), seed=9), tokenizer, name="plain", onednn_output_layer=False)
    assert not plain.onednn_output_layer and not uses_onednn_output_layer(plain.model)
    fast = Member(random_model("llama", len(tokenizer), seed=9), tokenizer, name="fast")
    assert fast.onednn_output_layer and uses_onednn_output_layer(fast.model)
    with pytest.raises(ValueError, match="onednn_output_layer must be True or False"):
        Member(random_model("llama", len(tokenizer), seed=9), tokenizer, name="bad", onednn_output_layer="yes")


def test_a_weight_onednn_refuses_takes_the_own_product(monkeypatch):
    model = _Head().eval()
    assert use_onednn_output_layer(model)

    def refuse(*args, **kwargs):
        raise RuntimeError("could not create a primitive descriptor")

    monkeypatch.setattr(onednn_linear, "PRODUCT", refuse)
    hidden = torch.randn(3, 16)
    with torch.inference_mode():
        assert torch.equal(model.head(hidden), torch.nn.functional.linear(hidden, model.head.weight, model.head.bias))


def _counting_onednn(monkeypatch) -> list[int]:
    """Count oneDNN products (rows of each call), passing them through."""
    calls: list[int] = []
    real = onednn_linear.PRODUCT

    def counted(hidden, weight, bias):
        calls.append(hidden.size(0))
        return real(hidden, weight, bias)

    monkeypatch.setattr(onednn_linear, "PRODUCT", counted)
    return calls


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_hidden_layers_match_the_models_own_products(arch, monkeypatch):
    model = wide_random_model(arch, seed=4)
    ids = torch.tensor([[(7 * i) % 500 for i in range(40)]])  # 40 rows: the MLP and attention products qualify
    before = _logits(model, ids)
    keys = set(model.state_dict())
    switched = use_onednn_hidden_layers(model)
    # every projection of both blocks; the output layer is left to use_onednn_output_layer
    assert switched == onednn_hidden_layer_count(model) == 2 * 7
    assert type(model.get_output_embeddings()) is torch.nn.Linear
    calls = _counting_onednn(monkeypatch)
    after = _logits(model, ids)
    assert calls and all(rows == 40 for rows in calls)  # the path was taken
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert set(model.state_dict()) == keys
    assert use_onednn_hidden_layers(model) == switched  # a second call is a no-op


def test_the_hidden_rule_skips_narrow_products(monkeypatch):
    wide = torch.nn.Linear(512, 1024).eval()
    small = torch.nn.Linear(256, 512).eval()  # a small layer: oneDNN from one row (whole passes were faster)
    narrow = torch.nn.Linear(896, 128).eval()  # under MIN_HIDDEN_OUTPUTS
    for layer in (wide, small, narrow):
        assert _switch_one(layer)
    calls = _counting_onednn(monkeypatch)
    cases = ((1, wide, True), (2048, wide, True),
             (1, small, True), (2, small, True), (1, narrow, False), (64, narrow, False))
    assert narrow.out_features < MIN_HIDDEN_OUTPUTS <= small.out_features
    for rows, layer, expected in cases:
        calls.clear()
        hidden = torch.randn(rows, layer.in_features)
        with torch.inference_mode():
            out = layer(hidden)
        assert bool(calls) is expected, (rows, layer)
        own = torch.nn.functional.linear(hidden, layer.weight, layer.bias)
        if expected:
            torch.testing.assert_close(out, own, rtol=1e-4, atol=1e-4)
        else:
            assert torch.equal(out, own)  # the own kernel, so the same bits


def _switch_one(layer: torch.nn.Linear) -> bool:
    holder = torch.nn.Sequential(layer)
    return use_onednn_hidden_layers(holder) == 1 and type(layer) is OneDnnHiddenLinear


def test_hidden_layers_not_used_for_half_precision_or_a_wrapped_forward():
    assert use_onednn_hidden_layers(wide_random_model("llama", seed=8).to(torch.bfloat16)) == 0
    layer = torch.nn.Linear(256, 1024)
    layer.forward = lambda x: torch.zeros(x.shape[0], 1024)
    assert use_onednn_hidden_layers(torch.nn.Sequential(layer)) == 0 and type(layer) is torch.nn.Linear


def test_member_hidden_layers_option(real_tokenizers):
    tokenizer = real_tokenizers["smollm2-135m"]
    plain = Member(wide_random_model("llama", len(tokenizer), seed=9), tokenizer, name="plain", onednn_hidden_layers=False)
    assert not plain.onednn_hidden_layers and onednn_hidden_layer_count(plain.model) == 0
    assert plain.onednn_output_layer  # the two options are independent
    fast = Member(wide_random_model("llama", len(tokenizer), seed=9), tokenizer, name="fast")
    assert fast.onednn_hidden_layers and onednn_hidden_layer_count(fast.model) == 2 * 7
    with pytest.raises(ValueError, match="onednn_hidden_layers must be True or False"):
        Member(wide_random_model("llama", len(tokenizer), seed=9), tokenizer, name="bad", onednn_hidden_layers=1)
