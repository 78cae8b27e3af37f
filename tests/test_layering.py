"""Dependencies point one way (STYLE.md): ``campaigns`` → ``segmentation`` → ``members``.

A static walk of every module's imports (``import x``, ``from x import y``, at any depth — also
inside functions): no module under ``members/`` or ``segmentation/`` imports ``campaigns``, and no
module under ``members/`` imports ``segmentation``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "members": ("campaigns", "segmentation"),
    "segmentation": ("campaigns",),
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
