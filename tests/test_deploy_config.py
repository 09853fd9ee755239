"""docs/deploy/docker-compose.yaml is not run here (no Docker engine), so it is held to what
can be checked: it parses (duplicate keys refused), every FACELOOP_* variable it or
docs/deploy.md names is a real setting, and every command it runs parses as a real
`faceloop` command with its options."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.core import TyperGroup

from faceloop.briefs import read_document
from faceloop.cli import app
from faceloop.settings import Settings
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
