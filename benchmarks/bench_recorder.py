"""Recorder speed and sweep cost on the HR-relation data (the shipped 2242-row Gaia DR2 catalog).

Prints, for a 1-6-1 ReLU net trained full batch with Adam:

* TensorFlow's import time;
* per-epoch wall time at 10, 200 and 2000 epochs of (a) the assignment notebook's eager loop
  (GradientTape, ``.numpy()`` on every variable and gradient every epoch), (b) stellarnet's
  recorder (``train()``, engine chosen by run length), as the first run of a process (it
  traces its graph) and as a repeat run (it reuses the graph traced for the same shapes),
  (c) ``model.fit`` with a callback that copies the weights every epoch (it records no
  gradients);
* the steady-state cost of an epoch (epochs 2001..4000) and the fixed costs of a first graph
  run (building the model, tracing, the first call);
* the same run with opt-in XLA (``jit_compile=True``: other rounding, so its largest
  difference from the default history is printed too);
* for K = 2, 8, 32 learning rates: a vectorised sweep vs K sequential runs, as multiples of
  the fastest first single run of the same length (a sweep traces its graph too);
* peak memory (max RSS) of a 10,000-epoch run of a 4-16-16-1 net with everything recorded,
  on SYNTHETIC inputs (4 uniform features; the network's size, not the data, matters here).

Every timing is end to end (tracing included) and the best of ``--repeat`` tries (sequential
sweeps and the 2x-long sweeps: one try). The machine's speed drifts, so runs that are compared
with each other are interleaved.

Run: ``.venv/bin/python benchmarks/bench_recorder.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from stellarnet import tfsettings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As the stellarnet command runs TensorFlow (and for every timing below, the baselines too).
tfsettings.apply()

IMPORT_TF = (
    "import time; t = time.perf_counter(); import tensorflow; print(time.perf_counter() - t)"
)

MEMORY_RUN = """
import resource, time, numpy as np
from stellarnet.train.models import ModelSpec, build_model
from stellarnet.train.loop import train
x = np.random.default_rng(0).uniform(size=(800, 4)).astype(np.float32)  # SYNTHETIC inputs
y = x.sum(axis=1, keepdims=True).astype(np.float32)
model = build_model(ModelSpec(inputs=4, hidden=(16, 16)), seed=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
history = train(model, x, y, learning_rate=1e-3, epochs=10_000)
elapsed = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before / 1024, peak / 1024, history.memory_usage(deep=True).sum() / 2**20,
      history.shape[0], history.shape[1], elapsed)
"""


def best_of(repeat: int, run) -> float:
    """Best wall time of ``repeat`` calls of ``run()``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def notebook_loop(model, x, y, epochs: int, learning_rate: float = 0.1) -> list:
    """The assignment notebook's loop: eager tape, per-variable ``.numpy()`` every epoch."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    loss_fn = keras.losses.MeanSquaredError()
    rows = []
    for epoch in range(epochs):
        with tf.GradientTape() as tape:
            yhat = model(x, training=True)
            loss = loss_fn(y, yhat)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        row = {"epoch": epoch + 1, "output": float(tf.reduce_mean(yhat)), "loss": float(loss)}
        for i, (v, g) in enumerate(zip(model.trainable_variables, grads, strict=True)):
            row |= {f"v{i}_{j}": value for j, value in enumerate(v.numpy().ravel())}
            row |= {f"g{i}_{j}": value for j, value in enumerate(g.numpy().ravel())}
        rows.append(row)
    return rows


def fit_with_callback(model, x, y, epochs: int, learning_rate: float = 0.1) -> list:
    """``model.fit`` on the full batch with a callback copying the weights every epoch."""
    import keras

    weights = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights.append([w.copy() for w in self.model.get_weights()])

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    model.fit(
        x, y, batch_size=len(x), epochs=epochs, verbose=0, shuffle=False, callbacks=[Record()]
    )
    return weights


def fixed_costs(spec, seed, x, y) -> tuple[float, float, float]:
    """Seconds to build the model, trace the graph engine's function and make its first
    call (setting up the graph, one epoch): what a graph run pays before its epochs."""
    import tensorflow as tf

    from stellarnet.train.engine import compile_epochs
    from stellarnet.train.models import build_model
    from stellarnet.train.recorder import Recorder

    started = time.perf_counter()
    model = build_model(spec, seed)
    built = time.perf_counter()
    recorder = Recorder(model, x, y, "adam", 0.1)
    run = compile_epochs(recorder, 1, recorder.default_policy)
    one = (recorder.state(), recorder.data, tf.constant(0), tf.constant(1), tf.constant(1))
    with recorder.default_policy.call_options():  # as a run makes them
        run.get_concrete_function(*one)
        traced = time.perf_counter()
        run(*one)[1].numpy()
    return built - started, traced - built, time.perf_counter() - traced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test)")
    parser.add_argument("--repeat", type=int, default=3, help="tries per timing (best kept)")
    args = parser.parse_args()

    seconds = float(
        subprocess.run(
            [sys.executable, "-c", IMPORT_TF], capture_output=True, text=True, check=True
        ).stdout
    )
    print(f"TensorFlow import: {seconds:.2f} s (fresh process)")
    settings = ", ".join(f"{k}={v}" for k, v in tfsettings.current().items())
    print(f"{settings}, {os.cpu_count()} cores")

    from stellarnet.data.datasets import make_dataset
    from stellarnet.data.loading import load_catalog
    from stellarnet.data.registry import GAIA_DR2_HR
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.sweep import train_sweep
    from stellarnet.train import engine
    from stellarnet.train.loop import train
    from stellarnet.train.models import HR_NET, build_model
    from stellarnet.train.policy import ExecutionPolicy

    config = load_experiment("hr_relation")
    catalog = load_catalog(GAIA_DR2_HR, offline=True)
    data = make_dataset(catalog.frame, config.features, config.target, seed=config.seed)
    x, y = data.x, data.y

    def hr_net():
        """The HR net with the initial weights of the experiment's seed."""
        return build_model(HR_NET, config.seed)

    print(
        f"data: {catalog.path.name}, {len(y)} rows; 1-6-1 ReLU net, Adam, full batch; "
        f"engine 'auto' traces a graph from {ExecutionPolicy.graph_min_epochs} epochs"
    )
    # Warm-up: TF start-up and first-use costs are not part of any timing below.
    hr_net()
    train_sweep(config.with_overrides(epochs=ExecutionPolicy.graph_min_epochs), data, [0.1, 0.2])

    lengths = (10, 200) if args.quick else (10, 200, 2000)
    speed_rows: list[tuple[str, str]] = []  # the README's speed table: (what, per epoch or x)

    def ours(n_epochs: int, reuse: bool = True) -> float:
        """One recorder run, end to end; ``reuse=False``: as the first run of a process,
        which traces its graph (later runs of the same shapes reuse it)."""
        if not reuse:
            engine._traced_runs.clear()
        return best_of(1, lambda: train(hr_net(), x, y, learning_rate=0.1, epochs=n_epochs))

    print(
        "\nper-epoch time (ms), end to end: notebook eager, stellarnet (first run: traces its "
        "graph; repeat: reuses it), model.fit+cb"
    )
    print(
        "                 eager    first   repeat      fit   first run vs eager / fit   "
        "repeat run vs eager / fit"
    )
    for epochs in lengths:
        eager = best_of(args.repeat, lambda e=epochs: notebook_loop(hr_net(), x, y, e))
        first = min(ours(epochs, reuse=False) for _ in range(args.repeat))
        repeat = min(ours(epochs) for _ in range(args.repeat))
        fit = best_of(args.repeat, lambda e=epochs: fit_with_callback(hr_net(), x, y, e))
        print(
            f"  {epochs:5d} {eager / epochs * 1e3:9.3f} {first / epochs * 1e3:8.3f} "
            f"{repeat / epochs * 1e3:8.3f} {fit / epochs * 1e3:8.3f}   "
            f"{eager / first:8.1f}x / {fit / first:6.1f}x   {eager / repeat:13.1f}x / "
            f"{fit / repeat:6.1f}x"
        )
        per = "{:.3f} ms"
        if epochs == lengths[-1]:
            speed_rows += [
                (
                    f"the notebook's eager loop (`.numpy()` per variable), {epochs} epochs",
                    per.format(eager / epochs * 1e3),
                ),
                (
                    f"`model.fit` + a weight-copying callback (no gradients), {epochs} epochs",
                    per.format(fit / epochs * 1e3),
                ),
                (
                    f"stellarnet, {epochs} epochs, first run of a process (traces)",
                    per.format(first / epochs * 1e3),
                ),
                (
                    f"stellarnet, {epochs} epochs, repeat run (graph reused)",
                    per.format(repeat / epochs * 1e3),
                ),
            ]
        elif epochs == lengths[0]:
            speed_rows.append(
                (f"stellarnet, {epochs} epochs (eager)", per.format(first / epochs * 1e3))
            )
    print(f"  (engine 'auto': {lengths[0]} epochs run eagerly, no graph)")

    epochs = lengths[-1]
    # Timings drift with the machine's load: runs compared with each other are interleaved.
    singles, doubles = [], []
    for _ in range(args.repeat):
        singles.append(ours(epochs))
        doubles.append(ours(2 * epochs))
    marginal = (min(doubles) - min(singles)) / epochs
    print(
        f"  steady state (marginal cost of epochs {epochs + 1}..{2 * epochs}, tracing excluded): "
        f"{marginal * 1e3:.3f} ms/epoch = {eager / epochs / marginal:.0f}x the notebook's eager "
        f"epoch, {fit / epochs / marginal:.0f}x model.fit's"
    )

    speed_rows.append(("stellarnet, steady state", f"{marginal * 1e3:.3f} ms"))

    costs = [fixed_costs(HR_NET, config.seed, x, y) for _ in range(3)]
    build, trace, first_call = (min(c) for c in zip(*costs, strict=True))
    print(
        f"  fixed costs of a first graph run: model build {build * 1e3:.0f} ms, tracing "
        f"{trace * 1e3:.0f} ms, first call (graph set-up + 1 epoch) {first_call * 1e3:.0f} ms"
    )

    # Opt-in XLA: other rounding, so only its speed and its distance from the default.
    def xla(n_epochs: int) -> tuple[float, Any]:
        started = time.perf_counter()
        history = train(hr_net(), x, y, learning_rate=0.1, epochs=n_epochs, jit_compile=True)
        return time.perf_counter() - started, history

    engine._traced_runs.clear()
    xla_first, xla_history = xla(epochs)
    xla_repeat = min(xla(epochs)[0] for _ in range(args.repeat))
    xla_double = min(xla(2 * epochs)[0] for _ in range(args.repeat))
    default = train(hr_net(), x, y, learning_rate=0.1, epochs=epochs)
    columns = [c for c in default.columns if c != "epoch"]
    drift = np.nanmax(np.abs(xla_history[columns].to_numpy() - default[columns].to_numpy()))
    print(
        f"  opt-in XLA (jit_compile=True, other rounding; max abs diff from the default "
        f"{drift:.1e} over {epochs} epochs): first run {xla_first / epochs * 1e3:.3f} ms/epoch, "
        f"repeat run {xla_repeat / epochs * 1e3:.3f}, steady state "
        f"{(xla_double - xla_repeat) / epochs * 1e3:.3f}"
    )
    speed_rows.append(
        (
            f"stellarnet with `--jit` (XLA), {epochs} epochs, first run",
            f"{xla_first / epochs * 1e3:.3f} ms",
        )
    )

    # A sweep traces its stacked graph once, as a first single run does: that is the
    # reference (the fastest first run seen, interleaved with the sweeps).
    print(f"\nsweeps of {epochs} epochs, wall time as a multiple of the fastest first single run")
    config_1, config_2 = (config.with_overrides(epochs=e) for e in (epochs, 2 * epochs))
    cold_singles = []
    for k in (2, 8, 32):
        rates = [0.1 * 0.9**i for i in range(k)]
        vectorised = []
        for _ in range(args.repeat):
            cold_singles.append(ours(epochs, reuse=False))
            vectorised.append(best_of(1, lambda r=rates: train_sweep(config_1, data, r)))
        vec = min(vectorised)
        seq = best_of(1, lambda r=rates: train_sweep(config_1, data, r, vectorize=False))
        vec2 = best_of(1, lambda r=rates: train_sweep(config_2, data, r))
        single = min(cold_singles)
        print(
            f"  K={k:2d}: vectorised {vec:6.2f} s = {vec / single:5.2f}x   "
            f"sequential {seq:6.2f} s = {seq / single:5.2f}x   (one run {single:.3f} s)   "
            f"steady state {(vec2 - vec) / epochs * 1e3:.3f} ms/epoch = "
            f"{(vec2 - vec) / epochs / marginal:.1f}x one run's"
        )
        speed_rows.append(
            (
                f"sweep of {k} rates, {epochs} epochs, vectorised (one after another)",
                f"{vec / single:.2f}x ({seq / single:.2f}x) one run",
            )
        )

    if not args.quick:
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_RUN], capture_output=True, text=True, check=True
        ).stdout.split()
        before, peak, table, rows, columns, elapsed = map(float, out)
        print(
            f"\n4-16-16-1 net, 10,000 epochs, everything recorded ({int(columns)} columns, "
            f"{int(rows)} rows, SYNTHETIC inputs): {elapsed:.1f} s; history {table:.1f} MiB; "
            f"max RSS {peak:.0f} MiB ({before:.0f} MiB before training)"
        )

    print("\nREADME speed table (HR net, 2242 stars, end to end unless said):\n")
    print("| | per epoch, or cost |\n|---|---|")
    for what, value in speed_rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
