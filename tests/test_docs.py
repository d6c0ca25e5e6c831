"""The documentation site: it builds in strict mode (a broken link, page or anchor fails, as
a planted one shows), its generated reference holds every config key and command, every
YAML config snippet in the docs and the README validates against the config schema (and the
registries), and every `robustprune ...` line in their code blocks parses with the real
argument parser. A renamed key or flag breaks this test, not a reader."""
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from search.commands.cli import UsageError, build_parser
from search.commands.reference import cli_reference, config_reference

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _build(config: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=config.parent,
                          env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})


def test_the_site_builds_strict_and_a_broken_link_fails_it(tmp_path):
    built = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stderr[-3000:]
    config_page = (tmp_path / "site" / "reference" / "config" / "index.html").read_text()
    assert "wait_timeout_s" in config_page and "<!-- generated" not in config_page
    # The site's own settings on two pages, one with a broken anchor (the whole site takes seconds more)
    settings = {**yaml.safe_load((ROOT / "mkdocs.yml").read_text()), "nav": ["index.md", "resume.md"]}
    del settings["hooks"]
    copy = tmp_path / "copy"
    (copy / "docs").mkdir(parents=True)
    (copy / "mkdocs.yml").write_text(yaml.safe_dump(settings))
    (copy / "docs" / "index.md").write_text("# Home\n\n## Faults\n\n[resume](resume.md)\n")
    (copy / "docs" / "resume.md").write_text("# Resume\n\n[gone](index.md#no-such-part)\n")
    broken = _build(copy / "mkdocs.yml", tmp_path / "broken")
    assert broken.returncode != 0 and "no-such-part" in broken.stderr
    (copy / "docs" / "resume.md").write_text("# Resume\n\n[there](index.md#faults)\n")
    assert _build(copy / "mkdocs.yml", tmp_path / "fixed").returncode == 0  # the anchor alone failed it


def test_the_reference_holds_every_config_key_and_every_command():
    schema = json.loads((ROOT / "schema" / "search.schema.json").read_text())
    reference = config_reference("search")
    for model in [schema, *schema["$defs"].values()]:
        for key in model.get("properties", {}):
            assert f"| `{key}` |" in reference, key
    commands = cli_reference()
    for name in build_parser()._subparsers._group_actions[0].choices:
        assert f"### `robustprune {name}`" in commands


def _blocks(kinds: tuple[str, ...]):
    for page in PAGES:
        for kind, body in BLOCK.findall(page.read_text()):
            if kind in kinds:
                yield page.relative_to(ROOT), body


def _config_kind(doc: dict) -> str | None:
    if not isinstance(doc, dict):
        return None
    if "study" in doc:
        return "study"
    sections = {"experiment", "data", "model", "baseline", "space", "attacks", "evaluation", "search", "latency",
                "resources", "failures"}
    return "search" if set(doc) <= sections else None


def test_every_yaml_config_in_the_docs_is_valid():
    from trainables.attacks import ATTACKS
    from trainables.prune import FILTER_CRITERIA, LAYER_CRITERIA

    checked = 0
    for page, body in _blocks(("yaml",)):
        doc = yaml.safe_load(body)
        kind = _config_kind(doc)
        if kind is None:
            continue
        schema = json.loads((ROOT / "schema" / f"{kind}.schema.json").read_text())
        validator = jsonschema.Draft202012Validator(schema)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], (str(page), errors)
        criteria = (doc.get("space") or doc.get("study") or {}).get("criteria", [])
        assert set(criteria) <= set(FILTER_CRITERIA) | set(LAYER_CRITERIA), (str(page), criteria)
        assert {a["name"] for a in doc.get("attacks", [])} <= set(ATTACKS), str(page)
        checked += 1
    assert checked >= 3  # the snippets are there to be checked


def _command_lines(body: str):
    for line in body.replace("\\\n", " ").splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith("robustprune "):
            yield line


def test_every_command_line_in_the_docs_parses():
    parser = build_parser()
    lines = [(page, line) for page, body in _blocks(("bash", "sh", "console", "")) for line in _command_lines(body)]
    assert len(lines) >= 5
    for page, line in lines:
        try:
            args = parser.parse_args(shlex.split(line)[1:])
        except UsageError as e:
            pytest.fail(f"{page}: `{line}`: {e}")
        for setting in getattr(args, "set", None) or []:  # --set KEY=VALUE names a real key
            kind = "study" if args.command == "study" else "search"
            assert _has_key(kind, setting.split("=", 1)[0]), f"{page}: `{line}`: no key {setting}"


def _has_key(kind: str, dotted: str) -> bool:
    schema = json.loads((ROOT / "schema" / f"{kind}.schema.json").read_text())
    model = schema
    for key in dotted.split("."):
        prop = model.get("properties", {}).get(key)
        if prop is None:
            return False
        refs = [p["$ref"] for p in prop.get("anyOf", []) if "$ref" in p] + [prop.get("$ref")]
        ref = next((r for r in refs if r), None)
        model = schema["$defs"][ref.rsplit("/", 1)[1]] if ref else prop
    return True
