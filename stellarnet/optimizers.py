"""Adam and plain gradient descent, written out with Keras' formulas, for the recorded loops.

The updates perform the same float32 operations in the same order as
``keras.optimizers.Adam.update_step`` (default settings) and ``keras.optimizers.SGD``
(no momentum), so a run gives the same numbers, bit for bit, as one driven by the Keras
optimizer; the tests hold them to it. The formulas are elementwise, so all parameters are
updated as one flat vector: a dozen ops whatever the number of variables. In eager mode an
epoch takes a fraction of Keras' ``apply_gradients`` (whose Python machinery dominates a
small net's epoch), and a traced graph is smaller and traces faster.

The learning rate may be a tensor that broadcasts against :attr:`Optimizer.theta`, e.g. one
rate per stacked network (``[K, 1]`` against a ``[K, P]`` variable).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ConfigError

OPTIMIZERS = ("adam", "sgd")
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7
"""``keras.optimizers.Adam`` defaults."""


class Optimizer:
    """Adam (``"adam"``) or plain gradient descent (``"sgd"``) over a fixed list of variables.

    Parameters
    ----------
    name : {"adam", "sgd"}
    variables : sequence of tf.Variable
        What :meth:`apply` updates, in the order of the gradients it is given.
    learning_rate : float or tensor
        The step size eta, a scalar or a tensor broadcasting against :attr:`theta`.

    Attributes
    ----------
    theta : tf.Variable
        All parameters as one flat vector, in the order of ``variables`` (one variable:
        that variable). :meth:`apply` keeps it and the variables in step; nothing else may
        assign the variables while the optimizer is in use.
    """

    def __init__(self, name: str, variables: Sequence[Any], learning_rate: Any) -> None:
        import tensorflow as tf

        if name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {name!r}; known: {list(OPTIMIZERS)}")
        self.name = name
        self.variables = list(variables)
        self.learning_rate = tf.cast(learning_rate, tf.float32)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        # All parameters as one flat vector (one variable: itself), kept in step with the
        # variables by apply(), so an update reads them in one op.
        self.theta = (
            self.variables[0]
            if len(self.variables) == 1
            else tf.Variable(self.pack(self.variables), trainable=False)
        )
        if name == "adam":  # the moments, shaped like theta
            self.moments = tf.Variable(tf.zeros(self.theta.shape), trainable=False)
            self.velocities = tf.Variable(tf.zeros(self.theta.shape), trainable=False)

    def pack(self, tensors: Sequence[Any]) -> Any:
        """Tensors shaped like the variables, packed as :attr:`theta` is: one flat vector (one
        variable: the tensor as it is)."""
        import tensorflow as tf

        if len(tensors) == 1:
            return tf.convert_to_tensor(tensors[0])
        return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)

    def apply(self, grads: Sequence[Any]) -> tuple[Any, Any]:
        """One update: ``theta <- theta - eta * g`` (SGD) or Adam's bias-corrected step.

        Returns the gradients and the updated parameters, packed as :attr:`theta` (one flat
        vector in the order of the variables; one variable: in its shape), ready to record.
        """
        import tensorflow as tf

        grad = self.pack(grads)
        theta = tf.convert_to_tensor(self.theta)
        if self.name == "sgd":
            theta = theta - grad * self.learning_rate
        else:
            # keras.optimizers.Adam.update_step, operation for operation. It is elementwise,
            # so one flat vector gives each parameter the numbers it gets alone.
            step = tf.cast(self.iterations + 1, tf.float32)
            beta_1_power = tf.pow(tf.cast(ADAM_BETA_1, tf.float32), step)
            beta_2_power = tf.pow(tf.cast(ADAM_BETA_2, tf.float32), step)
            alpha = self.learning_rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            # m += (g - m)(1 - beta_1) as assign_add computes it, kept as a tensor (no re-read).
            m = tf.convert_to_tensor(self.moments)
            m = m + (grad - m) * (1 - ADAM_BETA_1)
            v = tf.convert_to_tensor(self.velocities)
            v = v + (tf.square(grad) - v) * (1 - ADAM_BETA_2)
            self.moments.assign(m)
            self.velocities.assign(v)
            theta = theta - (m * alpha) / (tf.sqrt(v) + ADAM_EPSILON)
        # theta - step, as the optimizers' assign_sub computes it.
        if len(self.variables) == 1:
            self.variables[0].assign(theta)
        else:
            self.theta.assign(theta)
            sizes = [int(np.prod(variable.shape)) for variable in self.variables]
            for variable, part in zip(self.variables, tf.split(theta, sizes), strict=True):
                variable.assign(tf.reshape(part, variable.shape))
        self.iterations.assign_add(1)
        return grad, theta
