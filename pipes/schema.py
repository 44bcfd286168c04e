"""The JSON schema of a pipe file, for editors: what ``pipes schema`` prints.

It is built from the same models that validate pipe files, so that it accepts
what ``pipes validate`` accepts:

- one pipe, or ``pipes:`` with a list of pipes;
- durations as seconds or as text (``500ms``; see ``pipes.units``);
- each connector's own options, chosen by its ``type:`` (the connectors
  installed when the schema is made; a ``package.module:Class`` type takes any
  options, since its class is only known once imported);
- ``${VAR}`` in any value, even where a number, a boolean or a pattern is
  expected, since the value is only known after interpolation.

What only ``pipes validate`` can check stays out: bounds of durations written as
text, patterns, templates and JMESPath expressions, rules across keys, and
the values of environment variables.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from pipes.models import PipeConfig
from pipes.registry import Registry, Role

__all__ = ["pipe_file_schema"]

#: Keys of a pipe that hold a connector, and the role the connector plays there.
CONNECTOR_KEYS: dict[str, Role] = {
    "source": "source",
    "target": "target",
    "enrichment": "enricher",
    "dead_letter": "target",
}
_SPEC: dict[Role, str] = {"source": "SourceSpec", "target": "TargetSpec", "enricher": "EnricherSpec"}
_CLASS_TYPE = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"
_INTERPOLATED = {"$ref": "#/$defs/Interpolated"}
_SCALAR_TYPES = frozenset({"integer", "number", "boolean"})
_STRING_CONSTRAINTS = frozenset({"pattern", "enum", "const", "minLength", "maxLength", "format"})


def pipe_file_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of a pipe file, with the installed connectors' options."""
    registry = registry or Registry()
    uses = _connector_uses(registry)
    models: list[type[BaseModel]] = [PipeConfig, *{model for _, _, model in uses}]
    refs, top = models_json_schema([(model, "validation") for model in models])
    defs: dict[str, Any] = top["$defs"]
    pipe_def = refs[(PipeConfig, "validation")]["$ref"].rsplit("/", 1)[-1]

    by_role: dict[Role, list[tuple[str, str]]] = {"source": [], "target": [], "enricher": []}
    for name, role, model in uses:
        options_def = refs[(model, "validation")]["$ref"].rsplit("/", 1)[-1]
        use_def = f"{name}.{role}"
        defs[use_def] = _connector_use(name, role, model, defs[options_def])
        by_role[role].append((name, use_def))
    for role in by_role:
        defs[_SPEC[role]] = _connector_spec(role, by_role[role], defs.get("ConnectorSpec", {}))
    pipe = defs[pipe_def]
    for key, role in CONNECTOR_KEYS.items():
        spec_ref = {"$ref": f"#/$defs/{_SPEC[role]}"}
        prop = pipe["properties"][key]
        if "anyOf" in prop:  # optional: the spec or null
            prop["anyOf"] = [spec_ref if "$ref" in option else option for option in prop["anyOf"]]
        else:
            pipe["properties"][key] = {**{k: v for k, v in prop.items() if k != "$ref"}, **spec_ref}
    defs.pop("ConnectorSpec", None)
    defs["PipeList"] = {
        "type": "object",
        "description": "Several pipes in one file.",
        "properties": {"pipes": {"type": "array", "items": {"$ref": f"#/$defs/{pipe_def}"}}},
        "required": ["pipes"],
        "additionalProperties": False,
    }
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pipes pipe file",
        "description": "One pipe, or `pipes:` with a list of pipes (docs/pipe-format.md).",
        "if": {"type": "object", "required": ["pipes"]},
        "then": {"$ref": "#/$defs/PipeList"},
        "else": {"$ref": f"#/$defs/{pipe_def}"},
        "$defs": {name: _allow_interpolation(value) for name, value in defs.items()},
    }
    schema["$defs"]["Interpolated"] = {
        "type": "string",
        "pattern": r"\$\{",
        "description": "A value with ${VAR} in it, known only after interpolation.",
    }
    return schema


def _connector_uses(registry: Registry) -> list[tuple[str, Role, type[BaseModel]]]:
    """(connector name, role, options model) for every installed connector that loads."""
    uses: list[tuple[str, Role, type[BaseModel]]] = []
    for row in registry.listing():
        if row.connector is None:
            continue  # a broken plug-in: `pipes connectors` shows why
        roles: tuple[Role, ...] = ("source", "target", "enricher")
        for role in roles:
            cls = getattr(row.connector, role)
            if cls is not None:
                uses.append((row.name, role, cls.options_model))
    return uses


def _connector_use(name: str, role: Role, model: type[BaseModel], options: dict[str, Any]) -> dict[str, Any]:
    """The options of one connector in one role, with its ``type:`` (and ``into:`` for an enricher)."""
    use = copy.deepcopy(options)
    properties = use.setdefault("properties", {})
    properties["type"] = {"const": name}
    if role == "enricher" and "into" not in model.model_fields:
        properties["into"] = {
            "type": "string",
            "description": "Merge the result under this key instead of replacing the record.",
        }
    use["title"] = f"{name} ({role})"
    use["additionalProperties"] = False
    return use


def _connector_spec(role: Role, uses: list[tuple[str, str]], base: dict[str, Any]) -> dict[str, Any]:
    names = sorted(name for name, _ in uses)
    return {
        "type": "object",
        "description": f"A {role}: `type:` and that connector's options.",
        "properties": {
            "type": {
                "description": base.get("properties", {}).get("type", {}).get("description", ""),
                "anyOf": [{"enum": names}, {"type": "string", "pattern": _CLASS_TYPE}],
            }
        },
        "required": ["type"],
        "allOf": [
            {
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": {"$ref": f"#/$defs/{use_def}"},
            }
            for name, use_def in uses
        ],
    }


def _allow_interpolation(node: Any) -> Any:
    """The schema with ``${VAR}`` text allowed wherever plain text would be refused."""
    if isinstance(node, list):
        return [_allow_interpolation(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: _allow_interpolation(sub) for name, sub in value.items()}
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            out[key] = [_allow_interpolation(sub) for sub in value]
        elif key in ("items", "additionalProperties", "then", "else", "not", "contains"):
            out[key] = _allow_interpolation(value)
        else:
            out[key] = value  # keywords, and `if` conditions, which must match as written
    if "anyOf" in out and any(_refuses_text(option) for option in out["anyOf"]):
        out["anyOf"] = [*out["anyOf"], _INTERPOLATED]
    elif _refuses_text(out):
        meta: dict[str, Any] = {k: out.pop(k) for k in ("title", "description", "default") if k in out}
        out = {**meta, "anyOf": [out, _INTERPOLATED]}
    return out


def _refuses_text(node: Any) -> bool:
    """A scalar schema that ``${VAR}`` text (a string) would not pass."""
    if not isinstance(node, dict) or "anyOf" in node or "$ref" in node:
        return False
    kind = node.get("type")
    if kind in _SCALAR_TYPES:
        return True
    return (kind == "string" or kind is None) and bool(_STRING_CONSTRAINTS & node.keys())
