"""explorer.html in the browser for nets with several inputs and for wild rates: photo-z (5
inputs, early stopping), the four-band task (a sweep), a rate that exploded (LR 3 on the HR
relation spikes to 790.9 at epoch 2) and one that diverged (loss inf). The numbers shown must
be history.parquet's rows (``null`` where not finite), the data panel the saved network's
prediction, the loss axis fitted to the calm rates, and the browser must log no error.
Made with the real commands (tests/explorer_runs.py); screenshots go to pytest's tmp_path.
"""

from __future__ import annotations

import html
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from stellarnet.results.run_catalog import log_space
from stellarnet.results.saved import load_results
from stellarnet.viz.explorer import EXPLORER_HTML, write_explorer
from stellarnet.viz.explorer_frames import choose_frames, rate_tracks
from stellarnet.viz.explorer_loss import loss_axis
from tests.explorer_runs import DIVERGED_AT, PHOTOZ_INPUTS, WILD_EPOCHS, more_results
from tests.test_explorer_browser import browser as chromium
from tests.test_explorer_browser import errors, open_page, readout, shown

browser = chromium  # the same headless, offline Chromium fixture

EXPLODED_PEAK = 790.9136352539062
"""LR 3's loss at epoch 2 (row 2), as the static figures' tests name it."""


@pytest.fixture(scope="module")
def more(tmp_path_factory):
    return more_results(tmp_path_factory)


def history_rows(folder) -> dict[str, pd.DataFrame]:
    history = pd.read_parquet(folder / "history.parquet")
    if "lr" not in history.columns:
        return {folder.name.removeprefix("lr=").split(",")[0]: history}
    return {f"{lr:g}": part for lr, part in history.groupby("lr", sort=False)}


def same(shown_value, saved: float) -> bool:
    """A value of ``shown()`` is the saved float64, or null where that is not finite."""
    return shown_value is None if not math.isfinite(saved) else shown_value == saved


def check_rows(browser, folder, epoch: int) -> dict:
    """Move to ``epoch``; every rate's loss, output, parameters and gradients shown are the
    saved row's (null where not finite, or where the rate has no such row)."""
    assert browser.execute_script(f"return stellarnetExplorer.setEpoch({epoch})") == epoch
    page = shown(browser)
    for key, history in history_rows(folder).items():
        rows = history[history["epoch"] == epoch]
        if rows.empty:
            assert page["loss"][key] is None and set(page["parameters"][key].values()) == {None}
            continue
        row = rows.iloc[0]
        assert same(page["loss"][key], row["loss"]) and same(page["output"][key], row["output"])
        for name, value in page["parameters"][key].items():
            assert same(value, row[name]), (key, epoch, name)
        for name, value in page["gradients"][key].items():
            assert same(value, row[name]), (key, epoch, name)
    assert not errors(browser)
    return page


def model_data(browser, name: str) -> list[list[float]]:
    return browser.execute_script(
        f"const d = Bokeh.documents[0].get_model_by_name({name!r}).data;"
        "return [Array.from(d.x), Array.from(d.y)];"
    )


def test_photoz_panel_shows_z_phot_vs_z_spec_of_the_saved_network(browser, more, tmp_path):
    folder = more["photoz"]
    results = load_results(folder)
    assert results.layer_sizes == (5, 32, 32, 1)
    record = results.record["early_stopping"]
    assert record["stopped_epoch"] < 40, "the fixture must stop early"
    last = int(results.histories[0.03]["epoch"].max())
    open_page(browser, folder)
    title = browser.execute_script(
        "return Bokeh.documents[0].get_model_by_name('loss-panel').title.text"
    )
    assert title.startswith("Loss vs epoch")
    page = html.unescape((folder / EXPLORER_HTML).read_text())
    assert f"epoch {record['best_epoch']}'s weights kept" in page
    assert f"stopped early after epoch {record['stopped_epoch']} of 40" in page
    assert "inputs, top to bottom: " + ", ".join(PHOTOZ_INPUTS) in page
    x, y = results.part("train")
    params = results.dataset().transform_params["zs"]
    z_spec = log_space(y[:, 0].astype(float), params)[0]
    for epoch in (0, record["best_epoch"], last):
        check_rows(browser, folder, epoch)
        xs, ys = model_data(browser, "prediction-0.03")
        z_phot = log_space(results.predict(results.layers(0.03, epoch), x)[:, 0], params)[0]
        np.testing.assert_allclose(xs, z_spec, rtol=1e-12)  # every training row: 3500
        np.testing.assert_allclose(ys, z_phot, rtol=1e-5, atol=1e-7)  # float32 on the page
        data_title = browser.execute_script(
            "return Bokeh.documents[0].get_model_by_name('data-panel').title.text"
        )
        assert data_title == f"z_phot vs z_spec: network after epoch {epoch}"
        browser.save_screenshot(str(tmp_path / f"photoz-epoch{epoch}.png"))
    assert (tmp_path / f"photoz-epoch{last}.png").stat().st_size > 10_000


def test_four_band_sweep_shows_predicted_vs_true(browser, more, tmp_path):
    folder = more["bolometric"]
    open_page(browser, folder)
    for epoch in (0, 2, 3):
        page = check_rows(browser, folder, epoch)
        assert page["rates"] == ["0.01", "0.03"]
    data_title = browser.execute_script(
        "return Bokeh.documents[0].get_model_by_name('data-panel').title.text"
    )
    assert data_title == "Predicted vs true y: network after epoch 3"
    xs, ys = model_data(browser, "prediction-0.03")
    assert len(xs) == len(ys) == 640  # the 80% training rows of 800
    browser.save_screenshot(str(tmp_path / "bolometric.png"))


def loss_range(browser) -> tuple[float, float]:
    return tuple(
        browser.execute_script(
            "const r = Bokeh.documents[0].get_model_by_name('loss-panel').y_range;"
            "return [r.start, r.end];"
        )
    )


def test_an_exploded_rate_is_clipped_and_named(browser, more, tmp_path):
    folder = more["exploded"]
    calm = history_rows(folder)["0.1"]["loss"]
    open_page(browser, folder)
    page = check_rows(browser, folder, 2)
    assert page["loss"]["3"] == EXPLODED_PEAK
    low, high = loss_range(browser)
    assert low <= calm.min() and calm.max() <= high < 2 * calm.max()  # the calm rate's range
    text = (folder / EXPLORER_HTML).read_text()
    assert "LR=3 spiked to 790.9 (57.24x its start) at epoch 2, off scale from epoch 2" in text
    assert "y axis fitted to the calm rates; off scale: LR=3" in text
    assert "LR=3, off scale" in text  # its legend entry
    for epoch in (0, WILD_EPOCHS):
        check_rows(browser, folder, epoch)
    browser.save_screenshot(str(tmp_path / "exploded.png"))


def test_a_diverged_rate_stops_at_its_last_finite_row(browser, more, tmp_path):
    folder = more["diverged"]
    open_page(browser, folder)
    page = check_rows(browser, folder, DIVERGED_AT)
    assert page["loss"]["3"] is None and page["output"]["3"] is None  # inf and NaN: null
    assert page["loss"]["0.1"] is not None
    assert readout(browser)["3"]["sn-loss"] == "inf"
    assert "diverged at epoch 4" in readout(browser)["3"]["sn-rate"]
    low, high = loss_range(browser)
    assert high < 100  # not stretched to the 1e30 before the divergence
    check_rows(browser, folder, DIVERGED_AT - 1)
    assert readout(browser)["3"]["sn-loss"] == "1e+30"  # exactly as saved
    text = (folder / EXPLORER_HTML).read_text()
    assert "LR=3 diverged at epoch 4, off scale from epoch 2" in text
    assert "<code>null</code> in <code>shown()</code>" in text
    browser.save_screenshot(str(tmp_path / "diverged.png"))
    # JSON-safe: the hook returns null itself (not NaN, which only JSON.stringify would hide)
    browser.execute_script(f"stellarnetExplorer.setEpoch({DIVERGED_AT})")
    assert browser.execute_script(
        "const s = stellarnetExplorer.shown();"
        " return [s.loss['3'] === null, s.output['3'] === null]"
    ) == [True, True]


def test_loss_axis_follows_the_static_figures_rule(more):
    for name, clipped in (("exploded", True), ("diverged", True), ("bolometric", False)):
        results = load_results(more[name])
        axis = loss_axis(results, rate_tracks(results, choose_frames(results)))
        assert (axis.y_range is not None) == clipped
        assert (set(axis.wild) == {"3"}) == clipped


def test_a_compare_folder_is_explored_through_its_network_run(more, tmp_path):
    compare = tmp_path / "photoz_early" / "compare"
    shutil.copytree(more["photoz"], compare / "network")
    (compare / "network" / EXPLORER_HTML).unlink()
    (compare / "compare.json").write_text("{}")
    written = write_explorer(compare, grid=3)
    assert written == compare / "network" / EXPLORER_HTML and written.is_file()
    assert not (compare / EXPLORER_HTML).exists()
