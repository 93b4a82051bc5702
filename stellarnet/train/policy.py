"""How a recorder's epochs run: :class:`ExecutionPolicy`, one small dataclass owned by the
engine (:mod:`stellarnet.train.engine`). Only speed depends on it, except ``jit_compile`` and
``grappler_iterations``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator

from stellarnet.checks import check_choice
from stellarnet.errors import ConfigError
from stellarnet.vocabulary import ENGINES

log = logging.getLogger(__name__)

GRAPPLER_DEFAULT = 2
"""Rounds of grappler's passes TensorFlow makes over a function's graph by default."""
SINGLE_THREADED = "SINGLE_THREADED_EXECUTOR"


@dataclasses.dataclass(frozen=True)
class ExecutionPolicy:
    """How a recorder's epochs run. Only speed depends on it, except ``jit_compile`` and
    ``grappler_iterations``.

    Parameters
    ----------
    engine : {"auto", "eager", "graph"}
        One Python iteration per epoch, or a traced loop over chunks of epochs; ``"auto"``:
        eager below ``graph_min_epochs`` epochs, where tracing costs more than it saves.
    jit_compile : bool
        Compile the traced loop with XLA (different rounding; graph engine only).
    executor : str
        TensorFlow executor of the traced loop (``""``: the default one, which runs
        independent ops side by side; :data:`SINGLE_THREADED`: no hand-over between threads,
        best for one net's chain of small ops).
    grappler_iterations : int
        Rounds of grappler's graph rewrites at a traced function's first call (0: none;
        TensorFlow's default is :data:`GRAPPLER_DEFAULT`). They pay where ops can run side by
        side, not on a chain of small ops. They also change numbers: grappler fuses a Dense
        layer's MatMul and BiasAdd into one kernel that rounds differently (an HR net's output
        differed on 183-277 of 2242-2243 rows), so single runs keep them off.
    chunk_seconds : float
        Target wall time of one graph call: few calls, yet a live progress bar.
    xla_chunk_epochs : int
        Epochs per call under XLA, which compiles for fixed shapes: every call returns as
        many rows as a full chunk records, so one compilation serves the whole run.
    graph_min_epochs : int
        ``engine="auto"`` traces runs of at least this many epochs.
    """

    engine: str = "auto"
    jit_compile: bool = False
    executor: str = SINGLE_THREADED
    grappler_iterations: int = 0
    chunk_seconds: float = 0.5
    xla_chunk_epochs: int = 1024
    graph_min_epochs: int = 20

    def __post_init__(self) -> None:
        check_choice(self.engine, "engine", ENGINES)
        if self.jit_compile and self.engine == "eager":
            raise ConfigError(
                "jit_compile (--jit) needs the graph engine; set engine to auto or graph"
            )

    def engine_for(self, epochs: int) -> str:
        """``"eager"`` or ``"graph"`` for a run of ``epochs`` epochs."""
        if self.engine != "auto":
            return self.engine
        return "graph" if epochs >= self.graph_min_epochs or self.jit_compile else "eager"

    def xla_chunk_rows(self, record_every: int) -> int:
        """Rows recorded by a full chunk of epochs under XLA."""
        return max(1, self.xla_chunk_epochs // record_every)

    @contextlib.contextmanager
    def call_options(self) -> Iterator[None]:
        """In this block, traced functions are traced and run under this policy's executor
        and grappler rounds (XLA: TensorFlow's defaults, as its graphs need them)."""
        executor = "" if self.jit_compile else self.executor
        iterations = GRAPPLER_DEFAULT if self.jit_compile else self.grappler_iterations
        with _call_options(executor, iterations):
            yield


STACKED_POLICY = ExecutionPolicy(engine="graph", executor="", grappler_iterations=1)
"""Stacked nets: groups of members run side by side on TensorFlow's default executor, and
grappler's rewrites of that larger graph pay for themselves (one round as well as two)."""


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
    other way to change. Without that private module, grappler keeps its defaults (and its
    fused kernels' rounding: see :class:`ExecutionPolicy`)."""
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
