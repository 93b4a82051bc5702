"""The names stellarnet understands, each list written once.

Configs, the CLI, the recorders and the saved-results reader all check against these.
"""

ACTIVATIONS = ("relu", "linear", "tanh", "sigmoid")
"""Activations of Dense layers (Keras names)."""

LOSSES = ("mse", "half_mse")
"""``mse``: Keras ``MeanSquaredError``, mean((y - yhat)^2); ``half_mse``: half of it."""

OPTIMIZERS = ("adam", "sgd")
"""Keras Adam (default settings), or plain gradient descent."""

ENGINES = ("auto", "eager", "graph")
"""How a recorder's epochs run (see :mod:`stellarnet.train.engine`)."""

INIT_PROTOCOLS = ("same", "notebook")
"""Initial weights of a sweep's rates: the seed's model for all, or one clone each."""
