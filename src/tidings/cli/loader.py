"""Load a tidings App from ``module:attribute``, the way uvicorn loads an ASGI app."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from tidings.app import App
from tidings.exceptions import AppLoadError, TidingsError


def load_app(spec: str) -> App:
    """Import ``module:attribute`` (attribute may be dotted) and return the App it names.

    The working directory is put on ``sys.path`` first, so ``tidings run shop:app`` works
    from the project root.

    Raises:
        AppLoadError: the spec is malformed, the module cannot be imported (or raised while
            importing), the attribute is missing, or it is not an App.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise AppLoadError(
            f"APP must be module:attribute, e.g. 'shop:app' (got {spec!r}). The module is "
            "imported like `import shop`; the attribute is the App instance in it."
        )
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        dotted = module_name.removesuffix(".py").replace("\\", "/").removeprefix("./")
        suggestion = f"{dotted.strip('/').replace('/', '.')}:{attribute}"
        raise AppLoadError(
            f"APP names a module, not a file: {spec!r}. Did you mean {suggestion!r}? Run "
            "from the directory that holds the module (or its package), as for `python -m`."
        )
    module = _import(module_name, spec)
    target: object = module
    for i, part in enumerate(attribute.split(".")):
        try:
            target = getattr(target, part)
        except AttributeError:
            where = module_name if i == 0 else f"{module_name}:{'.'.join(attribute.split('.')[:i])}"
            raise AppLoadError(
                f"{where!r} has no attribute {part!r} while loading {spec!r}. "
                f"{_found_apps(module, module_name)}"
            ) from None
    if not isinstance(target, App):
        raise AppLoadError(
            f"{spec!r} is {_describe(target)}, not a tidings App. "
            f"{_found_apps(module, module_name)}"
        )
    return target


def _import(module_name: str, spec: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise AppLoadError(
                f"No module named {missing!r} while loading {spec!r}. "
                "Run from the project root or set PYTHONPATH."
            ) from exc
        raise AppLoadError(
            f"Importing {module_name!r} failed: {exc} (imported by the app while loading "
            f"{spec!r}). Install that package or fix the import."
        ) from exc
    except TidingsError as exc:
        raise AppLoadError(f"Importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise AppLoadError(
            f"Importing {module_name!r} raised {type(exc).__name__}: {exc}. "
            "Fix the module (rerun with `tidings --debug ...` for the traceback)."
        ) from exc


def _found_apps(module: ModuleType, module_name: str) -> str:
    names = sorted(n for n, v in vars(module).items() if isinstance(v, App))
    if names:
        listed = ", ".join(f"{module_name}:{n}" for n in names)
        return f"Apps found in {module_name!r}: {listed}."
    return f'{module_name!r} defines no App; create one with `app = App("name")`.'


def _describe(value: object) -> str:
    if isinstance(value, ModuleType):
        return f"the module {value.__name__!r}"
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    if callable(value):
        name = getattr(value, "__qualname__", type(value).__name__)
        return f"a function ({name}); point at the App instance instead"
    return f"a {type(value).__name__}"
