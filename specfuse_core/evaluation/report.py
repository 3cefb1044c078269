"""Aggregates item records into ``summary.json``, a Markdown table (``report.md``) and a plot of
accuracy against member forward calls (``accuracy_vs_calls.png``)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from .analysis import paired_outcomes
from .records import ItemRecord

SUMMARY_FILE = "summary.json"
TABLE_FILE = "report.md"
PLOT_FILE = "accuracy_vs_calls.png"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _ifeval_rates(records: list[ItemRecord]) -> dict[str, float]:
    """Prompt-level (all instructions pass) and instruction-level accuracy, strict and loose."""
    strict = [s for r in records for s in r.details.get("strict", [])]
    loose = [s for r in records for s in r.details.get("loose", [])]
    return {
        "prompt_strict": _mean([float(r.details.get("prompt_strict", False)) for r in records]),
        "prompt_loose": _mean([float(r.details.get("prompt_loose", False)) for r in records]),
        "instruction_strict": _mean([float(s) for s in strict]),
        "instruction_loose": _mean([float(s) for s in loose]),
        "instructions": len(strict),
    }


def summarize_mode(records: list[ItemRecord]) -> dict[str, Any]:
    """Accuracy and cost of one mode over its records."""
    rounds = sum(r.cost.rounds for r in records)
    wins: dict[str, int] = defaultdict(int)
    tokens: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in records:
        for member, count in r.cost.wins.items():
            wins[member] += count
        for member, usage in r.cost.members.items():
            tokens[member]["drafted_tokens"] += usage.drafted_tokens
            tokens[member]["verified_tokens"] += usage.verified_tokens
            tokens[member]["forward_calls"] += usage.forward_calls
    n = len(records)
    summary: dict[str, Any] = {
        "items": n,
        "correct": sum(r.correct for r in records),
        "accuracy": _mean([float(r.correct) for r in records]),
        "errors": sum(r.error is not None for r in records),
        "wall_seconds_per_item": _mean([r.cost.wall_seconds for r in records]),
        "wall_seconds_total": sum(r.cost.wall_seconds for r in records),
        "forward_calls_per_item": _mean([float(r.cost.forward_calls) for r in records]),
        "forward_calls_total": sum(r.cost.forward_calls for r in records),
        "rounds_per_item": _mean([float(r.cost.rounds) for r in records]),
        "completion_tokens_per_item": _mean([float(r.cost.completion_tokens) for r in records]),
        "mean_active_members": (sum(r.cost.active_member_rounds for r in records) / rounds) if rounds else 0.0,
        "win_share": {m: c / rounds for m, c in sorted(wins.items())} if rounds else {},
        "per_member_per_item": {m: {k: v / n for k, v in t.items()} for m, t in sorted(tokens.items())} if n else {},
        "finish_reasons": dict(sorted(_count(r.finish_reason or "error" for r in records).items())),
    }
    if records and records[0].details.get("instructions") is not None:
        summary["ifeval"] = _ifeval_rates(records)
    categories: dict[str, list[ItemRecord]] = defaultdict(list)
    for r in records:
        if r.category is not None:
            categories[r.category].append(r)
    if categories:
        summary["per_category"] = {
            c: {"items": len(rs), "correct": sum(r.correct for r in rs), "accuracy": _mean([float(r.correct) for r in rs])}
            for c, rs in categories.items()
        }
    summary["copies_prompt"] = sum(bool(r.details.get("copies_prompt")) for r in records)
    return summary


def versus_members(by_mode: dict[str, list[ItemRecord]], mode: str, members: list[str]) -> dict[str, Any]:
    """Against the members alone on the same items: items this mode lost that some member got right,
    items it won that no member got right, the best single member's correct count there, and the
    paired comparison with that best member (the question a user asks: better than the best alone?)."""
    right: dict[str, set[str]] = {m: {r.item_id for r in by_mode.get(m, []) if r.correct} for m in members}
    present = [m for m in members if m in by_mode]
    answered = [{r.item_id for r in by_mode[m]} for m in present]
    mine = {r.item_id: r.correct for r in by_mode[mode]}
    common = set(mine).intersection(*answered) if answered else set()
    any_member = set().union(*right.values()) if right else set()
    summary: dict[str, Any] = {
        "items": len(common),
        "lost_to_a_member": sum(1 for i in common if not mine[i] and i in any_member),
        "won_where_no_member": sum(1 for i in common if mine[i] and i not in any_member),
        "oracle_correct": len(any_member & common),
    }
    if present:
        best = max(present, key=lambda m: len(right[m] & common))  # the first listed on a tie
        paired = paired_outcomes({i: mine[i] for i in common}, {i: i in right[best] for i in common})
        summary["best_member"] = {"name": best, "correct": len(right[best] & common), **{k: paired[k] for k in ("gained", "lost", "p_value")}}
    return summary


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for v in values:
        counts[v] += 1
    return counts


def summarize(records: list[ItemRecord], modes: list[str] | None = None, members: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """dataset -> mode -> summary, modes in the given order (others after, as first seen). Also
    ``common_items``: accuracy of each mode on the items every mode finished (fair when a run stopped early)."""
    order = list(modes or [])
    for r in records:
        if r.mode not in order:
            order.append(r.mode)
    by_dataset: dict[str, dict[str, list[ItemRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_dataset[r.dataset][r.mode].append(r)
    out: dict[str, dict[str, Any]] = {}
    for dataset, by_mode in by_dataset.items():
        present = [m for m in order if m in by_mode]
        common = set.intersection(*({r.item_id for r in by_mode[m]} for m in present)) if present else set()
        out[dataset] = {"modes": {}, "common_items": len(common)}
        for mode in present:
            summary = summarize_mode(by_mode[mode])
            summary["accuracy_on_common_items"] = _mean([float(r.correct) for r in by_mode[mode] if r.item_id in common])
            if members and mode not in members and any(m in by_mode for m in members):
                summary["versus_members"] = versus_members(by_mode, mode, members)
            out[dataset]["modes"][mode] = summary
    return out


def markdown_table(summary: dict[str, dict[str, Any]]) -> str:
    """One table per dataset: accuracy and cost per mode."""
    lines: list[str] = []
    for dataset, data in summary.items():
        modes = data["modes"]
        ifeval = any("ifeval" in s for s in modes.values())
        categories = sorted({c for s in modes.values() for c in s.get("per_category", {})})
        header = ["mode", "items", "accuracy", *categories]
        versus = any("versus_members" in s for s in modes.values())
        if versus:
            header += ["lost to a member", "won where none did", "vs best member: gained/lost (p)"]
        if ifeval:
            header += ["prompt strict", "prompt loose", "instr. strict", "instr. loose"]
        header += ["fwd calls/item", "wall s/item", "rounds/item", "tokens/item", "cut by the cap", "active members", "win share"]
        lines += [f"### {dataset} (items finished by every mode: {data['common_items']})", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for mode, s in modes.items():
            row = [mode, str(s["items"]), f"{100 * s['accuracy']:.1f}%"]
            for c in categories:
                cat = s.get("per_category", {}).get(c)
                row.append(f"{cat['correct']}/{cat['items']}" if cat else "-")
            if versus:
                v = s.get("versus_members")
                row += [str(v["lost_to_a_member"]), str(v["won_where_no_member"]), _versus_best(v.get("best_member"))] if v else ["-", "-", "-"]
            if ifeval:
                rates = s.get("ifeval", {})
                row += [f"{100 * rates.get(k, 0.0):.1f}%" for k in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")]
            share = ", ".join(f"{m} {100 * v:.0f}%" for m, v in s["win_share"].items())
            row += [
                f"{s['forward_calls_per_item']:.1f}",
                f"{s['wall_seconds_per_item']:.1f}",
                f"{s['rounds_per_item']:.1f}",
                f"{s['completion_tokens_per_item']:.1f}",
                str(s["finish_reasons"].get("length", 0)),
                f"{s['mean_active_members']:.2f}",
                share,
            ]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def _versus_best(best: dict[str, Any] | None) -> str:
    if not best:
        return "-"
    return f"{best['name']}: +{best['gained']}/-{best['lost']} (p = {best['p_value']:.3g})"


def plot(summary: dict[str, dict[str, Any]], path: Path) -> None:
    """Accuracy against mean member forward calls per item, one panel per dataset, one point per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(summary) or ["(no results)"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        modes = summary.get(dataset, {}).get("modes", {})
        for mode, s in modes.items():  # a legend, not labels: modes often share a point (same accuracy)
            marker = "s" if mode.startswith("ensemble") else "o"
            ax.scatter(s["forward_calls_per_item"], 100 * s["accuracy"], marker=marker, s=60, alpha=0.8, label=f"{mode} (n={s['items']})")
        top = max([100 * s["accuracy"] for s in modes.values()] + [0.0])
        ax.set_ylim(-2, min(100, top + 10))
        if modes:
            ax.legend(fontsize=8, loc="upper right")
        ax.set_title(dataset)
        ax.set_xlabel("member forward calls per item")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out: Path, records: list[ItemRecord], meta: dict[str, Any]) -> dict[str, Any]:
    """Write summary.json, report.md and the plot from ``records``; returns the summary."""
    summary = summarize(records, meta.get("modes"), meta.get("settings", {}).get("members"))
    document = {**meta, "results": summary}
    (out / SUMMARY_FILE).write_text(json.dumps(document, indent=2), encoding="utf-8")
    header = [f"# specfuse eval: {meta.get('settings', {}).get('dataset', '')}", ""]
    if meta.get("command"):
        header += [f"Command: `{meta['command']}`", ""]
    if meta.get("interrupted"):
        header += ["**Partial report: the run was interrupted.**", ""]
    (out / TABLE_FILE).write_text("\n".join(header) + markdown_table(summary) + "\n", encoding="utf-8")
    plot(summary, out / PLOT_FILE)
    return document
