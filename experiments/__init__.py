"""The experiment configs shipped with stellarnet (package data: TOML files).

This folder is the package ``stellarnet.experiments`` (see ``[tool.setuptools.package-dir]``
in ``pyproject.toml``); ``stellarnet list`` shows them as built-in.
"""
