"""The documentation's reference, made from the code at build time (docs/hooks.py) so that it
cannot drift: every config key from the pydantic models' JSON Schema (type, default, bounds,
allowed values, description), and every command's help from the argument parser."""
from __future__ import annotations

import json
import os

from .schema import schema_text

CELL_LIMIT = 80  # characters of a section's default shown in a cell; a longer one has its own table


def _resolved(prop: dict, defs: dict) -> dict:
    """A property with its `$ref` (or the one `$ref` of an optional value) followed."""
    refs = [p["$ref"] for p in prop.get("anyOf", []) if "$ref" in p] + ([prop["$ref"]] if "$ref" in prop else [])
    if len(refs) == 1:
        return {**defs[refs[0].rsplit("/", 1)[1]], **{k: v for k, v in prop.items() if k not in ("$ref", "anyOf")}}
    return prop


def _type(prop: dict) -> str:
    if "$ref" in prop:
        return "mapping"
    if "anyOf" in prop:
        return " or ".join(dict.fromkeys(_type(p) for p in prop["anyOf"]))
    if "enum" in prop or "const" in prop:
        return "string" if prop.get("type", "string") == "string" else prop["type"]
    kind = prop.get("type", "object" if "properties" in prop else "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object" and "additionalProperties" in prop and isinstance(prop["additionalProperties"], dict):
        return f"mapping to {_type(prop['additionalProperties'])}"
    return {"null": "null", "object": "mapping"}.get(kind, kind)


def _allowed(prop: dict) -> str:
    """Bounds and allowed values, as a reader writes them."""
    parts = []
    for option in prop.get("anyOf", []) + [prop, prop.get("items", {})]:
        if "enum" in option:
            parts.append("one of " + ", ".join(f"`{v}`" for v in option["enum"]))
        for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                          ("exclusiveMaximum", "<"), ("minItems", "items >="), ("minLength", "length >=")):
            if key in option:
                parts.append(f"{sign} {option[key]}")
        if "pattern" in option:
            parts.append(f"matches `{option['pattern']}`")
    return "; ".join(dict.fromkeys(parts))


def _default(prop: dict, required: bool) -> str:
    if required:
        return "required"
    if "default" not in prop:
        return "computed (see what it does)"
    text = json.dumps(prop["default"])
    nested = isinstance(prop["default"], dict) and len(text) > CELL_LIMIT  # its own table follows
    return "see its table" if nested else f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference(kind: str) -> str:
    """One table per section of a config kind (nested sections follow their parent)."""
    schema = json.loads(schema_text(kind))
    defs = schema["$defs"]
    out: list[str] = []

    def section(path: str, model: dict) -> None:
        rows, nested, required = [], [], set(model.get("required", []))
        for key, raw in model.get("properties", {}).items():
            prop = _resolved(raw, defs)
            items = _resolved(prop.get("items", {}), defs) if prop.get("type") == "array" else {}
            rows.append(f"| `{key}` | {_cell(_type(raw))} | {_cell(_default(raw, key in required))} "
                        f"| {_cell(_allowed(prop))} | {_cell(prop.get('description', ''))} |")
            where = f"{path}.{key}" if path else key
            if "properties" in prop:
                nested.append((where, prop))
            elif "properties" in items:  # a list of mappings (attacks): one item's keys
                nested.append((f"{where}[]", items))
        title = f"`{path}`" if path else f"The {kind} config"
        about = _cell(model.get("description", "")).strip()
        out.extend([f"### {title}", "", *([about, ""] if about else []),
                    "| key | type | default | allowed | what it does |", "|---|---|---|---|---|", *rows, ""])
        for child_path, child in nested:
            section(child_path, child)

    section("", schema)
    return "\n".join(out)


def cli_reference() -> str:
    """`robustprune --help` and each command's, as the parser prints them (80 columns)."""
    from .cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"
    try:
        parser = build_parser()
        commands = parser._subparsers._group_actions[0].choices
        blocks = [("robustprune", parser.format_help())]
        blocks += [(f"robustprune {name}", command.format_help()) for name, command in commands.items()]
    finally:
        if previous is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(f"### `{name}`\n\n```text\n{text.rstrip()}\n```\n" for name, text in blocks)
