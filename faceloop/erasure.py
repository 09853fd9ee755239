"""GDPR erasure (Art. 17): what the erasure workflow takes, plans, reports, and how to start it.

`faceloop erase --asset ID` / `--persona ID` / `--campaign ID` start `ErasureWorkflow`
(workflows/erasure.py) with the id `erase-<kind>-<id>`: a second request for the same
subject while one runs attaches to it; a request after one finished runs again and removes
nothing more. The activities are in workflows/erasure_activities.py; docs/privacy.md walks
the steps.

Nothing here carries personal data into Temporal's history or the audit log: ids, hashes,
counts and file paths only. A request is referenced by a ticket id, not by free text.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from faceloop.models import Model

__all__ = [
    "AdRef",
    "ErasureInput",
    "ErasureKind",
    "ErasurePlan",
    "ErasureProgress",
    "ErasureRecordInput",
    "ErasureReport",
    "StepResult",
    "StoreReport",
    "erasure_workflow_id",
]

# asset: one image everywhere; persona: a person's likeness and every campaign showing it;
# campaign: one campaign whole (its brief's text, variants, images, ads), whoever it shows
ErasureKind = Literal["asset", "persona", "campaign"]

_ASSET_ID = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ErasureInput(Model):
    """ErasureWorkflow's argument: what to erase, who asked, under which request."""

    kind: ErasureKind
    target: str = Field(description="asset id (sha256 hex), persona id or campaign id")
    requested_by: str = Field(default="cli", min_length=1, max_length=128)
    ticket: str = Field(
        default="", max_length=128, description="the data-subject request's id, e.g. DSR-2031-17"
    )

    @model_validator(mode="after")
    def _target_shape(self) -> ErasureInput:
        if self.kind == "asset" and not _ASSET_ID.match(self.target):
            raise ValueError(
                f"asset id {self.target!r} is not a sha256 hex digest (64 lower-case hex "
                "characters); `faceloop verify FILE` or `faceloop status` show asset ids"
            )
        if self.kind != "asset" and not _ID.match(self.target):
            raise ValueError(
                f"{self.kind} id {self.target!r} is not an id (letters, digits, '-', '_', '.')"
            )
        return self


class AdRef(Model):
    """An ad on record in the catalog."""

    platform: str
    campaign_id: str
    ad_id: str
    asset_id: str


class ErasurePlan(Model):
    """Everything derived from the subject, found once at the start of a run."""

    kind: ErasureKind
    target: str
    persona_id: str | None = None
    campaign_ids: list[str] = Field(default_factory=list)
    variant_ids: list[str] = Field(default_factory=list)
    asset_ids: list[str] = Field(
        default_factory=list, description="generated images and their signed copies"
    )
    adapter_ids: list[str] = Field(default_factory=list, description="persona LoRA adapters")
    ads: list[AdRef] = Field(default_factory=list)
    connectors: list[str] = Field(
        default_factory=list, description="platforms whose ads of these campaigns are swept"
    )


class StoreReport(Model):
    """What one step removed from one store."""

    store: str
    removed: int = 0
    ids: list[str] = Field(default_factory=list, description="what was removed now")
    notes: list[str] = Field(default_factory=list)
    incomplete: list[str] = Field(
        default_factory=list, description="what could not be removed here and needs a person"
    )


class StepResult(Model):
    """An activity's result when it touches several stores."""

    stores: list[StoreReport]


class ErasureRecordInput(Model):
    plan: ErasurePlan
    stores: list[StoreReport]
    requested_by: str
    ticket: str = ""
    started_at: datetime
    finished_at: datetime


class ErasureProgress(Model):
    """The workflow's `progress` query: the step it is in and what is done so far."""

    step: str
    stores: list[StoreReport] = Field(default_factory=list)


class ErasureReport(Model):
    """ErasureWorkflow's result: per store, what was removed now, and how long it took."""

    workflow_id: str
    kind: ErasureKind
    target: str
    campaign_ids: list[str] = Field(default_factory=list)
    stores: list[StoreReport]
    started_at: datetime
    finished_at: datetime
    duration_s: float
    audit_seq: int

    @property
    def removed(self) -> int:
        return sum(s.removed for s in self.stores)

    @property
    def incomplete(self) -> list[str]:
        return [f"{s.store}: {item}" for s in self.stores for item in s.incomplete]


def erasure_workflow_id(kind: ErasureKind, target: str) -> str:
    return f"erase-{kind}-{target}"
