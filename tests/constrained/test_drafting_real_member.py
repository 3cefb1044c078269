"""Constrained drafting with a real small member, by plain model calls: the shape phase 2 wires into
the rounds. SmolLM2-135M drafts under a JSON-schema mask; the text is a valid prefix under another
member's tokenizer too, and, once the grammar is complete, parses and validates."""

from __future__ import annotations

import pytest
import torch
from pydantic import BaseModel

from specfuse_core.constrained import response_format_from, validate_output
from specfuse_core.kv_cache import new_cache

from .conftest import QWEN, SMOL

pytestmark = pytest.mark.integration


class City(BaseModel):
    name: str
    country: str
    population: int


@pytest.fixture(scope="module")
def smol_model():
    from transformers import AutoModelForCausalLM

    from specfuse_core.presets import preset_members, resolve_preset_member

    entry = next(m for m in preset_members("tiny") if m.name == SMOL)
    return AutoModelForCausalLM.from_pretrained(resolve_preset_member(entry), dtype=torch.float32).eval()


def test_masked_greedy_drafting_yields_a_valid_document(smol_model, views, make_constraint):
    view = views[SMOL]
    fmt = response_format_from(City)
    constraint = make_constraint(SMOL, fmt)
    prompt = view.prompt_ids([{"role": "user", "content": "Describe Paris as JSON with name, country and population."}])
    cache, ids, drafted = new_cache(), prompt, []
    with torch.inference_mode():
        for _ in range(48):
            logits = smol_model(torch.tensor([ids]), past_key_values=cache, use_cache=True).logits[0, -1].clone()
            constraint.mask_logits(logits)
            token = int(torch.argmax(logits))
            if token == view.end_of_turn_id:
                assert constraint.end_allowed()
                break
            constraint.accept_token(token)
            drafted.append(token)
            ids = [token]
    text = view.decode(drafted)
    assert text.startswith('{"name": "')
    make_constraint(QWEN, fmt).sync_to(text)  # a valid prefix under another tokenizer too
    assert constraint.end_allowed(), f"not complete in 48 tokens: {text!r}"
    city = validate_output(text, fmt)
    assert isinstance(city, City) and city.name
