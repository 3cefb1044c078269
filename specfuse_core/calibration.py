"""Trust learned from labels: per-member vote weights, roles and the gating lead, fitted from each
member's accuracy alone on a labelled set (``specfuse calibrate``), saved as JSON, loaded into an
:class:`EnsembleConfig`.

Why accuracy alone, not ensemble runs: it costs one pass of each member over the set, and the
published ensembles that cope with unequal members (UniTE's admission rule, GaC's weights, SLM-MUX's
tie-breaks) use the same signal. The fit is deliberately simple and transparent:

- ``weight = exp(sharpness * (accuracy - best accuracy))``: the best member weighs 1, a member 10
  points behind about 0.6 at the default sharpness 5;
- a member below ``verify_only_below`` times the best accuracy no longer drafts (its proposals were
  what lost; as a verifier it still adds a language model's view of fluency);
- the best member leads under confidence gating.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from .config import EnsembleConfig
from .errors import SpecFuseError
from .routing import PromptRouter


class CalibrationFileError(SpecFuseError, ValueError):
    """A calibration file that is missing, not JSON, or not a calibration."""


# the fields config_fields() writes (the rest of a recorded calibration is its settings)
TRUST_FIELDS = ("member_weights", "roles", "lead_member", "gate_threshold")

# settings that only mean something with another one: filled from a calibration only together with it
QUALIFIED_BY = {
    "gate_check_statistic": "gate_check_threshold",
    "gate_check_rounds": "gate_check_threshold",
    "gate_check_tokens": "gate_check_threshold",
}


class Calibration(BaseModel):
    """What ``specfuse calibrate`` fits, and the evidence it fitted it on."""

    member_weights: dict[str, float]
    roles: dict[str, Literal["both", "draft", "verify", "reserve"]] = Field(default_factory=dict)
    lead_member: str | None = None
    gate_threshold: float | None = Field(None, description="confidence gating threshold chosen on the dev set (None: no gating)")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="other EnsembleConfig fields evaluated with this calibration (e.g. end_of_turn_scoring); each applies "
        "where a request leaves that field at the library default",
    )
    accuracy: dict[str, float] = Field(default_factory=dict, description="each member's accuracy alone on the set")
    items: int = Field(0, description="labelled items the accuracies come from")
    dataset: str = ""
    sharpness: float = 5.0
    verify_only_below: float = 0.5
    router: PromptRouter | None = Field(
        None, description="labelled prompts for per-input trust (routing.py); None: the same trust for every prompt"
    )
    router_demotes_to: Literal["verify", "reserve", "reserve_if_stronger"] = Field(
        "verify",
        description="the role the router gives a member it finds weak on a prompt: 'verify' (it only scores there) or "
        "'reserve' (it also drafts in rounds the gate does not settle, so a lead left drafting alone is still checked by a "
        "competing candidate). With 'reserve', a member this calibration itself makes verify-only stays verify-only and "
        "never leads; the lead and roles are then fitted among the other members. 'reserve_if_stronger': as 'reserve', "
        "but only a member trusted more overall (member_weights) than the prompt's lead becomes its reserve; one trusted "
        "less only verifies (on the dev set its doubts of a stronger lead were mostly about wording, and each such vote "
        "costs a draft).",
    )

    def for_prompt(self, prompt: str) -> "Calibration":
        """This calibration with weights, roles and lead re-fitted on the labelled prompts most like
        ``prompt`` (itself when there is no router or no similar labelled prompt)."""
        if self.router is None:
            return self
        local = self.router.local_accuracy(prompt)
        if local is None:
            return self
        fitted = fit_calibration(local, items=self.items or 1, sharpness=self.sharpness, verify_only_below=self.verify_only_below)
        roles, lead = dict(fitted.roles), fitted.lead_member
        if self.router_demotes_to != "verify":
            roles, lead = self._reserve_roles(local) or (roles, lead)
        return self.model_copy(update={"member_weights": fitted.member_weights, "roles": roles, "lead_member": lead})

    def _reserve_roles(self, local: Mapping[str, float]) -> tuple[dict[str, str], str] | None:
        """Roles and lead for one prompt when the router demotes to reserves: a member this calibration
        makes verify-only for every prompt stays so and never leads (so the lead drafts and gating
        holds); the others are fitted among themselves, their demotions becoming reserves. None when
        no member may draft."""
        fixed = {name for name, role in self.roles.items() if role == "verify"}
        eligible = {name: accuracy for name, accuracy in local.items() if name not in fixed}
        if not eligible:
            return None
        among = fit_calibration(eligible, items=self.items or 1, sharpness=self.sharpness, verify_only_below=self.verify_only_below)
        lead = among.lead_member
        roles = {name: "reserve" if self._may_back(name, lead) else "verify" for name in among.roles}
        roles.update({name: "verify" for name in fixed if name in local})
        return roles, lead

    def _may_back(self, member: str, lead: str | None) -> bool:
        """Whether a demoted ``member`` may be the prompt's reserve behind ``lead``."""
        if self.router_demotes_to != "reserve_if_stronger" or lead is None:  # no lead: nothing to compare with
            return True
        return self.member_weights.get(member, 0.0) > self.member_weights.get(lead, 0.0)

    def config_fields(self) -> dict[str, Any]:
        """The EnsembleConfig fields this calibration sets."""
        fields: dict[str, Any] = {name: getattr(self, name) for name in TRUST_FIELDS}
        fields["member_weights"], fields["roles"] = dict(self.member_weights), dict(self.roles)
        return {name: value for name, value in fields.items() if value is not None}

    def apply(self, config: EnsembleConfig) -> EnsembleConfig:
        """``config`` with this calibration: trust settings where the config leaves them empty, other
        settings where it leaves them at the library default (validated). A setting that qualifies
        another (the second opinion's statistic and window qualify its threshold) is filled only together
        with it, so a request's own threshold keeps the statistic and window it was chosen for."""
        fill = {k: v for k, v in self.config_fields().items() if not getattr(config, k)}
        defaults = EnsembleConfig()
        settings = {k: v for k, v in self.settings.items() if getattr(config, k) == getattr(defaults, k)}
        fill.update({k: v for k, v in settings.items() if QUALIFIED_BY.get(k, k) in settings})
        return config.with_overrides(**fill)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        path = Path(path)
        try:
            calibration = cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
            EnsembleConfig(**calibration.config_fields(), **calibration.settings)  # the config's own rules
            if calibration.router is not None and set(calibration.router.member_names) != set(calibration.member_weights):
                raise CalibrationFileError(f"calibration file {path}: the router's members differ from member_weights'")
            return calibration
        except FileNotFoundError:
            raise CalibrationFileError(f"calibration file {path} does not exist; make one with `specfuse calibrate`") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CalibrationFileError(f"calibration file {path} is not JSON ({error})") from None
        except ValidationError as error:
            first = error.errors()[0]
            raise CalibrationFileError(f"calibration file {path} is not a valid calibration: {first['msg']} (at {'.'.join(map(str, first['loc']))})") from None


def fit_calibration(
    accuracy: Mapping[str, float], items: int, dataset: str = "", sharpness: float = 5.0, verify_only_below: float = 0.5
) -> Calibration:
    """Weights, roles and lead from each member's accuracy alone (see the module docstring)."""
    if not accuracy:
        raise ValueError("calibration needs at least one member's accuracy")
    if items < 1:
        raise ValueError("calibration needs at least one labelled item")
    best_name = max(accuracy, key=lambda n: (accuracy[n], -list(accuracy).index(n)))
    best = accuracy[best_name]
    weights = {name: round(math.exp(sharpness * (acc - best)), 4) for name, acc in accuracy.items()}
    weights = {name: max(w, 1e-4) for name, w in weights.items()}  # weights must stay > 0
    roles = {name: "verify" for name, acc in accuracy.items() if name != best_name and acc < verify_only_below * best}
    return Calibration(
        member_weights=weights, roles=roles, lead_member=best_name, accuracy=dict(accuracy), items=items,
        dataset=dataset, sharpness=sharpness, verify_only_below=verify_only_below,
    )
