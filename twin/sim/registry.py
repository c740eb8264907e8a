"""Which scenario models exist, so a scenario can name one and a third party can add one.

Models come from three places, checked in this order: classes registered in
this process (:func:`register_model`), the ``twin.models`` entry-point group of
installed packages, and a ``"package.module:ClassName"`` spec imported on the
spot (for models that are not installed, like the tests' toy model; the
working folder is searched too, as ``python -m`` would).
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from twin.errors import InputError, Problem
from twin.sim.model import TwinModel

ENTRY_POINT_GROUP = "twin.models"

_registered: dict[str, type[TwinModel]] = {}


def register_model(cls: type[TwinModel]) -> type[TwinModel]:
    """Make ``cls`` available under ``cls.name``; usable as a class decorator.

    A later registration under the same name replaces the earlier one.
    """
    if not (isinstance(cls, type) and issubclass(cls, TwinModel)):
        raise TypeError(f"{cls!r} is not a TwinModel subclass")
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name; set the class attribute `name`")
    _registered[cls.name] = cls
    return cls


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _spec_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def available_models() -> dict[str, str]:
    """Name -> "module:Class" of every model a scenario can name."""
    out = {name: ep.value for name, ep in _entry_points().items()}
    out.update({name: _spec_of(cls) for name, cls in _registered.items()})
    return dict(sorted(out.items()))


def _fail(message: str) -> InputError:
    return InputError(Problem("", "model", message))


def _known_text() -> str:
    known = available_models()
    names = ", ".join(known) if known else "none installed"
    return f"known models: {names}; or give \"package.module:ClassName\""


def model_class(spec: str) -> type[TwinModel]:
    """The model class for a registered name or a ``"package.module:ClassName"`` spec."""
    if spec in _registered:
        return _registered[spec]
    eps = _entry_points()
    if spec in eps:
        try:
            cls = eps[spec].load()
        except Exception as exc:  # a broken third-party package: say which, keep going
            raise _fail(f"model {spec!r} ({eps[spec].value}) could not be loaded: {exc}") from None
        return _checked(spec, cls)
    if ":" not in spec:
        guess = difflib.get_close_matches(spec, list(available_models()), n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise _fail(f"unknown model {spec!r}{hint}; {_known_text()}")
    module_name, _, attr = spec.partition(":")
    try:
        module = _import(module_name)
    except ImportError as exc:
        raise _fail(f"cannot import module {module_name!r} for model {spec!r} ({exc}); {_known_text()}") from None
    cls = module
    for part in attr.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise _fail(f"module {module_name!r} has no class {attr!r}; {_known_text()}")
    return _checked(spec, cls)


def _import(module_name: str) -> ModuleType:
    """Import a module; one not found is looked for in the working folder too, as ``python -m`` would."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if not exc.name or not module_name.startswith(exc.name) or "" in sys.path or cwd in sys.path:
            raise
        sys.path.append(cwd)
        return importlib.import_module(module_name)


def _checked(spec: str, cls: object) -> type[TwinModel]:
    if not (isinstance(cls, type) and issubclass(cls, TwinModel)):
        raise _fail(f"{spec!r} is not a Twin model (a subclass of twin.sim.model.TwinModel)")
    return cls
