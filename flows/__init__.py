"""Bytewax dataflows, their Redis connectors, replay and evaluation drivers, and the CLI."""

import online as _online  # noqa: F401  (first: LIVERECO_PURE_PYTHON=1 must apply before a compiled flows module loads)
