"""How well does a checker's doubt about a lead's answer predict that the answer is wrong?

Why: the second opinion (``gate_check_threshold``) sends a confident lead's segment to a vote when the
checking member doubts it. Which number measures doubt decides which wrong answers get a vote. This
takes a members' eval run (each member alone), scores the lead member's whole answer to every item
under the checker in one forward pass, and compares per-item statistics of the checker's token
log-probs:

- ``min``: the least likely token (the shipped statistic);
- ``mean``: the mean token log-prob;
- ``margin``: the least value of (log-prob of the lead's token - log-prob of the checker's own most
  likely token) at the same position: how far the lead's text falls below what the checker would
  have written there, rather than how unlikely it is in absolute terms (a token the checker finds
  unlikely only because many continuations are open costs little margin).

It prints each statistic's AUC for "lead wrong" (1.0: every wrong answer doubted more than every
right one) and, at the threshold that sends the same share of items to a vote for each statistic,
how many wrong answers and how many "headroom" items (lead wrong, checker alone right) it catches.
An analysis script, not a timed test; ``--tokens`` limits the statistics to the answer's first tokens
(the check runs in a response's first rounds only). With ``--checker`` equal to ``--lead`` it measures
the lead's doubt about its own answer.

    python benchmarks/checker_doubt.py --run runs/dev-members --dataset dev --lead qwen2.5-coder-0.5b --checker smollm2-135m
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import torch

from specfuse_core.evaluation.datasets import load_dataset
from specfuse_core.loading import load_preset_members
from specfuse_core.messages import normalize_conversation
from specfuse_core.presets import preset_members


def auc(doubt: np.ndarray, wrong: np.ndarray) -> float:
    """Probability that a wrong answer is doubted more than a right one (ties count half)."""
    pos, neg = doubt[wrong], doubt[~wrong]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + ties / 2)


def token_stats(member, prompt: str, answer: str, limit: int | None) -> dict[str, float] | None:
    """The checker's statistics of ``answer`` after ``prompt`` (None: the answer has no tokens)."""
    context = member.prompt_ids(normalize_conversation([{"role": "user", "content": prompt}]))
    tokens = member.encode(answer)[:limit] if limit else member.encode(answer)
    if not tokens:
        return None
    ids = torch.tensor([context + tokens], device=member.device)
    with torch.no_grad():
        logits = member.model(input_ids=ids).logits[0, len(context) - 1 : -1].float()
    logprobs = torch.log_softmax(logits, -1)
    picked = logprobs[torch.arange(len(tokens)), torch.tensor(tokens)]
    margin = picked - logprobs.max(-1).values
    return {"min": float(picked.min()), "mean": float(picked.mean()), "margin": float(margin.min())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a `specfuse eval` folder with both members alone")
    parser.add_argument("--dataset", default="dev")
    parser.add_argument("--lead", required=True)
    parser.add_argument("--checker", required=True)
    parser.add_argument("--category", action="append", default=None, help="only these categories (repeatable)")
    parser.add_argument("--tokens", type=int, default=None, help="only the answer's first N checker tokens")
    parser.add_argument("--vote-share", type=float, default=0.3, help="share of items each statistic sends to a vote")
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()

    names = [m.name for m in preset_members(args.preset)]
    if {args.lead, args.checker} - set(names):
        raise SystemExit(f"--lead and --checker must name members of the {args.preset!r} preset: {', '.join(names)}")
    items = {item.id: item for item in load_dataset(args.dataset)}
    outcomes: dict[str, dict[str, tuple[str, bool]]] = defaultdict(dict)
    with open(f"{args.run}/results.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record["mode"] in (args.lead, args.checker):
                outcomes[record["item_id"]][record["mode"]] = (record["answer"], bool(record["correct"]))
    checker = {m.name: m for m in load_preset_members(args.preset)}[args.checker]

    rows = []
    for item_id, by_mode in outcomes.items():
        item = items[item_id]
        if len(by_mode) < len({args.lead, args.checker}) or (args.category and item.category not in args.category):
            continue
        answer, lead_right = by_mode[args.lead]
        stats = token_stats(checker, item.prompt, answer, args.tokens)
        if stats is not None:
            rows.append((item_id, item.category, not lead_right, by_mode[args.checker][1], stats))
    if not rows:
        raise SystemExit(f"no item in {args.run} has answers from both {args.lead} and {args.checker} (categories: {args.category or 'all'})")
    wrong = np.array([r[2] for r in rows])
    headroom = np.array([r[2] and r[3] for r in rows])
    print(f"{len(rows)} items, lead wrong on {int(wrong.sum())}, headroom (lead wrong, checker alone right) {int(headroom.sum())}")
    for name in ("min", "mean", "margin"):
        doubt = -np.array([r[4][name] for r in rows])
        threshold = np.quantile(doubt, 1 - args.vote_share)
        voted = doubt >= threshold
        print(
            f"{name:>6}: AUC {auc(doubt, wrong):.3f}; top {args.vote_share:.0%} doubted: {int((voted & wrong).sum())} of {int(wrong.sum())} wrong, "
            f"{int((voted & headroom).sum())} of {int(headroom.sum())} headroom, {int((voted & ~wrong).sum())} right answers sent to a vote"
        )
    for item_id, category, is_wrong, checker_right, stats in rows:
        if is_wrong and checker_right:
            print(f"  headroom {item_id} ({category}): " + ", ".join(f"{k} {v:.2f}" for k, v in stats.items()))


if __name__ == "__main__":
    main()
