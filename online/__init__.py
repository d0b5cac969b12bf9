"""The learning side of livereco: event contract, online models, candidate generation. No I/O."""

import os as _os

if _os.environ.get("LIVERECO_PURE_PYTHON") == "1":  # see online.compiled: run the Python, not the compiled modules
    from online._pure_python import prefer_sources as _prefer_sources

    _prefer_sources()
