"""stellarnet: small, fully inspectable Keras/TensorFlow experiments on stellar catalogs.

Importing the package is cheap: TensorFlow is imported only by the modules that train
(:mod:`stellarnet.train`) when they are first used. Importing it sets
``TF_ENABLE_ONEDNN_OPTS=0`` unless you set it (:mod:`stellarnet.tfsettings`).

The package in layers, each importing only from those before it: base modules
(``errors``, ``checks``, ``vocabulary``, ``files``, ``schema``, ``params``, ``tfsettings``),
``data`` (catalogs, provenance, VizieR, datasets), ``train`` (model factory, recorders,
engine), ``results`` (results folders on disk), ``viz`` (figures and reports from saved
results), ``runs`` (experiments, sweeps, committees, comparisons), and the ``cli``.
"""

from stellarnet import tfsettings

__version__ = "0.1.0"

# Before TensorFlow starts, if it has not: no oneDNN kernels (see stellarnet.tfsettings).
tfsettings.apply(tfsettings.NUMERICS, warn=False)
