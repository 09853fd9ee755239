"""Invisible watermark: payload from the asset id, the default survives JPEG 75 and 0.5x."""

from __future__ import annotations

import numpy as np
import pytest

from faceloop.guardrails.base import GuardContext
from faceloop.guardrails.cli import attack, bench_marks
from faceloop.guardrails.watermark import (
    DEFAULT_METHOD,
    WatermarkGuardrail,
    bit_errors,
    decode,
    embed,
    payload_for,
)
from faceloop.models import Verdict

AID = "3fa9c2d1" + "0" * 56


def test_payload_is_the_asset_id_prefix() -> None:
    assert payload_for(AID) == "3fa9c2d1"
    with pytest.raises(Exception, match="sha256"):
        payload_for("not-hex!")


@pytest.mark.parametrize("what", ["none", "jpeg75", "resize0.5", "jpeg90", "brightness20"])
def test_default_method_survives(astronaut: np.ndarray, what: str) -> None:
    marked = embed(astronaut, payload_for(AID), DEFAULT_METHOD)
    assert float(np.abs(marked.astype(int) - astronaut).mean()) < 2.0  # invisible
    assert bit_errors(decode(attack(marked, what)), "3fa9c2d1") <= 1


def test_guardrail_finds_the_mark(astronaut: np.ndarray) -> None:
    marked = embed(astronaut, payload_for(AID))
    r = WatermarkGuardrail().check(marked, GuardContext(asset_id=AID))
    assert r.verdict is Verdict.passed and r.evidence["found"] is True and r.score == 1.0
    r = WatermarkGuardrail().check(astronaut, GuardContext(asset_id=AID))
    assert r.evidence["found"] is False


def test_bench_json_shape(astronaut: np.ndarray) -> None:
    out = bench_marks(["dwtDct", "dwtDctSvd"], images=[astronaut])
    assert out["default"] == DEFAULT_METHOD
    for m in ("dwtDct", "dwtDctSvd"):
        got = out["methods"][m]
        assert set(got) == {"embed_ms", "decode_ms", "bit_accuracy"}
        assert set(got["bit_accuracy"]) == {
            "none",
            "jpeg90",
            "jpeg75",
            "jpeg50",
            "resize0.5",
            "crop90",
            "brightness20",
        }
    acc = out["methods"]["dwtDctSvd"]["bit_accuracy"]
    assert acc["jpeg75"] >= 0.95 and acc["resize0.5"] >= 0.95


@pytest.mark.slow
def test_rivagan_is_measured(astronaut: np.ndarray) -> None:
    out = bench_marks(["rivaGan"], images=[astronaut])
    assert out["methods"]["rivaGan"]["bit_accuracy"]["crop90"] >= 0.9
