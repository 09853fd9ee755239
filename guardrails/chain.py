"""The whole guardrail chain over a batch: per-image checks, then the batch bias audit.

Used by the guard activity, `faceloop check` and `faceloop bench guardrails`, so all three
judge the same way. Per-image checks share one YuNet and one NudeNet pass per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from faceloop.models import CheckResult, GuardrailReport

from .base import GuardContext, Guardrail
from .bias import BiasGuardrail, audit_batch


@dataclass
class Item:
    rgb: np.ndarray
    ctx: GuardContext
    data: bytes | None = None  # the encoded file, for checks that read metadata (C2PA)
    media_type: str = "image/png"


def run_chain(
    guards: Sequence[Guardrail],
    items: Sequence[Item],
    progress: Callable[[int, int], None] | None = None,
) -> list[GuardrailReport]:
    """One report per item; a 'bias' guardrail in `guards` is judged over the whole batch."""
    per_image: list[list[CheckResult]] = []
    bias = next((g for g in guards if isinstance(g, BiasGuardrail)), None)
    measurements = []
    for i, item in enumerate(items):
        results = []
        for g in guards:
            if g is bias:
                measurements.append(bias.measure(item.rgb, item.ctx))
                continue
            check_bytes = getattr(g, "check_bytes", None)
            if check_bytes is not None and item.data is not None:
                results.append(check_bytes(item.data, item.media_type))
            else:
                results.append(g.check(item.rgb, item.ctx))
        per_image.append(results)
        if progress is not None:
            progress(i + 1, len(items))
    reports = []
    batch = audit_batch(measurements, bias.targets) if bias is not None else None
    for i, (item, results) in enumerate(zip(items, per_image, strict=True)):
        if batch is not None:
            own = batch.model_copy(deep=True)
            own.evidence["this_image"] = measurements[i]
            results = [*results, own]
        reports.append(GuardrailReport(asset_id=item.ctx.asset_id, checks=results))
    return reports
