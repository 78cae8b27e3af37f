"""The shape of the code (STYLE.md), checked statically over every module's imports.

- Dependencies point one way: ``audit`` → ``workspace`` → ``campaigns`` → ``segmentation`` →
  ``members`` (``audit`` only reads the others' models; nothing imports it). No
  module under ``members/`` imports ``segmentation``, ``campaigns`` or ``workspace``; none under
  ``segmentation/`` imports ``campaigns`` or ``workspace``; none under ``campaigns/`` imports
  ``workspace`` — at any depth, also inside functions.
- No import cycle between any two modules of the project's packages (migrations aside), counting
  imports inside functions. ``from pkg import name`` points at ``pkg/name.py`` when that module
  exists, else at ``pkg/__init__.py`` — so a module importing its own package's ``__init__``,
  which imports it back, is a cycle too.
- No import of the project's own code inside a function (the way cycles used to be hidden), except
  in an ``AppConfig.ready()``, where Django wants the subscriptions made.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("members", "segmentation", "campaigns", "workspace", "demo", "config", "audit")

# ``audit`` is the highest layer: it names the audited models of the others, which never import it.
FORBIDDEN = {
    "members": ("campaigns", "segmentation", "workspace", "audit"),
    "segmentation": ("campaigns", "workspace", "audit"),
    "campaigns": ("workspace", "audit"),
    "workspace": ("audit",),
    "config": ("audit",),
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(app: str, higher: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / app).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in imported_modules(tree):
            if module.split(".")[0] in higher:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


# --- the module graph ---------------------------------------------------------------------------


def project_modules(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def module_edges(name: str, tree: ast.AST, is_package: bool, modules) -> set[str]:
    base = name if is_package else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{parent}.{node.module}" if node.module else parent
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    edges.add(f"{target}.{alias.name}")
                elif target in modules:
                    edges.add(target)
    edges.discard(name)
    return edges


def module_graph(root: Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    modules = project_modules(root, packages)
    return {
        name: module_edges(name, ast.parse(path.read_text(encoding="utf-8")), path.name == "__init__.py", modules)
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def local_project_imports(tree: ast.AST) -> list[tuple[int, str, str]]:
    """Imports of the project's modules inside a function other than ``ready``."""
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) or function.name == "ready":
            continue
        for line, module in imported_modules(function):
            if module.split(".")[0] in PACKAGES:
                found.append((line, function.name, module))
    return found


# --- tests ------------------------------------------------------------------------------------


def test_the_walk_sees_imports_inside_functions():
    # given: an import hidden in a function body
    tree = ast.parse("def f():\n    from campaigns.models import Coupon\n    import segmentation.models\n")
    # when / then
    assert [module for _line, module in imported_modules(tree)] == ["campaigns.models", "segmentation.models"]


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_a_lower_app_never_imports_a_higher_one(app):
    # given
    assert (ROOT / app / "__init__.py").exists()
    # when
    found = violations(app, FORBIDDEN[app])
    # then
    assert found == [], "\n".join(found)


def test_the_cycle_finder_finds_a_cycle_through_a_function_local_import(tmp_path):
    # given: a → b at the top, b → c, and c → a inside a function; d stands apart
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("import pkg.c\n")
    (package / "c.py").write_text("def late():\n    from pkg.a import thing\n")
    (package / "d.py").write_text("from pkg import a\n")
    # when
    found = cycles(module_graph(tmp_path, ("pkg",)))
    # then
    assert found == [["pkg.a", "pkg.b", "pkg.c"]]


def test_no_module_of_the_project_is_in_an_import_cycle():
    # when
    found = cycles(module_graph())
    # then
    assert found == [], "\n".join(" <-> ".join(component) for component in found)


def test_the_projects_code_is_imported_at_the_top_of_modules():
    # given every module of the project (AppConfig.ready() may subscribe late, as Django wants)
    found = []
    for name, path in project_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [
            f"{name}:{line} {function}() imports {module}" for line, function, module in local_project_imports(tree)
        ]
    # then
    assert found == [], "\n".join(found)
