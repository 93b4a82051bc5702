"""What the explorer's data and landscape panels draw at each frame, as plain numpy arrays.

The network's prediction at every frame is computed here, once, from the saved weights with a
numpy forward pass (float64, the same maths as :func:`stellarnet.params.forward`, batched over
the frames), so the page only looks numbers up:

* one-input nets (the HR relation, the galaxy sizes): the catalog's points in log (or catalog)
  units and the prediction along a grid of :data:`GRID_POINTS` inputs spanning the training
  data, mapped back as :func:`stellarnet.results.analysis.prediction_curve` maps it;
* other nets (photo-z, the four-band task): predicted against true target for training rows
  (thinned evenly to keep the page small, and the page says so).

The landscape is :func:`stellarnet.viz.landscape.compute_landscape`'s plane, with each rate's
projected position at each frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stellarnet.data.datasets import ColumnSpec, transform_column, valid_rows
from stellarnet.params import ACTIVATION_FUNCTIONS
from stellarnet.results.run_catalog import log_space
from stellarnet.results.saved import SavedResults
from stellarnet.schema import column_name
from stellarnet.viz.explorer_frames import Frames, RateTrack
from stellarnet.viz.landscape import Landscape
from stellarnet.viz.prediction import COLOR_COLUMN, has_one_input_and_output, is_hr_relation
from stellarnet.viz.style import LOSS_LABELS, uses_colorbar

GRID_POINTS = 100
"""Inputs along a one-input net's prediction curve."""
MAX_POINTS = 5000
"""Catalog points drawn at most (thinned evenly beyond)."""
MAX_SCATTER_VALUES = 400_000
"""Predicted values embedded at most for multi-input nets (rows x frames x rates)."""
MIN_SCATTER_ROWS = 50


@dataclass
class DataPanel:
    """The data panel: the catalog and, per rate, the prediction at each frame.

    Attributes
    ----------
    kind : {"curve", "scatter"}
        A prediction curve over the data (one input), or predicted vs true target.
    title, x_label, y_label, note : str
    swap : bool
        Draw the curve with the input on the y axis (the HR diagram: log L up, log Teff across).
    x_reversed : bool
        Reverse the x axis (the HR diagram's Teff).
    points_x, points_y : ndarray
        The catalog points as drawn.
    points_color : ndarray or None
        Values colouring the points (BP-RP), with ``color_label``.
    inputs : ndarray
        The curve's inputs in catalog units (curve), or the true target (scatter).
    predictions : dict of str to ndarray, shape (frames, len(inputs))
        Per rate key, float32 (drawing precision); NaN where the rate has no row.
    """

    kind: str
    title: str
    x_label: str
    y_label: str
    note: str
    swap: bool
    x_reversed: bool
    points_x: np.ndarray
    points_y: np.ndarray
    points_color: np.ndarray | None
    color_label: str
    inputs: np.ndarray
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


def batched_forward(results: SavedResults, track: RateTrack, x: np.ndarray) -> np.ndarray:
    """The network's output on inputs ``x`` (rows, features) at every frame: shape (frames,
    rows, outputs), float64; NaN at frames the rate has no row for."""
    sizes = results.layer_sizes
    values = np.broadcast_to(np.asarray(x, dtype=float), (len(track.present), *np.shape(x)))
    depth = len(sizes) - 1
    for layer in range(1, depth + 1):
        n_in, n_out = sizes[layer - 1], sizes[layer]
        kernel = np.stack(
            [track.columns[column_name("w", layer, i)] for i in range(1, n_in * n_out + 1)], -1
        ).reshape(-1, n_in, n_out)
        bias = np.stack(
            [track.columns[column_name("b", layer, i)] for i in range(1, n_out + 1)], -1
        )
        name = results.output_activation if layer == depth else results.activation
        with np.errstate(all="ignore"):  # a diverging run's weights overflow
            values = ACTIVATION_FUNCTIONS[name](values @ kernel + bias[:, None, :])
    return values


def _log_column(frame, spec: ColumnSpec) -> tuple[np.ndarray, bool]:
    """A catalog column with its transforms up to the last log10 (log10 L, log10 Teff)."""
    steps = list(spec.transforms)
    upto = len(steps) - steps[::-1].index("log10") if "log10" in steps else 0
    values, _ = transform_column(
        frame[spec.column].to_numpy(dtype=float), ColumnSpec(spec.column, tuple(steps[:upto]))
    )
    return values, upto > 0


def _label(results: SavedResults, spec: ColumnSpec, log: bool) -> str:
    unit = results.unit(spec.column)
    text = f"log10 {spec.column}" if log else spec.column
    return f"{text} [{unit}]" if unit else text


def _evenly(count: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` of ``count`` rows, evenly spread."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def curve_panel(results: SavedResults, tracks: list[RateTrack]) -> DataPanel:
    """One-input nets: catalog points and the prediction along the input at each frame."""
    dataset = results.dataset()
    feature, target = results.features[0], results.target
    stars = results.catalog()
    stars = stars.loc[valid_rows(stars, [feature, target])]
    x_points, x_log = _log_column(stars, feature)
    y_points, y_log = _log_column(stars, target)
    shown = _evenly(len(stars), MAX_POINTS)
    colour = None
    # As the HR figure: grey stars beside a rate colour bar (one colour scale on the diagram).
    if COLOR_COLUMN in stars.columns and not uses_colorbar(results.learning_rates):
        colour = stars[COLOR_COLUMN].to_numpy(dtype=float)[shown]
    span = dataset.x[:, 0].astype(float)
    grid = np.linspace(span.min(), span.max(), GRID_POINTS)
    params = dataset.transform_params
    inputs = log_space(grid, params[feature.column])[0]
    predictions = {
        t.key: log_space(batched_forward(results, t, grid[:, None])[..., 0], params[target.column])[
            0
        ].astype(np.float32)
        for t in tracks
    }
    hr = is_hr_relation(results)
    note = f"{len(stars)} catalog rows" + (
        f", {len(shown)} drawn (every {len(stars) / len(shown):.1f}th, evenly)"
        if len(shown) < len(stars)
        else ""
    )
    x_label, y_label = _label(results, feature, x_log), _label(results, target, y_log)
    return DataPanel(
        kind="curve",
        title="HR diagram" if hr else "Data",
        x_label=y_label if hr else x_label,
        y_label=x_label if hr else y_label,
        note=note,
        swap=hr,
        x_reversed=hr,
        points_x=(y_points if hr else x_points)[shown].astype(np.float32),
        points_y=(x_points if hr else y_points)[shown].astype(np.float32),
        points_color=colour,
        color_label=_label(results, ColumnSpec(COLOR_COLUMN), False) if colour is not None else "",
        inputs=inputs,
        predictions=predictions,
    )


def scatter_panel(results: SavedResults, tracks: list[RateTrack]) -> DataPanel:
    """Multi-input nets: predicted against true target for (evenly thinned) training rows."""
    dataset = results.dataset()
    target = results.target
    budget = MAX_SCATTER_VALUES // max(1, len(tracks) * len(tracks[0].present))
    rows = _evenly(len(dataset.y), max(MIN_SCATTER_ROWS, budget))
    params = dataset.transform_params[target.column]
    true, is_log = log_space(dataset.y[rows, 0].astype(float), params)
    predictions = {
        t.key: log_space(batched_forward(results, t, dataset.x[rows])[..., 0], params)[0].astype(
            np.float32
        )
        for t in tracks
    }
    photoz = results.config["training"].get("metrics") == "photoz"
    name = _label(results, target, is_log)
    return DataPanel(
        kind="scatter",
        title="z_phot vs z_spec" if photoz else f"Predicted vs true {target.column}",
        x_label=f"z_spec ({target.column})" if photoz else f"true {name}",
        y_label="z_phot (network)" if photoz else f"predicted {name}",
        note=f"{len(rows)} of {len(dataset.y)} training rows drawn"
        + (" (evenly thinned)" if len(rows) < len(dataset.y) else ""),
        swap=False,
        x_reversed=False,
        points_x=true.astype(np.float32),
        points_y=true.astype(np.float32),
        points_color=None,
        color_label="",
        inputs=true,
        predictions=predictions,
    )


def data_panel(results: SavedResults, tracks: list[RateTrack]) -> DataPanel:
    """:func:`curve_panel` for one-input nets, else :func:`scatter_panel`."""
    if has_one_input_and_output(results):
        return curve_panel(results, tracks)
    return scatter_panel(results, tracks)


def landscape_positions(
    results: SavedResults, landscape: Landscape, frames: Frames
) -> dict[float, np.ndarray]:
    """Each drawn rate's position on the landscape's plane at each frame, shape (frames, 2);
    NaN where it has no finite row."""
    out = {}
    for lr, path in landscape.paths.items():
        epochs = results.finite_history(lr)["epoch"].to_numpy(dtype=np.int64)
        where = {int(e): i for i, e in enumerate(epochs)}
        positions = np.full((len(frames.epochs), 2), np.nan)
        for j, epoch in enumerate(frames.epochs):
            if int(epoch) in where:
                positions[j] = path[where[int(epoch)]]
        out[lr] = positions
    return out


def loss_axis_label(results: SavedResults) -> str:
    """``Loss (mean squared error) [dex^2]`` in plain text (the page draws no TeX)."""
    target = results.target
    label = f"loss ({LOSS_LABELS.get(results.loss_name, results.loss_name)})"
    if tuple(target.transforms[-1:]) == ("log10",):
        return f"{label} [dex²]"
    unit = results.unit(target.column)
    return f"{label} [({unit})²]" if unit and not target.transforms else label
