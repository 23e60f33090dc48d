"""Turn a pydantic JSON schema into a Kubernetes *structural* OpenAPI v3 schema.

A CRD schema must be structural: no ``$ref``, every node typed, no ``additionalProperties``
next to ``properties``, and ``anyOf`` only for value validation (or int-or-string).
Pydantic emits references, titles, ``additionalProperties: false`` for forbidden extras
and ``anyOf [X, null]`` for optional fields; this module rewrites those.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]

_DROPPED_KEYS = frozenset({"title", "$defs"})


def structural_schema(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI schema of ``model`` (camelCase field names)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}))


def _convert(node: Schema, defs: dict[str, Schema]) -> Schema:
    node = _resolve(node, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        node = _drop_null_branch(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _convert(value, defs)
        elif key == "additionalProperties" and "properties" in node:
            continue  # extra="forbid": pruning drops unknown fields instead
        elif key == "default" and value is None:
            continue
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" in out:
        _default_empty_objects(out)
    return out


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline a ``$ref``, keeping the siblings (description, default) of the reference."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    merged = {**_resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
    return merged


def _drop_null_branch(node: Schema, defs: dict[str, Schema]) -> Schema:
    branches = [b for b in node["anyOf"] if b.get("type") != "null"]
    if len(branches) != 1:
        raise ValueError(f"cannot express anyOf {node['anyOf']!r} in a structural schema")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**_resolve(branches[0], defs), **rest}


def _default_empty_objects(obj: Schema) -> None:
    """Default optional sub-objects to ``{}`` so the API server fills in their defaults."""
    required = set(obj.get("required", ()))
    for name, sub in obj["properties"].items():
        if name in required or "default" in sub:
            continue
        if sub.get("type") == "object" and "properties" in sub and not sub.get("required"):
            sub["default"] = {}
