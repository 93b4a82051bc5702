"""Backpropagation by hand: the forward and backward pass of a one-hidden-layer net in numpy.

This is the derivation the assignment asks for, written out so that a student can check it
against TensorFlow's autodiff (``stellarnet check-gradients``, :mod:`stellarnet.runs.gradcheck`).
For a batch of ``n`` samples ``x`` (``n`` x ``n_in``) and targets ``y`` (``n`` x ``n_out``)::

    z1   = x @ W1 + b1                 hidden pre-activations          (n, H)
    a1   = f(z1)                       hidden activations              (n, H)
    z2   = a1 @ W2 + b2                output pre-activation           (n, n_out)
    yhat = g(z2)                       network output                  (n, n_out)
    L    = c * mean((yhat - y)^2)      c = 1 ("mse"), c = 1/2 ("half_mse")

and by the chain rule, with ``H = f'`` (the Heaviside step for ReLU)::

    dL/dyhat = 2 c (yhat - y) / (n n_out)
    delta2   = dL/dyhat * g'(z2)               = dL/dz2
    dL/dW2   = a1^T @ delta2                   dL/dw2_i = sum over samples of a_i delta2
    dL/db2   = sum over samples of delta2
    delta1   = (delta2 @ W2^T) * f'(z1)        = dL/dz1
    dL/dW1   = x^T @ delta1                    dL/dw1_i = sum of x delta2 w2_i H(z1_i)
    dL/db1   = sum over samples of delta1

For one sample, ``half_mse`` and a linear output this is the assignment's
``dL/dw2_i = a_i (yhat - y)`` and ``dL/dw1_i = (yhat - y) w2_i H(z1_i) x``. With ``mse`` every
gradient is twice as large (c = 1: the factor 2 of the square is not cancelled).

ReLU at z = 0
    TensorFlow's ReLU gradient (``tf.nn.relu``, which Keras' ``"relu"`` calls) passes the
    gradient only where the input is strictly positive: ``backprops = gradients * (features >
    0)`` (``tensorflow/core/kernels/relu_op_functor.h``). So ``H(0) = 0`` here too; this
    matters in practice, e.g. for a min-max normalised input of exactly 0 with zero biases.

Gradients are float64 and named like the history columns (``g^{l}_{i}``, ``gb^{l}_{i}``; see
:mod:`stellarnet.results.history`). This module does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stellarnet.errors import ConfigError
from stellarnet.params import ACTIVATION_FUNCTIONS, Layers
from stellarnet.schema import PARAMETER_KINDS, column_name

LOSS_FACTORS = {"mse": 1.0, "half_mse": 0.5}
"""The loss is ``factor * mean((yhat - y)^2)``: Keras MeanSquaredError, or half of it."""

DERIVATIVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda z: (z > 0).astype(float),  # H(z), with H(0) = 0 as in TensorFlow
    "linear": np.ones_like,
    "tanh": lambda z: 1.0 - np.tanh(z) ** 2,
    "sigmoid": lambda z: (s := ACTIVATION_FUNCTIONS["sigmoid"](z)) * (1.0 - s),
}
"""d activation / d z, as a function of the pre-activation z."""


@dataclass
class Backprop:
    """Every quantity of one forward and backward pass over a batch (float64).

    Attributes
    ----------
    z1, a1 : ndarray, shape (n, H)
        Hidden pre-activations and activations.
    z2, yhat : ndarray, shape (n, n_out)
        Output pre-activation and output.
    loss : float
        The batch loss.
    delta2, delta1 : ndarray
        dL/dz2 (n, n_out) and dL/dz1 (n, H), per sample.
    gradients : list of (ndarray, ndarray)
        Per layer, dL/dW (same shape as the kernel) and dL/db.
    """

    z1: np.ndarray
    a1: np.ndarray
    z2: np.ndarray
    yhat: np.ndarray
    loss: float
    delta2: np.ndarray
    delta1: np.ndarray
    gradients: Layers

    def named(self) -> dict[str, float]:
        """The gradients as ``{"g^1_1": ..., "gb^1_1": ..., "g^2_1": ...}``, in history order
        (per layer: the kernel's entries in row-major order, then the bias)."""
        named = {}
        for layer, grads in enumerate(self.gradients, start=1):
            for kind, values in zip(("w", "b"), grads, strict=True):
                for index, value in enumerate(np.ravel(values), start=1):
                    named[column_name(PARAMETER_KINDS[kind], layer, index)] = float(value)
        return named

    def activations(self) -> dict[str, float]:
        """Batch-mean hidden activations named like the history (``a^1_{i}``); for a batch
        of one sample, that sample's activations."""
        means = self.a1.mean(axis=0)
        return {column_name("a", 1, i): float(v) for i, v in enumerate(means, start=1)}


def backprop(
    layers: Layers,
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "relu",
    output_activation: str = "linear",
    loss: str = "mse",
) -> Backprop:
    """Forward and backward pass of a one-hidden-layer dense net, written out in float64.

    Parameters
    ----------
    layers : list of (kernel, bias)
        ``[(W1, b1), (W2, b2)]`` with Keras shapes: W1 ``(n_in, H)``, b1 ``(H,)``,
        W2 ``(H, n_out)``, b2 ``(n_out,)`` (e.g. from :func:`stellarnet.params.layers_from_row`).
    x : ndarray, shape (n, n_in) or (n,)
        Inputs; a 1-d array is one input feature.
    y : ndarray, shape (n, n_out) or (n,)
        Targets.
    activation, output_activation : str
        ``"relu"``, ``"linear"``, ``"tanh"`` or ``"sigmoid"``.
    loss : {"mse", "half_mse"}
        ``mean((yhat - y)^2)`` or half of it, averaged over the batch.

    Returns
    -------
    Backprop
        The pass's intermediate values and the gradients (:meth:`Backprop.named` for the
        history names).

    Raises
    ------
    ConfigError
        For another number of layers, mismatched shapes, or an unknown activation or loss.
    """
    (w1, b1), (w2, b2), x, y = _check(layers, x, y, activation, output_activation, loss)
    f, df = ACTIVATION_FUNCTIONS[activation], DERIVATIVES[activation]
    g, dg = ACTIVATION_FUNCTIONS[output_activation], DERIVATIVES[output_activation]
    c = LOSS_FACTORS[loss]
    # forward
    z1 = x @ w1 + b1
    a1 = f(z1)
    z2 = a1 @ w2 + b2
    yhat = g(z2)
    error = yhat - y
    value = c * float(np.mean(error**2))
    # backward: the chain rule, one layer at a time
    dloss_dyhat = 2.0 * c * error / error.size
    delta2 = dloss_dyhat * dg(z2)
    grad_w2 = a1.T @ delta2
    grad_b2 = delta2.sum(axis=0)
    delta1 = (delta2 @ w2.T) * df(z1)
    grad_w1 = x.T @ delta1
    grad_b1 = delta1.sum(axis=0)
    return Backprop(
        z1, a1, z2, yhat, value, delta2, delta1, [(grad_w1, grad_b1), (grad_w2, grad_b2)]
    )


def gradients(
    layers: Layers,
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "relu",
    output_activation: str = "linear",
    loss: str = "mse",
) -> dict[str, float]:
    """dL/dW and dL/db by hand, named like the history columns (``g^{l}_{i}``,
    ``gb^{l}_{i}``). Arguments as for :func:`backprop`."""
    return backprop(layers, x, y, activation, output_activation, loss).named()


def _check(
    layers: Layers,
    x: np.ndarray,
    y: np.ndarray,
    activation: str,
    output_activation: str,
    loss: str,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """Validate the arguments of :func:`backprop`; return float64 copies."""
    for name, value in (("activation", activation), ("output_activation", output_activation)):
        if value not in DERIVATIVES:
            raise ConfigError(f"{name} must be one of {list(DERIVATIVES)}, got {value!r}")
    if loss not in LOSS_FACTORS:
        raise ConfigError(f"loss must be one of {list(LOSS_FACTORS)}, got {loss!r}")
    if len(layers) != 2:
        raise ConfigError(
            f"analytic gradients are written out for one hidden layer (2 Dense layers), "
            f"got {len(layers)} layers"
        )
    (w1, b1), (w2, b2) = [
        (np.asarray(k, dtype=np.float64), np.asarray(b, dtype=np.float64)) for k, b in layers
    ]
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if (
        w1.ndim != 2
        or w2.ndim != 2
        or b1.shape != (w1.shape[1],)
        or w2.shape[0] != w1.shape[1]
        or b2.shape != (w2.shape[1],)
    ):
        raise ConfigError(
            f"layer shapes do not chain: W1 {w1.shape}, b1 {b1.shape}, W2 {w2.shape}, b2 {b2.shape}"
        )
    n_in, hidden, outputs = w1.shape[0], w1.shape[1], w2.shape[1]
    if x.ndim != 2 or x.shape[1] != n_in or y.shape != (len(x), outputs):
        raise ConfigError(f"x {x.shape} and y {y.shape} do not fit a {n_in}-{hidden}-{outputs} net")
    return (w1, b1), (w2, b2), x, y
