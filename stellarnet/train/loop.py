"""The recorded training loop for a Keras model you built: :func:`train`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stellarnet.checks import check_learning_rate, check_positive_int
from stellarnet.errors import ConfigError
from stellarnet.schema import DEFAULT_RECORD, check_record
from stellarnet.train.engine import run_epochs
from stellarnet.train.policy import ExecutionPolicy
from stellarnet.train.recorder import Recorder

if TYPE_CHECKING:
    import keras

    from stellarnet.train.stopping import EarlyStopping


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
    early_stopping: EarlyStopping | None = None,
) -> pd.DataFrame:
    """Train ``model`` on ``(x, y)`` and record every epoch.

    Parameters
    ----------
    model : keras.Model
        A built chain of Dense layers, possibly with parameter-free layers between them (see
        :func:`stellarnet.train.models.build_model` and
        :class:`~stellarnet.train.recorder.Recorder`); trained in place.
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
        How the epochs run (see :mod:`stellarnet.train.engine`); the numbers are the same.
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
    early_stopping : EarlyStopping, optional
        Stop once ``val_loss`` has not improved for its patience (needs ``validation`` and
        ``record_every=1``); the history ends at the stopping epoch, the model ends at the
        best epoch's weights (also when the run used all its epochs), and
        ``history.attrs["early_stopping"]`` says which epoch that was.

    Returns
    -------
    pandas.DataFrame
        The history (see :mod:`stellarnet.schema`, and :class:`~stellarnet.train.recorder.Recorder`
        for mini-batch means), float64 copies of the float32 values.

    Raises
    ------
    ConfigError
        For a bad learning rate, epoch count, optimizer, loss, record group or engine.
    TrainingDiverged
        If the loss or a parameter becomes NaN or infinite; ``err.history`` holds the rows
        recorded up to and including that epoch.
    """
    learning_rate = check_learning_rate(learning_rate)
    epochs = check_positive_int(epochs, "epochs")
    record = check_record(record)
    policy = ExecutionPolicy(engine=engine, jit_compile=jit_compile)
    if jit_compile and batch_size not in (None, len(y)):
        raise ConfigError(
            "jit_compile (--jit) does not run mini-batches (XLA has no stateless shuffle); "
            "drop --jit or batch_size"
        )
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
        policy,
        record_every=record_every,
        progress=progress,
        context=context,
        early_stopping=early_stopping,
    )
    history = recorder.frame(rows, epoch_numbers)
    if early_stopping is not None:
        if early_stopping.best_epoch:
            recorder.restore(rows[epoch_numbers.index(early_stopping.best_epoch)])
        history.attrs["early_stopping"] = early_stopping.summary()
    return history
