"""Names -> generators. The setting FACELOOP_GENERATOR picks one by name.

Built-ins and plugins from the `faceloop.generators` entry point group are equals
(faceloop.plugins; docs/plugins.md): a plugin package declares, in its pyproject.toml,

    [project.entry-points."faceloop.generators"]
    sdxl-lora = "acme_faces:SdxlLoraGenerator"

where the target is a Generator subclass (or any callable returning a Generator) that takes
no arguments. Backends are imported only when named, so listing them stays cheap.
"""

from __future__ import annotations

import threading

from faceloop.errors import GenerationError
from faceloop.plugins import Registry

from .base import Generator

# "module:attribute" like an entry point, so a CPU-only worker never imports torch just to
# learn which names exist.
BUILTINS: dict[str, str] = {
    "dcgan": "faceloop.generators.dcgan:DcganGenerator",
    "onnx": "faceloop.generators.onnx_backend:OnnxDcganGenerator",
    "diffusers": "faceloop.generators.diffusion:DiffusersGenerator",
}

GENERATORS: Registry[Generator] = Registry(
    kind="generator",
    base=Generator,
    group="faceloop.generators",
    builtins=BUILTINS,
    hint="Set FACELOOP_GENERATOR to one of these",
    # the generate activity turns a GenerationError into a non-retryable failure
    error=GenerationError,
)
ENTRY_POINT_GROUP = GENERATORS.group

_cache: dict[str, Generator] = {}
_lock = threading.Lock()


def generator_names() -> list[str]:
    """Every generator that can be named: built-ins first, then installed plugins."""
    return GENERATORS.names()


def get_generator(name: str) -> Generator:
    """The named generator, built once per process: loading weights is the expensive part."""
    with _lock:
        if name not in _cache:
            _cache[name] = GENERATORS.build(name)
        return _cache[name]


def prompt_only_params(name: str) -> frozenset[str]:
    """The FaceParams fields the named generator cannot show in pixels (see Generator).

    Read from the class when possible, so a report never loads weights just to say this.
    """
    value = getattr(GENERATORS.load(name), "PROMPT_ONLY", None)
    if value is None:
        value = get_generator(name).PROMPT_ONLY
    return frozenset(value)


def clear_cache() -> None:
    """Forget built generators (tests; or to free a GPU between campaigns)."""
    with _lock:
        _cache.clear()


__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "GENERATORS",
    "clear_cache",
    "generator_names",
    "get_generator",
    "prompt_only_params",
]
