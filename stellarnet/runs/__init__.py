"""Experiments: configs, single runs, sweeps, committees, comparisons, gradient checks."""
