"""faceloop.plugins with plugins installed for real: a dist-info folder with an
entry_points.txt on sys.path, as pip leaves it, found through importlib.metadata."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faceloop.connectors import registry as connectors
from faceloop.errors import ConnectorError, FaceloopError, GenerationError
from faceloop.generators import registry as generators
from faceloop.generators.base import Generator
from faceloop.guardrails import registry as guardrails
from faceloop.plugins import Registry
from faceloop.settings import Settings

# install(distribution, {group: {name: "module:attr"}}, {module: source})
Install = Callable[[str, dict[str, dict[str, str]], dict[str, str]], None]

ACME_GENERATOR = """
from faceloop.generators.dcgan import DcganGenerator

class AcmeGenerator(DcganGenerator):
    name = "acme"

class NotAGenerator:
    pass

GENERATOR = 3
"""


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    modules: list[str] = []

    def install(dist: str, entries: dict[str, dict[str, str]], sources: dict[str, str]) -> None:
        info = tmp_path / f"{dist.replace('-', '_')}-1.2.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
        (info / "entry_points.txt").write_text(
            "".join(
                f"[{group}]\n" + "".join(f"{n} = {v}\n" for n, v in names.items())
                for group, names in entries.items()
            )
        )
        for module, source in sources.items():
            (tmp_path / f"{module}.py").write_text(source)
            modules.append(module)

    monkeypatch.syspath_prepend(tmp_path)
    yield install
    for module in modules:
        sys.modules.pop(module, None)
    generators.clear_cache()


def test_a_plugin_is_found_and_loaded_lazily_like_a_builtin(install: Install) -> None:
    install(
        "acme-faces",
        {"faceloop.generators": {"acme": "acme_faces_a:AcmeGenerator"}},
        {"acme_faces_a": ACME_GENERATOR},
    )
    assert generators.generator_names() == ["dcgan", "onnx", "diffusers", "acme"]
    assert "acme_faces_a" not in sys.modules  # listing names imports nothing
    gen = generators.get_generator("acme")
    assert type(gen).__name__ == "AcmeGenerator" and gen.name == "acme"
    assert generators.prompt_only_params("acme") == {"age_band", "gender_presentation"}
    # the other kinds do not see it
    assert "acme" not in guardrails.guardrail_names()


@pytest.mark.parametrize(
    ("names", "builtin", "error"),
    [
        (generators.GENERATORS, "dcgan", GenerationError),
        (guardrails.GUARDRAILS, "quality", FaceloopError),
        (connectors.CONNECTORS, "sandbox", ConnectorError),
    ],
    ids=["generators", "guardrails", "connectors"],
)
def test_a_plugin_cannot_shadow_a_builtin(
    install: Install, names: Registry[object], builtin: str, error: type[Exception]
) -> None:
    install("acme-faces", {names.group: {builtin: "acme_faces_b:Thing"}}, {})
    assert names.names() == list(names.builtins)
    with pytest.raises(error) as err:
        names.load(builtin)
    assert str(err.value) == (
        f"{names.kind} name {builtin!r} is registered more than once, by the built-in "
        f"{names.builtins[builtin]} and the plugin entry point {builtin} = acme_faces_b:Thing "
        f"(group {names.group!r}) of acme-faces 1.2; one name names one implementation. "
        f"Uninstall one of them (acme-faces 1.2), or have the plugin register under another "
        f'name in its [project.entry-points."{names.group}"]'
    )


def test_two_plugins_cannot_share_a_name(install: Install) -> None:
    install(
        "acme-faces",
        {"faceloop.generators": {"acme": "acme_faces_c:AcmeGenerator"}},
        {"acme_faces_c": ACME_GENERATOR},
    )
    install("other-faces", {"faceloop.generators": {"acme": "other_faces:Gen"}}, {})
    assert generators.generator_names().count("acme") == 1
    with pytest.raises(GenerationError, match="'acme' is registered more than once") as err:
        generators.get_generator("acme")
    assert "(acme-faces 1.2, other-faces 1.2)" in str(err.value)
    assert "acme_faces_c" not in sys.modules
    assert isinstance(generators.get_generator("dcgan"), Generator)


def test_one_target_registered_twice_is_one_plugin(install: Install) -> None:
    # e.g. an old copy of the same package left on the path
    entries = {"faceloop.generators": {"acme": "acme_faces_d:AcmeGenerator"}}
    install("acme-faces", entries, {"acme_faces_d": ACME_GENERATOR})
    install("acme-faces-legacy", entries, {})
    assert type(generators.get_generator("acme")).__name__ == "AcmeGenerator"


def test_a_plugin_that_fails_to_import_names_its_entry_point_and_distribution(
    install: Install,
) -> None:
    install(
        "acme-guards",
        {"faceloop.guardrails": {"logo": "acme_guards:LogoGuardrail"}},
        {"acme_guards": "raise ImportError('acme-guards needs the acme-sdk package')\n"},
    )
    with pytest.raises(FaceloopError) as err:
        guardrails.default_guardrails()
    assert str(err.value) == (
        "guardrail plugin 'logo' failed to load: the plugin entry point "
        "logo = acme_guards:LogoGuardrail (group 'faceloop.guardrails') of acme-guards 1.2 "
        "raised ImportError: acme-guards needs the acme-sdk package. Fix or uninstall "
        "acme-guards 1.2"
    )


def test_a_target_that_is_not_the_base_says_so(install: Install) -> None:
    install(
        "acme-faces",
        {
            "faceloop.generators": {
                "plain": "acme_faces_e:NotAGenerator",
                "number": "acme_faces_e:GENERATOR",
            }
        },
        {"acme_faces_e": ACME_GENERATOR},
    )
    with pytest.raises(GenerationError) as err:
        generators.get_generator("plain")
    assert str(err.value) == (
        "generator 'plain' (the plugin entry point plain = acme_faces_e:NotAGenerator (group "
        "'faceloop.generators') of acme-faces 1.2) names the class acme_faces_e.NotAGenerator, "
        "which does not subclass faceloop.generators.base.Generator; a generator must subclass "
        "Generator, or the entry point must name a factory that returns one"
    )
    with pytest.raises(GenerationError, match=r"'number' .* names an int, not a Generator"):
        generators.get_generator("number")


def test_a_factory_that_builds_something_else_says_so(install: Install) -> None:
    install(
        "acme-ads",
        {"faceloop.connectors": {"acme": "acme_ads:connect"}},
        {"acme_ads": "def connect(settings):\n    return {'url': settings.sandbox_url}\n"},
    )
    with pytest.raises(ConnectorError) as err:
        connectors.get_connector("acme", Settings())
    assert str(err.value) == (
        "connector 'acme' (the plugin entry point acme = acme_ads:connect (group "
        "'faceloop.connectors') of acme-ads 1.2) built a dict, not an AdConnector; its "
        "factory must return a faceloop.connectors.base.AdConnector"
    )


def test_an_unknown_name_lists_the_names_and_where_plugins_come_from(install: Install) -> None:
    install("acme-ads", {"faceloop.connectors": {"acme": "acme_ads_f:connect"}}, {})
    with pytest.raises(ConnectorError) as err:
        connectors.get_connector("myspace", Settings())
    known = ", ".join([*connectors.BUILTINS, "acme"])
    assert str(err.value) == (
        f"unknown connector 'myspace'; known: {known}. Set the campaign's connector to one "
        "of these, or install a plugin that registers 'myspace' in the entry point group "
        "'faceloop.connectors' (docs/plugins.md)"
    )
