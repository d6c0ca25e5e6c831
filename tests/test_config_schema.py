"""The config schemas for editors: the files kept in schema/ are what `robustprune schema`
prints (so they cannot drift from the pydantic models), every shipped config points at
the right one and validates against it with a JSON Schema validator, and the schema
catches what the models refuse (an unknown key, a value out of bounds)."""
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from search.commands.cli import main
from search.commands.schema import KINDS, schema_text

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("kind", KINDS)
def test_the_kept_schema_is_what_the_command_prints(kind, capsys):
    assert main(["schema", kind]) == 0
    printed = capsys.readouterr().out
    assert printed == schema_text(kind)
    kept = ROOT / "schema" / f"{kind}.schema.json"
    assert kept.read_text() == printed, f"regenerate with: robustprune schema {kind} > schema/{kind}.schema.json"
    jsonschema.Draft202012Validator.check_schema(json.loads(printed))


def _schema_of(config: Path) -> tuple[str, dict]:
    first = config.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=../schema/"), config.name
    kept = (config.parent / first.split("$schema=", 1)[1]).resolve()
    return kept.name.split(".")[0], json.loads(kept.read_text())


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_points_at_its_schema_and_validates(config):
    kind, schema = _schema_of(config)
    doc = yaml.safe_load(config.read_text())
    assert kind == ("study" if "study" in doc else "search")  # the models' own check: test_search_config.py
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc)) == []  # and so does the schema


@pytest.mark.parametrize("change, where", [
    ({"serch": {"num_samples": 4}}, "serch"),  # a misspelled section
    ({"search": {"num_sampels": 4}}, "num_sampels"),  # a misspelled key
    ({"search": {"max_concurrent": 0}}, "max_concurrent"),  # out of bounds
    ({"space": {"granularities": ["channel"]}}, "granularities"),  # not an allowed value
    ({"space": {"ratio": [0.2, 0.5, 0.8]}}, "ratio"),  # a range of three
])
def test_the_schema_refuses_what_the_models_refuse(change, where):
    _, schema = _schema_of(ROOT / "configs" / "quickstart.yaml")
    doc = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    for section, values in change.items():
        doc[section] = {**doc.get(section, {}), **values}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    assert errors and any(where in f"{list(e.absolute_path)} {e.message}" for e in errors), errors


def test_a_wrong_kind_is_one_line(capsys):
    assert main(["schema", "cluster"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("robustprune: error: argument kind: invalid choice: 'cluster'") and "\n" not in error


@pytest.mark.parametrize("kind", KINDS)
def test_every_config_key_is_described(kind):
    """Editors show these descriptions, and the docs' config reference is made from them."""
    schema = json.loads(schema_text(kind))
    undescribed = [f"{name}.{key}" for name, model in [(kind, schema), *schema["$defs"].items()]
                   for key, field in model.get("properties", {}).items() if not field.get("description")]
    assert undescribed == []
