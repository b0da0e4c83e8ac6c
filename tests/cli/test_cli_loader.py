"""Loading `module:attribute` apps: success, and an error for each way it can go wrong."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli, ProjectDir
from tidings import App
from tidings.cli.loader import load_app
from tidings.exceptions import AppLoadError

APP_SOURCE = """
from tidings import App

app = App("shop")
other = App("backoffice")
settings = {"debug": True}

def make_app():
    return App("made")

class Holder:
    app = App("nested")
"""


def test_loads_an_app_from_the_working_directory(project: ProjectDir) -> None:
    name = project.module(APP_SOURCE)
    app = load_app(f"{name}:app")
    assert isinstance(app, App) and app.name == "shop"
    assert load_app(f"{name}:Holder.app").name == "nested"


def test_missing_module_says_where_to_run_from(project: ProjectDir) -> None:
    with pytest.raises(AppLoadError) as err:
        load_app("shop_that_is_not_there:app")
    assert str(err.value) == (
        "No module named 'shop_that_is_not_there' while loading 'shop_that_is_not_there:app'. "
        "Run from the project root or set PYTHONPATH."
    )


def test_missing_attribute_lists_the_apps_found(project: ProjectDir) -> None:
    name = project.module(APP_SOURCE)
    with pytest.raises(AppLoadError) as err:
        load_app(f"{name}:ap")
    message = str(err.value)
    assert f"{name!r} has no attribute 'ap'" in message
    assert f"{name}:app, {name}:other" in message


def test_an_attribute_that_is_not_an_app_says_what_it_is(project: ProjectDir) -> None:
    name = project.module(APP_SOURCE)
    with pytest.raises(AppLoadError, match="is a dict, not a tidings App"):
        load_app(f"{name}:settings")
    with pytest.raises(AppLoadError, match=r"a function \(make_app\)"):
        load_app(f"{name}:make_app")


def test_a_module_without_apps_says_how_to_make_one(project: ProjectDir) -> None:
    name = project.module("value = 1\n")
    with pytest.raises(AppLoadError, match=r"defines no App; create one with `app = App"):
        load_app(f"{name}:app")


def test_spec_without_attribute_shows_the_form(project: ProjectDir) -> None:
    with pytest.raises(AppLoadError, match=r"APP must be module:attribute, e.g\. 'shop:app'"):
        load_app("shop")


def test_errors_inside_the_module_are_reported_with_their_cause(project: ProjectDir) -> None:
    broken = project.module("raise RuntimeError('no config')\n", "broken")
    with pytest.raises(AppLoadError, match="raised RuntimeError: no config"):
        load_app(f"{broken}:app")
    missing_dep = project.module("import not_installed_dependency_xyz\n", "dep")
    with pytest.raises(AppLoadError) as err:
        load_app(f"{missing_dep}:app")
    assert "No module named 'not_installed_dependency_xyz'" in str(err.value)
    assert "Install that package or fix the import" in str(err.value)


def test_run_exits_2_with_one_line_and_no_traceback(project: ProjectDir, cli: Cli) -> None:
    result = cli("run", "shop_that_is_not_there:app")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: No module named 'shop_that_is_not_there'")
    assert "Traceback" not in result.output
    name = project.module(APP_SOURCE)
    result = cli("run", f"{name}:nope")
    assert result.exit_code == 2
    assert "has no attribute 'nope'" in result.stderr


def test_a_file_path_suggests_the_module_name(project: ProjectDir) -> None:
    name = project.module(APP_SOURCE)
    (project.path / "pkg").mkdir()
    for spec, suggestion in (
        (f"{name}.py:app", f"{name}:app"),
        (f"./{name}.py:app", f"{name}:app"),
        ("pkg/orders.py:app", "pkg.orders:app"),
    ):
        with pytest.raises(AppLoadError) as err:
            load_app(spec)
        assert f"Did you mean {suggestion!r}?" in str(err.value), str(err.value)


def test_version_prints_the_installed_version() -> None:
    import tidings

    result = Cli("memory://unused")("--version", broker=False)
    assert result.exit_code == 0 and result.stdout == f"tidings {tidings.__version__}\n"
