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
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
COMPILED = runpy.run_path(str(ROOT / "online" / "compiled.py"))  # standard library only: no install needed


class BuildExtRecordingSources(build_ext):
    """``build_ext`` that, built in place, records the hash of each compiled module's source.

    ``online.compiled.stale_modules`` compares them with the sources (``record_build`` writes them):
    an edited module whose extension was not rebuilt would otherwise run its old code.
    """

    def run(self) -> None:
        super().run()
        built = all(Path(self.get_ext_fullpath(extension.name)).is_file() for extension in self.extensions)
        if self.inplace and self.extensions and built:  # an optional extension that failed leaves pure Python
            COMPILED["record_build"]()


def _compiled_extensions() -> list:
    if os.environ.get("LIVERECO_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("livereco: mypyc is not available: installing pure Python", file=sys.stderr)
        return []
    paths = [str(Path(*module.split(".")).with_suffix(".py")) for module in COMPILED["COMPILED_MODULES"]]
    try:
        extensions = mypycify([*paths, "--config-file", str(ROOT / "mypyc.ini")], opt_level="3",
                              group_name="online.native")  # its shared library: in the package
    except (Exception, SystemExit) as exc:  # a type error mypyc cannot compile (it exits): still installable
        # pip's isolated build has mypy but not the dependencies' types: mypyc then reports errors and exits.
        print(f"livereco: mypyc could not compile ({exc!r}): installing pure Python", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True  # no C compiler: skip it, the pure Python module stays
    return extensions


setup(ext_modules=_compiled_extensions(), cmdclass={"build_ext": BuildExtRecordingSources})
