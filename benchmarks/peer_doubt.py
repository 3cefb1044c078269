"""Would "peer doubt" pick the right one of two drafters' answers more often than the lead does?

Why: the shipped second opinion compares the checker's least likely token of the lead's segment with a
fixed -4.0. Peer doubt compares two doubts instead: the checker's least likely token of the lead's
answer against the lead's least likely token of the checker's answer, and keeps the answer its peer
doubts less. This scores the two members' whole answers from an evaluation run of each member alone
(every member scores both, as ``LocalSession.score`` does in a vote, by the mean and the least likely
token), on the items where the answers differ, and counts how often each rule picks a right answer
where exactly one is right. An analysis script, not a test.

    python benchmarks/peer_doubt.py --run runs/dev19-members --dataset dev --out runs/peer-doubt-dev.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from specfuse_core.backend import Candidate, Sampling
from specfuse_core.evaluation.datasets import load_dataset
from specfuse_core.loading import load_preset_members
from specfuse_core.messages import normalize_conversation

Row = dict  # {"id", "category", "lead_right", "peer_right", "scores": {member: {"mean": [lead, peer], "min": [...]}}}


def lone_answers(runs: list[Path]) -> dict[str, dict[str, dict]]:
    """item id -> member -> that member's result line in the runs."""
    answers: dict[str, dict[str, dict]] = {}
    for run in runs:
        for line in (run / "results.jsonl").read_text().splitlines():
            result = json.loads(line)
            answers.setdefault(result["item_id"], {})[result["mode"]] = result
    return answers


def score_both(members: dict, prompt: str, answers: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Every member's mean and least likely token log-prob of each whole answer, after the prompt."""
    conversation = normalize_conversation([{"role": "user", "content": prompt}])
    candidates = [Candidate(a["answer"], a["finish_reason"] == "stop") for a in answers]
    scores = {}
    for name, member in members.items():
        session = member.start(conversation, Sampling())
        try:
            scores[name] = {statistic: session.score("", candidates, statistic) for statistic in ("mean", "min")}
        finally:
            session.close()
    return scores


def rules(lead: str, peer: str) -> dict[str, Callable[[Row], int]]:
    """Each rule's pick: 0 for the lead's answer, 1 for the peer's."""
    return {
        "lead's answer": lambda row: 0,
        "peer's answer": lambda row: 1,
        "peer doubt (least likely token)": lambda row: int(row["scores"][peer]["min"][0] < row["scores"][lead]["min"][1]),
        "peer doubt (mean)": lambda row: int(row["scores"][peer]["mean"][0] < row["scores"][lead]["mean"][1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, nargs="+", required=True, help="eval runs with every member alone (--modes members)")
    parser.add_argument("--dataset", default="dev")
    parser.add_argument("--lead", default="qwen2.5-coder-0.5b")
    parser.add_argument("--peer", default="smollm2-135m")
    parser.add_argument("--categories", nargs="+", default=["facts", "instructions"])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--out", type=Path, required=True, help="scores per item (JSON lines; read back if present)")
    args = parser.parse_args()

    items = {item.id: item for item in load_dataset(args.dataset, Path("../shared/data"))}
    answers = lone_answers(args.run)
    stored = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    done = {row["id"]: row for row in stored}
    members = None
    with args.out.open("a") as out:
        for item_id, by_member in answers.items():
            item = items[item_id]
            if item.category not in args.categories or item_id in done:
                continue
            pair = [by_member[args.lead], by_member[args.peer]]
            if pair[0]["answer"].strip() == pair[1]["answer"].strip():
                continue
            members = members or {m.name: m for m in load_preset_members(args.preset)}
            row = {"id": item_id, "category": item.category, "lead_right": pair[0]["correct"], "peer_right": pair[1]["correct"]}
            row["scores"] = score_both(members, item.prompt, pair)
            out.write(json.dumps(row) + "\n")
            out.flush()
            done[item_id] = row

    for category in args.categories:
        split = [row for row in done.values() if row["category"] == category and row["lead_right"] != row["peer_right"]]
        print(f"{category}: {len(split)} items where exactly one of the two answers is right")
        for name, pick in rules(args.lead, args.peer).items():
            right = sum((row["lead_right"], row["peer_right"])[pick(row)] for row in split)
            print(f"  {name:32s} right {right}/{len(split)}")


if __name__ == "__main__":
    main()
