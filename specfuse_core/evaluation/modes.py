"""The configurations compared on the same items: each member alone, and three ensemble variants.

A member alone is a one-member ``SpecFuse``: its rounds skip verification and just decode greedily,
through the same member code (tokenisation, prompt format, caches) as in the ensemble."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engine import SpecFuse
from .errors import UnknownModeError

ENSEMBLE_MODES: dict[str, dict[str, Any]] = {
    "ensemble": {},
    "ensemble_exit": {"model_exit": True},
    "ensemble_hedge": {"weighting": "hedge"},
}


@dataclass
class Mode:
    """A named way to answer: which ensemble, and which settings on top of its config."""

    name: str
    ensemble: SpecFuse
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def is_member(self) -> bool:
        return len(self.ensemble.members) == 1


def mode_names(ensemble: SpecFuse, variants: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Every mode for this ensemble: each member (by name), the ensemble variants, then user variants."""
    return [*ensemble.member_names, *ENSEMBLE_MODES, *(variants or {})]


def select_modes(ensemble: SpecFuse, requested: list[str] | None = None, variants: dict[str, dict[str, Any]] | None = None) -> list[Mode]:
    """Modes by name. ``members`` stands for every member alone, ``all`` (or nothing) for everything;
    ``variants`` adds named ensemble configurations (name -> EnsembleConfig overrides)."""
    variants = variants or {}
    clash = sorted(set(variants) & (set(ensemble.member_names) | set(ENSEMBLE_MODES) | {"all", "members"}))
    if clash:
        raise UnknownModeError(f"variant names must differ from member and built-in mode names: {', '.join(clash)}")
    names: list[str] = []
    for name in requested or ["all"]:
        expanded = mode_names(ensemble, variants) if name == "all" else ensemble.member_names if name == "members" else [name]
        names.extend(n for n in expanded if n not in names)
    modes = []
    by_name = {m.name: m for m in ensemble.members}
    known = {**ENSEMBLE_MODES, **variants}
    for name in names:
        if name in known:
            modes.append(Mode(name, ensemble, dict(known[name])))
        elif name in by_name:
            alone = ensemble.config.model_copy(update={"member_weights": {}, "roles": {}, "lead_member": None, "counting_member": None, "gate_threshold": None})
            modes.append(Mode(name, SpecFuse([by_name[name]], config=alone)))
        else:
            raise UnknownModeError(f"unknown mode {name!r}; choose from: {', '.join(['all', 'members', *mode_names(ensemble, variants)])}")
    return modes
