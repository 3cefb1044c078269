"""Would a whole-answer second opinion, asked only when the lead doubts the ensemble's answer, help?

Why: the lead's doubt about its own answer (its mean token log-prob) predicts its errors on facts and
instructions alike (AUC 0.83 and 0.75 on the dev set, ``checker_doubt.py`` with ``--checker`` equal to
``--lead``), unlike SmolLM2's doubt, which points the wrong way on instructions. A cascade would keep
the ensemble's answer unless the lead doubts it (mean below ``tau``); then a second member writes its
own whole answer and peer doubt picks one: the second member's answer replaces the ensemble's when the
lead's least likely token of it is higher than the second member's least likely token of the
ensemble's answer (or, with ``--rule mean``, the same with mean log-probs).

This scores, per item, the ensemble's answer (an ensemble eval run) and the second member's lone
answer (a members' run) under both members, saves the figures (resumable), and prints what each
threshold would gain per category and the calls it would add (the second member's answer plus two
scoring passes). An analysis script, not a test; nothing here changes the engine.

    python benchmarks/answer_cascade.py --dataset dev --ensemble-run runs/dev21-shipped \
        --member-run runs/dev19-members --out runs/cascade-dev.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from checker_doubt import token_stats

from specfuse_core.evaluation.datasets import load_dataset
from specfuse_core.loading import load_preset_members
from specfuse_core.presets import preset_members


def results(runs: list[str], mode: str | None = None) -> dict[str, dict]:
    """item id -> result line (only ``mode``'s lines when given)."""
    found: dict[str, dict] = {}
    for run in runs:
        for line in Path(run, "results.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if mode is None or record["mode"] == mode:
                found[record["item_id"]] = record
    return found


def score_items(args: argparse.Namespace) -> list[dict]:
    """Both members' statistics of both answers per item, appended to ``args.out`` as they come."""
    items = {item.id: item for item in load_dataset(args.dataset)}
    ensemble = results([args.ensemble_run])
    second = results(args.member_run, args.second)
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    done = {row["id"] for row in rows}
    members = {m.name: m for m in load_preset_members(args.preset)}
    lead, other = members[args.lead], members[args.second]
    with out.open("a", encoding="utf-8") as handle:
        for item_id, answer in ensemble.items():
            if item_id in done or item_id not in second:
                continue
            prompt, alternative = items[item_id].prompt, second[item_id]
            row = {
                "id": item_id,
                "category": answer["category"],
                "ensemble_right": bool(answer["correct"]),
                "second_right": bool(alternative["correct"]),
                "second_calls": alternative["cost"]["forward_calls"],
                "same": answer["answer"].strip() == alternative["answer"].strip(),
                "lead_on_ensemble": token_stats(lead, prompt, answer["answer"], None),
                "second_on_ensemble": token_stats(other, prompt, answer["answer"], None),
                "lead_on_second": token_stats(lead, prompt, alternative["answer"], None),
            }
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            rows.append(row)
    return rows


def cascade_right(row: dict, tau: float, rule: str) -> tuple[bool, bool]:
    """(right after the cascade, whether it fired) for one item."""
    doubt = row["lead_on_ensemble"]
    if doubt is None or doubt["mean"] >= tau:
        return row["ensemble_right"], False
    theirs, ours = row["lead_on_second"], row["second_on_ensemble"]
    if row["same"] or theirs is None or ours is None:
        return row["ensemble_right"], True
    take_second = theirs[rule] > ours[rule]
    return (row["second_right"] if take_second else row["ensemble_right"]), True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="dev")
    parser.add_argument("--ensemble-run", required=True, help="a `specfuse eval` folder of the ensemble")
    parser.add_argument("--member-run", action="append", required=True, help="folders with the second member alone (repeatable)")
    parser.add_argument("--out", required=True, help="per-item figures (jsonl; an existing file is resumed)")
    parser.add_argument("--lead", default="qwen2.5-coder-0.5b")
    parser.add_argument("--second", default="smollm2-135m")
    parser.add_argument("--rule", choices=("min", "mean"), default="min", help="peer doubt by the least likely token or the mean")
    parser.add_argument("--tau", type=float, action="append", default=None, help="lead-doubt thresholds to try (repeatable)")
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()
    names = [m.name for m in preset_members(args.preset)]
    if {args.lead, args.second} - set(names):
        raise SystemExit(f"--lead and --second must name members of the {args.preset!r} preset: {', '.join(names)}")

    rows = score_items(args)
    if not rows:
        raise SystemExit(f"no item of {args.ensemble_run} has an answer by {args.second} in {args.member_run}")
    categories = sorted({row["category"] for row in rows})
    base = {c: sum(row["ensemble_right"] for row in rows if row["category"] == c) for c in categories}
    print(f"{len(rows)} items; ensemble right: " + ", ".join(f"{c} {base[c]}" for c in categories) + f", all {sum(base.values())}")
    for tau in args.tau or [-0.2, -0.3, -0.4, -0.5, -0.6]:
        after = {c: 0 for c in categories}
        fired = extra = 0
        for row in rows:
            right, did_fire = cascade_right(row, tau, args.rule)
            after[row["category"]] += right
            if did_fire:
                fired += 1
                extra += row["second_calls"] + 2
        changes = ", ".join(f"{c} {after[c] - base[c]:+d}" for c in categories)
        print(f"tau {tau:5.2f}: fires on {fired}, +{extra / len(rows):.1f} calls per item; {changes}, all {sum(after.values()) - sum(base.values()):+d}")


if __name__ == "__main__":
    main()
