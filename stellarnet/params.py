"""Network parameters as plain numpy arrays, read from (or written to) history rows.

This is what lets figures, checks and replays work from saved tables alone: a history row
plus the layer widths from ``run.json`` give back every kernel and bias, and
:func:`forward` evaluates the network in float64 without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from stellarnet.errors import ConfigError
from stellarnet.schema import column_name, parameter_columns, parameter_names

ACTIVATION_FUNCTIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "linear": lambda z: z,
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
}

Layers = list[tuple[np.ndarray, np.ndarray]]
"""Per Dense layer, (kernel of shape (n_in, n_out), bias of shape (n_out,))."""


def layers_from_row(row: Mapping[str, float], layer_sizes: Sequence[int]) -> Layers:
    """Kernels and biases from a history row (``w^{l}_{i}``, ``b^{l}_{i}``), float64.

    Kernel entries are in row-major order of the (n_in, n_out) Keras kernel.

    Raises
    ------
    KeyError
        Naming the missing columns, if the row does not hold every parameter.
    """
    missing = [
        name
        for kind in ("w", "b")
        for name in parameter_names(layer_sizes, kind)
        if name not in row
    ]
    if missing:
        raise KeyError(f"history row lacks parameter column(s) {missing}")
    layers = []
    for layer, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:], strict=True), 1):
        kernel = [row[column_name("w", layer, i)] for i in range(1, n_in * n_out + 1)]
        bias = [row[column_name("b", layer, i)] for i in range(1, n_out + 1)]
        layers.append(
            (np.asarray(kernel, dtype=float).reshape(n_in, n_out), np.asarray(bias, dtype=float))
        )
    return layers


def forward(
    layers: Layers, x: np.ndarray, activation: str = "relu", output_activation: str = "linear"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Evaluate the network in float64; return the output and each hidden layer's activations."""
    values = np.asarray(x, dtype=float)
    hidden = []
    for depth, (kernel, bias) in enumerate(layers, start=1):
        name = output_activation if depth == len(layers) else activation
        values = ACTIVATION_FUNCTIONS[name](values @ kernel + bias)
        if depth < len(layers):
            hidden.append(values)
    return values, hidden


def read_initial_layers(path: str | Path, layer_sizes: Sequence[int]) -> Layers:
    """Initial parameters from a CSV: the ``epoch = 0`` row of a history table, or the only
    row of a table without an ``epoch`` column (``w^{l}_{i}``, ``b^{l}_{i}`` columns).

    Other columns (``output``, ``loss``, gradients ``g^...``, activations ``a^...``) are
    ignored; the parameter columns must be exactly those of a net with ``layer_sizes``.

    Raises
    ------
    ConfigError
        Naming the file and the missing or extra parameter columns, or the row problem.
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"initial-parameters file {path} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"initial-parameters file {path} cannot be read as CSV: {err}") from None
    if "epoch" in table.columns:
        table = table[table["epoch"] == 0]
        if len(table) != 1:
            raise ConfigError(f"{path} has {len(table)} rows with epoch = 0; it needs exactly one")
    elif len(table) != 1:
        raise ConfigError(
            f"{path} has {len(table)} rows and no epoch column; give one row of parameters or a "
            "history table with an epoch = 0 row"
        )
    expected = [name for kind in ("w", "b") for name in parameter_names(layer_sizes, kind)]
    present = parameter_columns(table, ("w", "b"))
    missing = [name for name in expected if name not in present]
    extra = [name for name in present if name not in expected]
    if missing or extra:
        shape = "-".join(map(str, layer_sizes))
        raise ConfigError(
            f"{path} does not fit the {shape} model: "
            + "; ".join(
                part
                for part in (
                    f"missing parameter column(s) {missing}" if missing else "",
                    f"extra parameter column(s) {extra}" if extra else "",
                )
                if part
            )
        )
    values = pd.to_numeric(table.iloc[0][expected], errors="coerce").astype(float)
    bad = [name for name in expected if not np.isfinite(values[name])]
    if bad:
        raise ConfigError(f"{path}: parameter column(s) {bad} are not finite numbers")
    return layers_from_row(values, layer_sizes)
