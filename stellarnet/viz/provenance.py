"""The prose of a run's or sweep's report: where the run came from (provenance), which rows it
trained on and how, how its initial weights were drawn, and what its recorded losses mean.

Every number here is written by :func:`stellarnet.viz.style.number` (4 significant figures);
the history tables keep every digit. Rows and initial weights are told in the words of the
figures' captions (:mod:`stellarnet.viz.captions`), so that report and figures agree.
"""

from __future__ import annotations

from pathlib import Path

from stellarnet.results.saved import SavedResults, lr_label
from stellarnet.viz.captions import OPTIMIZERS, init_text, rows_text
from stellarnet.viz.style import number

FULL_BATCH_NOTE = (
    "Losses as the history records them. Full batch: row k's loss is that of row k-1's weights "
    "(the weights before epoch k's update), so the last recorded loss is not that of the final "
    "weights, whose loss is given beside it (computed on the run's rows with the saved weights)."
)
MINI_BATCH_NOTE = (
    "Losses as the history records them. Mini-batches: row k's loss is the mean over epoch k's "
    "batches of each batch's loss, each computed before that batch's update, so it belongs to "
    "no single set of weights; the loss of the final weights on all the rows of each part is "
    "given beside it (computed with the saved weights)."
)
VALIDATION_NOTE = (
    " val_loss of row k is the validation rows' loss with row k's weights (after epoch k's update)."
)
NUMBERS_NOTE = (
    " Numbers in text have 4 significant figures; history.csv and history.parquet hold them "
    "in full."
)


def summary_note(results: SavedResults) -> str:
    """What the summary table's losses are: whose weights a recorded loss belongs to (full
    batch or mini-batch, and ``val_loss`` with a validation split), and the number format."""
    training = results.config.get("training", {})
    text = MINI_BATCH_NOTE if training.get("batch_size") else FULL_BATCH_NOTE
    if any("val_loss" in history for history in results.histories.values()):
        text += VALIDATION_NOTE
    return text + NUMBERS_NOTE


def status_item(results: SavedResults) -> str:
    """``Status: complete``, or which rates diverged where and what the figures draw of them."""
    diverged = [lr for lr in results.learning_rates if results.divergence(lr) is not None]
    if not diverged:
        return f"Status: {results.status}"
    where = "; ".join(f"{lr_label(lr)} {results.divergence(lr).describe()}" for lr in diverged)
    ends = (
        f"Status: {results.status}. {where}. The history of a diverged run ends with its first "
        "row that is not finite; "
    )
    if len(diverged) == len(results.histories):
        return ends + "the figures draw the rows before it and the weights of the last one"
    return ends + (
        "the loss figure draws the rows before it, the HR and fit figures the last finite "
        "weights (and say so); the residuals and the loss landscape leave it out"
    )


def kept_weights_item(results: SavedResults) -> str | None:
    """For a run that stopped early: the figures and the final-weights losses are those of the
    last row's weights, while the model kept (and ``test_metrics`` used) the best epoch's;
    None when the two are the same epoch."""
    stopping = results.record.get("early_stopping")
    if not stopping or results.is_sweep:
        return None
    lr = results.learning_rates[0]
    shown, kept = results.weights_epoch(lr), results.kept_epoch(lr)
    if shown is None or kept == shown:
        return None
    stopped = stopping.get("stopped_epoch")
    why = f"early stopping stopped after epoch {stopped}" if stopped else "early stopping"
    best = stopping.get("best_val_loss")
    return (
        f"Weights: the figures and the losses of the final weights are those of epoch {shown} "
        f"(the last history row); {why} and the model kept epoch {kept}'s weights"
        + (f" (lowest val_loss, {number(best)})" if best is not None else "")
        + ", with which run.json's test metrics are computed"
    )


def _data_item(results: SavedResults) -> str:
    """``Data: `Lum` (log10, minmax) -> `Teff` (log10); 2242 of 2242 rows kept, shuffled
    with seed 1453``, naming ``[dataset] rows`` and ``shuffle = false`` when set."""
    config = results.config
    spec = config["dataset"]
    features = ", ".join(
        f"`{f['column']}` ({', '.join(f['transforms']) or 'as is'})" for f in spec["features"]
    )
    target = spec["target"]
    text = (
        f"Data: {features} -> `{target['column']}` ({', '.join(target['transforms']) or 'as is'})"
    )
    data = results.record.get("dataset", {})
    if "rows_kept" not in data:
        return text
    selected = spec.get("rows")
    if selected is not None:
        of = data.get("catalog_rows")
        text += f"; catalog rows {list(selected)}" + (f" of {of}" if of else "")
        text += f" ([dataset] rows), {data['rows_kept']} kept"
    else:
        text += f"; {data['rows_kept']} of {data['rows_total']} rows kept"
    if spec.get("shuffle", True):
        return text + f", shuffled with seed {config.get('seed')}"
    return text + ", in the catalog's order (shuffle = false)"


def _training_item(results: SavedResults) -> str:
    """``Training: SGD, loss half_mse, 10 epochs on 71 training rows, full batch; learning
    rate(s) 0.1, 0.6``, with early stopping's patience when set."""
    training = results.config["training"]
    optimizer = str(training["optimizer"])
    rows = rows_text(results)
    text = (
        f"Training: {OPTIMIZERS.get(optimizer, optimizer)}, loss {training['loss']}, "
        f"{training['epochs']} epochs" + (f" on {rows}" if rows else "")
    )
    if training.get("batch_size"):
        seed = results.config.get("seed")
        text += f" (rows reshuffled every epoch, seeded by seed {seed} and the epoch)"
    if training.get("patience") is not None:
        text += f", early stopping on val_loss with patience {training['patience']}"
    rates = ", ".join(f"{lr:g}" for lr in results.learning_rates)
    return text + f"; learning rate{'s' if len(results.learning_rates) > 1 else ''} {rates}"


def _init_item(results: SavedResults) -> str:
    """``Initial weights (`--init same`): every rate starts from the seed-1453 model's
    weights``; for a single run, the seed or the ``--init-from`` file."""
    init_from = results.record.get("init_from")
    if init_from:
        return f"Initial weights: epoch 0 of `{init_from.get('path', '?')}`"
    if not results.is_sweep:
        return f"Initial weights: {init_text(results)}"
    protocol = results.config["training"].get("init", "same")
    return f"Initial weights (`--init {protocol}`): {init_text(results)}"


def provenance_items(results: SavedResults) -> list[str]:
    """The run's provenance as list items: config, model, training (rows and batches), initial
    weights, status, data, catalog, run, versions."""
    record, config = results.record, results.config
    model = config["model"]
    provenance = record.get("catalog_provenance", {})
    items = [
        f"Experiment `{results.experiment}`"
        + (f" (config `{Path(config['config_file']).name}`)" if config.get("config_file") else ""),
        f"Model: {'-'.join(map(str, results.layer_sizes))} dense network, "
        f"{model['activation']} hidden units, {model.get('output_activation', 'linear')} output, "
        f"initial weights {model.get('kernel_initializer', '?')} seeded with {config.get('seed')}",
        _training_item(results),
        _init_item(results),
        status_item(results),
        _data_item(results),
        f"Catalog: `{record.get('catalog_path', '?')}` ({record.get('catalog_origin', '?')}), "
        f"sha256 `{record.get('catalog_sha256', '?')}`",
    ]
    kept = kept_weights_item(results)
    if kept:
        items.insert(5, kept)
    if provenance.get("description"):
        items.append(f"Catalog description: {provenance['description']}")
    if provenance.get("licence"):
        items.append(
            f"Catalog licence: {provenance['licence']}; cite "
            + "; ".join(provenance.get("citation", []))
        )
    if record.get("created_utc"):
        items.append(
            f"Run: {record['created_utc']}"
            + (f", `{record['command']}`" if record.get("command") else "")
            + (f", {number(record['wall_time_s'])} s" if "wall_time_s" in record else "")
        )
    if record.get("versions"):
        items.append("Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()))
    if record.get("history_convention"):
        items.append(f"History rows: {record['history_convention']}")
    return items
