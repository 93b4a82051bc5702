"""Catalogs (shipped, cached, fetched from VizieR), their provenance, datasets and transforms.

``registry`` (the queries, and where catalog files live), ``provenance`` (the JSON beside each
CSV, checksums), ``tables`` (reading and checking a CSV), ``loading`` (which catalog an
experiment gets), ``vizier`` (fetching into the cache), ``datasets`` and ``synthetic``.
"""
