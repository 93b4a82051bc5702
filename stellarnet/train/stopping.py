"""Early stopping on the validation loss, as Keras' ``EarlyStopping(monitor="val_loss",
restore_best_weights=True)`` does it, on the recorded rows.

Every epoch is still recorded. The run stops at the end of the epoch in which ``val_loss``
has gone ``patience`` epochs without improving on its best by more than ``min_delta``; the
history ends there, and the model's variables are set to the best epoch's parameters, read
back from that epoch's history row (exact: the row holds float64 copies of the float32
values).
"""

from __future__ import annotations

import math
from typing import Any

from stellarnet.checks import check_positive_int
from stellarnet.errors import ConfigError


class EarlyStopping:
    """Watches ``val_loss`` epoch by epoch; a run's engine asks it whether to stop.

    Parameters
    ----------
    patience : int
        Epochs without improvement before stopping.
    min_delta : float
        Smallest decrease of ``val_loss`` that counts as an improvement.

    Attributes
    ----------
    best_epoch, best_loss : int, float
        The epoch with the lowest ``val_loss`` so far (epoch 0, the initial model, is not a
        candidate, as in Keras) and that loss.
    stopped_epoch : int or None
        The epoch the run stopped after (None: it ran all its epochs).
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = check_positive_int(patience, "patience")
        if not (isinstance(min_delta, int | float) and math.isfinite(min_delta) and min_delta >= 0):
            raise ConfigError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        self.min_delta = float(min_delta)
        self.best_epoch = 0
        self.best_loss = math.inf
        self.stopped_epoch: int | None = None
        self._wait = 0

    def update(self, epoch: int, val_loss: float) -> bool:
        """Take epoch ``epoch``'s ``val_loss``; True if the run stops after this epoch."""
        if epoch == 0:
            return False
        if val_loss - self.min_delta < self.best_loss:  # NaN never improves
            self.best_epoch, self.best_loss, self._wait = epoch, float(val_loss), 0
            return False
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def summary(self) -> dict[str, Any]:
        """JSON-ready record of what happened (for ``run.json``)."""
        return {
            "monitor": "val_loss",
            "patience": self.patience,
            "min_delta": self.min_delta,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_loss,
            "stopped_epoch": self.stopped_epoch,
        }
