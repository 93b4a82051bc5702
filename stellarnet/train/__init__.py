"""Model factory and the recorded training loop: the recorders, optimizers and backprop
written out, and the engine that runs their epochs.

``from stellarnet.train import train`` records any chain of Dense layers built with Keras;
:func:`train_stacked` trains K nets of one architecture side by side. Importing this package
does not import TensorFlow: that happens when a model is first built or trained.

Modules: ``models`` (ModelSpec -> keras.Sequential), ``chain`` (what the recorder reads off a
Keras model), ``recorder`` (one net's epoch and record row), ``stacked`` and ``grouping`` (K
nets in one graph), ``optimizers`` and ``backprop`` (Keras' maths written out), ``engine``
(eager / traced / XLA epochs behind one protocol and one policy), ``loop`` (:func:`train`),
``analytic`` (the chain rule in numpy, for checking gradients by hand).
"""

from stellarnet.train.engine import run_epochs
from stellarnet.train.loop import train
from stellarnet.train.policy import ExecutionPolicy
from stellarnet.train.stacked import train_stacked
from stellarnet.train.stopping import EarlyStopping

__all__ = ["EarlyStopping", "ExecutionPolicy", "run_epochs", "train", "train_stacked"]
