"""The contracts every service and selector module keeps: each public
function says in its docstring what it takes and returns, and every refusal
a service raises is the one refusal type, with no HTTP status in it."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from clinic.refusals import RefusedError

ROOT = Path(__file__).resolve().parent.parent
APPS = ("clinic", "patients", "consent", "treatments")


def _layer_files() -> list[Path]:
    found: set[Path] = set()
    for app in APPS:
        base = ROOT / app
        for name in ("services", "selectors"):
            found.update(base.glob(f"{name}.py"))
            found.update(p for p in (base / name).rglob("*.py") if (base / name).is_dir())
    return sorted(found)


LAYER_FILES = _layer_files()


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_service_and_selector_modules_are_found() -> None:
    names = {_module_name(p) for p in LAYER_FILES}
    assert {"patients.services", "consent.selectors", "treatments.services.booking"} <= names


@pytest.mark.parametrize("path", LAYER_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_public_service_and_selector_has_a_docstring(path: Path) -> None:
    tree = ast.parse(path.read_text())
    undocumented = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and not node.name.startswith("_")
        and not ast.get_docstring(node)
    ]
    assert undocumented == []


def _view_files() -> list[Path]:
    found: set[Path] = set()
    for app in APPS:
        base = ROOT / app
        found.update(base.glob("views.py"))
        if (base / "views").is_dir():
            found.update((base / "views").rglob("*.py"))
    return sorted(found)


def _caught_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler)):
        caught = handler.type
        parts = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        for part in parts:
            if isinstance(part, ast.Name):
                names.add(part.id)
            elif isinstance(part, ast.Attribute):
                names.add(ast.unparse(part))
    return names


def test_every_service_error_a_view_answers_is_the_one_refusal_type() -> None:
    """What a view catches from a service is a RefusedError, with a sentence,
    a field, a code and a kind; errors that stay inside a service (a message
    that could not be delivered, say) are the service's own business."""
    checked, other = [], []
    for path in _view_files():
        module = importlib.import_module(_module_name(path))
        for name in _caught_names(ast.parse(path.read_text())):
            value: object = module
            for part in name.split("."):
                value = getattr(value, part, None)
            if not (inspect.isclass(value) and issubclass(value, Exception)):
                continue
            if ".services" not in value.__module__ and not value.__module__.endswith("services"):
                continue
            checked.append(value.__name__)
            if not issubclass(value, RefusedError):
                other.append(f"{path.relative_to(ROOT)}: {value.__module__}.{value.__name__}")
    assert "BookingRefusedError" in checked
    assert other == []


@pytest.mark.parametrize("path", LAYER_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_service_chooses_an_http_status(path: Path) -> None:
    tree = ast.parse(path.read_text())
    statuses = [
        f"line {node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword)
        and node.arg == "status"
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, int)
    ]
    imports_http = [
        f"line {node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module in {"django.http", "django.http.response"}
        and any(a.name.startswith("HttpResponse") for a in node.names)
    ]
    assert statuses + imports_http == []


PRODUCT_FILES = sorted(
    p
    for app in APPS
    for p in (ROOT / app).rglob("*.py")
    if "migrations" not in p.parts and p != ROOT / "clinic" / "localtime.py"
)


def test_one_way_to_build_local_times() -> None:
    """Local dates and times become instants in clinic/localtime.py only: not
    with make_aware, a ZoneInfo of their own or datetime.combine with a zone."""
    found = []
    for path in PRODUCT_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            zoned_combine = name == "combine" and (
                len(node.args) > 2 or any(k.arg == "tzinfo" for k in node.keywords)
            )
            if name in {"make_aware", "ZoneInfo", "get_current_timezone"} or zoned_combine:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert found == []
