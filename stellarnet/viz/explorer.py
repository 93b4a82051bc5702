"""``explorer.html``: one self-contained page to scrub through a run or a sweep, epoch by epoch.

Everything on the page comes from the saved results (the history, ``run.json`` and the
catalog checked by its sha256), computed here once and embedded: the history rows at full
float64 precision, the network's prediction at every frame (a numpy forward pass), the loss
landscape (:func:`stellarnet.viz.landscape.compute_landscape`). Bokeh draws it in the browser
with its JavaScript inlined, so the file opens offline, from disk, with no server.

Panels (all follow the epoch slider and play/pause): the network diagram, the data panel (the
HR diagram, or predicted vs true target), loss vs epoch with a cursor, each layer's gradient
size, and the loss landscape with each rate's current position. A readout above them prints
the loss and one chosen parameter at that epoch for every rate, exactly as saved.

The page's scripting hook, for tests and for teachers who embed it::

    window.stellarnetExplorer.setEpoch(k)   // moves the slider to epoch k (the nearest frame)
    window.stellarnetExplorer.shown()       // {"epoch": k, "rates": ["0.1", ...],
                                            //  "loss": {"0.1": ...}, "parameters": {"0.1":
                                            //  {"w^1_1": ..., ...}}, ...}

Rates are keyed as in their ``lr=<rate>`` folders (:func:`stellarnet.results.names.rate_label`).
"""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from pathlib import Path

from stellarnet.files import atomic_write
from stellarnet.results.saved import SavedResults, as_results, load_results
from stellarnet.schema import parameter_names
from stellarnet.viz.divergence import drawn_rates
from stellarnet.viz.explorer_frames import MAX_FRAMES, choose_frames, rate_tracks
from stellarnet.viz.explorer_layout import build_document
from stellarnet.viz.explorer_loss import loss_axis
from stellarnet.viz.explorer_panels import ExplorerContent
from stellarnet.viz.explorer_predictions import data_panel, landscape_positions, loss_axis_label
from stellarnet.viz.landscape import Landscape, compute_landscape

EXPLORER_HTML = "explorer.html"
LANDSCAPE_GRID = 41
"""Points per side of the landscape's grid (as ``stellarnet figures``' default)."""
MAX_TITLE_RATES = 4
"""The page's title lists up to this many rates; more are summarised as a range."""
COMPARE_MARKER = "compare.json"
"""The file that marks a ``stellarnet compare`` folder (``stellarnet.runs.compare_report``'s
COMPARE_JSON; runs sits above viz, so the name is repeated here)."""
COMPARE_NETWORK = "network"
"""A comparison's network run, a results folder of its own (``compare/network/``)."""
PLAY_SECONDS = 15.0
"""Play runs through all frames in about this long (at most 10 frames a second)."""


def explorer_content(
    results: SavedResults, grid: int = LANDSCAPE_GRID, landscape: Landscape | None = None
) -> ExplorerContent:
    """Everything the page shows, computed from ``results`` (``landscape``: one already
    computed for these results, e.g. by ``stellarnet figures``)."""
    results.dataset()  # the catalog and the rebuilt dataset: fail before computing anything
    frames = choose_frames(results, MAX_FRAMES)
    tracks = rate_tracks(results, frames)
    if landscape is None and drawn_rates(results):
        landscape = compute_landscape(results, grid=grid)
    panel = data_panel(results, tracks)
    sizes = results.layer_sizes
    names = {kind: parameter_names(sizes, kind) for kind in ("w", "b", "g", "gb")}
    return ExplorerContent(
        title=page_title(results),
        layer_sizes=sizes,
        input_names=[spec.column for spec in results.features],
        output_names=[results.target.column],
        parameters=names["w"] + names["b"],
        gradient_names=names["g"] + names["gb"],
        frames=frames,
        tracks=tracks,
        panel=panel,
        landscape=landscape,
        positions={} if landscape is None else landscape_positions(results, landscape, frames),
        loss_label=loss_axis_label(results),
        loss_axis=loss_axis(results, tracks),
    )


def page_title(results: SavedResults) -> str:
    """``hr_relation: LR=0.1, 0.3, 300 epochs`` (many rates: ``8 rates, LR=0.01 to 1``)."""
    rates = results.learning_rates
    text = "LR=" + ", ".join(f"{lr:g}" for lr in rates)
    if len(rates) > MAX_TITLE_RATES:
        text = f"{len(rates)} rates, LR={min(rates):g} to {max(rates):g}"
    epochs = int(results.config["training"]["epochs"])
    stopped = (results.record.get("early_stopping") or {}).get("stopped_epoch")
    if stopped and int(stopped) < epochs and not results.is_sweep:
        return f"{results.experiment}: {text}, stopped early after epoch {stopped} of {epochs}"
    return f"{results.experiment}: {text}, {epochs} epochs"


def _notes(content: ExplorerContent) -> list[str]:
    """The page's explanations: what a row holds, what was thinned, how to use it."""
    notes = [
        "Row k of the history holds the loss and gradients computed with the weights "
        "<em>before</em> epoch k's update and the weights <em>after</em> it: the diagram, the "
        "prediction and the landscape position show the weights after epoch k. Epoch 0 is "
        "the initial network (no gradient).",
        f"Slider: {html.escape(content.frames.note())}. Data panel: "
        f"{html.escape(content.panel.note)}.",
        "Network: edge colour and width = the weight (red &gt; 0, blue &lt; 0, one scale per "
        "run), node colour = the bias; grey, hatched = dead unit (zero gradient in that "
        "epoch). Hover for exact values; click an edge or a node to show it in the readout.",
    ]
    if content.landscape is not None:
        grid = len(content.landscape.alphas)
        notes.append(
            f"Landscape: the loss on a {grid}x{grid} grid over the plane of the two principal "
            "directions of the recorded parameter vectors (Li et al. 2018); the paths lie near, "
            "not on, that plane, so the colour under a dot is close to, not exactly, its loss."
        )
    if content.loss_axis.colorbar:
        notes.append(
            f"{len(content.tracks)} rates, coloured by the rate (the loss panel's colour bar, "
            "log scale) as in the static figures; pick one under <em>Network of</em>."
        )
    elif len(content.tracks) > 1:
        notes.append("Click a rate in a legend to hide or show it in every panel.")
    axis = content.loss_axis
    if axis.wild:
        clipped = "; the loss axis is fitted to the other (calm) rates" if axis.y_range else ""
        notes.append(
            html.escape("; ".join(axis.wild.values()))
            + f"{clipped}. A rate that diverged is drawn up to its last finite row (its loss "
            "and weights are not finite after it: <code>null</code> in <code>shown()</code>, "
            "<code>nan</code> or <code>inf</code> in the readout); the landscape leaves it "
            "out when other rates trained to the end."
        )
    if axis.kept:
        notes.append(
            f"Early stopping: {html.escape(axis.kept)}. Those weights are the model's (its "
            "test metrics in run.json); the slider runs to the last epoch trained. Dashed: "
            "the validation loss."
        )
    return notes


TEMPLATE = """{% extends base %}
{% block postamble %}<style>
body { font-family: system-ui, sans-serif; margin: 12px 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px 0; }
#sn-notes { font-size: 13px; color: #444; margin: 0 0 8px 0; padding-left: 18px; }
#sn-readout { font-size: 14px; margin: 6px 0 10px 0; }
#sn-readout-scroll { max-height: 190px; overflow-y: auto; width: max-content; max-width: 100%; }
#sn-readout table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
#sn-readout td, #sn-readout th { padding: 2px 12px 2px 6px; text-align: left; }
#sn-readout th { border-bottom: 1px solid #999; font-weight: 600; }
#sn-readout td { font-family: ui-monospace, monospace; }
</style>{% endblock %}
{% block contents %}
<h1>{{ heading }}</h1>
<ul id="sn-notes">{% for note in notes %}<li>{{ note }}</li>{% endfor %}</ul>
<section id="sn-readout" aria-live="polite">
<strong>Epoch <span id="sn-epoch">-</span></strong> (values exactly as saved in the history)
<div id="sn-readout-scroll"><table><thead><tr><th>rate</th>
<th>loss (row k)</th><th id="sn-param-name">-</th>
<th id="sn-grad-name">-</th></tr></thead><tbody id="sn-readout-rows"></tbody></table></div>
</section>
{{ super() }}
{% endblock %}
"""


def explorer_html(
    results: SavedResults, grid: int = LANDSCAPE_GRID, landscape: Landscape | None = None
) -> str:
    """The page as one HTML string (Bokeh's core and widget scripts inlined)."""
    from bokeh.core.templates import FILE
    from bokeh.embed import file_html
    from bokeh.resources import INLINE
    from jinja2 import Template

    content = explorer_content(results, grid, landscape)
    frames = len(content.frames.epochs)
    frame_ms = max(100, round(1000 * PLAY_SECONDS / max(frames, 1)))
    document = build_document(content, frame_ms)
    heading = f"stellarnet explorer: {content.title}"
    return stable_ids(
        file_html(
            document,
            INLINE,
            title=heading,
            template=Template(TEMPLATE),
            template_variables={
                "base": FILE,
                "heading": html.escape(f"{heading} ({results.folder.name})"),
                "notes": _notes(content),
            },
        )
    )


_MODEL_ID = re.compile(r'"p(\d+)"')
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def stable_ids(page: str) -> str:
    """The page with Bokeh's ids made reproducible: model ids (``"p1234"``, counted up per
    Python process) renumbered in order of appearance, and the random UUIDs of the root
    elements replaced by ones derived from the page itself. So the same results give the same
    bytes, as every other file ``stellarnet figures`` writes."""
    models: dict[str, str] = {}
    page = _MODEL_ID.sub(lambda m: models.setdefault(m[0], f'"p{1000 + len(models)}"'), page)
    digest = hashlib.sha256(_UUID.sub("", page).encode()).digest()
    uuids: dict[str, str] = {}

    def stable(match: re.Match) -> str:
        if match[0] not in uuids:
            seed = hashlib.sha256(digest + len(uuids).to_bytes(4, "big")).digest()[:16]
            uuids[match[0]] = str(uuid.UUID(bytes=seed, version=4))
        return uuids[match[0]]

    return _UUID.sub(stable, page)


def explored_folder(folder: str | Path) -> Path:
    """The folder whose history the page shows: ``folder`` itself, or for a ``stellarnet
    compare`` folder (``compare.json``, no ``run.json``) its network run ``network/``: the
    baselines have no epochs to scrub through."""
    folder = Path(folder)
    network = folder / COMPARE_NETWORK
    if (folder / COMPARE_MARKER).is_file() and not (folder / "run.json").exists():
        if (network / "run.json").is_file():
            return network
    return folder


def write_explorer(
    source: str | Path | SavedResults,
    grid: int = LANDSCAPE_GRID,
    catalog: str | Path | None = None,
    *,
    folder: str | Path | None = None,
    landscape: Landscape | None = None,
) -> Path:
    """Write ``explorer.html`` into a run or sweep folder, atomically; return its path.

    Parameters
    ----------
    source : path or SavedResults
        The run or sweep folder (or its results, already read); a ``stellarnet compare``
        folder stands for its network run (:func:`explored_folder`), where the page goes.
    grid : int
        Points per side of the loss landscape's grid.
    catalog : path, optional
        A copy of the run's catalog (checked against the recorded sha256).
    folder : path, optional
        Where to write it instead of the results folder (``stellarnet figures`` stages its
        files).
    landscape : Landscape, optional
        The landscape of these results, if already computed.

    Raises
    ------
    StellarnetError
        As :func:`stellarnet.results.saved.load_results` (a damaged folder) or the catalog
        check (a missing or changed catalog).
    """
    if isinstance(source, (str, Path)):
        source = explored_folder(source)
    results = as_results(source) if catalog is None else load_results(source, catalog)
    page = explorer_html(results, grid, landscape)
    target = Path(folder if folder is not None else results.folder) / EXPLORER_HTML
    return atomic_write(target, lambda tmp: tmp.write_text(page, encoding="utf-8"))
