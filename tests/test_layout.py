"""The package's layout rules (#9): no import cycles, models are leaves, studies don't import each other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG_DIR = Path(__file__).resolve().parents[1] / "src" / "groundwords"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, at any depth (function-level imports count too)."""
    modules = {_module_name(p): p for p in PKG_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".")[: None if is_pkg else -1]
                    base = base[: len(base) - node.level + 1]
                    absmod = ".".join(base + ([node.module] if node.module else []))
                else:
                    absmod = node.module or ""
                targets = [absmod] + [f"{absmod}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                if t in modules and t != mod:
                    graph[mod].add(t)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 30
    cycle = _cycle({m: {n for n in deps if not m.startswith(n + ".")} for m, deps in graph.items()})
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("layer,forbidden", [
    ("groundwords.models", ("groundwords.studies", "groundwords.training", "groundwords.data",
                            "groundwords.text", "groundwords.grounding", "groundwords.evaluation")),
    ("groundwords.training", ("groundwords.studies", "groundwords.models")),
    ("groundwords.checkpoints", ("groundwords.studies", "groundwords.models", "groundwords.training")),
    ("groundwords.evaluation", ("groundwords.studies", "groundwords.training")),
    ("groundwords.data", ("groundwords.studies", "groundwords.training", "groundwords.models")),
])
def test_lower_layers_do_not_import_upper_ones(layer, forbidden):
    bad = [(m, d) for m, deps in import_graph().items() if m == layer or m.startswith(layer + ".")
           for d in deps if any(d == f or d.startswith(f + ".") for f in forbidden)]
    # the planted-data generator runs whole stages on purpose (it is test data, not a stage input)
    bad = [(m, d) for m, d in bad if m != "groundwords.data.planted"]
    assert not bad, bad


def test_studies_do_not_import_each_other():
    studies = ("wield", "iesg", "pixie")
    bad = []
    for m, deps in import_graph().items():
        for s in studies:
            if m.startswith(f"groundwords.studies.{s}."):
                bad += [(m, d) for d in deps for o in studies
                        if o != s and d.startswith(f"groundwords.studies.{o}")]
    assert not bad, bad


def test_every_package_import_resolves():
    """Imports of groundwords modules, at any depth (function-level ones too), name modules that exist."""
    modules = {_module_name(p) for p in PKG_DIR.rglob("*.py")}
    bad = []
    for path in PKG_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("groundwords"):
                if node.module not in modules:
                    bad.append((_module_name(path), node.module))
            elif isinstance(node, ast.Import):
                bad += [(_module_name(path), a.name) for a in node.names
                        if a.name.startswith("groundwords") and a.name not in modules]
    assert not bad, bad


def test_readme_code_map_names_every_module():
    """The README's "Map of the code" names every module of src/groundwords (the ``data.fetch``
    package as one: the package's docstring maps its modules)."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Map of the code", 1)[1].split("\n## ", 1)[0]
    named = {n.removesuffix(".py").rstrip("/").rsplit("/", 1)[-1] for n in re.findall(r"`([^`]+)`", section)}
    missing = []
    for path in sorted((root / "src" / "groundwords").rglob("*.py")):
        rel = path.relative_to(root / "src" / "groundwords")
        unit = rel.parts[1] if rel.parts[:2] == ("data", "fetch") else path.stem
        if path.stem not in ("__init__", "__main__") and unit not in named:
            missing.append(str(rel))
    assert not missing, f"modules missing from the README's map of the code: {missing}"
