"""Guardrail names -> instances: built-ins, entry point plugins, helpful errors.
(faceloop.plugins itself, with a real installed plugin: tests/core/test_plugin_registry.py.)"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from faceloop import plugins
from faceloop.errors import FaceloopError
from faceloop.guardrails import registry
from faceloop.guardrails.quality import FaceQualityGuardrail
from faceloop.playbooks import load_playbook

GROUP = registry.ENTRY_POINT_GROUP


def _plugins(monkeypatch: pytest.MonkeyPatch, *eps: EntryPoint) -> None:
    def entry_points(group: str) -> list[EntryPoint]:
        return [e for e in eps if e.group == group]

    monkeypatch.setattr(plugins, "entry_points", entry_points)


def test_defaults_are_the_quality_check(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch)
    guards = registry.default_guardrails()
    assert [type(g) for g in guards] == [FaceQualityGuardrail]
    assert registry.guardrail_names() == ["quality", "safety", "identity", "bias"]


def test_builtin_names_are_the_checks_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # the name a playbook rule uses is the CheckResult.name the check reports
    _plugins(monkeypatch)
    for name in registry.BUILTINS:
        assert registry.GUARDRAILS.load(name).name == name


def test_naming_the_checks_imports_none_of_them() -> None:
    code = (
        "import sys; from faceloop.guardrails.registry import guardrail_names; "
        "guardrail_names(); "
        "print(sorted(m for m in sys.modules if m.startswith('faceloop.guardrails.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['faceloop.guardrails.base', 'faceloop.guardrails.registry']"


def test_unknown_name_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch)
    with pytest.raises(
        FaceloopError, match=r"unknown guardrail 'nsfw'; known: quality, safety, identity, bias\."
    ):
        registry.get_guardrail("nsfw")


def test_installed_plugins_run_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real Guardrail class named through an entry point, as a plugin package would.
    ep = EntryPoint("strict-quality", "faceloop.guardrails.quality:FaceQualityGuardrail", GROUP)
    _plugins(monkeypatch, ep)
    assert registry.guardrail_names()[-1] == "strict-quality"
    assert len(registry.default_guardrails()) == 2
    assert isinstance(registry.get_guardrail("strict-quality"), FaceQualityGuardrail)
    guards = registry.guardrails_for(load_playbook(), with_identity=False)
    assert [g.name for g in guards] == ["quality", "safety", "identity", "bias", "quality"]


def test_a_broken_plugin_stops_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    # A guardrail that silently drops out would let unchecked images through.
    _plugins(monkeypatch, EntryPoint("logo", "no_such_module_faceloop:Logo", GROUP))
    with pytest.raises(FaceloopError, match=r"plugin 'logo' failed to load"):
        registry.default_guardrails()
    with pytest.raises(FaceloopError, match=r"plugin 'logo' failed to load"):
        registry.guardrails_for(load_playbook(), with_identity=False)


def test_a_plugin_taking_a_builtin_name_stops_the_guard_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # skipping it would drop a check its author meant to run; running it would drop ours
    _plugins(monkeypatch, EntryPoint("quality", "acme_guards:Quality", GROUP))
    assert registry.guardrail_names() == ["quality", "safety", "identity", "bias"]
    with pytest.raises(FaceloopError, match="'quality' is registered more than once"):
        registry.guardrails_for(load_playbook(), with_identity=False)


def test_a_plugin_must_be_a_guardrail(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, EntryPoint("odd", "builtins:dict", GROUP))
    with pytest.raises(FaceloopError, match=r"'odd' .* does not subclass .*Guardrail"):
        registry.get_guardrail("odd")
