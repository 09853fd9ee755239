"""Names -> guardrails. Built-ins and plugins from the `faceloop.guardrails` entry point
group are equals: a plugin package declares, in its pyproject.toml,

    [project.entry-points."faceloop.guardrails"]
    logo = "acme_guards:LogoGuardrail"

where the target is a Guardrail subclass (or any callable returning a Guardrail) that takes
no arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from faceloop.errors import FaceloopError, InputError

from .base import Guardrail
from .quality import FaceQualityGuardrail

ENTRY_POINT_GROUP = "faceloop.guardrails"

log = logging.getLogger(__name__)

BUILTINS: dict[str, Callable[[], Guardrail]] = {
    FaceQualityGuardrail.name: FaceQualityGuardrail,
}

# Built-ins run by default; installed plugins run too, since installing one is the opt-in.
DEFAULT_BUILTINS: tuple[str, ...] = ("quality",)


def _plugins() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTINS:
            log.warning(
                "guardrail plugin %s (%s) ignored: the name is taken by a built-in",
                ep.name,
                ep.value,
            )
            continue
        found[ep.name] = ep
    return found


def guardrail_names() -> list[str]:
    """Every guardrail that can be named: built-ins first, then installed plugins."""
    return [*BUILTINS, *sorted(_plugins())]


def _build(name: str, factory: Callable[[], object], origin: str) -> Guardrail:
    guard = factory()
    if not isinstance(guard, Guardrail):
        raise FaceloopError(
            f"guardrail {name!r} ({origin}) built a {type(guard).__name__}, not a Guardrail; "
            "the entry point must name a Guardrail subclass or a factory returning one"
        )
    return guard


def _load_plugin(ep: EntryPoint) -> Guardrail:
    try:
        factory = ep.load()
    except Exception as exc:
        # A guardrail that silently drops out would let unchecked images through.
        raise FaceloopError(
            f"guardrail plugin {ep.name!r} ({ep.value}) failed to load: {exc}; "
            "fix or uninstall the package that provides it"
        ) from exc
    return _build(ep.name, factory, ep.value)


def get_guardrail(name: str) -> Guardrail:
    """A new instance of the named guardrail."""
    if name in BUILTINS:
        return _build(name, BUILTINS[name], "built-in")
    plugins = _plugins()
    if name in plugins:
        return _load_plugin(plugins[name])
    raise InputError(
        "guardrail name",
        [f"{name!r} is not a known guardrail; known: {', '.join(guardrail_names())}"],
    )


def default_guardrails() -> list[Guardrail]:
    """The checks every creative goes through: the default built-ins and all plugins."""
    guards = [get_guardrail(n) for n in DEFAULT_BUILTINS]
    guards += [_load_plugin(ep) for _, ep in sorted(_plugins().items())]
    return guards
