"""The report's fidelity section: what each variant asked for against what its image shows.

Per face parameter a confusion table (requested value -> measured value -> count, with
"unmeasured" where the perception module could not read it), how many images matched
within the playbook's tolerance, and which were marked not rendered after the re-seeds;
plus how many tries the generate stage needed. Read from the catalog's `fidelity` column,
so a variant made before fidelity was measured counts as unmeasured.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from faceloop.models import FaceParams, Variant

UNMEASURED = "unmeasured"


def fidelity_section(variants: list[Variant]) -> dict[str, Any]:
    """report.json's `fidelity`: see the module docstring."""
    measured = [v for v in variants if v.fidelity is not None]
    params: dict[str, Any] = {}
    for name in FaceParams.model_fields:
        confusion: dict[str, Counter[str]] = {}
        counts: Counter[str] = Counter()
        errors: list[int] = []
        for v in variants:
            requested = str(getattr(v.params, name))
            shown = v.fidelity.params.get(name) if v.fidelity else None
            got = UNMEASURED if shown is None or shown.measured is None else str(shown.measured)
            confusion.setdefault(requested, Counter())[got] += 1
            if shown is None or shown.ok is None:
                counts["unmeasured"] += 1
            else:
                counts["ok" if shown.ok else "off"] += 1
                if isinstance(shown.measured, int) and isinstance(shown.requested, int):
                    errors.append(abs(shown.measured - shown.requested))
            if v.fidelity is not None and name in v.fidelity.not_rendered:
                counts["not_rendered"] += 1
        judged = counts["ok"] + counts["off"]
        params[name] = {
            "ok": counts["ok"],
            "off": counts["off"],
            "unmeasured": counts["unmeasured"],
            "not_rendered": counts["not_rendered"],
            "ok_share": counts["ok"] / judged if judged else None,
            # Monk steps between request and measurement (skin tone: the one ordinal field)
            "mean_abs_error": sum(errors) / len(errors) if errors else None,
            "confusion": {req: dict(sorted(row.items())) for req, row in sorted(confusion.items())},
        }
    tries = Counter(v.fidelity.tries for v in measured if v.fidelity is not None)
    return {
        "variants": len(variants),
        "measured": len(measured),
        "faces_found": sum(1 for v in measured if v.fidelity is not None and v.fidelity.found),
        "reseeded": sum(1 for v in measured if v.fidelity is not None and v.fidelity.tries > 1),
        "with_not_rendered": sum(
            1 for v in measured if v.fidelity is not None and v.fidelity.not_rendered
        ),
        "tries": {str(k): n for k, n in sorted(tries.items())},
        "params": params,
    }


def entry_fidelity(v: Variant) -> dict[str, Any] | None:
    """One variant's fidelity for report.json (None: made before it was measured)."""
    if v.fidelity is None:
        return None
    f = v.fidelity
    return {
        "found": f.found,
        "tries": f.tries,
        "enforced": f.enforced,
        "not_rendered": f.not_rendered,
        "measured": {k: p.measured for k, p in f.params.items() if p.measured is not None},
        "off": [k for k, p in f.params.items() if p.ok is False],
    }


__all__ = ["UNMEASURED", "entry_fidelity", "fidelity_section"]
