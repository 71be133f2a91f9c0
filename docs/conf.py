"""Sphinx configuration of the distlda documentation (``make docs`` builds it)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # document the checkout, installed or not

from distlda import __version__  # noqa: E402

project = "distlda"
author = "the distlda developers"
copyright = "2026, the distlda developers"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build"]

# numpy-style docstrings; the type lines are free text ("ndarray of shape (K, V)")
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # class "Attributes" as fields: properties keep their own entries
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
# numba and Pyro5 need not be importable to read the docstrings of pure-Python code, but they
# are installed with distlda anyway; nothing is mocked, so the API pages show the real objects.

html_theme = "furo"
html_title = f"distlda {release}"
