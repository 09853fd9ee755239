"""Names -> generators. The setting FACELOOP_GENERATOR picks one by name.

Built-ins and plugins from the `faceloop.generators` entry point group are equals: a plugin
package declares, in its pyproject.toml,

    [project.entry-points."faceloop.generators"]
    sdxl-lora = "acme_faces:SdxlLoraGenerator"

where the target is a Generator subclass (or any callable returning a Generator) that takes
no arguments. Backends are imported only when named, so listing them stays cheap.
"""

from __future__ import annotations

import importlib
import logging
import threading
from importlib.metadata import EntryPoint, entry_points

from faceloop.errors import GenerationError

from .base import Generator

ENTRY_POINT_GROUP = "faceloop.generators"

log = logging.getLogger(__name__)

# "module:attribute" like an entry point, so a CPU-only worker never imports torch just to
# learn which names exist.
BUILTINS: dict[str, str] = {
    "dcgan": "faceloop.generators.dcgan:DcganGenerator",
    "onnx": "faceloop.generators.onnx_backend:OnnxDcganGenerator",
    "diffusers": "faceloop.generators.diffusion:DiffusersGenerator",
}

_cache: dict[str, Generator] = {}
_lock = threading.Lock()


def _plugins() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTINS:
            log.warning(
                "generator plugin %s (%s) ignored: the name is taken by a built-in",
                ep.name,
                ep.value,
            )
            continue
        found[ep.name] = ep
    return found


def generator_names() -> list[str]:
    """Every generator that can be named: built-ins first, then installed plugins."""
    return [*BUILTINS, *sorted(_plugins())]


def _load(name: str) -> object:
    if name in BUILTINS:
        module, _, attr = BUILTINS[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    plugins = _plugins()
    if name not in plugins:
        raise GenerationError(
            f"unknown generator {name!r}; known: {', '.join(generator_names())}. "
            "Set FACELOOP_GENERATOR to one of these, or install the plugin that provides it"
        )
    ep = plugins[name]
    try:
        return ep.load()
    except Exception as exc:
        raise GenerationError(
            f"generator plugin {name!r} ({ep.value}) failed to load: {exc}; "
            "fix or uninstall the package that provides it"
        ) from exc


def get_generator(name: str) -> Generator:
    """The named generator, built once per process: loading weights is the expensive part."""
    with _lock:
        if name not in _cache:
            gen = _load(name)()  # type: ignore[operator]
            if not isinstance(gen, Generator):
                raise GenerationError(
                    f"generator {name!r} built a {type(gen).__name__}, not a Generator; the "
                    "entry point must name a Generator subclass or a factory returning one"
                )
            _cache[name] = gen
        return _cache[name]


def prompt_only_params(name: str) -> frozenset[str]:
    """The FaceParams fields the named generator cannot show in pixels (see Generator).

    Read from the class when possible, so a report never loads weights just to say this.
    """
    target = _load(name)
    value = getattr(target, "PROMPT_ONLY", None)
    if value is None:
        value = get_generator(name).PROMPT_ONLY
    return frozenset(value)


def clear_cache() -> None:
    """Forget built generators (tests; or to free a GPU between campaigns)."""
    with _lock:
        _cache.clear()
