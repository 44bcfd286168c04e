"""A pipe file as its author wrote it (``${VAR}`` unexpanded), with any plain secret masked.

The console shows a pipe's stages *as written* and the composer edits the file
itself, so both read the file, not the running definition (which holds the
values of the variables, secrets included). A secret written in the file as a
plain value, against the rules (``pipes.console.composer``), is replaced by
``********`` before the text leaves the daemon; so is each item of a list of
secrets, a credential header's value, and a password inside a URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipes.console.forms import CREDENTIAL_HEADERS, secret_paths
from pipes.registry import Registry, Role

__all__ = ["MASK", "Written", "read_written"]

MASK = "********"
_REFERENCE = re.compile(r"^\s*\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}\s*$")
_SOME_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}")
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]*:(?P<password>[^/@\s]+)@", re.I)
_ROLES: dict[str, Role] = {
    "source": "source",
    "target": "target",
    "enrichment": "enricher",
    "dead_letter": "target",
}


@dataclass(frozen=True)
class Written:
    """The file's text (secrets masked) and each pipe in it, as written, by name."""

    text: str
    pipes: dict[str, dict[str, Any]]


def read_written(text: str, registry: Registry | None = None, pipe_dir: Path | None = None) -> Written:
    """``text`` with plain secrets masked, and its pipes as written; ``yaml.YAMLError`` if unreadable."""
    registry = registry or Registry()
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    spans: list[tuple[int, int, str]] = []
    if isinstance(root, yaml.MappingNode):
        items = _child(root, "pipes")
        pipes = items.value if isinstance(items, yaml.SequenceNode) else [root]
        for item in pipes:
            if isinstance(item, yaml.MappingNode):
                spans.extend(_secret_spans(item, text, registry, pipe_dir))
    masked = text
    for start, end, mask in sorted(set(spans), reverse=True):
        masked = masked[:start] + mask + masked[end:]
    value = yaml.safe_load(masked)
    found: dict[str, dict[str, Any]] = {}
    if isinstance(value, dict):
        listed = value.get("pipes")
        for item in listed if isinstance(listed, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                found.setdefault(item["name"], item)
    return Written(masked, found)


def _child(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            found: yaml.Node = value_node
            return found
    return None


def _secret_spans(
    item: yaml.MappingNode, text: str, registry: Registry, pipe_dir: Path | None
) -> Iterator[tuple[int, int, str]]:
    for key, role in _ROLES.items():
        spec = _child(item, key)
        if not isinstance(spec, yaml.MappingNode):
            continue
        type_node = _child(spec, "type")
        if not isinstance(type_node, yaml.ScalarNode):
            continue
        try:
            model = registry.resolve(type_node.value, role, pipe_dir).options_model
        except Exception:
            model = None
        for path in secret_paths(model) if model is not None else []:
            node: yaml.Node | None = spec
            for part in path:
                node = _child(node, part) if isinstance(node, yaml.MappingNode) else None
            values = node.value if isinstance(node, yaml.SequenceNode) else [node]  # a list of secrets
            for value in values:
                if isinstance(value, yaml.ScalarNode) and value.value and not _REFERENCE.match(value.value):
                    # Quoted: a bare * would start a YAML alias.
                    yield value.start_mark.index, value.end_mark.index, f'"{MASK}"'
        headers = _child(spec, "headers")
        for name_node, value_node in headers.value if isinstance(headers, yaml.MappingNode) else []:
            if (
                isinstance(name_node, yaml.ScalarNode)
                and name_node.value.lower() in CREDENTIAL_HEADERS
                and isinstance(value_node, yaml.ScalarNode)
                and value_node.value
                and not _SOME_REFERENCE.search(value_node.value)
            ):
                yield value_node.start_mark.index, value_node.end_mark.index, f'"{MASK}"'
        for _, value_node in spec.value:
            if not isinstance(value_node, yaml.ScalarNode):
                continue
            found = _URL_PASSWORD.match(value_node.value)
            if found is None or _REFERENCE.match(found["password"]):
                continue
            start = text.find(found["password"], value_node.start_mark.index, value_node.end_mark.index)
            if start >= 0:
                yield start, start + len(found["password"]), MASK
