"""Build: the pure-Python package, with its hot modules compiled by mypyc when possible.

The list is ``online.compiled.COMPILED_MODULES``. Compiling needs a C compiler
and the Python headers; without them (or with ``LIVERECO_COMPILE=0``) the
package installs as pure Python and runs the same code more slowly.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def _compiled_extensions() -> list:
    if os.environ.get("LIVERECO_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("livereco: mypyc is not available: installing pure Python", file=sys.stderr)
        return []
    modules = runpy.run_path(str(ROOT / "online" / "compiled.py"))["COMPILED_MODULES"]
    paths = [str(Path(*module.split(".")).with_suffix(".py")) for module in modules]
    try:
        extensions = mypycify(paths, opt_level="3", group_name="online.native")  # shared library in the package (online.compiled reads its name)
    except Exception as exc:  # a type error mypyc cannot compile: still installable
        print(f"livereco: mypyc could not compile ({exc}): installing pure Python", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True  # no C compiler: skip it, the pure Python module stays
    return extensions


setup(ext_modules=_compiled_extensions())
