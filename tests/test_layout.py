"""The packages of `search/` import downwards only: commands → driver → tracking → front →
config, and `trainables` imports none of them (a trial runs without the driver)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEVELS = {"config": 0, "front": 1, "tracking": 2, "driver": 3, "commands": 4}


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in the file, the lazy ones too."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            out += [(node.lineno, f"{name}.{alias.name}" if not node.module else name) for alias in node.names]
    return out


def _level(dotted: str) -> int | None:
    parts = dotted.split(".")
    return LEVELS.get(parts[1]) if parts[0] == "search" and len(parts) > 1 else None


def test_a_search_module_imports_only_its_own_package_and_those_below():
    upward = []
    for path in sorted((ROOT / "search").rglob("*.py")):
        own = _level(".".join(path.relative_to(ROOT).with_suffix("").parts))
        upward += [f"{path.relative_to(ROOT)}:{line} imports {name}" for line, name in _imported_modules(path)
                   if own is not None and (_level(name) or 0) > own]
    assert not upward, f"imports from a higher package: {upward}"


def test_search_has_no_module_at_its_top_but_config():
    assert sorted(p.name for p in (ROOT / "search").glob("*.py")) == ["__init__.py", "config.py"]
    assert set(LEVELS) - {"config"} == {p.name for p in (ROOT / "search").iterdir()
                                         if p.is_dir() and p.name != "__pycache__"}


def test_trainables_never_imports_the_driver_side():
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in sorted((ROOT / "trainables").rglob("*.py"))
           for line, name in _imported_modules(path) if name.split(".")[0] in ("search", "ray", "optuna", "mlflow")]
    assert not bad, f"trainables reaches the driver side: {bad}"
