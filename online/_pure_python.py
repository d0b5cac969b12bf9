"""``LIVERECO_PURE_PYTHON=1``: import livereco's modules from their Python sources, never from compiled extensions."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import SOURCE_SUFFIXES, FileFinder, ModuleSpec, SourceFileLoader
from types import ModuleType


class _SourcesFirst(MetaPathFinder):
    """Finds ``online.*`` and ``flows.*`` modules among source files only (others are left to the usual finders).

    Every compiled module must be covered: one compiled module loads the group's shared library,
    which brings in the compiled code of all the others."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if not fullname.startswith(("online.", "flows.")) or path is None:
            return None
        for entry in path:
            spec = FileFinder(entry, (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(fullname, target)
            if spec is not None:
                return spec
        return None


def prefer_sources() -> None:
    if not any(isinstance(finder, _SourcesFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst())
