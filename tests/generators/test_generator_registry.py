"""Generator names -> instances: built-ins, entry point plugins, helpful errors.
(faceloop.plugins itself, with a real installed plugin: tests/core/test_plugin_registry.py.)"""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from faceloop import plugins
from faceloop.errors import GenerationError
from faceloop.generators import registry
from faceloop.generators.dcgan import DcganGenerator

GROUP = registry.ENTRY_POINT_GROUP


def _plugins(monkeypatch: pytest.MonkeyPatch, *eps: EntryPoint) -> None:
    def entry_points(group: str) -> list[EntryPoint]:
        return [e for e in eps if e.group == group]

    monkeypatch.setattr(plugins, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_cache", {})


def not_a_generator() -> object:
    return object()


def test_dcgan_is_built_once() -> None:
    gen = registry.get_generator("dcgan")
    assert isinstance(gen, DcganGenerator)
    assert registry.get_generator("dcgan") is gen


def test_unknown_name_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch)
    with pytest.raises(
        GenerationError, match=r"unknown generator 'sdxl'; known: dcgan, onnx, diffusers\."
    ) as err:
        registry.get_generator("sdxl")
    assert "FACELOOP_GENERATOR" in str(err.value)
    assert "entry point group 'faceloop.generators'" in str(err.value)


def test_entry_point_plugins_are_equals(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real Generator class named through an entry point, as a plugin package would.
    ep = EntryPoint("other-dcgan", "faceloop.generators.dcgan:DcganGenerator", GROUP)
    _plugins(monkeypatch, ep)
    assert registry.generator_names() == [*registry.BUILTINS, "other-dcgan"]
    assert isinstance(registry.get_generator("other-dcgan"), DcganGenerator)
    assert registry.prompt_only_params("other-dcgan") == DcganGenerator.PROMPT_ONLY


def test_a_plugin_cannot_shadow_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, EntryPoint("dcgan", "builtins:dict", GROUP))
    assert registry.generator_names() == list(registry.BUILTINS)
    with pytest.raises(GenerationError, match="'dcgan' is registered more than once") as err:
        registry.get_generator("dcgan")
    assert "the built-in faceloop.generators.dcgan:DcganGenerator" in str(err.value)
    assert "dcgan = builtins:dict" in str(err.value)
    assert registry._cache == {}
    # the other names keep working
    assert registry.prompt_only_params("onnx") == {"age_band", "gender_presentation"}


def test_a_plugin_naming_the_builtin_itself_is_no_clash(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, EntryPoint("dcgan", registry.BUILTINS["dcgan"], GROUP))
    assert registry.generator_names() == list(registry.BUILTINS)
    assert isinstance(registry.get_generator("dcgan"), DcganGenerator)


def test_broken_plugins_fail_loudly_and_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(
        monkeypatch,
        EntryPoint("missing", "no_such_module_faceloop:Gen", GROUP),
        EntryPoint("wrong", "builtins:dict", GROUP),
        EntryPoint("liar", f"{__name__}:not_a_generator", GROUP),
    )
    with pytest.raises(
        GenerationError,
        match=r"plugin 'missing' failed to load: .* missing = no_such_module_faceloop:Gen .* "
        r"raised ModuleNotFoundError",
    ):
        registry.get_generator("missing")
    with pytest.raises(
        GenerationError,
        match=r"'wrong' .* names the class builtins.dict, which does not subclass "
        r"faceloop.generators.base.Generator",
    ):
        registry.get_generator("wrong")
    with pytest.raises(GenerationError, match=r"'liar' .* built an object, not a Generator"):
        registry.get_generator("liar")


def test_prompt_only_params_without_loading_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch)
    assert registry.prompt_only_params("dcgan") == {"age_band", "gender_presentation"}
    assert registry.prompt_only_params("onnx") == {"age_band", "gender_presentation"}
    assert registry._cache == {}


def test_builtins_are_dcgan_onnx_and_diffusers() -> None:
    assert list(registry.BUILTINS) == ["dcgan", "onnx", "diffusers"]


def test_listing_and_prompt_only_do_not_import_diffusers() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from faceloop.generators import registry; registry.generator_names(); "
        "registry.prompt_only_params('diffusers'); import faceloop.generators.cli; "
        "print('diffusers' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
