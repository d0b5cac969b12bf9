"""Doctest collection: a module the build compiled is tested through tests/test_compiled.py.

pytest's doctest collector refuses a ``.py`` whose imported module is the
compiled extension beside it; its examples still run, against the compiled
code, in ``tests/test_compiled.py``.
"""

from __future__ import annotations

from pathlib import Path

from online.compiled import compiled_modules

_ROOT = Path(__file__).resolve().parent
_COMPILED_SOURCES = {_ROOT.joinpath(*m.split(".")).with_suffix(".py") for m in compiled_modules()}


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    return True if collection_path in _COMPILED_SOURCES else None
