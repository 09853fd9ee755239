"""Guardrail names -> instances: built-ins, entry point plugins, helpful errors."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from faceloop.errors import FaceloopError, InputError
from faceloop.guardrails import registry
from faceloop.guardrails.quality import FaceQualityGuardrail

GROUP = registry.ENTRY_POINT_GROUP


def _plugins(monkeypatch: pytest.MonkeyPatch, *eps: EntryPoint) -> None:
    def entry_points(group: str) -> list[EntryPoint]:
        return [e for e in eps if e.group == group]

    monkeypatch.setattr(registry, "entry_points", entry_points)


def test_defaults_are_the_quality_check(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch)
    guards = registry.default_guardrails()
    assert [type(g) for g in guards] == [FaceQualityGuardrail]
    assert registry.guardrail_names() == ["quality", "safety", "identity", "bias"]


def test_unknown_name_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch)
    with pytest.raises(
        InputError, match=r"'nsfw' is not a known guardrail; known: quality, safety"
    ):
        registry.get_guardrail("nsfw")


def test_installed_plugins_run_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real Guardrail class named through an entry point, as a plugin package would.
    ep = EntryPoint("strict-quality", "faceloop.guardrails.quality:FaceQualityGuardrail", GROUP)
    _plugins(monkeypatch, ep)
    assert registry.guardrail_names()[-1] == "strict-quality"
    assert len(registry.default_guardrails()) == 2
    assert isinstance(registry.get_guardrail("strict-quality"), FaceQualityGuardrail)


def test_a_broken_plugin_stops_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    # A guardrail that silently drops out would let unchecked images through.
    _plugins(monkeypatch, EntryPoint("logo", "no_such_module_faceloop:Logo", GROUP))
    with pytest.raises(FaceloopError, match=r"plugin 'logo' .* failed to load"):
        registry.default_guardrails()


def test_a_plugin_must_build_a_guardrail(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, EntryPoint("odd", "builtins:dict", GROUP))
    with pytest.raises(FaceloopError, match=r"'odd' .* built a dict, not a Guardrail"):
        registry.get_guardrail("odd")
