"""The calibration's per-prompt router applies to adapter calls as to the engine's own (scripted
members, no weights): each call's request config is built on the library defaults, which must not
read as a request choosing its own trust."""

from __future__ import annotations

from langchain_specfuse import ChatSpecFuse
from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.calibration import Calibration
from specfuse_core.routing import PromptRouter, RoutedItem

from langchain_fakes import ScriptedMember

SUMS = [f"Tom has {n} apples and buys {n + 4} more. How many apples does Tom have now?" for n in range(3, 13)]
WORDS = [f"Answer with one word only: what colour is {t}?" for t in ("grass", "snow", "coal", "a lemon", "blood", "milk", "ink", "a plum", "the sky", "an orange")]


def _ensemble() -> SpecFuse:
    """"a" is right on word problems, "b" on one-word questions; set-wide both draft and "b" (first)
    wins ties. Routed, the member that is wrong there only verifies, so the other one's text wins."""
    items = [RoutedItem(prompt=p, correct={"a": True, "b": False}) for p in SUMS]
    items += [RoutedItem(prompt=p, correct={"a": False, "b": True}) for p in WORDS]
    calibration = Calibration(member_weights={"a": 1.0, "b": 1.0}, items=20, router=PromptRouter(items=items, neighbours=5))
    members = [ScriptedMember("b", ["Bee says 1."]), ScriptedMember("a", ["Ay says 2."])]
    return SpecFuse(members, EnsembleConfig(), calibration=calibration)


def test_chat_model_calls_are_routed_per_prompt():
    ensemble = _ensemble()
    model = ChatSpecFuse(ensemble=ensemble)
    sums = "Ann has 30 pears and buys 9 more. How many pears does Ann have now?"
    assert ensemble.generate([{"role": "user", "content": sums}]).text == "Ay says 2."
    assert model.invoke(sums).content == "Ay says 2."  # before the fix: "Bee says 1." (set-wide trust)
    assert model.invoke("Answer with one word only: what colour is the sea?").content == "Bee says 1."
