"""faceloop generate / bench generate / persona train, through the real CLI app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceloop.cli import app
from faceloop.storage.assets import AssetStore

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    from faceloop.settings import get_settings

    if hasattr(get_settings, "cache_clear"):
        get_settings.cache_clear()


def test_generate_writes_n_images_with_defaults_for_missing_fields(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        ["generate", "--params", '{"lighting": "dramatic"}', "-n", "3", "--seed", "7",
         "--size", "128", "--out", str(out), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert len(report["files"]) == 3 and report["params"]["lighting"] == "dramatic"
    assert report["params"]["skin_tone"] == 5  # the default
    assert sorted(p.name for p in out.glob("*.png")) == [
        f"dcgan-seed{s}-128px.png" for s in (7, 8, 9)
    ]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ('{"lighting": "neon"}', "lighting: Input should be"),
        ('{"hair": "red"}', "hair: Extra inputs are not permitted"),
        ("{lighting", "not valid JSON at line 1"),
        ("[1]", "expected a JSON object"),
    ],
)
def test_generate_refuses_bad_params_naming_the_field(
    tmp_path: Path, params: str, named: str
) -> None:
    res = runner.invoke(app, ["generate", "--params", params, "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert named in res.output


def test_generate_unknown_backend(tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["generate", "--params", "{}", "--backend", "nope", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "unknown generator 'nope'" in res.output


def test_bench_generate_json() -> None:
    res = runner.invoke(app, ["bench", "generate", "--json", "--sizes", "128", "-n", "2",
                              "--backends", "onnx"])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    (row,) = report["results"]
    assert row["backend"] == "onnx" and row["size"] == 128 and row["images_per_s"] > 0
    assert row["peak_rss_mib"] > 0


def test_persona_train_refuses_without_valid_consent(tmp_path: Path) -> None:
    res = runner.invoke(app, ["persona", "train", "--images", str(tmp_path), "--consent",
                              str(tmp_path / "missing.yaml"), "--tiny"])  # fmt: skip
    assert res.exit_code == 2 and "not found; pass --consent" in res.output


@pytest.mark.slow
def test_persona_train_tiny_stores_the_adapter_with_its_consent(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from PIL import Image
    from test_persona import _faces, consent_file

    images = tmp_path / "imgs"
    images.mkdir()
    for i, img in enumerate(_faces(3)):
        Image.fromarray(img).save(images / f"{i}.png")
    consent = str(consent_file(tmp_path))
    args = ["persona", "train", "--images", str(images), "--consent", consent, "--tiny"]
    res = runner.invoke(app, [*args, "--steps", "3", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    # the sidecar is a URI of the deployment's asset store (local here, S3 by setting)
    store = AssetStore(tmp_path / "home" / "assets")
    meta = json.loads(store.get_bytes(report["metadata"]))
    assert meta["consent_id"] == report["consent_id"] == "c-2031-0001"
    assert report["metadata"].startswith(store.url + "/")
