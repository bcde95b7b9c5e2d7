"""Builds the typed core (`lifecycle.COMPILED`) with Cython from its one Python source.

`pip install` (and `make`, through it) compiles each module beside its source with the
machine's C compiler. Python takes a compiled module where one is built and the source
where not: a checkout with no built modules runs the same rules, slower.
"""

import os
import sys

from Cython.Build import cythonize
from setuptools import setup

# A build frontend runs this file from an isolated environment: the checkout is not on its path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lifecycle import COMPILED  # noqa: E402

CORE = cythonize([f"lifecycle/{name}.py" for name in COMPILED], nthreads=os.cpu_count() or 1,
                 compiler_directives={"language_level": 3}, quiet=True)
for module in CORE:
    # gcc 12 reads CPython's object headers as out-of-bounds accesses: a known false alarm.
    module.extra_compile_args.append("-Wno-array-bounds")

setup(ext_modules=CORE)
