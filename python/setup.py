"""Build shim: the metadata is in pyproject.toml.

setuptools builds in place (build/ and spindle_spark.egg-info/ beside this file) and never removes what an earlier
build left there, so a jar or module deleted since would still be packed into the wheel: each build starts clean, and
build/ (a second copy of the jars, 200 MB) goes once the wheel is made.
"""

import pathlib
import shutil

from setuptools import setup

here = pathlib.Path(__file__).resolve().parent
for stale in [here / "build", *here.glob("*.egg-info")]:
    shutil.rmtree(stale, ignore_errors=True)
setup()
shutil.rmtree(here / "build", ignore_errors=True)
