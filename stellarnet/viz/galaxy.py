"""Figures of the galaxy-size experiments (``experiments/galaxy_sizes*.toml``), from saved runs.

Like every stellarnet figure they read only a run folder (``history.parquet``, ``run.json``)
and the catalog file that ``run.json`` names, checked against its recorded sha256:

:func:`fit_figure`
    The data (HST vs JWST half-light radius) with the network's fitted curve after the last
    step, one per learning rate, and the initial curve.
:func:`loss_steps_figure`
    Loss vs gradient-descent step, one line per learning rate.

Draw both for every galaxy run under ``results/``::

    python -m stellarnet.viz.galaxy [RESULTS_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stellarnet.data.registry import PROJECT_ROOT
from stellarnet.errors import CatalogError, StellarnetError
from stellarnet.files import atomic_write, sha256_file
from stellarnet.params import forward, layers_from_row
from stellarnet.results.history import load_history

STYLE = {
    "figure.figsize": (6.0, 4.5),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
EXPERIMENTS = ("galaxy_sizes", "galaxy_sizes_single")
"""Experiment folders :func:`galaxy_figures` looks for under the results folder."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)
    return path


def read_run(folder: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A run folder's history table and ``run.json`` record."""
    folder = Path(folder)
    record_path = folder / "run.json"
    if not record_path.is_file():
        raise StellarnetError(f"{folder} holds no run.json; run the experiment first")
    return load_history(folder), json.loads(record_path.read_text(encoding="utf-8"))


def run_catalog(record: dict[str, Any]) -> pd.DataFrame:
    """The catalog a run was trained from, after checking its sha256 against ``run.json``."""
    path = Path(record["catalog_path"])
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if not path.is_file():
        raise CatalogError(f"the run's catalog {path} is gone; the fit figure needs its data")
    if sha256_file(path) != record["catalog_sha256"]:
        raise CatalogError(
            f"{path} is not the file the run was trained on (sha256 differs from run.json)"
        )
    return pd.read_csv(path)


def _curves(history: pd.DataFrame, record: dict[str, Any]) -> list[tuple[float, pd.DataFrame]]:
    """(learning rate, that rate's rows) for a sweep table or a single run."""
    if "lr" in history:
        return [(float(lr), part) for lr, part in history.groupby("lr", sort=False)]
    return [(float(record["config"]["training"]["learning_rate"]), history)]


def _label(column: str, record: dict[str, Any]) -> str:
    unit = record.get("catalog_provenance", {}).get("columns", {}).get(column, {}).get("unit")
    return f"{column} [{unit}]" if unit else column


def fit_figure(folder: str | Path, name: str = "fit.png") -> Path:
    """Draw the data and the fitted network of a run (or of each rate of a sweep).

    The network is evaluated from the last history row's parameters (after the last step)
    with :func:`stellarnet.params.forward`; the dashed curve is the initial network (row 0).
    Rows the run trained on (``[dataset] rows``) are drawn solid, the others hollow.

    Raises
    ------
    StellarnetError
        If the run has more than one feature or transformed columns (the curve is drawn in
        catalog units), or its catalog is missing or changed.
    """
    plt = _pyplot()
    folder = Path(folder)
    history, record = read_run(folder)
    config = record["config"]
    features, target = config["dataset"]["features"], config["dataset"]["target"]
    if len(features) != 1 or features[0]["transforms"] or target["transforms"]:
        raise StellarnetError(
            f"{folder}: the fit figure draws one untransformed feature against an untransformed "
            "target"
        )
    x_name, y_name = features[0]["column"], target["column"]
    catalog = run_catalog(record)
    trained = np.zeros(len(catalog), dtype=bool)
    rows = config["dataset"].get("rows")
    trained[rows if rows is not None else slice(None)] = True
    model = config["model"]
    sizes = [model["inputs"], *model["hidden"], model["outputs"]]
    grid = np.linspace(0.0, 1.05 * float(catalog[x_name].max()), 300)[:, None]

    def curve(row: pd.Series) -> np.ndarray:
        layers = layers_from_row(row, sizes)
        return forward(layers, grid, model["activation"], model["output_activation"])[0][:, 0]

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        ax.scatter(
            catalog.loc[trained, x_name],
            catalog.loc[trained, y_name],
            s=18,
            color="0.25",
            label=f"trained on ({trained.sum()})",
            zorder=3,
        )
        if not trained.all():
            ax.scatter(
                catalog.loc[~trained, x_name],
                catalog.loc[~trained, y_name],
                s=18,
                facecolors="none",
                edgecolors="0.6",
                label="other galaxies",
                zorder=2,
            )
        ax.plot(grid[:, 0], grid[:, 0], ls=":", color="0.5", lw=1, label="JWST = HST")
        curves = _curves(history, record)
        ax.plot(
            grid[:, 0],
            curve(curves[0][1].iloc[0]),
            ls="--",
            color="0.4",
            lw=1,
            label="initial network",
        )
        for lr, part in curves:
            steps = int(part["epoch"].iloc[-1])
            ax.plot(
                grid[:, 0], curve(part.iloc[-1]), lw=2, label=f"after {steps} steps, eta={lr:g}"
            )
        ax.set_xlabel(_label(x_name, record))
        ax.set_ylabel(_label(y_name, record))
        ax.set_title(f"{record['experiment']}: data and fitted network")
        ax.legend(fontsize=8)
        return _save(fig, folder / name)


def loss_steps_figure(folder: str | Path, name: str = "loss_steps.png") -> Path:
    """Draw loss vs gradient-descent step, one line per learning rate, on a log scale.

    The x axis is the history's epoch k (one full-batch step per epoch); its loss is the one
    computed with the parameters *before* step k, whose gradient step k took. Row 0 (the
    same initial loss as row 1) is left out.
    """
    plt = _pyplot()
    folder = Path(folder)
    history, record = read_run(folder)
    loss_name = record["config"]["training"]["loss"]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for lr, part in _curves(history, record):
            steps = part[part["epoch"] >= 1]
            ax.plot(steps["epoch"], steps["loss"], marker="o", ms=4, label=f"eta={lr:g}")
        ax.set_yscale("log")
        ax.set_xlabel("gradient-descent step k")
        ax.set_ylabel(f"loss before step k ({loss_name})")
        ax.set_title(f"{record['experiment']}: loss vs step")
        ax.legend()
        return _save(fig, folder / name)


def galaxy_figures(results_dir: str | Path = "results") -> list[Path]:
    """Draw both figures for every galaxy run folder under ``results_dir``."""
    written = []
    for experiment in EXPERIMENTS:
        for record_path in sorted((Path(results_dir) / experiment).glob("**/run.json")):
            written += [fit_figure(record_path.parent), loss_steps_figure(record_path.parent)]
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m stellarnet.viz.galaxy [RESULTS_DIR]``."""
    argv = sys.argv[1:] if argv is None else argv
    paths = galaxy_figures(argv[0] if argv else "results")
    for path in paths:
        print(f"wrote {path}")
    if not paths:
        print(
            "no galaxy runs found; run `stellarnet sweep galaxy_sizes --lr 0.1 0.6` first",
            file=sys.stderr,
        )
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main())
