"""A connector's options model as form fields, so that any connector gets a form for free.

The composer draws a form per connector from this, never from code written
for one connector: the fields come from the JSON schema pydantic makes of the
connector's ``options_model`` (what ``pipes schema`` publishes too). Each
field says how the form shows it and how its text goes back into YAML:

- ``text``, ``integer``, ``number``, ``boolean``, ``enum`` (with ``choices``);
- ``list``: a list of texts, typed comma-separated;
- ``secret``: a password, token or key (the schema says ``format: password``
  or ``writeOnly``): the form asks for the *name of an environment variable*
  and writes ``${NAME}``, never a value;
- ``secrets``: a list of such values (webhook tokens or signing secrets, several
  while rotating): one ``${NAME}`` per item;
- ``group``: a nested options model (``fields`` inside);
- ``yaml``: anything else (a mapping, a union of shapes), typed as YAML.

``advanced`` fields (those with a default) are folded away under "more options".
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["CREDENTIAL_HEADERS", "SECRET_FORMATS", "form_fields", "is_secret", "secret_paths"]

SECRET_FORMATS = frozenset({"password"})
#: Header names (lower case) whose values are credentials: under a ``headers`` option they are
#: secrets too, so a token typed there is written as ``${VAR}`` like a password option.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)
_SCALARS = {"string": "text", "integer": "integer", "number": "number", "boolean": "boolean"}


def form_fields(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The fields of ``model``'s options, in the model's order."""
    schema = model.model_json_schema()
    return _fields(schema, schema.get("$defs", {}))


def secret_paths(model: type[BaseModel]) -> list[tuple[str, ...]]:
    """Paths (inside a connector's options) of the values that are secrets (or lists of secrets)."""
    out: list[tuple[str, ...]] = []

    def walk(fields: list[dict[str, Any]], prefix: tuple[str, ...]) -> None:
        for field in fields:
            path = (*prefix, field["name"])
            if field["kind"] in ("secret", "secrets"):
                out.append(path)
            elif field["kind"] == "group":
                walk(field["fields"], path)

    walk(form_fields(model), ())
    return out


def is_secret(schema: dict[str, Any]) -> bool:
    """Whether a property's schema (or one of its alternatives) marks a secret."""
    options = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
    return any(o.get("format") in SECRET_FORMATS or o.get("writeOnly") is True for o in options)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        merged = {**defs.get(ref.rsplit("/", 1)[-1], {}), **{k: v for k, v in schema.items() if k != "$ref"}}
        return merged
    return schema


def _fields(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        field = _field(name, prop, defs)
        field["required"] = name in required
        field["advanced"] = name not in required and "default" in prop
        fields.append(field)
    return fields


def _field(name: str, prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    field: dict[str, Any] = {
        "name": name,
        "title": prop.get("title") or name.replace("_", " ").capitalize(),
        "description": prop.get("description", ""),
    }
    if "default" in prop:
        field["default"] = prop["default"]
    options = [_resolve(o, defs) for o in prop.get("anyOf", [])] or [_resolve(prop, defs)]
    nullable = any(o.get("type") == "null" for o in options)
    shapes = [o for o in options if o.get("type") != "null"]
    field["nullable"] = nullable
    if is_secret(prop) or any(is_secret(o) for o in shapes):
        field["kind"] = "secret"
        return field
    if any(o.get("type") == "array" and is_secret(o.get("items", {})) for o in shapes):
        field["kind"] = "secrets"
        return field
    if len(shapes) == 2 and _is_duration(shapes):
        field["kind"] = "text"
        field["hint"] = "a duration: 500ms, 2s, 1m, or seconds"
        return field
    if len(shapes) == 2 and {_kind(s) for s in shapes} == {"text", "list"}:
        field["kind"] = "list"  # text or a list of texts (Kafka's bootstrap_servers): a list does both
        return field
    if len(shapes) != 1:
        field["kind"] = "yaml"
        return field
    shape = shapes[0]
    kind = _kind(shape)
    field["kind"] = kind
    if kind == "enum":
        field["choices"] = shape["enum"]
    elif kind == "group":
        field["fields"] = _fields(shape, defs)
    return field


def _kind(shape: dict[str, Any]) -> str:
    if "enum" in shape:
        return "enum"
    kind = shape.get("type")
    if kind == "array" and shape.get("items", {}).get("type") in ("string", "integer", "number"):
        return "list"
    if kind == "object" and shape.get("properties"):
        return "group"
    return _SCALARS.get(str(kind), "yaml")


def _is_duration(shapes: list[dict[str, Any]]) -> bool:
    types = {s.get("type") for s in shapes}
    return types == {"number", "string"} and any("duration" in s.get("description", "") for s in shapes)
