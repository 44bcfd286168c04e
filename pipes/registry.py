"""``type:`` names to connector classes.

Built-in connectors register through the ``pipes.connectors`` entry-point
group exactly as a third-party package would, so there is one way in. A type
written ``package.module:Name`` is imported directly (by the rule of
``pipes.imports``: the pipe file's folder first): ``Name`` may be a
``Connector`` or a Source / Target / Enricher class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Literal

from pipes.connector import Connector, Enricher, Source, Target
from pipes.imports import ImportFailed, import_object

__all__ = ["ENTRY_POINT_GROUP", "Registry", "Role", "UnknownConnector"]

ENTRY_POINT_GROUP = "pipes.connectors"

type Role = Literal["source", "target", "enricher"]
type RoleClass = type[Source] | type[Target] | type[Enricher]

_BASES: dict[str, type] = {"source": Source, "target": Target, "enricher": Enricher}


class UnknownConnector(LookupError):
    """A ``type:`` that names no installed connector, or one without the needed role."""


@dataclass(frozen=True)
class Listing:
    """One row of ``pipes connectors``: a connector, or why it failed to load."""

    name: str
    connector: Connector | None
    error: str | None = None


class Registry:
    """Connector lookup by name; entry points are loaded lazily, once each."""

    def __init__(self, eps: Iterable[EntryPoint] | None = None) -> None:
        if eps is None:
            eps = entry_points(group=ENTRY_POINT_GROUP)
        self._eps = {ep.name: ep for ep in eps}
        self._loaded: dict[str, Connector] = {}

    def eps(self) -> list[EntryPoint]:
        """The entry points this registry knows (to extend it in tests)."""
        return list(self._eps.values())

    def names(self) -> list[str]:
        return sorted(self._eps)

    def connector(self, name: str) -> Connector:
        if name in self._loaded:
            return self._loaded[name]
        ep = self._eps.get(name)
        if ep is None:
            known = ", ".join(self.names())
            raise UnknownConnector(f"unknown connector type {name!r} (installed: {known})")
        obj = ep.load()
        if not isinstance(obj, Connector):
            raise UnknownConnector(f"entry point {name!r} does not point at a pipes Connector")
        self._loaded[name] = obj
        return obj

    def listing(self) -> list[Listing]:
        rows = []
        for name in self.names():
            try:
                rows.append(Listing(name, self.connector(name)))
            except Exception as exc:  # a broken plug-in must not hide the others
                rows.append(Listing(name, None, f"{type(exc).__name__}: {exc}"))
        return rows

    def resolve(self, type_name: str, role: Role, pipe_dir: Path | None = None) -> RoleClass:
        """The class playing ``role`` for ``type_name``; ``UnknownConnector`` if none.

        ``pipe_dir``: the folder of the pipe file, searched first for a ``module:Class``.
        """
        if ":" in type_name:
            obj = _import_object(type_name, pipe_dir)
            if isinstance(obj, Connector):
                return _role_of(obj, role, type_name)
            base = _BASES[role]
            if (
                isinstance(obj, type)
                and issubclass(obj, Source | Target | Enricher)
                and issubclass(obj, base)
            ):
                return obj
            raise UnknownConnector(
                f"{type_name!r} is not a {role} (a subclass of pipes.connector.{base.__name__})"
            )
        return _role_of(self.connector(type_name), role, type_name)


def _role_of(connector: Connector, role: Role, type_name: str) -> RoleClass:
    cls: RoleClass | None = getattr(connector, role)
    if cls is None:
        offers = ", ".join(connector.roles) or "nothing"
        raise UnknownConnector(f"connector {type_name!r} cannot be used as a {role} (it offers: {offers})")
    return cls


def _import_object(spec: str, pipe_dir: Path | None) -> object:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UnknownConnector(f"invalid type {spec!r}: use package.module:Name")
    try:
        return import_object(spec, pipe_dir)
    except ImportFailed as exc:
        raise UnknownConnector(f"cannot import {spec!r}: {exc}") from exc
