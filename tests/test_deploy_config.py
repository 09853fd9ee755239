"""docs/deploy/docker-compose.yaml is not run here (no Docker engine), so it is held to what
can be checked: it parses (duplicate keys refused), every FACELOOP_* variable it or
docs/deploy.md names is a real setting, each worker's environment (placeholders resolved as
Compose would, required ones to dummies) loads through faceloop's Settings and every
variable in it lands in a field, the pools share no volume and keep their assets in the
bucket the MinIO init step makes (written to and read back on a moto S3 server), each pool
gets the key material docs/deploy.md's "Split workers" names for it and no more, and every
command it runs parses as a real `faceloop` command with its options."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.core import TyperGroup

from faceloop.briefs import read_document
from faceloop.cli import app
from faceloop.settings import Settings, settings_env
from faceloop.storage import open_asset_store
from faceloop.workflows.worker import ALL_QUEUES

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docs" / "deploy" / "docker-compose.yaml"
DEPLOY_MD = ROOT / "docs" / "deploy.md"
SETTINGS = {f"FACELOOP_{name.upper()}" for name in Settings.model_fields} | {
    # nested sections (google_ads, tiktok): FACELOOP_<SECTION>__<FIELD>
    f"FACELOOP_{name.upper()}__{sub.upper()}"
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    for sub in field.annotation.model_fields
}
# compose-file variables that are not settings: interpolated by compose itself
COMPOSE_ONLY = {"FACELOOP_IMAGE", "FACELOOP_GPU_IMAGE", "FACELOOP_DB_PASSWORD"}
POOLS = {"main": "faceloop-worker-main", "gpu": "faceloop-worker-gpu", "cpu": "faceloop-worker-cpu"}
# the per-pool key material "Split workers" hands out: setting -> the file it names
KEY_MATERIAL = {"FACELOOP_C2PA_CERT", "FACELOOP_C2PA_KEY", "FACELOOP_C2PA_TRUST_ANCHORS"}
KEY_FILES = {
    "FACELOOP_C2PA_CERT": "signer-chain.pem",
    "FACELOOP_C2PA_KEY": "signer.key",
    "FACELOOP_C2PA_TRUST_ANCHORS": "ca.pem",
}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR; $$ is a `$`
_PLACEHOLDER = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def compose() -> dict[str, Any]:
    doc = read_document(COMPOSE)
    assert isinstance(doc, dict)
    return doc


def faceloop_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if svc.get("command", [None])[0] == "faceloop"
    }


def interpolate(value: str) -> str:
    """A value as Compose would pass it with an empty shell and no .env: defaults taken,
    required variables (`:?`) given a dummy, so the file's own defaults are what is tested."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op = m.group("op") or ""
        if op.endswith("-"):
            return m.group("arg")
        assert op.endswith("?"), f"${{{name}}} has no default and is not marked required (:?)"
        return f"dummy-{name.lower().replace('_', '-')}"

    return _PLACEHOLDER.sub(one, value)


def environment(service: str) -> dict[str, str]:
    env = compose()["services"][service]["environment"]
    assert isinstance(env, dict), f"{service}: environment as a mapping"
    return {k: interpolate(str(v)) for k, v in env.items()}


def load_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a container with exactly `env` would load them."""
    import os

    for name in list(os.environ):
        if name.startswith(("FACELOOP_", "TEMPORAL_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def split_workers_items() -> dict[str, str]:
    """docs/deploy.md's "Split workers" numbered items, keyed by the pool each starts with."""
    text = DEPLOY_MD.read_text()
    start = text.index("### Split workers")
    body = text[start : text.index("\n\n", text.index("\n1. ", start))]
    items = re.split(r"\n\d\. ", body)[1:]
    found = {}
    for item in items:
        m = re.match(r"`(main|gpu|cpu)` pools", item)
        if m:
            found[m.group(1)] = item
    assert set(found) == set(POOLS), f"Split workers names pools {sorted(found)}"
    return found


def test_the_compose_file_parses_with_duplicate_keys_refused() -> None:
    services = compose()["services"]
    assert {"postgres", "temporal"} <= set(services)
    assert len(faceloop_services()) >= 4


def test_every_faceloop_variable_the_compose_file_sets_is_a_setting() -> None:
    for name, svc in faceloop_services().items():
        env = svc["environment"]
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        unknown = {k for k in env if k.startswith("FACELOOP_")} - SETTINGS
        assert not unknown, f"{name} sets {unknown}, which faceloop/settings.py does not declare"


@pytest.mark.parametrize("path", [COMPOSE, DEPLOY_MD], ids=lambda p: p.name)
def test_every_faceloop_variable_named_is_a_setting(path: Path) -> None:
    named = set(re.findall(r"FACELOOP_[A-Z0-9_]+", path.read_text()))
    unknown = named - SETTINGS - COMPOSE_ONLY
    assert not unknown, f"{path.name} names {unknown}, which are not settings"


def test_every_command_it_runs_is_a_faceloop_command_with_valid_options() -> None:
    root = typer.main.get_command(app)
    for name, svc in faceloop_services().items():
        args = list(svc["command"][1:])
        cmd: Any = root
        while isinstance(cmd, TyperGroup):
            sub = args.pop(0)
            assert sub in cmd.commands, f"{name}: `faceloop ... {sub}` is not a command"
            cmd = cmd.commands[sub]
        # parses the options as the console script would, without running the command
        cmd.make_context(name, args)


def test_the_worker_pools_serve_every_queue_once() -> None:
    queues = []
    for svc in faceloop_services().values():
        args = svc["command"]
        if args[1] == "worker":
            queues += args[args.index("--queues") + 1].split(",")
    assert sorted(queues) == sorted(ALL_QUEUES)


def test_each_worker_env_loads_through_settings_and_every_variable_lands_in_a_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """extra="ignore" would drop a misspelt FACELOOP_* name silently: each variable must come
    back out of the loaded settings (settings_env) with the value it went in with."""
    for name in [*faceloop_services(), "faceloop-migrate"]:
        env = environment(name)
        settings = load_settings(env, monkeypatch)
        back = settings_env(settings)
        for key, value in env.items():
            assert key in back, f"{name}: {key} did not set any setting"
            assert back[key] == value, f"{name}: {key}={value!r} loaded as {back[key]!r}"


def test_the_pools_share_no_volume_and_keep_their_assets_in_the_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = compose()["services"]
    sources: dict[str, set[str]] = {}
    for pool, name in POOLS.items():
        svc = services[name]
        sources[pool] = {str(v).split(":")[0] for v in svc.get("volumes", [])}
        env = environment(name)
        assert "FACELOOP_ASSET_ROOT" not in env, f"{name}: assets in a folder"
        settings = load_settings(env, monkeypatch)
        assert settings.resolved_asset_url.startswith("s3://"), name
        assert settings.s3.endpoint_url and settings.s3.access_key_id, name
        assert settings.s3.secret_access_key, name
        # a data dir of its own, on a volume no other pool mounts
        home = env["FACELOOP_HOME"]
        assert any(str(v).split(":")[1] == home for v in svc["volumes"]), f"{name}: home"
    for a in POOLS:
        for b in POOLS:
            if a < b:
                shared = sources[a] & sources[b]
                assert not shared, f"the {a} and {b} pools both mount {shared}"


def test_each_pool_gets_the_key_material_split_workers_names_and_no_more() -> None:
    doc = compose()
    items = split_workers_items()
    for pool, name in POOLS.items():
        svc = doc["services"][name]
        env = environment(name)
        named = set(re.findall(r"FACELOOP_[A-Z0-9_]+", items[pool]))
        wanted = named & (KEY_MATERIAL | {"FACELOOP_IDENTITY_KEY"})
        given = set(env) & (KEY_MATERIAL | {"FACELOOP_IDENTITY_KEY"})
        assert given == wanted, f"{name} gets {sorted(given)}; Split workers: {sorted(wanted)}"
        for key in given & KEY_MATERIAL:
            # a mounted secret of this service, made from the file Split workers names
            secret = env[key].removeprefix("/run/secrets/")
            assert env[key] == f"/run/secrets/{secret}", f"{name}: {key} is not a secret"
            assert secret in svc.get("secrets", []), f"{name}: {key} names unmounted {secret}"
            assert Path(doc["secrets"][secret]["file"]).name == KEY_FILES[key], (name, key)
            assert KEY_FILES[key] in items[pool], f"Split workers, {pool}: {KEY_FILES[key]}"
        assert set(svc.get("secrets", [])) == {
            env[k].removeprefix("/run/secrets/") for k in given & KEY_MATERIAL
        }, f"{name} mounts secrets it does not use"
    # and what every pool gets, the same for each
    every = items["gpu"][items["gpu"].index("Every pool gets") :]
    for key in re.findall(r"FACELOOP_[A-Z0-9_]+", every):
        values = {environment(name).get(key) for name in POOLS.values()}
        assert len(values) == 1 and None not in values, f"{key} differs or is missing: {values}"


def test_the_bucket_minio_init_makes_is_the_asset_url_s_and_the_store_works_there(
    monkeypatch: pytest.MonkeyPatch, s3_settings: Any, s3_client: Any
) -> None:
    """The MinIO init step makes the bucket of FACELOOP_ASSET_URL and lets the workers' user
    into it; a store opened from a worker's settings (the endpoint pointed at the test's S3
    server instead of minio:9000) writes an asset there and reads it back."""
    doc = compose()
    init = " ".join(doc["services"]["minio-init"]["command"])
    made = re.findall(r"mc mb --ignore-existing local/([a-z0-9.-]+)", init)
    settings = load_settings(environment(POOLS["gpu"]), monkeypatch)
    bucket = settings.resolved_asset_url.removeprefix("s3://").split("/")[0]
    assert made == [bucket]
    policy = json.loads((COMPOSE.parent / doc["configs"]["minio_policy"]["file"]).read_text())
    resources = {r for st in policy["Statement"] for r in st["Resource"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert actions == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}

    if bucket not in {b["Name"] for b in s3_client.list_buckets()["Buckets"]}:
        s3_client.create_bucket(Bucket=bucket)
    here = settings.model_copy(
        update={"s3": settings.s3.model_copy(update={"endpoint_url": s3_settings.endpoint_url})}
    )
    store = open_asset_store(here)
    asset_id, uri = store.put_bytes(b"faceloop deploy config check", ".bin")
    assert uri == f"{settings.resolved_asset_url}/{asset_id[:2]}/{asset_id}.bin"
    assert store.get_bytes(uri) == b"faceloop deploy config check"
    s3_client.delete_object(Bucket=bucket, Key=uri.removeprefix(f"s3://{bucket}/"))
