"""Adam and plain gradient descent, written out with Keras' formulas, for the recorded loops.

The updates perform the same float32 operations in the same order as
``keras.optimizers.Adam.update_step`` (default settings) and ``keras.optimizers.SGD``
(no momentum), so a run gives the same numbers, bit for bit, as one driven by the Keras
optimizer; the tests hold them to it. The formulas are elementwise, so all parameters are
updated as one flat vector: a dozen ops whatever the number of variables. In eager mode an
epoch takes a fraction of Keras' ``apply_gradients`` (whose Python machinery dominates a
small net's epoch), and a traced graph is smaller and traces faster.

The optimizer is a pure function of its state (:meth:`Optimizer.state`: the step count, the
flat parameters and Adam's moments, as tensors), so a compiled run carries the state from
epoch to epoch as loop variables and writes the variables once at the end
(:meth:`Optimizer.store`).

The learning rate may be a tensor that broadcasts against the parameters, e.g. one rate per
stacked network (``[K, 1]`` against a ``[K, P]`` variable).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from stellarnet.checks import check_choice
from stellarnet.vocabulary import OPTIMIZERS

ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7
"""``keras.optimizers.Adam`` defaults."""


class OptimizerState(NamedTuple):
    """What an update reads and returns, as tensors (a traced loop's loop variables)."""

    iterations: Any
    """The number of updates so far (int64)."""
    theta: Any
    """All parameters packed as one flat vector in the order of the variables (one variable:
    its value, in its shape)."""
    moments: tuple[Any, ...] = ()
    """Adam's first and second moments, shaped like ``theta``; SGD: none."""


class Optimizer:
    """Adam (``"adam"``) or plain gradient descent (``"sgd"``) over a fixed list of variables.

    Parameters
    ----------
    name : {"adam", "sgd"}
    variables : sequence of tf.Variable
        What :meth:`store` writes, in the order of the gradients :meth:`update` is given.
    learning_rate : float or tensor
        The step size eta, a scalar or a tensor broadcasting against the packed parameters.

    The state is an :class:`OptimizerState`.
    """

    def __init__(self, name: str, variables: Sequence[Any], learning_rate: Any) -> None:
        import tensorflow as tf

        self.name = check_choice(name, "optimizer", OPTIMIZERS)
        self.variables = list(variables)
        self.learning_rate = tf.cast(learning_rate, tf.float32)
        self.sizes = [int(np.prod(variable.shape)) for variable in self.variables]
        self.counters: tuple[Any, ...] | None = None
        """The step count and moments of the last stored state (None: no update yet)."""

    def state(self) -> OptimizerState:
        """The current state: the parameters read from the variables, the step count and
        moments as last stored (at first: 0 and zeros)."""
        import tensorflow as tf

        theta = self.pack(self.variables)
        if self.counters is not None:
            iterations, *moments = self.counters
        else:
            iterations = tf.constant(0, tf.int64)
            moments = [tf.zeros_like(theta)] * 2 if self.name == "adam" else []
        return OptimizerState(iterations, theta, tuple(moments))

    def store(self, state: OptimizerState) -> None:
        """Write ``state``'s parameters to the variables; keep its step count and moments."""
        self.counters = (state.iterations, *state.moments)
        for variable, value in zip(self.variables, self.unpack(state.theta), strict=True):
            variable.assign(value)

    def pack(self, tensors: Sequence[Any]) -> Any:
        """Tensors shaped like the variables as one flat vector (one tensor: as it is)."""
        import tensorflow as tf

        if len(tensors) == 1:
            return tf.convert_to_tensor(tensors[0])
        # (Vectors as they are: every op saved is one less to trace and to run per epoch.)
        return tf.concat([t if t.shape.rank == 1 else tf.reshape(t, [-1]) for t in tensors], 0)

    def unpack(self, theta: Any) -> list[Any]:
        """The packed parameters ``theta`` as tensors shaped like the variables."""
        import tensorflow as tf

        if len(self.variables) == 1:
            return [theta]
        parts = tf.split(theta, self.sizes)
        return [
            p if len(v.shape) == 1 else tf.reshape(p, v.shape)
            for p, v in zip(parts, self.variables, strict=True)
        ]

    def update(
        self, state: OptimizerState, grads: Sequence[Any], learning_rate: Any = None
    ) -> tuple[Any, OptimizerState]:
        """One update: ``theta <- theta - eta * g`` (SGD) or Adam's bias-corrected step.

        ``grads`` are shaped like the variables; ``learning_rate`` None: the optimizer's.
        Returns the packed gradient (ready to record) and the new state.
        """
        import tensorflow as tf

        eta = self.learning_rate if learning_rate is None else learning_rate
        iterations, theta, moments = state
        grad = self.pack(grads)
        if self.name == "sgd":
            # theta - step, as the optimizers' assign_sub computes it.
            return grad, OptimizerState(iterations + 1, theta - grad * eta)
        # keras.optimizers.Adam.update_step, operation for operation. It is elementwise,
        # so one flat vector gives each parameter the numbers it gets alone.
        step = tf.cast(iterations + 1, tf.float32)
        beta_1_power = tf.pow(tf.cast(ADAM_BETA_1, tf.float32), step)
        beta_2_power = tf.pow(tf.cast(ADAM_BETA_2, tf.float32), step)
        alpha = eta * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m, v = moments  # m += (g - m)(1 - beta_1), as assign_add computes it; v likewise
        m = m + (grad - m) * (1 - ADAM_BETA_1)
        v = v + (tf.square(grad) - v) * (1 - ADAM_BETA_2)
        theta = theta - (m * alpha) / (tf.sqrt(v) + ADAM_EPSILON)
        return grad, OptimizerState(iterations + 1, theta, (m, v))
