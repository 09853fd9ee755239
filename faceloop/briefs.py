"""Load briefs from YAML or JSON; a bad brief is rejected with every bad field's path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from faceloop.errors import InputError
from faceloop.models import Brief, CampaignConfig, FaceParams

M = TypeVar("M", bound=BaseModel)


def read_document(path: Path) -> Any:
    """Parse a YAML or JSON file (by suffix; YAML accepts JSON too)."""
    if not path.exists():
        raise InputError(str(path), ["file not found: check the path"])
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise InputError(
            str(path), [f"not valid {path.suffix.lstrip('.').upper()}: {exc}"]
        ) from exc


def parse_model(model: type[M], data: Any, source: str) -> M:
    if not isinstance(data, dict):
        raise InputError(
            source, [f"(root): expected a mapping of fields, got {type(data).__name__}"]
        )
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InputError.from_validation(source, err) from err


def load_brief(path: Path) -> Brief:
    """A brief file holds the Brief fields; an optional `campaign:` block holds CampaignConfig."""
    brief, _ = load_brief_and_config(path)
    return brief


def load_brief_and_config(path: Path) -> tuple[Brief, CampaignConfig]:
    data = read_document(path)
    if not isinstance(data, dict):
        raise InputError(str(path), ["(root): expected a mapping of brief fields"])
    data = dict(data)
    config_data = data.pop("campaign", None) or {}
    problems: list[str] = []
    brief: Brief | None = None
    config: CampaignConfig | None = None
    # validate both parts before reporting, so one run shows every bad field
    try:
        brief = Brief.model_validate(data)
    except ValidationError as err:
        problems += InputError.from_validation(str(path), err).problems
    try:
        config = CampaignConfig.model_validate(config_data)
    except ValidationError as err:
        problems += [f"campaign.{p}" for p in InputError.from_validation(str(path), err).problems]
    if problems or brief is None or config is None:
        raise InputError(str(path), problems)
    return brief, config


def parse_face_params(text: str, source: str = "--params") -> FaceParams:
    """FaceParams from a JSON object; missing fields take their defaults."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise InputError(source, [f"not valid JSON: {exc}"]) from exc
    return parse_model(FaceParams, data, source)
