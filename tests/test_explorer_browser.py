"""explorer.html in a real browser: headless Chromium from the system's packages (`make
browser`: Debian's chromium and chromium-driver), driven by Selenium through
/usr/bin/chromedriver (so Selenium Manager never downloads a browser), with the network
switched off. The page is opened from disk; at epochs 0, k and E the numbers it shows (the
scripting hook, the readout, the network's hover values) must be history.parquet's row,
bit for bit, and the browser must log no error. Screenshots go to pytest's tmp_path.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stellarnet.schema import parameter_names
from stellarnet.viz.explorer import EXPLORER_HTML
from tests.explorer_runs import EPOCHS, explorer_results

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1420,1400",
)
EPOCHS_CHECKED = (0, 4, EPOCHS)
SIZES = (1, 6, 1)
PARAMETERS = parameter_names(SIZES, "w") + parameter_names(SIZES, "b")
GRADIENTS = parameter_names(SIZES, "g") + parameter_names(SIZES, "gb")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module, offline, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    assert not missing, f"{missing} missing: run `make browser` (apt-get chromium chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.TemporaryDirectory(prefix="stellarnet-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile.name}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_network_conditions(
            offline=True, latency=0, download_throughput=0, upload_throughput=0
        )
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return explorer_results(tmp_path_factory)


def open_page(browser, folder: Path) -> None:
    """Load the folder's explorer.html from disk and wait for its scripting hook."""
    browser.get((folder / EXPLORER_HTML).resolve().as_uri())
    deadline = time.monotonic() + 30
    while not browser.execute_script("return document.body.dataset.explorerReady === 'true'"):
        assert time.monotonic() < deadline, "the page never installed window.stellarnetExplorer"
        time.sleep(0.05)
    browser.get_log("browser")  # start the error check from here: Bokeh's own info lines


def shown(browser) -> dict:
    """``window.stellarnetExplorer.shown()`` through JSON text (JavaScript's String of a
    number reads back as exactly that float64)."""
    return json.loads(browser.execute_script("return JSON.stringify(stellarnetExplorer.shown())"))


def readout(browser) -> dict[str, dict[str, str]]:
    """The visible readout: per rate key, the text of each cell."""
    return browser.execute_script(
        """const out = {};
        for (const row of document.querySelectorAll('#sn-readout-rows tr')) {
          out[row.dataset.rate] = {};
          for (const cell of row.cells) out[row.dataset.rate][cell.className] = cell.textContent;
        }
        return out;"""
    )


def errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def history_rows(folder: Path) -> dict[str, pd.DataFrame]:
    """history.parquet per rate key ("0.1", "0.3"), as the page keys them."""
    history = pd.read_parquet(folder / "history.parquet")
    if "lr" not in history.columns:
        return {folder.name.removeprefix("lr="): history}
    return {f"{lr:g}": part for lr, part in history.groupby("lr", sort=False)}


def check_epoch(browser, folder: Path, epoch: int, tmp_path: Path) -> None:
    """Move the slider to ``epoch`` and compare everything shown with the saved row."""
    assert browser.execute_script(f"return stellarnetExplorer.setEpoch({epoch})") == epoch
    page = shown(browser)
    table = readout(browser)
    histories = history_rows(folder)
    assert page["epoch"] == epoch
    assert page["rates"] == list(histories) == list(table)
    assert browser.execute_script("return document.getElementById('sn-epoch').textContent") == str(
        epoch
    )
    for key, history in histories.items():
        row = history[history["epoch"] == epoch].iloc[0]
        assert page["loss"][key] == row["loss"]  # exact: float64 through JSON
        assert page["output"][key] == row["output"]
        assert page["parameters"][key] == {name: row[name] for name in PARAMETERS}
        for name in GRADIENTS:  # epoch 0 has none: null in JSON, NaN in the table
            value = page["gradients"][key][name]
            assert (value is None and pd.isna(row[name])) or value == row[name]
        assert float(table[key]["sn-loss"]) == row["loss"]
        assert float(table[key]["sn-value"]) == row["w^1_1"]  # the parameter picked by default
    assert not errors(browser)
    browser.save_screenshot(str(tmp_path / f"{folder.name}-epoch{epoch}.png"))


@pytest.mark.parametrize("kind", ["run", "sweep"])
def test_panels_show_the_saved_rows_at_epochs_0_k_and_E(browser, made, kind, tmp_path):
    open_page(browser, made[kind])
    for epoch in EPOCHS_CHECKED:
        check_epoch(browser, made[kind], epoch, tmp_path)
    assert (tmp_path / f"{made[kind].name}-epoch{EPOCHS}.png").stat().st_size > 10_000


def test_the_page_loads_nothing_and_opens_at_the_last_epoch(browser, made):
    open_page(browser, made["run"])
    assert shown(browser)["epoch"] == EPOCHS
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources == []  # every script and style is inside the file
    assert not errors(browser)


def test_network_hover_values_are_the_saved_weights(browser, made):
    open_page(browser, made["run"])
    browser.execute_script("stellarnetExplorer.setEpoch(4)")
    edges = browser.execute_script(
        "const d = Bokeh.documents[0].get_model_by_name('network-edges').data;"
        "return {name: Array.from(d.name), value: Array.from(d.value),"
        " gname: Array.from(d.gname), gvalue: Array.from(d.gvalue)};"
    )
    row = history_rows(made["run"])["0.3"].set_index("epoch").loc[4]
    assert edges["name"] == parameter_names(SIZES, "w")
    assert [float(v) for v in edges["value"]] == [row[name] for name in edges["name"]]
    assert [float(v) for v in edges["gvalue"]] == [row[name] for name in edges["gname"]]


def test_picking_a_parameter_shows_it_in_the_readout(browser, made):
    open_page(browser, made["sweep"])
    browser.execute_script(
        "stellarnetExplorer.setEpoch(7); stellarnetExplorer.selectParameter('b^1_5')"
    )
    table = readout(browser)
    assert browser.execute_script(
        "return document.getElementById('sn-param-name').textContent"
    ) == ("b^1_5")
    for key, history in history_rows(made["sweep"]).items():
        row = history[history["epoch"] == 7].iloc[0]
        assert float(table[key]["sn-value"]) == row["b^1_5"]
        assert float(table[key]["sn-grad"]) == row["gb^1_5"]


def test_hiding_a_rate_hides_it_everywhere(browser, made):
    open_page(browser, made["sweep"])
    browser.execute_script("stellarnetExplorer.setRateVisible('0.1', false)")
    assert shown(browser)["rates"] == ["0.3"]
    assert list(readout(browser)) == ["0.3"]
    hidden = browser.execute_script("return stellarnetExplorer.rendererVisibility('0.1')")
    kept = browser.execute_script("return stellarnetExplorer.rendererVisibility('0.3')")
    assert len(hidden) >= 7 and not any(hidden)  # loss line and dot, curve, bars, path, ...
    assert len(kept) == len(hidden) and all(kept)
    browser.execute_script("stellarnetExplorer.setRateVisible('0.1', true)")
    assert shown(browser)["rates"] == ["0.1", "0.3"]
    assert not errors(browser)


def test_play_moves_the_slider_and_pause_stops_it(browser, made):
    open_page(browser, made["run"])
    browser.execute_script("stellarnetExplorer.setEpoch(0); stellarnetExplorer.play()")
    deadline = time.monotonic() + 10
    while shown(browser)["epoch"] < 2:
        assert time.monotonic() < deadline, "play did not advance the slider"
        time.sleep(0.05)
    browser.execute_script("stellarnetExplorer.pause()")
    stopped = shown(browser)["epoch"]
    time.sleep(0.5)
    assert shown(browser)["epoch"] == stopped


def test_prediction_drawn_is_the_saved_networks_at_each_epoch(browser, made):
    from stellarnet.results.analysis import prediction_curve
    from stellarnet.results.saved import load_results
    from stellarnet.viz.explorer_predictions import GRID_POINTS

    results = load_results(made["sweep"])
    span = results.dataset().x[:, 0].astype(float)
    grid = np.linspace(span.min(), span.max(), GRID_POINTS)
    open_page(browser, made["sweep"])
    for epoch in EPOCHS_CHECKED:
        browser.execute_script(f"stellarnetExplorer.setEpoch({epoch})")
        for lr in results.learning_rates:
            curve = browser.execute_script(
                f"const d = Bokeh.documents[0].get_model_by_name('prediction-{lr:g}').data;"
                "return [Array.from(d.x), Array.from(d.y)];"
            )
            log_l, log_teff = prediction_curve(results, lr, epoch, inputs=grid)
            # the HR diagram: log Teff across, log L up; the page holds float32
            np.testing.assert_allclose(curve[0], log_teff, rtol=1e-6)
            np.testing.assert_allclose(curve[1], log_l, rtol=1e-12)
