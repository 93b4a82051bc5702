"""Exceptions stellarnet raises for problems a user can fix.

The CLI prints these as one clear message (no traceback) and exits with status 1. Each
message names the file or value at fault and, where there is one, the fix.
"""


class StellarnetError(Exception):
    """Base class: a problem with the user's input, data or results folder."""


class ConfigError(StellarnetError, ValueError):
    """An experiment config or an argument is invalid."""


class CatalogError(StellarnetError):
    """A catalog is missing, corrupt, or does not have the expected columns."""


class FetchError(CatalogError):
    """A remote catalog query failed (network, timeout, HTTP error, bad response)."""


class TrainingDiverged(StellarnetError, FloatingPointError):
    """The loss or a parameter became NaN or infinite during training.

    ``history`` holds the rows recorded up to and including the diverging epoch; ``folder``
    is where a run saved them (``run.json`` with ``"status": "diverged"``), if it did.
    """

    history = None
    folder = None

    def with_history(self, history):
        """Attach the partial history table and return self."""
        self.history = history
        return self


class ResultsExist(StellarnetError, FileExistsError):
    """A results folder already holds a run and ``force`` was not given."""


class ResultsFolderError(StellarnetError):
    """A results folder cannot be used: it would lie outside ``--results``, it cannot be
    written, or it holds files that are not a stellarnet result (which ``--force`` never
    replaces)."""


class ResultsDamaged(StellarnetError):
    """A saved results folder cannot be read back as written: ``run.json`` or the history
    table is missing, unreadable, or disagrees with the other (missing columns, values that
    are not finite in a run recorded as complete, another set of epochs or rates)."""
