"""Row-invariant decode steps (specfuse_core.local.rows): a request's logits in a batched step are the
bits it gets alone, whatever its neighbours' cache lengths; and they are the model's own logits."""

from __future__ import annotations

import pytest
import torch

from specfuse_core.local.kv_cache import new_cache
from specfuse_core.local.onednn_linear import use_onednn_hidden_layers, use_onednn_output_layer
from specfuse_core.local.rows import decode_rows, install

from .conftest import random_model, wide_random_model


def _prefill(model, ids):
    cache = new_cache()
    with torch.inference_mode():
        model(input_ids=torch.tensor([ids]), use_cache=True, cache=cache)
    return cache


@pytest.mark.parametrize("onednn", ["none", "output", "all"], ids=["own-layers", "onednn-output-layer", "onednn-all-layers"])
@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_a_row_gets_the_same_bits_alone_and_in_any_batch(arch, onednn):
    # "all": layers wide enough that the hidden-layer rule applies to the 4-row passes
    model = wide_random_model(arch, seed=7) if onednn == "all" else random_model(arch, 500, seed=7)
    if onednn != "none" and not use_onednn_output_layer(model):
        pytest.skip("this PyTorch build has no oneDNN")
    if onednn == "all":
        assert use_onednn_hidden_layers(model) > 0
    plain = []  # the model's usual decode step, before switching attention
    prompts = [[5 + (i * 7 + j) % 400 for j in range(n)] for i, n in enumerate((3, 9, 14, 1, 20))]  # gemma3's window is 6
    for ids in prompts:
        cache = _prefill(model, ids)
        with torch.inference_mode():
            plain.append(model(input_ids=torch.tensor([[11]]), use_cache=True, cache=cache).logits[0, -1])
    install(model)
    alone = [decode_rows(model, "cache", [_prefill(model, ids)], [11], [len(ids)], 4)[0] for ids in prompts]
    # five rows with block 4: two passes, rows in different positions and with different neighbours
    together = decode_rows(model, "cache", [_prefill(model, ids) for ids in prompts], [11] * 5, [len(p) for p in prompts], 4)
    reversed_ = decode_rows(model, "cache", [_prefill(model, ids) for ids in prompts[::-1]], [11] * 5, [len(p) for p in prompts[::-1]], 4)
    for i in range(5):
        assert torch.equal(alone[i], together[i])
        assert torch.equal(alone[i], reversed_[4 - i])
        torch.testing.assert_close(alone[i], plain[i], rtol=1e-4, atol=1e-4)  # the same attention, computed per row


def test_the_plain_forward_path_is_unchanged_by_install():
    model = random_model("qwen2", 500, seed=3)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits
        install(model)
        after = model(input_ids=ids).logits
    assert torch.equal(before, after)
