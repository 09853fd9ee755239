"""The demo's winner line prints the requested params: what the image does not show is said."""

from __future__ import annotations

from faceloop.cli.campaigns import _not_shown
from faceloop.models import FaceParams, Fidelity, ParamShown, Variant


def test_the_winner_line_names_what_its_image_does_not_show() -> None:
    v = Variant(variant_id="v", campaign_id="c", round=0, seed=1, params=FaceParams())
    assert _not_shown(v) == ""  # made before it was measured: nothing to say
    v.fidelity = Fidelity(
        found=True,
        params={"expression": ParamShown(requested="smile", measured="neutral", ok=False)},
        not_rendered=["expression"],
    )
    assert _not_shown(v) == "; not shown in its image: expression (image shows neutral)"
    v.fidelity = Fidelity(found=True, not_rendered=[])
    assert _not_shown(v) == ""
