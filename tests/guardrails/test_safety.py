"""NSFW safety: NudeNet 320n in onnxruntime, same detections as the package's own code."""

from __future__ import annotations

import numpy as np
import pytest

from faceloop.guardrails.base import Guardrail
from faceloop.guardrails.safety import Detection, SafetyGuardrail
from faceloop.models import Verdict
from faceloop.testing import GuardrailContract
from faceloop.testing.guardrails import CTX


class TestSafetyContract(GuardrailContract):
    @pytest.fixture
    def guardrail(self) -> Guardrail:
        return SafetyGuardrail()

    @pytest.fixture
    def passing_image(self, astronaut: np.ndarray) -> np.ndarray:
        return astronaut


def test_matches_nudenets_own_detector(astronaut: np.ndarray, grace_hopper: np.ndarray) -> None:
    from nudenet import NudeDetector

    ref = NudeDetector()
    ours = SafetyGuardrail().detector
    for rgb in (astronaut, grace_hopper):
        # nudenet 3.4 swaps channels twice (RGBA2BGR on 3 channels, then swapRB), so it feeds
        # the model BGR from a BGR file; YOLOv8 is trained on RGB, which we feed. Handing the
        # package RGB makes it feed RGB too: then the detections must agree.
        theirs = ref.detect(np.ascontiguousarray(rgb))
        mine = ours._detect(rgb)
        assert sorted(d["class"] for d in theirs) == sorted(d.label for d in mine)
        for d in theirs:
            m = next(x for x in mine if x.label == d["class"])
            assert abs(m.score - d["score"]) < 1e-3


def test_reads_face_labels_for_the_bias_audit(astronaut: np.ndarray) -> None:
    ev = SafetyGuardrail().check(astronaut, CTX).evidence
    assert [f["label"] for f in ev["face_labels"]] == ["FACE_FEMALE"]  # type: ignore[index]


class _Fixed:
    """A named fake detector: no explicit image can ship in this repository."""

    def __init__(self, *found: Detection) -> None:
        self.found = list(found)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self.found


def test_blocks_explicit_and_escalates_borderline_labels(astronaut: np.ndarray) -> None:
    hit = Detection("FEMALE_BREAST_EXPOSED", 0.8, (1, 2, 3, 4))
    r = SafetyGuardrail(detector=_Fixed(hit)).check(astronaut, CTX)  # type: ignore[arg-type]
    assert r.verdict is Verdict.block and r.score == pytest.approx(0.8)
    assert "FEMALE_BREAST_EXPOSED" in str(r.evidence["reason"])
    belly = Detection("BELLY_EXPOSED", 0.7, (1, 2, 3, 4))
    r = SafetyGuardrail(detector=_Fixed(belly)).check(astronaut, CTX)  # type: ignore[arg-type]
    assert r.verdict is Verdict.escalate
    weak = Detection("FEMALE_BREAST_EXPOSED", 0.3, (1, 2, 3, 4))
    r = SafetyGuardrail(detector=_Fixed(weak)).check(astronaut, CTX)  # type: ignore[arg-type]
    assert r.verdict is Verdict.passed


def test_unknown_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown NudeNet labels"):
        SafetyGuardrail(block_labels=["NAKED"])
