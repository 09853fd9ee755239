"""One registry for generators, guardrails and connectors: setting names -> implementations.

Built-ins and third-party plugins are equals (datasette's plugins.py): both are named by a
"module:attribute" string and imported only when that name is used, so listing the names or
building one implementation never imports another's dependencies (a CPU worker never loads
torch for a generator it does not run). A plugin is a distribution that declares an entry
point in the kind's group, e.g. in its pyproject.toml:

    [project.entry-points."faceloop.generators"]
    sdxl-lora = "acme_faces:SdxlLoraGenerator"

The target is a subclass of the kind's base class, or a factory returning an instance of it;
it is called with the arguments the kind's registry passes (none for generators and
guardrails, the Settings for connectors).

Name clashes: one name, one implementation. A name registered by a built-in and a plugin,
or by two plugins, with different targets cannot be used: asking for it raises a
FaceloopError that names both sources and the fix (uninstall one distribution, or register
the plugin under another name). Nothing is shadowed silently, and the other names keep
working. The same target registered twice under one name (a distribution installed twice,
or one that re-declares a built-in) is one registration. docs/plugins.md has the guide.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar, cast

from faceloop.errors import FaceloopError

T = TypeVar("T")


@dataclass(frozen=True)
class Registration:
    """Where one name comes from: a built-in target, or a plugin's entry point."""

    name: str
    target: str  # "module:attribute", as in an entry point
    entry_point: EntryPoint | None = None  # None: built into faceloop

    @property
    def distribution(self) -> str | None:
        """'<name> <version>' of the distribution that declares the plugin, when known."""
        dist = self.entry_point.dist if self.entry_point is not None else None
        return None if dist is None else f"{dist.name} {dist.version}"

    @property
    def owner(self) -> str:
        """What to uninstall or fix to get rid of this registration."""
        if self.entry_point is None:
            return "faceloop"
        return self.distribution or "the distribution that declares it"

    def describe(self) -> str:
        if self.entry_point is None:
            return f"the built-in {self.target}"
        ep = self.entry_point
        return (
            f"the plugin entry point {ep.name} = {ep.value} (group {ep.group!r}) "
            f"of {self.distribution or 'an unknown distribution'}"
        )


class Registry(Generic[T]):
    """The names of one kind (generator, guardrail, connector) and how to build each.

    `builtins` maps names to "module:attribute" targets, in the order `names()` lists them;
    plugins come from the entry point group `group`, listed after the built-ins by name.
    `error` is the FaceloopError subclass the kind's callers expect, and `hint` the first
    half of the fix an unknown name gets ("Set FACELOOP_GENERATOR to one of these").
    """

    def __init__(
        self,
        *,
        kind: str,
        base: type,
        group: str,
        builtins: Mapping[str, str],
        hint: str,
        error: Callable[[str], FaceloopError] = FaceloopError,
    ) -> None:
        self.kind = kind
        self.base = base
        self.group = group
        self.builtins = dict(builtins)
        self.hint = hint
        self.error = error

    def registrations(self) -> dict[str, list[Registration]]:
        """Every name and what registers it; more than one entry is a clash."""
        found: dict[str, list[Registration]] = {
            name: [Registration(name, target)] for name, target in self.builtins.items()
        }
        plugins = sorted(entry_points(group=self.group), key=lambda ep: (ep.name, ep.value))
        for ep in plugins:
            regs = found.setdefault(ep.name, [])
            if all(r.target != ep.value for r in regs):
                regs.append(Registration(ep.name, ep.value, ep))
        return found

    def names(self) -> list[str]:
        """Every name that can be asked for: the built-ins in their order, then plugins."""
        return [*self.builtins, *sorted(set(self.registrations()) - set(self.builtins))]

    def plugin_names(self) -> list[str]:
        """The names some installed plugin registers (built-in names too, when a plugin
        clashes with one: building such a name raises instead of skipping the plugin)."""
        return sorted(
            name
            for name, regs in self.registrations().items()
            if any(r.entry_point is not None for r in regs)
        )

    def resolve(self, name: str) -> Registration:
        """The one registration of `name`; unknown or clashing names raise `error`."""
        regs = self.registrations().get(name)
        if not regs:
            raise self.error(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}. "
                f"{self.hint}, or install a plugin that registers {name!r} in the entry point "
                f"group {self.group!r} (docs/plugins.md)"
            )
        if len(regs) > 1:
            sources = " and ".join(r.describe() for r in regs)
            plugins = ", ".join(r.owner for r in regs if r.entry_point is not None)
            raise self.error(
                f"{self.kind} name {name!r} is registered more than once, by {sources}; one "
                f"name names one implementation. Uninstall one of them ({plugins}), or have "
                f"the plugin register under another name in its "
                f'[project.entry-points."{self.group}"]'
            )
        return regs[0]

    def load(self, name: str) -> Callable[..., object]:
        """The class or factory `name` stands for, imported now (and not before)."""
        reg = self.resolve(name)
        if reg.entry_point is None:
            # a built-in that fails to import is a bug in faceloop: its traceback is the report
            module, _, attr = reg.target.partition(":")
            target: object = importlib.import_module(module)
            for part in attr.split("."):
                target = getattr(target, part)
        else:
            try:
                target = reg.entry_point.load()
            except Exception as exc:
                raise self.error(
                    f"{self.kind} plugin {name!r} failed to load: {reg.describe()} raised "
                    f"{type(exc).__name__}: {exc}. Fix or uninstall {reg.owner}"
                ) from exc
        base = self.base.__name__
        if isinstance(target, type) and not issubclass(target, self.base):
            raise self.error(
                f"{self.kind} {name!r} ({reg.describe()}) names the class "
                f"{target.__module__}.{target.__qualname__}, which does not subclass "
                f"{self.base.__module__}.{base}; {_a(self.kind)} must subclass {base}, or the "
                f"entry point must name a factory that returns one"
            )
        if not callable(target):
            raise self.error(
                f"{self.kind} {name!r} ({reg.describe()}) names {_a(type(target).__name__)}, "
                f"not {_a(base)} subclass or a factory returning one"
            )
        return cast(Callable[..., object], target)

    def build(self, name: str, *args: object) -> T:
        """A new instance of `name`: its class or factory called with `args`."""
        made = self.load(name)(*args)
        if not isinstance(made, self.base):
            raise self.error(
                f"{self.kind} {name!r} ({self.resolve(name).describe()}) built "
                f"{_a(type(made).__name__)}, not {_a(self.base.__name__)}; its factory must "
                f"return {_a(f'{self.base.__module__}.{self.base.__name__}')}"
            )
        return cast(T, made)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


__all__ = ["Registration", "Registry"]
