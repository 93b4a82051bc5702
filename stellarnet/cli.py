"""The ``stellarnet`` command. The Makefile and the library call the same functions.

Argument parsing and ``--help`` import nothing heavy: TensorFlow is imported only when a
command trains.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence

from stellarnet.checks import (
    FLOAT32_MAX,
    FLOAT32_TINY,
    MAX_SEED,
    check_int,
    check_learning_rate,
    check_positive_int,
    check_seed,
)
from stellarnet.errors import ConfigError
from stellarnet.vocabulary import INIT_PROTOCOLS

log = logging.getLogger("stellarnet")
JIT_HELP = (
    "compile the epochs with XLA: other rounding and other dropout masks (recorded in "
    "run.json); full batch only. Compiling costs time up front that long single runs win "
    "back; stacked sweeps gain nothing"
)


def _checked(text: str, parse: Callable, kind: str, check: Callable, wanted: str):
    """Parse ``text`` and pass it through one of :mod:`stellarnet.checks`; failures become
    argparse errors in the CLI's words (``'0' must be >= 1``), which argparse reports with
    the option's name and exit status 2."""
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
    try:
        return check(value)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"{text!r} must be {wanted}") from None


def _positive_number(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{value!r} is not finite and > 0")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (timeouts, tolerances)."""
    return _checked(text, float, "a number", _positive_number, "finite and > 0")


def learning_rate(text: str) -> float:
    """argparse type: a learning rate, finite and > 0 and within float32's range (TensorFlow
    trains in float32: ``1e-320`` would be 0, ``1e300`` infinite)."""
    return _checked(
        text,
        float,
        "a number",
        check_learning_rate,
        f"finite and > 0, from {FLOAT32_TINY:.4g} to {FLOAT32_MAX:.4g} (float32, which "
        "TensorFlow trains in)",
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _checked(text, int, "an integer", lambda n: check_positive_int(n, text), ">= 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _checked(text, int, "an integer", lambda n: check_int(n, text, minimum=0), ">= 0")


def seed_int(text: str) -> int:
    """argparse type: a seed, an integer from 0 to 2**32 - 1."""
    return _checked(text, int, "an integer", check_seed, f"from 0 to {MAX_SEED}")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``experiment``, ``sweep`` and ``compare``."""
    parser.add_argument("name", help="experiment name (experiments/NAME.toml) or a .toml path")
    parser.add_argument("--epochs", type=positive_int, help="number of epochs (overrides config)")
    parser.add_argument("--seed", type=seed_int, help="seed of shuffle and initial weights")
    parser.add_argument(
        "--catalog", metavar="PATH", help="a local CSV with the experiment's columns"
    )
    parser.add_argument(
        "--results", default="results", metavar="DIR", help="results folder (default: results)"
    )
    parser.add_argument("--force", action="store_true", help="replace existing results")
    parser.add_argument(
        "--record-every",
        type=positive_int,
        metavar="N",
        help="keep every N-th epoch in the history (default 1)",
    )
    parser.add_argument(
        "--record-activations",
        action="store_true",
        help="also record the batch-mean hidden activations a^l_i",
    )


def run_config(args: argparse.Namespace, **overrides: object):
    """The experiment config with the shared run options (:func:`add_run_options`) and
    ``overrides`` (e.g. ``learning_rate``) applied; ``None`` leaves a setting as it is."""
    return run_configs(args, **overrides)[0]


def run_configs(args: argparse.Namespace, **overrides: object):
    """``(config, defaults)``: :func:`run_config`'s config and the config as its file says,
    whose differences the results folder's name carries (:mod:`stellarnet.runs.naming`)."""
    from stellarnet.runs.config import load_experiment

    config = load_experiment(args.name)
    record = None
    if args.record_activations:  # the config's record groups plus "activations"
        record = tuple(dict.fromkeys((*config.training.record, "activations")))
    overridden = config.with_overrides(
        epochs=args.epochs,
        seed=args.seed,
        catalog_path=args.catalog,
        record_every=args.record_every,
        record=record,
        **overrides,
    )
    return overridden, config


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``stellarnet`` command."""
    parser = argparse.ArgumentParser(
        prog="stellarnet",
        description="Small, fully inspectable Keras experiments on stellar catalogs.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    experiment = sub.add_parser("experiment", help="train one run and record its history")
    add_run_options(experiment)
    experiment.add_argument("--lr", type=learning_rate, help="learning rate (overrides config)")
    experiment.add_argument(
        "--init-from",
        metavar="FILE.csv",
        help="initial weights from the epoch = 0 row of a history table "
        "(or a one-row CSV of w^l_i, b^l_i columns)",
    )
    experiment.add_argument("--jit", action="store_true", help=JIT_HELP)
    experiment.set_defaults(handler=cmd_experiment)

    sweep = sub.add_parser("sweep", help="train one run per learning rate")
    add_run_options(sweep)
    sweep.add_argument(
        "--lr",
        type=learning_rate,
        nargs="+",
        required=True,
        metavar="LR",
        help="learning rates, e.g. --lr 0.1 0.3",
    )
    sweep.add_argument(
        "--init",
        choices=INIT_PROTOCOLS,
        help="same: every rate starts from the same weights (default); "
        "notebook: each rate trains a fresh keras clone_model(base), in order",
    )
    sweep.add_argument(
        "--sequential",
        action="store_true",
        help="train the rates one after another instead of stacked in one graph",
    )
    sweep.add_argument("--jit", action="store_true", help=JIT_HELP)
    sweep.set_defaults(handler=cmd_sweep)

    compare = sub.add_parser(
        "compare", help="network vs scikit-learn baselines (and a committee) on the test rows"
    )
    add_run_options(compare)
    compare.add_argument("--lr", type=learning_rate, help="learning rate (overrides config)")
    compare.add_argument(
        "--committee",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="also train a committee of N >= 2 networks on bootstrap samples (default 0: none)",
    )
    compare.set_defaults(handler=cmd_compare)

    figures = sub.add_parser("figures", help="redraw figures from saved results")
    figures.add_argument("target", help="an experiment name or a results folder")
    figures.add_argument("--results", default="results", metavar="DIR", help="results folder")
    figures.add_argument(
        "--epoch",
        type=non_negative_int,
        help="epoch of the network diagram and prediction curves (default: last)",
    )
    figures.add_argument(
        "--digits",
        type=non_negative_int,
        default=4,
        help="decimals in the table exports (default: 4)",
    )
    figures.add_argument(
        "--log",
        action="store_true",
        help="loss on a log scale (default: log when the loss spans more than two decades)",
    )
    figures.add_argument(
        "--stride",
        type=positive_int,
        help="epochs between frames of network.gif (default: every epoch, thinned to at most "
        "150 frames)",
    )
    figures.add_argument(
        "--grid",
        type=positive_int,
        default=41,
        help="points per side of the loss-landscape grid (default: 41)",
    )
    figures.add_argument(
        "--catalog",
        metavar="PATH",
        help="a copy of the runs' catalog (must match the sha256 in run.json)",
    )
    figures.add_argument(
        "--no-explorer",
        action="store_true",
        help="do not write explorer.html (the interactive page; see `stellarnet explore`)",
    )
    figures.add_argument(
        "--no-gif", action="store_true", help="do not write network.gif (the animated network)"
    )
    figures.add_argument(
        "--force",
        action="store_true",
        help="redraw every folder (default: only those whose figures are missing or older than "
        "their history, run.json or options)",
    )
    figures.add_argument(
        "--jobs",
        type=positive_int,
        metavar="N",
        help="processes drawing at once (default: one per core)",
    )
    figures.set_defaults(handler=cmd_figures)

    explore = sub.add_parser(
        "explore", help="write explorer.html: an interactive, offline page of a run or sweep"
    )
    explore.add_argument("folder", help="a run or sweep folder (results/<experiment>/...)")
    explore.add_argument(
        "--open", action="store_true", help="open the page in the default web browser"
    )
    explore.add_argument(
        "--grid",
        type=positive_int,
        default=41,
        help="points per side of the loss-landscape grid (default: 41)",
    )
    explore.add_argument(
        "--catalog",
        metavar="PATH",
        help="a copy of the run's catalog (must match the sha256 in run.json)",
    )
    explore.set_defaults(handler=cmd_explore)

    fetch = sub.add_parser(
        "fetch", help="download the catalog from VizieR into catalogs/ (cache + provenance)"
    )
    fetch.add_argument("--query", metavar="NAME", help="named catalog query (default: gaia_dr2_hr)")
    mode = fetch.add_mutually_exclusive_group()
    mode.add_argument("--refresh", action="store_true", help="download again over a valid cache")
    mode.add_argument(
        "--offline",
        action="store_true",
        help="no network: report what would be loaded (cache or shipped snapshot)",
    )
    fetch.add_argument("--rows", type=positive_int, metavar="N", help="row limit (default: 10000)")
    fetch.add_argument("--server", metavar="HOST", help="VizieR mirror (default: astroquery's)")
    fetch.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="seconds to wait for VizieR (default: 60)",
    )
    fetch.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: catalogs/)")
    fetch.set_defaults(handler=cmd_fetch)

    check = sub.add_parser(
        "check-gradients", help="compare hand-derived gradients with TensorFlow's autodiff"
    )
    check.add_argument("name", help="experiment name (experiments/NAME.toml) or a .toml path")
    check.add_argument(
        "--epochs",
        type=positive_int,
        default=3,
        help="check at the parameters of epochs 0..N (default 3)",
    )
    check.add_argument(
        "--tolerance",
        type=positive_float,
        metavar="T",
        help="largest relative difference from float64 autodiff (default 1e-6)",
    )
    check.add_argument("--seed", type=seed_int, help="seed of shuffle and initial weights")
    check.add_argument("--catalog", metavar="PATH", help="a local CSV with the experiment's data")
    check.add_argument("--init-from", metavar="FILE.csv", help="initial weights from a table")
    check.set_defaults(handler=cmd_check_gradients)

    runs = sub.add_parser(
        "runs",
        help="list the saved runs and sweeps: settings, status, first and last loss, folder",
    )
    runs.add_argument("experiment", nargs="?", help="only this experiment (default: all)")
    runs.add_argument("--results", default="results", metavar="DIR", help="results folder")
    runs.set_defaults(handler=cmd_runs)

    add_study_parser(sub)

    listing = sub.add_parser("list", help="list the experiment configs")
    listing.set_defaults(handler=cmd_list)
    return parser


def cmd_experiment(args: argparse.Namespace) -> int:
    """``stellarnet experiment NAME [--lr ...]``."""
    from stellarnet.runs.experiment import run_experiment

    config, defaults = run_configs(args, learning_rate=args.lr)
    result = run_experiment(
        config,
        args.results,
        force=args.force,
        progress=True,
        init_from=args.init_from,
        jit_compile=args.jit,
        defaults=defaults,
    )
    report_run(result.folder, result.record)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """``stellarnet sweep NAME --lr 0.1 0.3 ...``: one run per learning rate, one table.
    Every rate is saved; if one diverged, the command says which and exits with status 1."""
    from stellarnet.errors import TrainingDiverged
    from stellarnet.runs.sweep import run_sweep, summarize_sweep
    from stellarnet.viz.style import number

    config, defaults = run_configs(args, init=args.init)
    result = run_sweep(
        config,
        args.lr,
        args.results,
        force=args.force,
        vectorize=not args.sequential,
        jit_compile=args.jit,
        progress=True,
        defaults=defaults,
    )
    record = result.record
    print(
        f"{record['experiment']} sweep ({len(args.lr)} rates, init={record['init']}, "
        f"{config.training.epochs} epochs) in {record['wall_time_s']:.1f} s"
    )
    for row in summarize_sweep(result.history):
        first = number(row["loss_first"])
        if row["diverged"] is not None:
            epoch, loss = row["diverged"]
            print(
                f"  lr={row['lr']:g}: loss {first}, diverged at epoch {epoch} (loss {number(loss)})"
            )
            continue
        trend = "falls every epoch" if row["monotonic"] else "not monotonic"
        print(f"  lr={row['lr']:g}: loss {first} -> {number(row['loss_last'])} ({trend})")
    print(
        f"  wrote {result.folder}/ (history.parquet and history.csv with an lr column, run.json, "
        "loss.png, loss.pdf, lr=<rate>/ per rate)"
    )
    diverged = record.get("diverged_rates") or {}
    if diverged:
        where = ", ".join(
            f"lr={label} at epoch {at['epoch']} (loss {at['loss']})"
            for label, at in diverged.items()
        )
        raise TrainingDiverged(
            f"{len(diverged)} of {len(record['learning_rates'])} learning rates diverged: {where}; "
            f'every rate\'s history is saved in {result.folder}/ (run.json: "status": '
            '"diverged"); lower the rates that diverged (--lr)'
        )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``stellarnet compare NAME [--committee N]``: one table of test metrics per model."""
    from stellarnet.runs.compare import run_compare
    from stellarnet.runs.compare_report import report_lines

    config = run_config(args, learning_rate=args.lr)
    result = run_compare(
        config, args.results, force=args.force, committee=args.committee, progress=True
    )
    print("\n".join(report_lines(result)))
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    """``stellarnet figures TARGET``: draw the figures, tables and report of each run and
    sweep under TARGET from its saved tables, if they are stale (missing, older than the
    history or run.json, or drawn with other options or another version; ``--force``: all).
    A folder with a problem is skipped whole (its files unchanged) and the others drawn; the
    exit status is 1 if any was skipped. Study folders get their figures and report again
    (they are quick: drawn from members.csv)."""
    from stellarnet.results.finding import find_results, find_studies, results_root
    from stellarnet.viz.drawing import draw_folders
    from stellarnet.viz.freshness import FigureOptions
    from stellarnet.viz.study import study_figures, study_report

    options = FigureOptions(
        epoch=args.epoch,
        digits=args.digits,
        log_scale=args.log,
        stride=args.stride,
        grid=args.grid,
        catalog=args.catalog,
        gif=not args.no_gif,
        explorer=not args.no_explorer,
    )
    skipped = []
    folders = find_results(args.target, args.results)
    for outcome in draw_folders(folders, options, force=args.force, jobs=args.jobs):
        folder = outcome.folder
        if outcome.fresh is not None:
            print(f"{folder}: up to date ({len(outcome.fresh)} files)")
        elif outcome.error is not None:
            print(
                f"{ERROR_PREFIX}skipped {folder}/ (its files unchanged): {outcome.error}",
                file=sys.stderr,
            )
            skipped.append(f"{folder}/")
        else:
            print(f"{folder}/: " + ", ".join(path.name for path in outcome.written))
    for study in find_studies(results_root(args.target, args.results)):
        written = [*study_figures(study), study_report(study)]
        print(f"{study}/: " + ", ".join(path.name for path in written))
    if skipped:
        listed = ", ".join(skipped)
        print(f"{ERROR_PREFIX}{len(skipped)} folder(s) skipped: {listed}", file=sys.stderr)
        return 1
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    """``stellarnet explore FOLDER [--open]``: write FOLDER/explorer.html (no TensorFlow)."""
    from stellarnet.viz.explorer import write_explorer

    if args.grid < 3:
        raise ConfigError(f"the landscape grid needs at least 3 points per side, got {args.grid}")
    path = write_explorer(args.folder, grid=args.grid, catalog=args.catalog)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; opens offline in any browser)")
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """``stellarnet fetch``: cache a VizieR catalog (or, offline, say what would be loaded)."""
    import dataclasses

    from stellarnet.data.loading import describe_catalog, load_catalog
    from stellarnet.data.registry import CACHE_DIR, GAIA_DR2_HR, QUERIES
    from stellarnet.data.vizier import fetch_catalog
    from stellarnet.errors import ConfigError

    name = args.query or GAIA_DR2_HR.name
    if name not in QUERIES:
        raise ConfigError(f"unknown catalog query {name!r}; known: {sorted(QUERIES)}")
    query = QUERIES[name]
    if args.rows is not None:
        query = dataclasses.replace(query, row_limit=args.rows)
    cache_dir = args.cache_dir or CACHE_DIR
    if args.offline:
        catalog = load_catalog(query, cache_dir, offline=True)
        print(f"offline: `stellarnet experiment` would load the {catalog.origin} {catalog.path}")
    else:
        catalog = fetch_catalog(
            query,
            cache_dir,
            refresh=args.refresh,
            timeout=args.timeout,
            server=args.server,
            progress=True,
        )
    print(describe_catalog(catalog, query))
    return 0


def cmd_check_gradients(args: argparse.Namespace) -> int:
    """``stellarnet check-gradients NAME``: exit status 1 if a difference exceeds a tolerance."""
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.experiment import read_init_from
    from stellarnet.runs.gradcheck import DEFAULT_TOLERANCE, check_gradients

    config = load_experiment(args.name).with_overrides(seed=args.seed, catalog_path=args.catalog)
    layers = None
    if args.init_from is not None:
        layers = read_init_from(args.init_from, config.model.layer_sizes)
    check = check_gradients(
        config,
        epochs=args.epochs,
        initial_layers=layers,
        tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
    )
    print(check.report())
    return 0 if check.passed else 1


def cmd_runs(args: argparse.Namespace) -> int:
    """``stellarnet runs [EXP]``: the saved runs and sweeps as an aligned table (read from
    their run.json files; TensorFlow is not imported)."""
    from stellarnet.results.listing import runs_table, saved_runs

    print(runs_table(saved_runs(args.results, args.experiment)))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``stellarnet list``: the experiment configs and where each comes from (a config in
    ``./experiments`` shadows a built-in one of the same name)."""
    from stellarnet.runs.lookup import BUILTIN_EXPERIMENT_DIR, experiment_sources, is_builtin

    for name, path in experiment_sources().items():
        if is_builtin(path):
            origin = "built-in"
        elif (BUILTIN_EXPERIMENT_DIR / path.name).is_file():
            origin = "./experiments (shadows the built-in one)"
        else:
            origin = "./experiments"
        print(f"{name:<28} {origin}")
    return 0


def add_study_parser(sub) -> None:
    """``stellarnet study``: rates x seeds (x widths) in one command."""
    study = sub.add_parser(
        "study", help="train rates x seeds (x hidden widths): the distribution, not one draw"
    )
    study.add_argument("name", help="experiment name (experiments/NAME.toml) or a .toml path")
    study.add_argument(
        "--lr", type=learning_rate, nargs="+", metavar="LR", help="learning rates ([study] lr)"
    )
    study.add_argument(
        "--seeds", type=positive_int, metavar="N", help="seeds 0..N-1 ([study] seeds)"
    )
    study.add_argument("--first-seed", type=seed_int, metavar="S", help="first seed (default 0)")
    study.add_argument(
        "--hidden", type=positive_int, nargs="+", metavar="W", help="hidden widths, e.g. 4 6 8"
    )
    study.add_argument(
        "--init",
        choices=INIT_PROTOCOLS,
        help="same: each seed's model for every rate (default); notebook: one clone per rate",
    )
    study.add_argument("--epochs", type=positive_int, help="number of epochs (overrides config)")
    study.add_argument(
        "--record",
        choices=("all", "loss"),
        help="all: the single-run columns (default); loss: only epoch, loss and output",
    )
    study.add_argument(
        "--catalog", metavar="PATH", help="a local CSV with the experiment's columns"
    )
    study.add_argument("--results", default="results", metavar="DIR", help="results folder")
    study.add_argument("--force", action="store_true", help="replace existing results")
    where = study.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", metavar="tcp://HOST:PORT", help="run the parts on this Dask scheduler"
    )
    where.add_argument(
        "--dask-workers", type=positive_int, metavar="N", help="run on a local Dask cluster"
    )
    study.set_defaults(handler=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    """``stellarnet study NAME --lr 0.1 0.3 --seeds 64``: a study's folder and its answer."""
    from stellarnet.runs.config import load_experiment
    from stellarnet.runs.study import run_study
    from stellarnet.runs.study_grid import StudySpec
    from stellarnet.viz.study import answer

    defaults = load_experiment(args.name)
    config = defaults.with_overrides(catalog_path=args.catalog)
    changes = {
        "learning_rates": None if args.lr is None else tuple(args.lr),
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "hidden": None if args.hidden is None else tuple(args.hidden),
        "init": args.init,
        "epochs": args.epochs,
        "record": args.record,
    }
    if defaults.study is not None:
        spec = defaults.study.with_overrides(**changes)
    elif args.lr is None or args.seeds is None:
        raise ConfigError(
            f"{args.name} has no [study] table: give --lr and --seeds "
            "(e.g. --lr 0.1 0.3 --seeds 64)"
        )
    else:
        spec = StudySpec(**{k: v for k, v in changes.items() if v is not None})
    result = run_study(
        config,
        spec,
        args.results,
        force=args.force,
        defaults=defaults,
        scheduler=args.scheduler,
        dask_workers=args.dask_workers,
    )
    record = result.record
    print(
        f"{record['experiment']} study ({record['members']} members, init={spec.init}, "
        f"{record['config']['training']['epochs']} epochs) in {record['wall_time_s']:.1f} s"
    )
    for width in dict.fromkeys(result.members["hidden"]):
        print(f"  hidden {width}: {answer(result.members, list(spec.learning_rates), width)}")
    print(
        f"  wrote {result.folder}/ (history/ Parquet dataset by lr and hidden, summary.csv, "
        "members.csv, run.json, report.md, loss_bands, final_loss, monotone .png/.pdf)"
    )
    return 0


def report_run(folder, record: dict) -> None:
    """Print where a run wrote, its first and last loss, and its test metrics if any."""
    from stellarnet.runs.metrics import format_metrics
    from stellarnet.viz.style import number

    print(
        f"{record['experiment']} (lr={record['config']['training']['learning_rate']:g}, "
        f"{record['config']['training']['epochs']} epochs): loss "
        f"{number(float(record['loss_first']))} -> {number(float(record['loss_last']))} in "
        f"{record['wall_time_s']:.1f} s"
    )
    if record.get("catalog_provenance", {}).get("synthetic"):
        print(f"  data: SYNTHETIC ({record['catalog_path']}), not a measurement")
    stopping = record.get("early_stopping")
    if stopping:
        stopped = stopping["stopped_epoch"]
        print(
            f"  early stopping: {'stopped after epoch ' + str(stopped) if stopped else 'ran all'}"
            f"; weights of epoch {stopping['best_epoch']} kept "
            f"(val_loss {number(stopping['best_val_loss'])})"
        )
    if record.get("test_metrics"):
        print(f"  test: {format_metrics(record['test_metrics'])}")
    print(f"  wrote {folder}/ (history.parquet, history.csv, run.json, loss.png, loss.pdf)")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def setup_logging(quiet: bool) -> None:
    """Log lines for the CLI: plain INFO messages, 'warning: ...' for warnings."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("stellarnet")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


ERROR_PREFIX = "stellarnet: error: "
TRACEBACK_VARIABLE = "STELLARNET_TRACEBACK"
"""Set it (``STELLARNET_TRACEBACK=1``) to see the traceback of an unexpected error."""


def one_line(message: object) -> str:
    """``message`` on one line (its lines joined with ``; ``)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return "; ".join(lines)


def describe_os_error(err: OSError) -> str:
    """``"cannot write results/x: No space left on device"`` from an OSError."""
    what = err.strerror or str(err) or type(err).__name__
    paths = [p for p in (err.filename, err.filename2) if p is not None]
    return f"{what}: {' -> '.join(map(str, paths))}" if paths else what


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stellarnet`` command; returns the exit status.

    Every error reaches the user as one line, ``stellarnet: error: ...``, with exit status 1
    (argument errors: argparse's line, status 2; Ctrl-C: 130); never a traceback, unless
    ``STELLARNET_TRACEBACK`` is set.
    """
    args = build_parser().parse_args(argv)
    setup_logging(args.quiet)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter
    from stellarnet import tfsettings
    from stellarnet.errors import StellarnetError

    tfsettings.apply()  # one thread per op, no oneDNN: see stellarnet.tfsettings

    try:
        return args.handler(args)
    except StellarnetError as err:
        print(ERROR_PREFIX + one_line(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `stellarnet runs | head`: the reader has gone, say nothing
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:  # the file system said no where no check foresaw it
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        print(ERROR_PREFIX + one_line(describe_os_error(err)), file=sys.stderr)
        return 1
    except MemoryError:
        print(
            ERROR_PREFIX + "out of memory; train fewer epochs or rates, or raise --record-every",
            file=sys.stderr,
        )
        return 1
    except Exception as err:  # a bug: say so in one line, the traceback on request
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        print(
            ERROR_PREFIX
            + one_line(f"unexpected {type(err).__name__}: {err}")
            + f" (a bug in stellarnet; run again with {TRACEBACK_VARIABLE}=1 for the traceback "
            "and report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
