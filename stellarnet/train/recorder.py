"""One net's epoch, written as the assignment's equations, and its record row.

Each epoch reads like the equations (:meth:`Recorder.advance`)::

    yhat  = model(x)                      # forward
    L     = loss(y, yhat)                 # Keras MeanSquaredError: mean((y - yhat)**2)
    g     = dL/dtheta                     # GradientTape (plain Dense nets: its ops written
                                          # out, stellarnet.train.backprop; the same numbers)
    theta = optimizer.update(theta, g)    # Adam, or plain SGD: theta <- theta - eta * g
                                          # (Keras' formulas: stellarnet.train.optimizers)
    record(epoch, mean(yhat), L, theta, g)

Row k of the history holds ``output``, ``loss`` and the gradients computed with the
parameters *before* epoch k's update and the parameters *after* it; row 0 holds the initial
parameters with the initial model's output and loss (:mod:`stellarnet.schema`).

The loss is Keras ``MeanSquaredError``, mean((y - yhat)^2), as the assignment notebook's code
computes it; the notebook's equations write 1/2 (y - yhat)^2, which is ``loss="half_mse"``
(its gradients are exactly half as large). Mini-batch epochs are described in
:class:`Recorder`. The engine (:mod:`stellarnet.train.engine`) runs the epochs.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from stellarnet.checks import check_positive_int
from stellarnet.errors import ConfigError
from stellarnet.schema import DEFAULT_RECORD, HistorySchema, history_frame
from stellarnet.train.backprop import make_loss
from stellarnet.train.chain import DenseChain
from stellarnet.train.optimizers import Optimizer, OptimizerState
from stellarnet.train.policy import ExecutionPolicy

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


class RunData(NamedTuple):
    """What an epoch reads besides the state: a compiled run takes it as an argument."""

    x: Any
    y: Any
    learning_rate: Any
    validation: tuple[Any, ...] = ()
    """``(x_val, y_val)``, or ``()``."""


class Recorder:
    """One model, one optimizer, one data set: runs epochs and returns their record rows.

    A record row is a float32 vector ``[output, loss, (val_loss), *parameters, *gradients,
    *activations]`` in the order of :attr:`columns` (without ``epoch``).

    Full batch (``batch_size=None``): one step per epoch; ``output``, ``loss``, gradients and
    activations are those of that step, computed before the update. Mini-batches: the rows
    are reshuffled every epoch (stateless, seeded by ``(shuffle_seed, epoch)``) and cut into
    ``ceil(n / batch_size)`` steps; ``output``, ``loss``, gradients and activations are the
    means over the epoch's steps, each computed before its step's update; parameters are
    those at the end of the epoch. ``val_loss`` (with validation data) is the loss on the
    validation rows with the parameters at the end of the epoch (row 0: initial), as Keras
    reports it. The loss includes ``model.losses`` (weight penalties, Dense activity
    regularisers, and the losses of layers such as ``ActivityRegularization``); the variables'
    constraints (``kernel_constraint``, ``bias_constraint``) are applied after every update,
    as Keras' optimizers apply them.

    Parameters
    ----------
    model : keras.Model
        A chain of Dense layers (and parameter-free layers such as Dropout), Sequential or
        functional (:func:`~stellarnet.train.chain.chain_of_layers`); trained in place.
    x, y : ndarray
        Inputs ``(n, n_features)`` and targets ``(n, n_outputs)``.
    optimizer : {"adam", "sgd"}
    learning_rate : float
    loss : {"mse", "half_mse"}
    record : tuple of str
        Record groups (see :func:`train`).
    batch_size : int or None
        Mini-batch size; None: the full batch.
    shuffle_seed : int
        Seed of the per-epoch mini-batch shuffle.
    validation : (x_val, y_val), optional
        Rows scored after every epoch (``val_loss``).

    Attributes
    ----------
    use_tape : bool
        True: gradients from ``tf.GradientTape``. False (a plain Dense net: ReLU, tanh,
        sigmoid or linear units, no dropout, no penalties): from the tape's ops written out
        (:mod:`stellarnet.train.backprop`), the same numbers with a smaller graph.
    """

    default_policy = ExecutionPolicy()
    """One net's epoch is a chain of small ops: the single-threaded executor, no grappler."""

    def __init__(
        self,
        model: keras.Model,
        x: np.ndarray,
        y: np.ndarray,
        optimizer: str,
        learning_rate: float,
        loss: str = "mse",
        record: tuple[str, ...] = DEFAULT_RECORD,
        batch_size: int | None = None,
        shuffle_seed: int = 0,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        import tensorflow as tf

        self.model = model
        self.chain = DenseChain(model)
        self.loss_fn = make_loss(loss)
        self.loss_scale = 0.5 if loss == "half_mse" else 1.0
        # Plain Dense nets are differentiated with written-out ops (stellarnet.train.backprop),
        # anything else (dropout, penalties, other activations) with the tape.
        self.use_tape = not self.chain.plain
        rows = len(y)
        if batch_size is not None and check_positive_int(batch_size, "batch_size") > rows:
            raise ConfigError(f"batch_size {batch_size} is larger than the {rows} training rows")
        self.batch_size = None if batch_size in (None, rows) else batch_size
        self.steps = 1 if self.batch_size is None else -(-rows // self.batch_size)
        self.shuffle_seed = shuffle_seed
        has_validation = validation is not None and len(validation[1]) > 0
        self.schema = HistorySchema(
            self.chain.layer_sizes, record, has_validation, self.chain.biases
        )
        # Where the recorded parameters sit in the optimizer's flat parameter vector.
        self.positions = self.schema.recorded_positions
        self.record_all = len(self.positions) == self.schema.parameter_count
        self.record_gradients = "gradients" in record
        self.record_activations = "activations" in record
        self.optimizer = Optimizer(optimizer, self.chain.variables, learning_rate)
        if validation is None or not len(validation[1]):
            validation = ()
        x, y, *validation = (tf.constant(a, dtype=tf.float32) for a in (x, y, *validation))
        self.data = RunData(x, y, self.optimizer.learning_rate, tuple(validation))

    @property
    def columns(self) -> list[str]:
        """History column names, ``epoch`` first."""
        return self.schema.columns

    @staticmethod
    def host_rows(block: np.ndarray) -> np.ndarray:
        """Record rows as the graph returns them are history rows already."""
        return block

    def frame(self, rows: list[np.ndarray], epoch_numbers: list[int]) -> pd.DataFrame:
        """The history table of these rows."""
        return history_frame(rows, epoch_numbers, self.columns)

    def state(self) -> OptimizerState:
        """The optimizer's state, read from the variables (see :class:`Optimizer`)."""
        return self.optimizer.state()

    def store(self, state: OptimizerState) -> None:
        """Write ``state`` to the model's (and the optimizer's) variables."""
        self.optimizer.store(state)
        if any(layer.losses for layer in self.chain.others) or any(
            layer.activity_regularizer is not None for layer in self.chain.dense
        ):
            # model.losses holds the losses of each layer's last call: after a graph run the
            # graph's tensors, and never the recorder's own Dense activity penalties. Call
            # the model, so that it holds those of the stored model.
            self.model(self.data.x, training=False)

    def forward(
        self, x: tf.Tensor, parameters: list[Any], training: bool
    ) -> tuple[tf.Tensor, list[tf.Tensor], list[tf.Tensor]]:
        """The network's output on ``x`` with ``parameters`` (shaped like :attr:`variables`),
        each hidden Dense layer's activations, and the losses the layers add on the way, in
        layer order as ``model.losses`` lists them (activity regularisers, the losses of
        layers such as ``ActivityRegularization``)."""
        import tensorflow as tf

        layers = iter(self.chain.layer_parameters(parameters))
        values, hidden, added = x, [], []
        for layer in self.chain.layers:
            if layer not in self.chain.dense:
                values = layer(values, training=training)
                added += layer.losses
                continue
            # Dense.call's own ops (matmul, add, activation) on the given parameters.
            kernel, bias = next(layers)
            values = tf.matmul(values, kernel)
            if bias is not None and not self.use_tape and kernel.shape[0] == 1:
                # One input: the matmul is an outer product, exact in any kernel, so the
                # bias may be added with BiasAdd, which grappler fuses with the matmul
                # and activation. (Not under the tape: its BiasAdd gradient sums the
                # bias gradient in another order than Keras' add's.)
                values = tf.nn.bias_add(values, bias)
            elif bias is not None:
                values = tf.add(values, bias)
            if layer.activation is not None:
                values = layer.activation(values)
            if layer.activity_regularizer is not None:
                # As Layer.__call__ adds it: the penalty per row of the batch.
                penalty = layer.activity_regularizer(values)
                rows = tf.cast(tf.shape(values)[0], penalty.dtype)
                added.append(tf.math.divide_no_nan(penalty, rows))
            if layer is not self.chain.dense[-1]:
                hidden.append(values)
        return values, hidden, added

    def objective(
        self, y: tf.Tensor, yhat: tf.Tensor, parameters: list[Any], added: list[tf.Tensor]
    ) -> tf.Tensor:
        """The loss minimised: data loss plus ``model.losses`` as Keras lists them: the
        layer-added losses of the :meth:`forward` pass that computed ``yhat``, then the weight
        penalties, computed on ``parameters``."""
        loss = self.loss_fn(y, yhat)
        extra = [*added, *(penalty(parameters[i]) for i, penalty in self.chain.penalties)]
        return loss + sum(extra) if extra else loss

    def constrain(self, state: OptimizerState) -> OptimizerState:
        """``state`` with the variables' constraints applied to its parameters."""
        if not self.chain.constraints:
            return state
        parameters = self.optimizer.unpack(state.theta)
        for i, constraint in self.chain.constraints:
            parameters[i] = constraint(parameters[i])
        return state._replace(theta=self.optimizer.pack(parameters))

    def validation_loss(self, theta: Any, validation: tuple[Any, ...]) -> list[tf.Tensor]:
        """``[val_loss]`` with the packed parameters ``theta``, or ``[]`` without validation
        data."""
        if not validation:
            return []
        x_val, y_val = validation
        parameters = self.optimizer.unpack(theta)
        yhat, _, added = self.forward(x_val, parameters, training=False)
        return [self.objective(y_val, yhat, parameters, added)]

    def flat(self, values: Any) -> tf.Tensor:
        """The optimizer's packed parameters (or gradients) as a 1-D tensor."""
        import tensorflow as tf

        return values if len(self.chain.variables) > 1 else tf.reshape(values, [-1])

    def row(
        self,
        output: Any,
        loss: Any,
        grad: Any | None,
        hidden: list[Any],
        theta: Any,
        val_loss: list[Any],
    ) -> tf.Tensor:
        """Pack one epoch's record into a flat float32 vector (one transfer to the host).

        ``output`` and ``hidden`` are already averaged over the batch; ``grad`` and ``theta``
        are the optimizer's packed gradients (None: NaN) and parameters; ``val_loss`` is
        :meth:`validation_loss`.
        """
        import tensorflow as tf

        def recorded(values: Any) -> Any:
            values = self.flat(values)
            return values if self.record_all else tf.gather(values, self.positions)

        parts = [tf.stack([output, loss, *val_loss]), recorded(theta)]
        if self.record_gradients:
            if grad is None:
                parts.append(tf.fill([len(self.positions)], np.float32(np.nan)))
            else:
                parts.append(recorded(grad))
        if self.record_activations:
            parts += hidden
        return tf.concat(parts, axis=0)

    def initial(self, state: OptimizerState, data: RunData) -> tf.Tensor:
        """The row of ``state`` (row 0: the initial one): its parameters, output and loss;
        no gradients (NaN)."""
        import tensorflow as tf

        theta = state.theta
        parameters = self.optimizer.unpack(theta)
        x, y, _, validation = data
        yhat, hidden, added = self.forward(x, parameters, training=False)
        means = [tf.reduce_mean(a, axis=0) for a in hidden]
        loss = self.objective(y, yhat, parameters, added)
        val_loss = self.validation_loss(theta, validation)
        return self.row(tf.reduce_mean(yhat), loss, None, means, theta, val_loss)

    def step(
        self, state: OptimizerState, x: tf.Tensor, y: tf.Tensor, learning_rate: Any
    ) -> tuple[OptimizerState, Any, Any, Any, list[Any]]:
        """One update of ``state`` on the batch ``(x, y)``: forward, loss, gradient, update.

        Returns the new state and the batch-mean output, the loss, the packed gradients and
        the batch-mean hidden activations, all computed before the update. The gradients are
        the tape's; for a plain Dense net they are computed with the tape's own ops, written
        out (:mod:`stellarnet.train.backprop`: the same numbers, a smaller graph).
        """
        import tensorflow as tf

        from stellarnet.train.backprop import dense_gradients, mse_and_gradient

        parameters = self.optimizer.unpack(state.theta)
        if self.use_tape:
            with tf.GradientTape() as tape:
                tape.watch(parameters)
                yhat, hidden, added = self.forward(x, parameters, training=True)
                loss = self.objective(y, yhat, parameters, added)
            grads = tape.gradient(loss, parameters)
        else:
            yhat, hidden, _ = self.forward(x, parameters, training=True)
            loss, grad = mse_and_gradient(y, yhat, self.loss_scale)
            layers = self.chain.layer_parameters(parameters)
            activations = self.chain.activations
            grads = dense_gradients(layers, activations, [x, *hidden], [*hidden, yhat], grad)
        grad, state = self.optimizer.update(state, grads, learning_rate)
        state = self.constrain(state)  # as Keras' optimizers do after every update
        means = [tf.reduce_mean(a, axis=0) for a in hidden]
        return state, tf.reduce_mean(yhat), loss, grad, means

    def advance(self, state: OptimizerState, data: RunData) -> tuple[OptimizerState, tf.Tensor]:
        """One epoch from ``state`` on ``data`` (:attr:`data`, or a compiled run's argument):
        one step on the full batch, or a pass over shuffled mini-batches. Returns the new
        state and the epoch's record row."""
        import tensorflow as tf

        x, y, learning_rate, validation = data
        if self.batch_size is None:
            state, *values = self.step(state, x, y, learning_rate)
        else:
            epoch = state.iterations // self.steps + 1  # from 1, as the updates are counted
            seed = tf.stack([tf.constant(self.shuffle_seed, tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(y)[0]), seed)
            zeros = [tf.zeros([]), tf.zeros([]), tf.zeros_like(state.theta)]
            zeros += [tf.zeros([layer.units]) for layer in self.chain.dense[:-1]]

            def add_step(step: Any, state: Any, sums: list[Any]) -> tuple[Any, Any, list[Any]]:
                batch = order[step * self.batch_size : (step + 1) * self.batch_size]
                state, output, loss, grad, hidden = self.step(
                    state, tf.gather(x, batch), tf.gather(y, batch), learning_rate
                )
                values = [output, loss, grad, *hidden]
                return step + 1, state, [a + b for a, b in zip(sums, values, strict=True)]

            # A while loop (a Python loop when eager): the graph does not grow with the steps.
            _, state, sums = tf.while_loop(
                lambda step, *_: step < self.steps, add_step, (0, state, zeros)
            )
            output, loss, grad, *hidden = [total / self.steps for total in sums]
            values = [output, loss, grad, hidden]
        theta = state.theta  # the parameters after the (last) step
        return state, self.row(*values, theta, self.validation_loss(theta, validation))

    def restore(self, row: np.ndarray) -> None:
        """Set the model's variables to the parameters of a history row (without ``epoch``),
        e.g. early stopping's best epoch; exact, as the row holds copies of the float32
        values. Needs every kernel and bias recorded."""
        if not self.record_all:
            raise ConfigError("restoring an epoch's weights needs kernels and biases recorded")
        start = self.schema.columns.index(self.schema.recorded_blocks[0].names()[0]) - 1
        flat = np.asarray(row[start : start + len(self.positions)], np.float32)
        for variable, block in zip(self.chain.variables, self.schema.blocks, strict=True):
            variable.assign(flat[block.start : block.start + block.size].reshape(variable.shape))

    @property
    def row_shape(self) -> list[int]:
        """Shape of one record row."""
        return [len(self.columns) - 1]

    @property
    def signature(self) -> Hashable | None:
        """All that a compiled run's graph depends on besides its arguments (state and
        :attr:`data`): recorders with equal signatures share one traced graph
        (:func:`~stellarnet.train.engine.traced_epochs`). None (never shared) for nets that
        are not plain Dense nets (:attr:`use_tape`: dropout, penalties, other layers) or have
        constraints: the graph then calls Keras objects, whose settings and state (e.g.
        dropout's seed) it captures."""
        if self.use_tape or self.chain.constraints:
            return None
        data = (self.data.x, self.data.y, *self.data.validation)
        return (
            tuple(tuple(variable.shape) for variable in self.chain.variables),
            tuple(self.chain.layer_positions),
            tuple(self.chain.activations),
            self.loss_scale,
            self.optimizer.name,
            tuple(self.positions.tolist()),
            (self.record_gradients, self.record_activations),
            (self.batch_size, self.shuffle_seed if self.batch_size else None),
            tuple(tuple(tensor.shape) for tensor in data),
        )
