"""Figures, tables and reports, drawn from saved results only (no TensorFlow)."""
