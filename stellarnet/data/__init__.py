"""Catalogs (shipped, cached, fetched from VizieR), their provenance, datasets and transforms."""
