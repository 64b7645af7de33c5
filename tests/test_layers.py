"""The layout's dependency rules (STYLE.md): routes -> services -> (clinical, models).

The rules of CLINICAL.md live in api/clinical/ as pure functions: no database, no web
framework, no use-case code. Routes stay thin and never import one another; services never
import the web layer.
"""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORK = ("fastapi", "starlette", "uvicorn")
DATABASE = ("sqlalchemy", "sqlmodel", "psycopg", "sqlite3", "alembic")
WEB_LAYER = ("api.routes", "api.deps", "api.main", "api.handlers", "api.middleware", "api.db")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import statement in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).glob("*.py"))


@pytest.mark.parametrize("path", _modules("api.clinical"), ids=lambda p: p.name)
def test_clinical_rules_import_no_database_framework_or_use_case(path: Path) -> None:
    for module, names in _imports(path):
        assert not _under(module, FRAMEWORK + DATABASE), f"{path.name} imports {module}"
        assert not _under(module, ("api.services", *WEB_LAYER)), f"{path.name} imports {module}"
        if _under(module, ("models",)):
            # Vocabularies and schemas only: a table class would bring the database in.
            imported = importlib.import_module(module)
            tables = [n for n in names if hasattr(getattr(imported, n, None), "__table__")]
            assert not tables, f"{path.name} imports the table classes {tables} from {module}"


@pytest.mark.parametrize("path", _modules("api.services"), ids=lambda p: p.name)
def test_services_do_not_import_the_web_layer(path: Path) -> None:
    for module, _ in _imports(path):
        assert not _under(module, FRAMEWORK + WEB_LAYER), f"{path.name} imports {module}"


@pytest.mark.parametrize("path", _modules("api.routes"), ids=lambda p: p.name)
def test_routes_import_services_not_other_routes(path: Path) -> None:
    for module, _ in _imports(path):
        assert not _under(module, ("api.routes",)), f"{path.name} imports {module}"
        assert not _under(module, DATABASE[2:]), f"{path.name} imports {module}"


def test_the_layout_has_the_modules_these_rules_name() -> None:
    names = {p.stem for p in _modules("api.clinical")}
    assert {"clock", "baseline", "scoring", "schedule", "milestones", "candidacy"} <= names
    assert {"procedure_rules"} <= names
