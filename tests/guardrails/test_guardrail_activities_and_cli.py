"""The guard and sign activities and the check / verify / enroll commands, end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from typer.testing import CliRunner

from faceloop.cli import app
from faceloop.guardrails.activities import GuardrailActivities
from faceloop.guardrails.registry import guardrails_for
from faceloop.messages import GuardInput, VariantsPayload
from faceloop.models import Asset, FaceParams, Variant
from faceloop.playbooks.schema import load_playbook
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog

runner = CliRunner()


def _variant(store: AssetStore, rgb: np.ndarray | None, raw: bytes | None = None) -> Variant:
    if raw is not None:
        aid, uri = store.put_bytes(raw)
    else:
        assert rgb is not None
        aid, uri = store.put_image(rgb)
    asset = Asset(
        asset_id=aid, uri=uri, width=512, height=512, generator="dcgan", model_version="t", seed=1
    )
    return Variant(
        variant_id=f"v-{aid[:6]}",
        campaign_id="c1",
        round=0,
        params=FaceParams(),
        seed=1,
        asset=asset,
    )


@pytest.fixture
def acts(guard_home: Path) -> Any:
    store = AssetStore(guard_home / "assets")
    catalog = Catalog(f"sqlite:///{guard_home / 'faceloop.db'}")
    yield GuardrailActivities(guardrails_for, store, catalog), store, catalog
    catalog.close()


def test_guard_runs_the_chain_with_a_batch_bias_check(acts: Any, astronaut: np.ndarray) -> None:
    a, store, _ = acts
    v = _variant(store, astronaut)
    out = asyncio.run(
        ActivityEnvironment().run(
            a.guard, GuardInput(campaign_id="c1", round=0, playbook=load_playbook(), variants=[v])
        )
    )
    (report,) = out.reports
    names = [c.name for c in report.checks]
    assert names == ["quality", "safety", "identity", "bias"]
    bias = report.checks[-1]
    assert bias.evidence["images"] == 1 and "this_image" in bias.evidence


@pytest.mark.parametrize("raw", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_guard_rejects_bad_assets_as_non_retryable(acts: Any, raw: bytes) -> None:
    a, store, _ = acts
    v = _variant(store, None, raw)
    with pytest.raises(ApplicationError) as info:
        asyncio.run(
            ActivityEnvironment().run(
                a.guard,
                GuardInput(campaign_id="c1", round=0, playbook=load_playbook(), variants=[v]),
            )
        )
    assert info.value.non_retryable and info.value.type == "BadImage"


def test_sign_then_verify_then_tamper(acts: Any, astronaut: np.ndarray, tmp_path: Path) -> None:
    a, store, _ = acts
    v = _variant(store, astronaut)
    assert v.asset is not None
    out = asyncio.run(
        ActivityEnvironment().run(a.sign, VariantsPayload(campaign_id="c1", round=0, variants=[v]))
    )
    (signed,) = out.variants
    assert signed.asset is not None and signed.asset.asset_id != v.asset.asset_id
    path = store.path_of(signed.asset.uri)
    res = runner.invoke(app, ["verify", str(path), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["c2pa"]["state"] == "Trusted" and got["c2pa"]["asset_id"] == v.asset.asset_id
    assert got["watermark"]["decoded"] == v.asset.asset_id[:8]
    assert got["watermark"]["matches"][0]["signed_asset_id"] == signed.asset.asset_id
    assert got["tampered"] is False
    # a re-encoded copy loses the manifest but keeps the watermark
    jpeg = tmp_path / "copy.jpg"
    Image.open(path).convert("RGB").save(jpeg, quality=75)
    got = json.loads(runner.invoke(app, ["verify", str(jpeg), "--json"]).stdout)
    assert got["c2pa"]["state"] == "absent"
    assert got["watermark"]["matches"][0]["asset_id"] == v.asset.asset_id
    # one flipped byte in the pixel data: reported as tampered
    data = bytearray(path.read_bytes())
    data[-500] ^= 0xFF
    bad = tmp_path / "tampered.png"
    bad.write_bytes(bytes(data))
    got = json.loads(runner.invoke(app, ["verify", str(bad), "--json"]).stdout)
    assert got["tampered"] is True and got["c2pa"]["state"] == "Invalid"


def test_check_enroll_and_bad_files(
    guard_home: Path, astronaut: np.ndarray, tmp_path: Path
) -> None:
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    res = runner.invoke(app, ["check", str(photo), "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["verdict"] == "pass"
    assert set(row["checks"]) == {
        "safety",
        "identity",
        "bias",
        "quality",
        "watermark",
        "provenance",
    }
    for c in row["checks"].values():
        assert set(c) == {"verdict", "score", "evidence"}

    res = runner.invoke(app, ["identity", "enroll", "--name", "astronaut", str(photo)])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(runner.invoke(app, ["check", str(photo), "--json"]).stdout)
    assert row["verdict"] == "block" and row["checks"]["identity"]["verdict"] == "block"

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    res = runner.invoke(app, ["check", str(photo), str(empty), "--json"])
    assert res.exit_code == 2
    rows = json.loads(res.stdout)
    assert rows[1]["image"] == str(empty) and "empty" in rows[1]["error"]
    assert rows[0]["verdict"] == "block"  # the good image is still judged


def test_guard_and_decide_is_guard_then_decide(acts: Any, astronaut: np.ndarray) -> None:
    """The one-activity path (what a round runs since `guard-and-decide-in-one`) reports and
    decides exactly as the guard and decide activities one after the other, and writes the
    decision to the catalog."""
    from faceloop.messages import DecideInput
    from faceloop.workflows.campaign_activities import decide_variants

    a, store, catalog = acts
    v = _variant(store, astronaut)
    one = GuardrailActivities(
        guardrails_for, store, catalog, decide=lambda inp: decide_variants(catalog, inp)
    )
    pb = load_playbook()
    env = ActivityEnvironment()
    fused = asyncio.run(
        env.run(
            one.guard_and_decide,
            DecideInput(campaign_id="c1", round=0, playbook=pb, variants=[v]),
        )
    )
    guarded = asyncio.run(
        env.run(a.guard, GuardInput(campaign_id="c1", round=0, playbook=pb, variants=[v]))
    )
    (report,) = guarded.reports
    apart = decide_variants(
        catalog,
        DecideInput(
            campaign_id="c1",
            round=0,
            playbook=pb,
            variants=[v.model_copy(update={"report": report})],
        ),
    )
    assert [x.variant_id for x in fused.variants] == [v.variant_id]
    (got,), (want,) = fused.variants, apart.variants
    assert got.report is not None
    assert [(c.name, c.verdict) for c in got.report.checks] == [
        (c.name, c.verdict) for c in report.checks
    ]
    assert (got.decision, got.decision_reason) == (want.decision, want.decision_reason)
    assert fused.escalations.keys() == apart.escalations.keys()
    stored = catalog.get_variant(v.variant_id)
    assert stored is not None and stored.decision == want.decision


def test_guard_and_decide_needs_the_decision(acts: Any, astronaut: np.ndarray) -> None:
    """A worker whose guardrail activities were built without `decide` cannot serve the
    one-activity path: a retryable deployment error, not a silent pass."""
    from faceloop.errors import FaceloopError
    from faceloop.messages import DecideInput

    a, store, _ = acts
    v = _variant(store, astronaut)
    with pytest.raises(FaceloopError, match="without decide"):
        asyncio.run(
            ActivityEnvironment().run(
                a.guard_and_decide,
                DecideInput(campaign_id="c1", round=0, playbook=load_playbook(), variants=[v]),
            )
        )
