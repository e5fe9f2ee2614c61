"""The shape of the code, checked: modules of at most 400 lines, functions of at most 80, every module
with a docstring, and no import cycle between Scrawl's modules (imports inside functions count too:
a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "scrawl"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The scrawl modules `name` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [f"{target}.{a.name}" for a in node.names] + [target]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for c in candidates:
            if c in MODULES and c != name:
                found.add(c)
                break
    return found


def test_modules_are_small_and_documented():
    long = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert not {n: k for n, k in long.items() if k > MAX_MODULE_LINES}, "modules over 400 lines"
    undocumented = [n for n, p in MODULES.items() if p.stat().st_size and ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not undocumented, f"modules without a docstring: {undocumented}"


def test_functions_fit_on_a_screen():
    too_long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert not too_long, too_long


def test_no_import_cycles():
    graph = {n: _imports(n, p) for n, p in MODULES.items()}
    # A package's __init__ re-exporting its own modules is not a cycle in the architecture's sense;
    # a module importing its package's __init__ back is, so only edges from a package to its own
    # submodules are left out.
    for n in graph:
        graph[n] = {m for m in graph[n] if not (MODULES[n].name == "__init__.py" and m.startswith(n + "."))}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            cycle = visit(n)
            assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("package", ["data", "vision", "models", "tasks", "training", "evaluation", "runtime", "web"])
def test_packages_by_concern_exist(package):
    assert (SRC / package / "__init__.py").is_file()
