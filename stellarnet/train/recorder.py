"""The recorded training loop: gradient descent on ``tf.GradientTape``'s gradients, one
history row per epoch.

Each epoch reads like the assignment's equations (:meth:`Recorder.advance`)::

    yhat  = model(x)                      # forward
    L     = loss(y, yhat)                 # Keras MeanSquaredError: mean((y - yhat)**2)
    g     = dL/dtheta                     # GradientTape (plain Dense nets: its ops written
                                          # out, stellarnet.train.backprop; the same numbers)
    theta = optimizer.update(theta, g)    # Adam, or plain SGD: theta <- theta - eta * g
                                          # (Keras' formulas: stellarnet.train.optimizers)
    record(epoch, mean(yhat), L, theta, g)

Row k of the history holds ``output``, ``loss`` and the gradients computed with the
parameters *before* epoch k's update and the parameters *after* it; row 0 holds the initial
parameters with the initial model's output and loss. See :mod:`stellarnet.results.history`.

The loss is Keras ``MeanSquaredError``, mean((y - yhat)^2), as the assignment notebook's code
computes it; the notebook's equations write 1/2 (y - yhat)^2, which is ``loss="half_mse"``
(its gradients are exactly half as large). Mini-batch epochs are described in
:class:`Recorder`.

Two engines run the same epoch function:

``"eager"``
    One Python iteration per epoch and one device-to-host transfer of the whole record row.
    Best for short runs (no tracing cost).
``"graph"``
    The epochs run inside one ``tf.function`` (a ``tf.while_loop`` that carries the
    optimizer's state and writes a ``tf.TensorArray``), called once per chunk of epochs. It
    is traced on a run's first call; for plain Dense nets, later runs of the same shapes in
    the process reuse it (:func:`traced_epochs`). The numbers are the eager engine's, bit
    for bit on CPU without XLA (full batch; mini-batch epochs agree to about 1e-7).
    ``jit_compile=True`` (XLA) rounds differently and is opt-in.

``"auto"`` (default) picks eager below :data:`GRAPH_MIN_EPOCHS` epochs and graph above.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from stellarnet.errors import ConfigError, TrainingDiverged
from stellarnet.results.history import PARAMETER_KINDS, column_name
from stellarnet.tfsettings import check_onednn
from stellarnet.train.optimizers import Optimizer

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

log = logging.getLogger(__name__)

LOSSES = ("mse", "half_mse")
ENGINES = ("auto", "eager", "graph")
RECORD_GROUPS = ("kernels", "biases", "gradients", "activations")
DEFAULT_RECORD = ("kernels", "biases", "gradients")
GRAPH_MIN_EPOCHS = 20
"""``engine="auto"`` runs a graph for runs of at least this many epochs. On the assignment's
net (2-core CPU) an eager epoch costs about 7 ms; a first graph run about 0.15 s before its
first epoch (tracing, graph optimisation) and 0.1 ms per epoch: they break even near 18
epochs. (A repeat run that reuses its graph would break even sooner; the threshold is set
for the first.)"""
CHUNK_SECONDS = 0.5
"""Target wall time of one graph call; the progress bar advances between calls."""
GRAPPLER_DEFAULT = 2
"""Rounds of grappler's passes TensorFlow makes over a function's graph by default (see
:attr:`Recorder.grappler_iterations`)."""
XLA_CHUNK_EPOCHS = 1024
"""Epochs per call with ``jit_compile=True`` (or ``record_every``, if more). XLA compiles for
fixed shapes, so every call returns as many rows as a full chunk records (the last chunk's
unused ones are dropped) and one compiled graph serves them all."""


def xla_chunk_rows(record_every: int) -> int:
    """Rows recorded by a full chunk of epochs under XLA (see :data:`XLA_CHUNK_EPOCHS`)."""
    return max(1, XLA_CHUNK_EPOCHS // record_every)


TRACED_RUNS_KEPT = 8
"""Traced graph runs kept for reuse (see :func:`traced_epochs`), most recently used first."""
_traced_runs: OrderedDict[Hashable, Any] = OrderedDict()


def check_learning_rate(learning_rate: Any) -> float:
    """Return ``learning_rate`` as a float, or raise ConfigError unless it is finite and > 0."""
    if isinstance(learning_rate, bool):
        raise ConfigError(f"learning rate must be a number, got {learning_rate!r}")
    try:
        value = float(learning_rate)
    except (TypeError, ValueError):
        raise ConfigError(f"learning rate must be a number, got {learning_rate!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"learning rate must be finite and > 0, got {learning_rate!r}")
    return value


def check_epochs(epochs: Any) -> int:
    """Return ``epochs`` or raise ConfigError unless it is a positive integer."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    return epochs


def check_record(record: Iterable[str]) -> tuple[str, ...]:
    """Return the record groups as a tuple, or raise ConfigError naming an unknown one."""
    record = tuple(record)
    unknown = [name for name in record if name not in RECORD_GROUPS]
    if unknown:
        raise ConfigError(f"unknown record group(s) {unknown}; known: {list(RECORD_GROUPS)}")
    return record


def make_loss(name: str) -> Callable[[Any, Any], Any]:
    """``"mse"``: mean((y - yhat)^2); ``"half_mse"``: 0.5 * mean((y - yhat)^2).

    ``"mse"`` is ``keras.losses.MeanSquaredError`` operation for operation (the mean over the
    last axis, the sum, ``divide_no_nan`` by the count), without Keras' loss machinery (about
    twice the ops in a traced epoch); the tests hold it to Keras' numbers bit for bit.
    """
    from stellarnet.train.backprop import keras_mse

    def mse(y: Any, yhat: Any) -> Any:
        return keras_mse(y - yhat)[0]

    if name == "mse":
        return mse
    if name == "half_mse":
        return lambda y, yhat: 0.5 * mse(y, yhat)
    raise ConfigError(f"unknown loss {name!r}; known: {list(LOSSES)}")


def chain_of_layers(model: keras.Model) -> list[Any]:
    """The layers of ``model`` in order, without its input layer, if each takes the previous
    one's output (a ``Sequential`` model, or a functional one without branches); otherwise
    ConfigError."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        return layers
    chained = (
        bool(layers)
        and getattr(model, "inputs", None) is not None  # a subclassed model has none
        and len(model.inputs) == len(model.outputs) == 1
        and layers[0].input is model.inputs[0]
        and layers[-1].output is model.outputs[0]
        and all(layer.input is layers[i].output for i, layer in enumerate(layers[1:]))
    )
    if not chained:
        raise ConfigError(
            f"model {model.name!r} is not a chain of layers: the recorder trains a Sequential "
            "model, or a functional one in which each layer takes the previous one's output "
            "(a subclassed model: rebuild it with keras.Sequential)"
        )
    return layers


def check_layer(layer: Any) -> None:
    """Raise ConfigError for a layer whose call the recorder does not reproduce
    (:meth:`Recorder.forward` applies a Dense layer's kernel, bias and activation, and calls
    the other layers, on float32 values)."""
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        raise ConfigError(
            f"layer {layer.name!r} is LoRA-enabled or quantized, which the recorder does "
            "not train: record a plain Dense layer (without lora_rank or quantize())"
        )
    if layer.compute_dtype != "float32" or layer.variable_dtype != "float32":
        raise ConfigError(
            f"layer {layer.name!r} computes in {layer.compute_dtype} (variables "
            f"{layer.variable_dtype}); the recorder works in float32: build the model under "
            'keras.mixed_precision.set_global_policy("float32")'
        )


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
        functional (:func:`chain_of_layers`); trained in place.
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

    executor = "SINGLE_THREADED_EXECUTOR"
    """TensorFlow executor of the traced epochs. A single net's epoch is a chain of small ops
    with nothing to run side by side; TensorFlow's single-threaded executor runs it without
    handing ops between threads. Measured on the HR net (2 cores, 2000 epochs, best of 5):
    a first run 0.28 s instead of 0.31 s, a repeat run 0.23 s instead of 0.26 s, steady
    epochs 0.069 instead of 0.09 ms; the numbers are the same, bit for bit."""

    grappler_iterations = 0
    """How many times TensorFlow's graph optimiser (grappler) runs its passes over the traced
    epochs at their first call (TensorFlow's default: :data:`GRAPPLER_DEFAULT`; 0: not at
    all). On the single-threaded executor it gains nothing and costs 20-35 ms per run
    (seeding clears TensorFlow's caches, so repeat runs pay it again). Measured without it
    against with it (2 cores, 3 interleaved pairs, best of 5 each): HR net, 2000 epochs, a
    first run 0.210-0.219 s against 0.235-0.256 s, a repeat run 0.164-0.176 s against
    0.188-0.208 s, steady epochs 0.059-0.066 ms against 0.063-0.068 ms; mini-batches, dropout
    and a 4-16-16-1 net were 5-20 % faster too. The numbers are the same, bit for bit."""

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
        import keras
        import tensorflow as tf

        from stellarnet.train.backprop import activation_name
        from stellarnet.train.models import dense_parameters

        self.model = model
        self.layers = chain_of_layers(model)
        self.dense = [layer for layer in self.layers if isinstance(layer, keras.layers.Dense)]
        self.others = [layer for layer in self.layers if layer not in self.dense]  # e.g. Dropout
        for layer in self.layers:
            check_layer(layer)
        self.loss_fn = make_loss(loss)
        self.loss_scale = 0.5 if loss == "half_mse" else 1.0
        # Plain Dense nets are differentiated with written-out ops (stellarnet.train.backprop),
        # anything else (dropout, penalties, other activations) with the tape.
        self.activations = [activation_name(layer.activation) for layer in self.dense]
        self.use_tape = (
            bool(self.others)
            or bool(model.losses)
            or any(layer.activity_regularizer is not None for layer in self.dense)
            or None in self.activations
        )
        rows = len(y)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if batch_size is not None and batch_size > rows:
            raise ConfigError(f"batch_size {batch_size} is larger than the {rows} training rows")
        self.batch_size = None if batch_size in (None, rows) else batch_size
        self.steps = 1 if self.batch_size is None else -(-rows // self.batch_size)
        self.shuffle_seed = shuffle_seed
        self.parameters = dense_parameters(model)  # (layer, kind, variable), history order
        self.variables = [variable for _, _, variable in self.parameters]
        trainable = [layer.name for layer in self.others if layer.trainable_weights]
        if trainable or len(self.variables) != len(model.trainable_variables):
            raise ConfigError(
                f"the recorder trains Dense layers only, and {trainable or 'the model'} has "
                "other trainable weights: freeze such layers (layer.trainable = False; a "
                "frozen BatchNormalization applies its moving statistics) or remove them"
            )
        # Each Dense layer's (kernel, bias) positions in the list of variables (bias: None).
        where = {(layer, kind): i for i, (layer, kind, _) in enumerate(self.parameters)}
        self.layer_positions = [
            (where[index, "w"], where.get((index, "b"))) for index in range(1, len(self.dense) + 1)
        ]
        # The weight penalties (in model.losses), as functions of the parameters.
        self.penalties = [
            (i, variable.regularizer)
            for i, variable in enumerate(self.variables)
            if getattr(variable, "regularizer", None) is not None
        ]
        # The variables' constraints (e.g. keras.constraints.NonNeg), applied after every
        # update as Keras' optimizers do.
        self.constraints = [
            (i, variable.constraint)
            for i, variable in enumerate(self.variables)
            if getattr(variable, "constraint", None) is not None
        ]
        kinds = {"w"} if "kernels" in record else set()
        kinds |= {"b"} if "biases" in record else set()
        self.recorded = [i for i, (_, kind, _) in enumerate(self.parameters) if kind in kinds]
        # Where the recorded parameters sit in the optimizer's flat parameter vector.
        offsets = np.cumsum([0, *(int(np.prod(v.shape)) for v in self.variables)])
        positions = [p for i in self.recorded for p in range(offsets[i], offsets[i + 1])]
        self.record_all = positions == list(range(offsets[-1]))
        self.positions = np.array(positions, dtype=np.int32)
        self.record_gradients = "gradients" in record
        self.record_activations = "activations" in record
        self.optimizer = Optimizer(optimizer, self.variables, learning_rate)
        if validation is None or not len(validation[1]):
            validation = ()
        x, y, *validation = (tf.constant(a, dtype=tf.float32) for a in (x, y, *validation))
        self.data = RunData(x, y, self.optimizer.learning_rate, tuple(validation))

    @property
    def columns(self) -> list[str]:
        """History column names, ``epoch`` first."""
        values, grads = [], []
        for i in self.recorded:
            layer, kind, variable = self.parameters[i]
            size = int(np.prod(variable.shape))
            values += [column_name(kind, layer, j) for j in range(1, size + 1)]
            grads += [column_name(PARAMETER_KINDS[kind], layer, j) for j in range(1, size + 1)]
        activations = [
            column_name("a", index, j)
            for index, layer in enumerate(self.dense[:-1], start=1)
            for j in range(1, layer.units + 1)
        ]
        return [
            "epoch",
            "output",
            "loss",
            *(["val_loss"] if self.data.validation else []),
            *values,
            *(grads if self.record_gradients else []),
            *(activations if self.record_activations else []),
        ]

    @staticmethod
    def host_rows(block: np.ndarray) -> np.ndarray:
        """Record rows as the graph returns them are history rows already."""
        return block

    def frame(self, rows: list[np.ndarray], epoch_numbers: list[int]) -> pd.DataFrame:
        """The history table of these rows."""
        return history_frame(rows, epoch_numbers, self.columns)

    def state(self) -> tuple[Any, ...]:
        """The optimizer's state, read from the variables (see :class:`Optimizer`)."""
        return self.optimizer.state()

    def store(self, state: tuple[Any, ...]) -> None:
        """Write ``state`` to the model's (and the optimizer's) variables."""
        self.optimizer.store(state)
        if any(layer.losses for layer in self.others) or any(
            layer.activity_regularizer is not None for layer in self.dense
        ):
            # model.losses holds the losses of each layer's last call: after a graph run the
            # graph's tensors, and never the recorder's own Dense activity penalties. Call
            # the model, so that it holds those of the stored model.
            self.model(self.data.x, training=False)

    def layer_parameters(self, parameters: list[Any]) -> list[tuple[Any, Any]]:
        """Each Dense layer's ``(kernel, bias)`` (bias None: none) from ``parameters`` shaped
        like :attr:`variables`."""
        return [
            (parameters[w], None if b is None else parameters[b]) for w, b in self.layer_positions
        ]

    def forward(
        self, x: tf.Tensor, parameters: list[Any], training: bool
    ) -> tuple[tf.Tensor, list[tf.Tensor], list[tf.Tensor]]:
        """The network's output on ``x`` with ``parameters`` (shaped like :attr:`variables`),
        each hidden Dense layer's activations, and the losses the layers add on the way, in
        layer order as ``model.losses`` lists them (activity regularisers, the losses of
        layers such as ``ActivityRegularization``)."""
        import tensorflow as tf

        layers = iter(self.layer_parameters(parameters))
        values, hidden, added = x, [], []
        for layer in self.layers:
            if layer not in self.dense:
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
            if layer is not self.dense[-1]:
                hidden.append(values)
        return values, hidden, added

    def objective(
        self, y: tf.Tensor, yhat: tf.Tensor, parameters: list[Any], added: list[tf.Tensor]
    ) -> tf.Tensor:
        """The loss minimised: data loss plus ``model.losses`` as Keras lists them: the
        layer-added losses of the :meth:`forward` pass that computed ``yhat``, then the weight
        penalties, computed on ``parameters``."""
        loss = self.loss_fn(y, yhat)
        extra = [*added, *(penalty(parameters[i]) for i, penalty in self.penalties)]
        return loss + sum(extra) if extra else loss

    def constrain(self, state: tuple[Any, ...]) -> tuple[Any, ...]:
        """``state`` with the variables' constraints applied to its parameters."""
        if not self.constraints:
            return state
        parameters = self.optimizer.unpack(state[1])
        for i, constraint in self.constraints:
            parameters[i] = constraint(parameters[i])
        return (state[0], self.optimizer.pack(parameters), *state[2:])

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

        return values if len(self.variables) > 1 else tf.reshape(values, [-1])

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

    def initial(self, state: tuple[Any, ...], data: RunData) -> tf.Tensor:
        """The row of ``state`` (row 0: the initial one): its parameters, output and loss;
        no gradients (NaN)."""
        import tensorflow as tf

        theta = state[1]
        parameters = self.optimizer.unpack(theta)
        x, y, _, validation = data
        yhat, hidden, added = self.forward(x, parameters, training=False)
        means = [tf.reduce_mean(a, axis=0) for a in hidden]
        loss = self.objective(y, yhat, parameters, added)
        val_loss = self.validation_loss(theta, validation)
        return self.row(tf.reduce_mean(yhat), loss, None, means, theta, val_loss)

    def step(
        self, state: tuple[Any, ...], x: tf.Tensor, y: tf.Tensor, learning_rate: Any
    ) -> tuple[tuple[Any, ...], Any, Any, Any, list[Any]]:
        """One update of ``state`` on the batch ``(x, y)``: forward, loss, gradient, update.

        Returns the new state and the batch-mean output, the loss, the packed gradients and
        the batch-mean hidden activations, all computed before the update. The gradients are
        the tape's; for a plain Dense net they are computed with the tape's own ops, written
        out (:mod:`stellarnet.train.backprop`: the same numbers, a smaller graph).
        """
        import tensorflow as tf

        from stellarnet.train.backprop import dense_gradients, mse_and_gradient

        parameters = self.optimizer.unpack(state[1])
        if self.use_tape:
            with tf.GradientTape() as tape:
                tape.watch(parameters)
                yhat, hidden, added = self.forward(x, parameters, training=True)
                loss = self.objective(y, yhat, parameters, added)
            grads = tape.gradient(loss, parameters)
        else:
            yhat, hidden, _ = self.forward(x, parameters, training=True)
            loss, grad = mse_and_gradient(y, yhat, self.loss_scale)
            layers = self.layer_parameters(parameters)
            grads = dense_gradients(layers, self.activations, [x, *hidden], [*hidden, yhat], grad)
        grad, state = self.optimizer.update(state, grads, learning_rate)
        state = self.constrain(state)  # as Keras' optimizers do after every update
        means = [tf.reduce_mean(a, axis=0) for a in hidden]
        return state, tf.reduce_mean(yhat), loss, grad, means

    def advance(self, state: tuple[Any, ...], data: RunData) -> tuple[tuple[Any, ...], tf.Tensor]:
        """One epoch from ``state`` on ``data`` (:attr:`data`, or a compiled run's argument):
        one step on the full batch, or a pass over shuffled mini-batches. Returns the new
        state and the epoch's record row."""
        import tensorflow as tf

        x, y, learning_rate, validation = data
        if self.batch_size is None:
            state, *values = self.step(state, x, y, learning_rate)
        else:
            epoch = state[0] // self.steps + 1  # numbered from 1, as the updates are counted
            seed = tf.stack([tf.constant(self.shuffle_seed, tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(y)[0]), seed)
            zeros = [tf.zeros([]), tf.zeros([]), tf.zeros_like(state[1])]
            zeros += [tf.zeros([layer.units]) for layer in self.dense[:-1]]

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
        theta = state[1]  # the parameters after the (last) step
        return state, self.row(*values, theta, self.validation_loss(theta, validation))

    @property
    def row_shape(self) -> list[int]:
        """Shape of one record row."""
        return [len(self.columns) - 1]

    @property
    def signature(self) -> Hashable | None:
        """All that a compiled run's graph depends on besides its arguments (state and
        :attr:`data`): recorders with equal signatures share one traced graph
        (:func:`traced_epochs`). None (never shared) for nets that are not plain Dense nets
        (:attr:`use_tape`: dropout, penalties, other layers) or have constraints: the graph
        then calls Keras objects, whose settings and state (e.g. dropout's seed) it captures."""
        if self.use_tape or self.constraints:
            return None
        data = (self.data.x, self.data.y, *self.data.validation)
        return (
            tuple(tuple(variable.shape) for variable in self.variables),
            tuple(self.layer_positions),
            tuple(self.activations),
            self.loss_scale,
            self.optimizer.name,
            tuple(self.positions.tolist()),
            (self.record_gradients, self.record_activations),
            (self.batch_size, self.shuffle_seed if self.batch_size else None),
            tuple(tuple(tensor.shape) for tensor in data),
        )


def compile_epochs(
    recorder: Any, record_every: int, jit_compile: bool = False
) -> Callable[[Any, Any, Any, Any, Any], Any]:
    """A ``tf.function`` ``run(state, data, start, count, n_rows)`` that runs ``count``
    epochs of ``recorder`` from ``state`` on ``data``. It returns the new state and the rows
    of the epochs (numbered from ``start + 1``) that are multiples of ``record_every``,
    stacked: the first ``n_rows`` rows returned (more follow with ``record_every`` > 1, and
    with ``jit_compile``, whose calls all return the rows of a full chunk,
    :func:`xla_chunk_rows`).

    It is traced once and reused for every chunk of a run (and, through
    :func:`traced_epochs`, by later runs). The loop is an explicit ``tf.while_loop`` (no
    autograph, which halves the tracing time) whose loop variables carry the optimizer's
    state: the parameters are not read or written as variables inside the loop (only
    layers with state of their own, such as dropout's seed, use theirs).
    """
    import tensorflow as tf

    @tf.function(autograph=False, jit_compile=jit_compile, reduce_retracing=True)
    def run(state: Any, data: Any, start: Any, count: Any, n_rows: Any) -> Any:
        def body(i: Any, written: Any, state: Any, rows: Any) -> tuple[Any, Any, Any, Any]:
            state, row = recorder.advance(state, data)
            rows = rows.write(written, row)
            if record_every == 1:
                return i + 1, written + 1, state, rows
            # Every epoch writes its row to the next free slot, and only a kept row moves on
            # to the next: no branch (a conditional write copies the whole buffer under XLA).
            keep = tf.equal((start + i + 1) % record_every, 0)
            return i + 1, written + tf.cast(keep, tf.int32), state, rows

        size = xla_chunk_rows(record_every) if jit_compile else n_rows  # XLA: one shape
        size += int(record_every > 1)  # the slot the epochs after the last kept one write to
        rows = tf.TensorArray(tf.float32, size=size, element_shape=recorder.row_shape)
        _, _, state, rows = tf.while_loop(
            lambda i, *_: i < count, body, (tf.constant(0), tf.constant(0), state, rows)
        )
        return state, rows.stack()

    return run


def traced_epochs(recorder: Any, state: Any, record_every: int, jit_compile: bool) -> Any:
    """:func:`compile_epochs` of ``recorder``, traced for ``state`` and ``recorder.data``.

    Tracing and graph optimisation cost about 0.1 s, as much as a thousand epochs of the HR
    net. A graph that captures nothing (it reads only its arguments) and whose recorder has a
    ``signature`` is kept and reused by later runs with an equal signature, e.g. the runs of
    a sequential sweep or repeated runs in a notebook (the :data:`TRACED_RUNS_KEPT` most
    recent). The captures check sees tensors and variables only: the signature must name
    every Python value the graph was traced with. (Reuse saves the tracing; the graph
    optimisation is paid again after ``keras.utils.set_random_seed``, which clears
    TensorFlow's caches.)
    """
    import tensorflow as tf

    signature = getattr(recorder, "signature", None)
    key = None if signature is None else (signature, record_every, jit_compile)
    if key in _traced_runs:
        _traced_runs.move_to_end(key)
        return _traced_runs[key]
    scalar = tf.constant(0)
    run = compile_epochs(recorder, record_every, jit_compile)
    traced = run.get_concrete_function(state, recorder.data, scalar, scalar, scalar)
    if key is not None and not traced.captured_inputs:
        _traced_runs[key] = traced
        while len(_traced_runs) > TRACED_RUNS_KEPT:
            _traced_runs.popitem(last=False)
    return traced


def train(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    learning_rate: float,
    epochs: int,
    optimizer: str = "adam",
    loss: str = "mse",
    record: Iterable[str] = DEFAULT_RECORD,
    record_every: int = 1,
    engine: str = "auto",
    jit_compile: bool = False,
    progress: bool = False,
    batch_size: int | None = None,
    shuffle_seed: int = 0,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Train ``model`` on ``(x, y)`` and record every epoch.

    Parameters
    ----------
    model : keras.Model
        A built chain of Dense layers, possibly with parameter-free layers between them (see
        :func:`stellarnet.train.models.build_model` and :class:`Recorder`); trained in place.
    x, y : ndarray
        Inputs ``(n, n_features)`` and targets ``(n, 1)``.
    learning_rate : float
        Step size; finite and > 0.
    epochs : int
        Number of updates (full batch: one step per epoch).
    optimizer : {"adam", "sgd"}
        Keras Adam (default settings) or plain gradient descent.
    loss : {"mse", "half_mse"}
        Keras ``MeanSquaredError`` or half of it.
    record : iterable of {"kernels", "biases", "gradients", "activations"}
        What each row holds besides epoch, output and loss. ``"activations"`` adds the mean
        over the batch of every hidden unit's activation, ``a^{l}_{i}``, computed with the
        parameters before the update (for a batch of one sample, its exact activations).
    record_every : int
        Keep rows only for epochs that are multiples of this (and row 0); the last epoch is
        kept only if it is such a multiple.
    engine : {"auto", "eager", "graph"}
        How the epochs run (see the module docstring); the numbers are the same.
    jit_compile : bool
        Compile the graph with XLA (faster, different rounding; graph engine only).
    progress : bool
        Show a progress bar (after 2 s) on standard error.
    batch_size : int or None
        Mini-batch size; None (or the number of rows) trains on the full batch.
    shuffle_seed : int
        Seed of the per-epoch mini-batch shuffle.
    validation : (x_val, y_val), optional
        Rows scored after every epoch into a ``val_loss`` column.

    Returns
    -------
    pandas.DataFrame
        The history (see :mod:`stellarnet.results.history` and :class:`Recorder` for mini-batch
        means), float64 copies of the float32 values.

    Raises
    ------
    ConfigError
        For a bad learning rate, epoch count, optimizer, loss, record group or engine.
    TrainingDiverged
        If the loss or a parameter becomes NaN or infinite; ``err.history`` holds the rows
        recorded up to and including that epoch.
    """
    learning_rate = check_learning_rate(learning_rate)
    epochs = check_epochs(epochs)
    record = check_record(record)
    recorder = Recorder(
        model,
        x,
        y,
        optimizer,
        learning_rate,
        loss,
        record,
        batch_size=batch_size,
        shuffle_seed=shuffle_seed,
        validation=validation,
    )
    context = f"optimizer {optimizer}, learning rate {learning_rate}"
    rows, epoch_numbers = run_epochs(
        recorder,
        epochs,
        engine=engine,
        record_every=record_every,
        jit_compile=jit_compile,
        progress=progress,
        context=context,
    )
    return recorder.frame(rows, epoch_numbers)


def run_epochs(
    recorder: Any,
    epochs: int,
    *,
    engine: str = "auto",
    record_every: int = 1,
    jit_compile: bool = False,
    progress: bool = False,
    context: str = "",
) -> tuple[list[np.ndarray], list[int]]:
    """Run ``epochs`` epochs of ``recorder`` and collect its record rows.

    ``recorder`` is a :class:`Recorder` or anything with the same ``state()``,
    ``initial()``, ``advance()``, ``store()``, ``data``, ``row_shape``, ``host_rows()``,
    ``columns`` and ``frame()`` (e.g. the stacked recorder of :mod:`stellarnet.train.stacked`,
    whose history rows carry a leading member axis). The model's variables end at the last
    state reached.

    Returns the rows (row 0 first) and their epoch numbers. Raises TrainingDiverged at the
    first recorded epoch whose output or loss is not finite.
    """
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise ConfigError(f"record_every must be a positive integer, got {record_every!r}")
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if jit_compile and engine == "eager":
        raise ConfigError("jit_compile (--jit) needs the graph engine; set engine to auto or graph")
    if jit_compile and getattr(recorder, "batch_size", None):
        raise ConfigError(
            "jit_compile (--jit) does not run mini-batches (XLA has no stateless shuffle); "
            "drop --jit or batch_size"
        )
    if engine == "auto":
        engine = "graph" if epochs >= GRAPH_MIN_EPOCHS or jit_compile else "eager"
    check_onednn()
    rows: list[np.ndarray] = []
    epoch_numbers: list[int] = []

    def keep(numbers: list[int], block: np.ndarray) -> None:
        """Keep these rows, up to and including the first whose output or loss is not finite
        (then raise)."""
        if not len(block):  # a chunk shorter than record_every may record nothing
            return
        finite = np.isfinite(block[:, ..., :2]).reshape(len(block), -1).all(axis=1)
        end = len(block) if finite.all() else int(np.argmin(finite)) + 1
        rows.extend(block[:end])
        epoch_numbers.extend(numbers[:end])
        if finite[end - 1]:
            return
        raise TrainingDiverged(
            f"training diverged at epoch {numbers[end - 1]}: the loss became "
            f"{block[end - 1][..., 1]} ({context}). Lower the learning rate (--lr) or "
            "normalise the inputs."
        ).with_history(recorder.frame(rows, epoch_numbers))

    state = recorder.state()
    # Row 0, eagerly: about 3 ms, less than tracing it into the graph costs.
    rows.extend(recorder.host_rows(recorder.initial(state, recorder.data).numpy()[None]))
    epoch_numbers.append(0)
    try:
        with _progress_bar(epochs, progress) as bar:
            if engine == "eager":
                for epoch in range(1, epochs + 1):
                    state, row = recorder.advance(state, recorder.data)
                    block = recorder.host_rows(row.numpy()[None])
                    if epoch % record_every == 0 or not np.all(np.isfinite(block[..., :2])):
                        keep([epoch], block)
                    bar.update(1)
            else:
                chunks = _graph_chunks(recorder, state, epochs, record_every, jit_compile)
                # Each chunk's state is stored below (finally), even if a row diverged.
                for state, count, numbers, block in chunks:  # noqa: B007
                    keep(numbers, block)
                    bar.update(count)
    finally:
        recorder.store(state)
    return rows, epoch_numbers


def _graph_chunks(
    recorder: Any, state: Any, epochs: int, record_every: int, jit_compile: bool
) -> Iterator[tuple[Any, int, list[int], np.ndarray]]:
    """Run the compiled graph from ``state`` in chunks of epochs; yield, per chunk, the new
    state, its number of epochs, and the numbers and rows of its recorded epochs."""
    import tensorflow as tf

    # Traced under the executor it runs on: for the single-threaded one, TensorFlow keeps the
    # loop a functional While op (the default executor gets it lowered to low-level control
    # flow, which the single-threaded one refuses, as it refuses XLA's graphs).
    executor = "" if jit_compile else recorder.executor
    iterations = GRAPPLER_DEFAULT if jit_compile else recorder.grappler_iterations
    with _call_options(executor, iterations):
        run = traced_epochs(recorder, state, record_every, jit_compile)
    done, chunk = 0, record_every * max(1, 64 // record_every)
    if jit_compile:  # fixed-size chunks: one XLA compilation for the whole run
        chunk = record_every * xla_chunk_rows(record_every)
    while done < epochs:
        count = min(chunk, epochs - done)
        n_rows = (done + count) // record_every - done // record_every
        started = time.perf_counter()
        chunk_args = (tf.constant(done), tf.constant(count), tf.constant(n_rows))
        with _call_options(executor, iterations):
            state, block = run(state, recorder.data, *chunk_args)
        block = recorder.host_rows(block.numpy()[:n_rows])
        elapsed = time.perf_counter() - started
        recorded = [e for e in range(done + 1, done + count + 1) if e % record_every == 0]
        yield state, count, recorded, block
        # Grow the chunk towards CHUNK_SECONDS of work: few calls, yet a live progress bar.
        # The first call's time may be mostly tracing, so it only says "grow".
        target = 8 * chunk if done == 0 else int(CHUNK_SECONDS / max(elapsed / count, 1e-7))
        if not jit_compile:
            chunk = max(record_every, min(target, 8 * chunk) // record_every * record_every)
        done += count


@contextlib.contextmanager
def _call_options(executor: str, grappler_iterations: int) -> Iterator[None]:
    """In this block, on this thread, traced functions run on TensorFlow's ``executor``
    (``""``: the default one), and grappler rewrites their graph (at a function's first call)
    in ``grappler_iterations`` rounds of its passes (0: not at all)."""
    import tensorflow as tf

    with tf.experimental.function_executor_type(executor):  # restores all options on exit
        if grappler_iterations != GRAPPLER_DEFAULT:
            _limit_grappler(grappler_iterations)
        yield


def _limit_grappler(iterations: int) -> None:
    """Set grappler's rounds (0: off) in this thread's options for calls of traced functions:
    the options ``tf.experimental.function_executor_type`` sets, which TensorFlow exports no
    other way to change. Only speed depends on it: without that private module, grappler
    keeps its defaults."""
    import tensorflow as tf

    try:
        from tensorflow.python.eager import context

        options = context.context().function_call_options
        config = tf.compat.v1.ConfigProto.FromString(options.config_proto_serialized)
    except (ImportError, AttributeError, TypeError) as error:
        log.debug("grappler keeps its defaults: %s", error)
        return
    rewrites = config.graph_options.rewrite_options
    if iterations:
        rewrites.meta_optimizer_iterations = iterations  # the enum's ONE and TWO are 1 and 2
    else:
        rewrites.disable_meta_optimizer = True
    options.config_proto_serialized = config


class _NoProgressBar:
    """What :func:`_progress_bar` returns when disabled (tqdm's import costs about 10 ms)."""

    def __enter__(self) -> _NoProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        pass


def _progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm progress bar of ``total`` epochs on standard error, shown after 2 s."""
    if not enabled:
        return _NoProgressBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="epoch", delay=2, leave=False)


def history_frame(
    rows: Sequence[np.ndarray] | np.ndarray,
    epoch_numbers: Sequence[int] | np.ndarray,
    columns: list[str],
) -> pd.DataFrame:
    """The history table from record rows ``[n, columns - 1]`` (or ``[n, K, columns - 1]``:
    K members' rows, member after member) and their epoch numbers.

    The values are copied to float64 once, column by column as pandas keeps a frame's values,
    and pandas takes that copy as it is: a long run's history is the largest array training
    makes (32 stacked members, 2001 rows: 21-31 ms, against 20-128 ms with two more copies).
    """
    values = np.asarray(rows)
    values = values.reshape(len(values), -1, len(columns) - 1)  # [n, members, columns - 1]
    by_column = np.empty((values.shape[2], values.shape[1] * values.shape[0]))
    by_column.reshape(values.shape[::-1])[...] = values.T
    frame = pd.DataFrame(by_column.T, columns=columns[1:], copy=False)
    frame.insert(0, "epoch", np.asarray(epoch_numbers, dtype=np.int64))
    return frame
