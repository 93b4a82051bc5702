"""The catalogs shipped with stellarnet (package data: CSVs with their provenance JSON).

This folder is the package ``stellarnet.catalogs`` (see ``[tool.setuptools.package-dir]`` in
``pyproject.toml``); stellarnet finds it with :mod:`importlib.resources`.
"""
