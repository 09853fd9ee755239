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


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: PyYAML keeps the last one
    silently, so `markets: [DE]` ... `markets: [US]` would ship to markets the author never
    meant (YAML 1.2 says keys are unique)."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            # `<<: *defaults` (Compose files share settings this way): construct_mapping
            # merges it below, keys given here winning as YAML says; not a key of its own
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:
            continue  # an unhashable key: the constructor below reports it
        if first != key_node.start_mark.line + 1:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first}); keep one of them",
                key_node.start_mark,
            )
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}; keep one of them")
        out[key] = value
    return out


def parse_json(text: str, source: str) -> Any:
    """JSON with duplicate keys refused (json.loads keeps the last one silently)."""
    try:
        return json.loads(text, object_pairs_hook=_strict_object)
    except json.JSONDecodeError as exc:
        raise InputError(
            source, [f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from None
    except ValueError as exc:
        raise InputError(source, [f"not valid JSON: {exc}"]) from None


def parse_yaml(text: str, source: str) -> Any:
    """YAML (a superset of JSON) with duplicate keys refused, one line per problem."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(source, [f"not valid YAML{where}: {problem}"]) from None


def read_file_bytes(path: Path, source: str | None = None) -> bytes:
    """A user's file as bytes, or an InputError that says what is wrong with the path
    (missing, a directory, unreadable) instead of a traceback."""
    where = source or str(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(where, ["file not found: check the path"]) from None
    except IsADirectoryError:
        raise InputError(where, ["is a directory: give the path of a file"]) from None
    except OSError as exc:
        raise InputError(where, [f"cannot read the file: {exc.strerror or exc}"]) from None


def read_text_file(path: Path, source: str | None = None) -> str:
    """A user's file as UTF-8 text, or an InputError that says what is wrong with it
    (missing, a directory, unreadable, not UTF-8) instead of a traceback."""
    where = source or str(path)
    data = read_file_bytes(path, where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            where, [f"not UTF-8 text (byte {exc.start}): save the file as UTF-8"]
        ) from None


def read_document(path: Path, source: str | None = None) -> Any:
    """Parse a YAML or JSON file (by suffix; YAML accepts JSON too); duplicate keys, bad
    encodings and unreadable paths are InputErrors."""
    where = source or str(path)
    text = read_text_file(path, where)
    if path.suffix.lower() == ".json":
        return parse_json(text, where)
    return parse_yaml(text, where)


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
    return brief_and_config(read_document(path), str(path))


def brief_and_config(data: Any, source: str) -> tuple[Brief, CampaignConfig]:
    """A brief document (already parsed: a file, a form, an API body) as Brief and
    CampaignConfig; an InputError lists every bad field of both, by path."""
    path = source
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
    data = parse_json(text, source) if text.strip() else {}
    return parse_model(FaceParams, data, source)
