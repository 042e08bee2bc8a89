"""The pipeline package imports neither Django nor the rest of the project."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "routing" / "pipeline"


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
            "import_module",
            "__import__",
        ):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.append(arg.value)
    return found


def _forbidden(module: str) -> bool:
    top = module.split(".")[0]
    if top == "django":
        return True
    return module.startswith("routing") and not (
        module == "routing.pipeline" or module.startswith("routing.pipeline.")
    )


def test_the_package_has_python_files_to_check() -> None:
    assert len(list(PACKAGE.rglob("*.py"))) >= 10


def test_no_module_in_the_pipeline_imports_django_or_the_rest_of_the_project() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for module in _imported_modules(path)
        if _forbidden(module)
    ]
    assert offenders == []


def test_the_import_check_itself_catches_django_imports() -> None:
    assert _forbidden("django.db")
    assert _forbidden("routing.models")
    assert not _forbidden("routing.pipeline.types")
