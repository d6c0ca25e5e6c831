"""`robustprune schema [search|trial|study]`: the JSON Schema of a config file, from its
pydantic model, for editors to complete and check keys (the copies kept in `schema/` are
what the shipped configs' `# yaml-language-server: $schema=` lines point at)."""
from __future__ import annotations

import json

KINDS = ("search", "trial", "study")


def config_model(kind: str):
    """The pydantic model that validates a config of this kind."""
    if kind == "search":
        from ..config import SearchConfig
        return SearchConfig
    if kind == "trial":
        from trainables.config import TrialConfig
        return TrialConfig
    from ..driver.study.config import StudyConfig
    return StudyConfig


def _generator():
    from pydantic.json_schema import GenerateJsonSchema

    class WithFactoryDefaults(GenerateJsonSchema):
        """Defaults made by a factory (lists, mappings) shown as values, as the others are."""

        def default_schema(self, schema):
            if "default_factory" in schema and not schema.get("default_factory_takes_data"):
                schema = {k: v for k, v in schema.items() if k != "default_factory"} | {
                    "default": schema["default_factory"]()}
            return super().default_schema(schema)

    return WithFactoryDefaults


def schema_text(kind: str) -> str:
    """The schema as the kept files hold it: indented JSON, one trailing newline."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              **config_model(kind).model_json_schema(mode="validation", schema_generator=_generator())}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def cmd_schema(args) -> int:
    print(schema_text(args.kind), end="")
    return 0


def add_schema_parser(sub) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of a config file (search, trial or study)")
    p.add_argument("kind", nargs="?", default="search", choices=KINDS,
                   help="which config: a search (run), a trial (trial --config) or a study (default: search)")
    p.set_defaults(func=cmd_schema)
