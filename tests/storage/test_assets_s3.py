"""The asset store behind one interface: a local folder and an S3-compatible bucket (a real
moto server process, tests/conftest.py) keep the same contract, and an S3 store refuses
URIs of another bucket, prefix or scheme the way a local store refuses paths outside it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceloop.errors import FaceloopError, InputError
from faceloop.settings import S3Settings, Settings, get_settings
from faceloop.storage.assets import AssetStore, open_asset_store


def _objects(client: Any, bucket: str) -> dict[str, bytes]:
    """Every object in the bucket, read with boto3 (not through the store under test)."""
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AssetStore:
    if request.param == "local":
        return AssetStore(tmp_path / "assets")
    s3 = request.getfixturevalue("s3_settings")
    bucket = request.getfixturevalue("s3_bucket")
    return AssetStore(f"s3://{bucket}/team-a/assets", s3.storage_options())


def _image(v: int = 127) -> np.ndarray:
    return np.full((8, 8, 3), v, dtype=np.uint8)


def test_round_trip_and_content_addressing(store: AssetStore) -> None:
    asset_id, uri = store.put_image(_image())
    assert uri.startswith(store.url + "/") and uri.endswith(f"/{asset_id[:2]}/{asset_id}.png")
    assert store.exists(uri)
    assert (store.get_image(uri) == _image()).all()
    assert hashlib.sha256(store.get_bytes(uri)).hexdigest() == asset_id
    # the same bytes again: the same id and URI, one stored copy
    assert store.put_image(_image()) == (asset_id, uri)
    assert store.uris_of(asset_id) == [uri]


def test_missing_asset_says_which_and_where(store: AssetStore) -> None:
    uri = f"{store.url}/ab/{'ab' + '0' * 62}.png"
    assert not store.exists(uri)
    with pytest.raises(FaceloopError, match=r"is missing from the store at") as err:
        store.get_bytes(uri)
    assert uri in str(err.value) and store.url in str(err.value)


def test_sidecars_are_found_by_suffix_and_erased_with_their_asset(store: AssetStore) -> None:
    asset_id, uri = store.put_bytes(b"sealed adapter", ".safetensors.enc")
    other_id, other = store.put_image(_image(3))
    meta_uri = store.put_sidecar(uri, ".json", b'{"kind": "persona_lora"}')
    assert meta_uri == store.sidecar_uri(uri, ".json") == uri + ".json"
    assert store.get_bytes(meta_uri) == b'{"kind": "persona_lora"}'
    # replaced, not refused: a sidecar is rewritten when its metadata changes
    store.put_sidecar(uri, ".json", b"{}")
    assert store.get_bytes(meta_uri) == b"{}"
    assert store.uris_ending(".safetensors.enc.json") == [meta_uri]
    assert store.uris_of(asset_id) == sorted([uri, meta_uri])

    assert store.delete(asset_id) == sorted([uri, meta_uri])
    assert not store.exists(uri) and not store.exists(meta_uri)
    assert store.delete(asset_id) == []  # erasure retries find nothing left
    assert store.exists(other) and store.uris_of(other_id) == [other]


def test_erasure_note_says_what_happened_to_the_bytes(store: AssetStore) -> None:
    note = store.erasure_note()
    if store.is_local:
        assert "overwritten with zeros" in note
    else:
        assert "deleted" in note and "cannot overwrite in place" in note
        assert "zeros" not in note


def test_bad_asset_id_is_refused(store: AssetStore) -> None:
    with pytest.raises(FaceloopError, match="not a sha256 hex digest"):
        store.uris_of("../../etc")


# ------------------------------------------------------------------ S3 only


def test_objects_land_in_the_bucket_under_the_prefix(
    s3_settings: S3Settings, s3_bucket: str, s3_client: Any
) -> None:
    store = AssetStore(f"s3://{s3_bucket}/team-a/assets/", s3_settings.storage_options())
    assert store.url == f"s3://{s3_bucket}/team-a/assets"
    asset_id, _uri = store.put_image(_image())
    objects = _objects(s3_client, s3_bucket)
    assert list(objects) == [f"team-a/assets/{asset_id[:2]}/{asset_id}.png"]
    assert hashlib.sha256(next(iter(objects.values()))).hexdigest() == asset_id
    with pytest.raises(FaceloopError, match="no local folder"):
        _ = store.root
    with pytest.raises(FaceloopError, match="no local path"):
        store.path_of(_uri)


@pytest.mark.parametrize(
    "uri",
    [
        "s3://other-bucket/team-a/assets/ab/x.png",  # another bucket
        "s3://{bucket}/team-b/assets/ab/x.png",  # another prefix
        "s3://{bucket}/team-a/assets2/ab/x.png",  # a prefix that only starts the same
        "s3://{bucket}/team-a/assets/ab/../../../team-b/x.png",  # `..` out of the prefix
        "s3://{bucket}/team-a/assets//x.png",  # an empty segment
        "s3://{bucket}/team-a/assets/ab/x.png?versionId=1",  # URL syntax in the key
        "file:///etc/passwd",
        "http://127.0.0.1/{bucket}/team-a/assets/ab/x.png",
        "team-a/assets/ab/x.png",
    ],
)
def test_uris_of_another_store_are_refused(
    s3_settings: S3Settings, s3_bucket: str, uri: str
) -> None:
    store = AssetStore(f"s3://{s3_bucket}/team-a/assets", s3_settings.storage_options())
    uri = uri.format(bucket=s3_bucket)
    with pytest.raises(FaceloopError, match=r"outside the asset store|only its s3://|not an asset"):
        store.get_bytes(uri)
    with pytest.raises(FaceloopError):
        store.exists(uri)


def test_an_existing_object_of_another_prefix_stays_unread(
    s3_settings: S3Settings, s3_bucket: str
) -> None:
    ours = AssetStore(f"s3://{s3_bucket}/team-a", s3_settings.storage_options())
    theirs = AssetStore(f"s3://{s3_bucket}/team-b", s3_settings.storage_options())
    _id, uri = theirs.put_bytes(b"team b's creative")
    assert theirs.get_bytes(uri) == b"team b's creative"
    with pytest.raises(FaceloopError, match="outside the asset store"):
        ours.get_bytes(uri)


def test_missing_bucket_is_a_clear_error(s3_settings: S3Settings) -> None:
    store = AssetStore("s3://no-such-bucket-here/assets", s3_settings.storage_options())
    with pytest.raises(FaceloopError, match="bucket does not exist"):
        store.put_bytes(b"x")


@pytest.mark.parametrize(
    "url", ["s3://Bad_Bucket/x", "s3://ab/x", "s3://bucket/a b", "s3://bucket/x?y=1"]
)
def test_bad_store_urls_are_refused(url: str) -> None:
    with pytest.raises(FaceloopError, match=r"s3://bucket/prefix|prefix"):
        AssetStore(url)


def test_other_schemes_are_refused() -> None:
    with pytest.raises(FaceloopError, match="scheme 'gs' is not supported"):
        AssetStore("gs://bucket/x")


# ------------------------------------------------------------------ settings


def test_open_asset_store_from_settings_keeps_the_secret_out_of_sight(
    s3_settings: S3Settings, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "do-not-print-me-4f2a"
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACELOOP_ASSET_URL", f"s3://{s3_bucket}/prod")
    monkeypatch.setenv("FACELOOP_S3__ENDPOINT_URL", str(s3_settings.endpoint_url))
    monkeypatch.setenv("FACELOOP_S3__ACCESS_KEY_ID", "faceloop-test")
    monkeypatch.setenv("FACELOOP_S3__SECRET_ACCESS_KEY", secret)
    settings = get_settings()
    store = open_asset_store(settings)
    _id, uri = store.put_bytes(b"hello")
    assert uri.startswith(f"s3://{s3_bucket}/prod/")
    assert secret not in repr(settings) and secret not in repr(store)
    assert not (tmp_path / "home" / "assets").exists()


def test_default_store_is_the_local_folder(tmp_path: Path) -> None:
    store = open_asset_store(Settings(home=tmp_path / "home"))
    assert store.is_local and store.root == (tmp_path / "home" / "assets").resolve()
    assert store.url == store.root.as_uri()


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"FACELOOP_ASSET_URL": "http://bucket/x"}, "asset_url"),
        ({"FACELOOP_ASSET_URL": "s3://B/x"}, "asset_url"),
        ({"FACELOOP_ASSET_URL": "s3://bucket/x", "FACELOOP_ASSET_ROOT": "/tmp/a"}, "both set"),
        ({"FACELOOP_S3__ACCESS_KEY_ID": "k"}, "go together"),
        ({"FACELOOP_S3__ENDPOINT_URL": "127.0.0.1:9000"}, "endpoint_url"),
    ],
)
def test_bad_store_settings_name_the_field(
    env: dict[str, str], match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(InputError, match=match):
        get_settings()


# ------------------------------------------------------------------ erasure on S3


async def test_erasure_deletes_the_objects_and_says_it_could_not_scrub(
    s3_settings: S3Settings, s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """The erasure file step on an S3 store: the persona's adapter is found by its sidecar,
    every object of the erased ids goes, the control asset stays, and the report's note
    says the objects were deleted, not overwritten."""
    import json

    from temporalio.testing import ActivityEnvironment

    from faceloop.erasure import ErasurePlan
    from faceloop.storage.catalog import Catalog
    from faceloop.workflows.erasure_activities import ErasureActivities

    store = AssetStore(f"s3://{s3_bucket}/assets", s3_settings.storage_options())
    image_id, _ = store.put_image(_image(1))
    control_id, control = store.put_image(_image(2))
    adapter_id, adapter = store.put_bytes(b"sealed weights", ".safetensors.enc")
    meta = {"kind": "persona_lora", "persona_id": "ada", "asset_id": adapter_id}
    store.put_sidecar(adapter, ".json", json.dumps(meta).encode())

    catalog = Catalog(f"sqlite:///{tmp_path / 'faceloop.db'}")
    try:
        steps = ErasureActivities(catalog, store, connector=lambda name: None)
        assert steps._adapters_of("ada") == [adapter_id]
        assert steps._adapters_of("bob") == []
        plan = ErasurePlan(
            kind="persona", target="ada", asset_ids=[image_id], adapter_ids=[adapter_id]
        )
        report = await ActivityEnvironment().run(steps.delete_asset_files, plan)
    finally:
        catalog.close()
    assert report.removed == 2 and sorted(report.ids) == sorted([image_id, adapter_id])
    (note,) = report.notes
    assert f"objects under s3://{s3_bucket}/assets deleted" in note
    assert "cannot overwrite in place" in note
    left = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert left == [control.removeprefix(f"s3://{s3_bucket}/")]
    assert store.uris_of(control_id) == [control]
