"""Which modules the build compiles with mypyc, and whether this install is compiled.

The innermost loops of the flow and the server (scoring, merging, decayed
lists, parsing, blob packing) are plain typed Python. ``pip install`` (and so
``make``) compiles the modules below to C extensions with mypyc when it can:
the same code, running faster (README, Quality → Speed). When
it cannot (no C compiler, ``LIVERECO_COMPILE=0`` at install time), the pure
Python modules run instead, with identical results. ``LIVERECO_PURE_PYTHON=1``
at run time ignores compiled modules (to profile or debug the Python).

This module imports only the standard library: ``setup.py`` reads it.

>>> "online.blend" in COMPILED_MODULES
True
>>> build_state()["modules"] == len(COMPILED_MODULES)
True
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

__all__ = ["COMPILED_MODULES", "PURE_PYTHON_ENV", "build_is_current", "build_state", "compiled_modules", "describe",
           "record_build", "source_hashes", "stale_modules"]

COMPILED_MODULES = (
    "flows.dataflow",
    "flows.resp",
    "flows.sink_batch",
    "flows.stage_time",
    "flows.stages.catalog",
    "flows.stages.common",
    "flows.stages.items",
    "flows.stages.messages",
    "flows.stages.parse",
    "flows.stages.ranker",
    "flows.stages.user_history",
    "flows.stages.user_lists",
    "flows.writes",
    "online.affinity",
    "online.affinity_candidates",
    "online.blend",
    "online.context_popularity",
    "online.contract.blob_writer",
    "online.contract.candidates",
    "online.contract.events",
    "online.contract.keys",
    "online.contract.packing",
    "online.contract.profile",
    "online.contract.streams",
    "online.covisitation",
    "online.event_dedup",
    "online.excluded_items",
    "online.exploration",
    "online.forward_decay",
    "online.item_embedding",
    "online.logistic_sgd",
    "online.neighbour_candidates",
    "online.purchases",
    "online.ranker",
    "online.returning",
    "online.session_neighbours",
    "online.trending",
    "online.user_history",
)
"""Modules compiled by mypyc. The ``online`` ones import the standard library and each other
only; the ``flows.stages`` modules (the dataflow's per-event logic, one per stage; the package's ``__init__``
only re-exports and is not compiled) import Bytewax and the sink's messages (``flows.writes``),
and ``online.ranker`` wraps River's logistic regression: ``mypyc.ini`` has the build type-check River,
NumPy and Prometheus as ``Any`` (checking them would take the build from seconds to minutes). Its stage
logic classes stay plain Python classes with compiled methods (``mypyc_attr(native_class=False)``),
so they pickle as before."""

PURE_PYTHON_ENV = "LIVERECO_PURE_PYTHON"

_ROOT = Path(__file__).resolve().parents[1]
_BUILD_RECORD = _ROOT / "online" / "native_sources.json"


def _source(module: str) -> Path:
    return _ROOT.joinpath(*module.split(".")).with_suffix(".py")


def _extension(module: str) -> Path | None:
    """The compiled extension next to ``module``'s source, if the build left one there."""
    source = _source(module)
    found = sorted(source.parent.glob(f"{source.stem}.*.so")) + sorted(source.parent.glob(f"{source.stem}.*.pyd"))
    return found[0] if found else None


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED_MODULES` that import as C extensions here (found, not imported)."""
    compiled = []
    for module in COMPILED_MODULES:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin is not None and not spec.origin.endswith(".py"):
            compiled.append(module)
    return compiled


def build_state() -> dict[str, object]:
    """How this install runs: ``modules`` listed, ``compiled`` of them loaded as C extensions, ``pure`` forced."""
    return {"modules": len(COMPILED_MODULES), "compiled": len(compiled_modules()),
            "pure": os.environ.get(PURE_PYTHON_ENV) == "1"}


def describe() -> str:
    """One line for footers and logs.

    >>> describe().startswith(("compiled", "pure Python"))
    True
    """
    state = build_state()
    if not state["compiled"]:
        return "pure Python" + (f" ({PURE_PYTHON_ENV}=1)" if state["pure"] else " (not compiled)")
    return f"compiled with mypyc ({state['compiled']} of {state['modules']} hot modules)"


def source_hashes() -> dict[str, str]:
    """Each listed module's source hash: what an in-place build records (:func:`record_build`)."""
    return {module: hashlib.sha256(_source(module).read_bytes()).hexdigest() for module in COMPILED_MODULES}


def record_build() -> None:
    """Record the sources the compiled modules were just built from (``setup.py`` calls it after an in-place build)."""
    _BUILD_RECORD.write_text(json.dumps(source_hashes(), indent=1) + "\n")


def build_is_current() -> bool:
    """Whether the compiled modules are known to match their sources (``make`` rebuilds them otherwise).

    A module listed since the last build (no hash recorded for it) makes the build out of date too.
    """
    record = _recorded()
    return record is not None and set(COMPILED_MODULES) <= set(record) and not _stale(record)


def stale_modules() -> list[str]:
    """Compiled modules whose source changed since they were built (rebuild: ``make`` or ``pip install -e .``).

    An in-place build records each source's hash (:func:`record_build`); a build without that record
    cannot be checked and counts as current.
    """
    record = _recorded()
    return [] if record is None else _stale(record)


def _recorded() -> dict[str, str] | None:
    """The source hashes the last in-place build recorded (``None``: no record)."""
    return json.loads(_BUILD_RECORD.read_text()) if _BUILD_RECORD.is_file() else None


def _stale(record: dict[str, str]) -> list[str]:
    now = source_hashes()
    return [module for module in COMPILED_MODULES if _extension(module) is not None and record.get(module) != now[module]]
