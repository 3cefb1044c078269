"""Why did the ensemble lose? Items the ensemble got wrong but a member alone got right, the
rounds where another member's candidate beat that member's own, with every verifier's score, and
whether a difference against a member is bigger than chance (paired, on the same items)."""

from __future__ import annotations

import math
from collections.abc import Mapping
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


def exact_mcnemar_p(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value for paired right/wrong outcomes: under "neither is better" each
    discordant item is a fair coin, so ``min(gained, lost)`` is binomial(gained + lost, 1/2). Exact,
    not the chi-square approximation, because evaluation runs here have few discordant items."""
    if gained < 0 or lost < 0:
        raise ValueError("gained and lost are counts of items (>= 0)")
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_outcomes(mine: Mapping[str, bool], theirs: Mapping[str, bool]) -> dict[str, Any]:
    """On the items both answered: items only ``mine`` got right (gained), items only ``theirs`` got
    right (lost), and the exact McNemar p-value of that split."""
    common = mine.keys() & theirs.keys()
    gained = sum(1 for item in common if mine[item] and not theirs[item])
    lost = sum(1 for item in common if theirs[item] and not mine[item])
    return {"items": len(common), "gained": gained, "lost": lost, "p_value": exact_mcnemar_p(gained, lost)}
