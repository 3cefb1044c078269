"""Why did the ensemble lose? Items the ensemble got wrong but a member alone got right, and the
rounds where another member's candidate beat that member's own, with every verifier's score."""

from __future__ import annotations

from typing import Any

from .records import ItemRecord


def lost_items(records: list[ItemRecord], ensemble_mode: str = "ensemble") -> list[tuple[str, list[str]]]:
    """(item id, members that were right alone) for items the ensemble mode got wrong."""
    by_item: dict[str, dict[str, ItemRecord]] = {}
    for r in records:
        by_item.setdefault(r.item_id, {})[r.mode] = r
    out = []
    for item_id, modes in by_item.items():
        ensemble = modes.get(ensemble_mode)
        if ensemble is None or ensemble.correct:
            continue
        right = [m for m, r in modes.items() if r.correct and not m.startswith("ensemble")]
        if right:
            out.append((item_id, right))
    return out


def overruled_rounds(record: ItemRecord, member: str) -> list[dict[str, Any]]:
    """Rounds of an ensemble record where ``member`` proposed a candidate that lost: the winner's and
    the member's text, combined scores, and each verifier's mean log-prob of both."""
    rows = []
    for rd in record.trace.get("rounds_detail", []):
        if rd["winner"] == member:
            continue
        mine = next((c for c in rd["candidates"] if member in c["proposers"]), None)
        won = next((c for c in rd["candidates"] if rd["winner"] in c["proposers"]), None)
        if mine is None or won is None or mine is won:
            continue
        rows.append({
            "round": rd["round"],
            "winner": rd["winner"],
            "winner_text": won["text"],
            "member_text": mine["text"],
            "winner_combined": won["combined"],
            "member_combined": mine["combined"],
            "winner_logprobs": won["mean_logprobs"],
            "member_logprobs": mine["mean_logprobs"],
        })
    return rows
