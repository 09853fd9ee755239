"""Names -> guardrails. Built-ins and plugins from the `faceloop.guardrails` entry point
group are equals (faceloop.plugins; docs/plugins.md): a plugin package declares, in its
pyproject.toml,

    [project.entry-points."faceloop.guardrails"]
    logo = "acme_guards:LogoGuardrail"

where the target is a Guardrail subclass (or any callable returning a Guardrail) that takes
no arguments. Every installed plugin runs in the guard stage: installing one is the opt-in,
and one that fails to load stops the stage rather than let unchecked images through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faceloop.plugins import Registry

from .base import Guardrail

if TYPE_CHECKING:
    from faceloop.playbooks.schema import Playbook
    from faceloop.settings import Settings
    from faceloop.storage.keys import SubjectKeyStore

# "module:attribute" like an entry point: naming the checks (a playbook's validation does)
# does not import their models.
BUILTINS: dict[str, str] = {
    "quality": "faceloop.guardrails.quality:FaceQualityGuardrail",
    "safety": "faceloop.guardrails.safety:SafetyGuardrail",
    "identity": "faceloop.guardrails.identity:IdentityGuardrail",
    "bias": "faceloop.guardrails.bias:BiasGuardrail",
}

GUARDRAILS: Registry[Guardrail] = Registry(
    kind="guardrail",
    base=Guardrail,
    group="faceloop.guardrails",
    builtins=BUILTINS,
    hint="Use one of these names",
)
ENTRY_POINT_GROUP = GUARDRAILS.group

# Built-ins run by default; installed plugins run too, since installing one is the opt-in.
DEFAULT_BUILTINS: tuple[str, ...] = ("quality",)


def guardrail_names() -> list[str]:
    """Every guardrail that can be named: built-ins first, then installed plugins."""
    return GUARDRAILS.names()


def get_guardrail(name: str) -> Guardrail:
    """A new instance of the named guardrail."""
    return GUARDRAILS.build(name)


def plugin_guardrails() -> list[Guardrail]:
    """One instance of every installed plugin, by name. A plugin that fails to load or
    clashes with another name raises: a check that silently dropped out would let
    unchecked images through."""
    return [get_guardrail(name) for name in GUARDRAILS.plugin_names()]


def default_guardrails() -> list[Guardrail]:
    """The checks every creative goes through: the default built-ins and all plugins."""
    return [get_guardrail(n) for n in DEFAULT_BUILTINS] + plugin_guardrails()


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
    from .bias import BiasGuardrail
    from .identity import Gallery, IdentityGuardrail
    from .quality import FaceQualityGuardrail
    from .safety import SafetyGuardrail, default_nudenet
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
    return guards + plugin_guardrails()


__all__ = [
    "BUILTINS",
    "DEFAULT_BUILTINS",
    "ENTRY_POINT_GROUP",
    "GUARDRAILS",
    "default_guardrails",
    "get_guardrail",
    "guardrail_names",
    "guardrails_for",
    "plugin_guardrails",
]
