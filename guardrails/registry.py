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
from typing import TYPE_CHECKING

from faceloop.errors import FaceloopError, InputError

from .base import Guardrail
from .bias import BiasGuardrail
from .identity import IdentityGuardrail
from .quality import FaceQualityGuardrail
from .safety import SafetyGuardrail

if TYPE_CHECKING:
    from faceloop.playbooks.schema import Playbook
    from faceloop.settings import Settings
    from faceloop.storage.keys import SubjectKeyStore

ENTRY_POINT_GROUP = "faceloop.guardrails"

log = logging.getLogger(__name__)

BUILTINS: dict[str, Callable[[], Guardrail]] = {
    FaceQualityGuardrail.name: FaceQualityGuardrail,
    SafetyGuardrail.name: SafetyGuardrail,
    IdentityGuardrail.name: IdentityGuardrail,
    BiasGuardrail.name: BiasGuardrail,
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


def guardrails_for(
    playbook: Playbook,
    with_identity: bool = True,
    settings: Settings | None = None,
    keys: SubjectKeyStore | None = None,
) -> list[Guardrail]:
    """The checks of the guard stage with the playbook's thresholds, plus installed plugins.

    Quality, identity and bias share one face detection per image; safety and bias share
    one NudeNet pass. The identity gallery is opened when FACELOOP_IDENTITY_KEY is set and a
    gallery exists; without one, lookalike matching has nobody to match and says so.
    Persona embeddings open with `keys` (the worker passes its catalog's key store); when
    none is given and the gallery holds personas, one is opened on the settings' catalog.
    """
    from .identity import Gallery
    from .safety import default_nudenet
    from .settings import GuardrailSettings
    from .vision import MemoDetector

    detector = MemoDetector()
    q, s, i = playbook.quality, playbook.safety, playbook.identity
    gallery = None
    gs = GuardrailSettings(settings)
    if with_identity and gs.gallery_path.exists():
        gallery = Gallery(gs.gallery_path, gs.identity_key_value(), subject_keys=keys)
        if keys is None and gallery.names("persona"):
            from faceloop.settings import get_settings
            from faceloop.storage.catalog import Catalog
            from faceloop.storage.keys import SubjectKeyStore

            url = (settings or get_settings()).resolved_database_url
            gallery.subject_keys = SubjectKeyStore(Catalog(url))
    guards: list[Guardrail] = [
        FaceQualityGuardrail(
            min_score=q.min_face_score,
            max_faces=q.max_faces,
            detector=detector,
            min_sharpness_ratio=q.min_sharpness_ratio,
            max_skin_clipping=q.max_skin_clipping,
        ),
        SafetyGuardrail(
            block_labels=s.block_labels, escalate_labels=s.escalate_labels, min_score=s.min_score
        ),
        IdentityGuardrail(
            gallery=gallery,
            lookalike_threshold=i.lookalike_threshold,
            persona_threshold=i.persona_threshold,
            min_face_score=q.min_face_score,
            detector=detector,
        ),
        BiasGuardrail(targets=playbook.bias, detector=detector, nudenet=default_nudenet()),
    ]
    guards += [_load_plugin(ep) for _, ep in sorted(_plugins().items())]
    return guards
