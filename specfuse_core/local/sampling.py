"""Choosing a draft token: greedy, or sampled with transformers' own logits warpers and a seeded generator."""

from __future__ import annotations

import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from ..backend import Sampling


class TokenChooser:
    def __init__(self, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, seed: int | None = None) -> None:
        self.greedy = temperature == 0.0
        self.warpers = LogitsProcessorList()
        self.generator: torch.Generator | None = None
        if not self.greedy:
            self.warpers.append(TemperatureLogitsWarper(temperature))
            if top_k > 0:
                self.warpers.append(TopKLogitsWarper(top_k))
            if top_p < 1.0:
                self.warpers.append(TopPLogitsWarper(top_p))
            self.generator = torch.Generator()
            if seed is not None:
                self.generator.manual_seed(seed)
            else:
                self.generator.seed()

    @classmethod
    def from_sampling(cls, sampling: Sampling) -> "TokenChooser":
        return cls(sampling.temperature, sampling.top_p, sampling.top_k, sampling.seed)

    def choose(self, logits: torch.Tensor) -> int:
        """``logits``: the next-token logits row of one position."""
        if self.greedy:
            return int(torch.argmax(logits))
        scores = self.warpers(None, logits[None].float())
        probs = torch.softmax(scores, dim=-1).cpu()
        return int(torch.multinomial(probs, 1, generator=self.generator)[0, 0])
