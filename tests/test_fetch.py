"""The VizieR fetcher: query payload, the real astroquery path against a local stand-in,
faults (each a clear error or the snapshot fallback, never a half-written cache), the
astroquery traps, and ``stellarnet fetch``.

No test here touches the network: the stand-in listens on 127.0.0.1 with a test certificate
(trustme), and an autouse fixture refuses name lookups for any other host. The one real
VizieR test is marked ``remote_data`` and runs only with ``pytest --remote-data``.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import trustme
from astroquery.vizier import Vizier

from stellarnet.cli import main
from stellarnet.data import vizier as vizier_module
from stellarnet.data.loading import load_catalog
from stellarnet.data.registry import GAIA_DR2_HR, SHIPPED_CATALOG_DIR
from stellarnet.data.vizier import build_vizier, fetch_catalog, query_payload
from stellarnet.errors import CatalogError, FetchError
from stellarnet.files import sha256_file
from tests.vizier_standin import VizierStandIn

SNAPSHOT = SHIPPED_CATALOG_DIR / GAIA_DR2_HR.snapshot
SERVED_ROWS = 500
QUERY = dataclasses.replace(GAIA_DR2_HR, row_limit=300)
"""The assignment's query with a smaller row limit, so the stand-in has more rows than asked."""

ASSIGNMENT_PAYLOAD = (
    "-source=I/345/gaia2\n-out.max=10000\n-out=Lum,BP-RP,Teff\nLum=> 0\nTeff=> 0\n"
    "-out.meta=huUD\n-out.form=mini\n-oc.form=d"
)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_network(request, monkeypatch):
    """Refuse name lookups of any host but 127.0.0.1, so no test reaches the internet."""
    if request.node.get_closest_marker("remote_data"):
        return
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"test tried to reach {host!r}: tests must not touch the network")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


@pytest.fixture(autouse=True)
def astropy_cache(tmp_path_factory):
    """A private astropy cache folder, so no test can leave astroquery files in the user's."""
    from astropy.config import paths

    folder = tmp_path_factory.mktemp("astropy-cache")
    (folder / "astropy").mkdir()
    with paths.set_temp_cache(folder):
        yield folder


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def standin(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    frame = pd.read_csv(SNAPSHOT).iloc[:SERVED_ROWS]
    with VizierStandIn(frame, context) as server:
        yield server


@pytest.fixture
def vizier(standin, ca, tmp_path_factory, monkeypatch):
    """The stand-in, answering normally, with requests trusting its certificate."""
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    for name in (
        "CURL_CA_BUNDLE",
        "SSL_CERT_FILE",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    standin.reset()
    yield standin
    standin.reset()


@pytest.fixture
def refused_server():
    """A 127.0.0.1 port that refuses connections (bound, not listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def keep_cli_logging():
    """main() reconfigures the 'stellarnet' logger; put it back for the other tests."""
    logger = logging.getLogger("stellarnet")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def fetch(vizier, cache_dir, query=QUERY, **kwargs):
    kwargs.setdefault("timeout", 5)
    return fetch_catalog(query, cache_dir, server=vizier.server, **kwargs)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` (temporary files included) and its content."""
    if not folder.exists():
        return {}
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# --- the query -----------------------------------------------------------------------------


def test_query_payload_is_the_assignments_query():
    assignment = Vizier(
        columns=["Lum", "BP-RP", "Teff"],
        column_filters={"Lum": "> 0", "Teff": "> 0"},
        row_limit=10000,
    )
    assert query_payload(GAIA_DR2_HR) == ASSIGNMENT_PAYLOAD
    assert query_payload(GAIA_DR2_HR) == assignment.get_catalogs(
        "I/345/gaia2", get_query_payload=True
    )


def test_row_limit_set_on_astroquerys_shared_object_does_not_reach_our_query(monkeypatch):
    # The trap: Vizier.ROW_LIMIT = 10000, then Vizier(columns=...) asks for astroquery's 50 rows.
    monkeypatch.setattr(Vizier, "ROW_LIMIT", 10000)
    trap = Vizier(columns=list(GAIA_DR2_HR.columns)).get_catalogs(
        "I/345/gaia2", get_query_payload=True
    )
    assert "-out.max=50" in trap.splitlines()
    assert "-out.max=10000" in query_payload(GAIA_DR2_HR).splitlines()
    assert build_vizier(dataclasses.replace(GAIA_DR2_HR, row_limit=7)).ROW_LIMIT == 7


def test_query_without_its_row_limit_is_refused():
    vizier = build_vizier(QUERY)
    vizier.ROW_LIMIT = 50
    with pytest.raises(FetchError, match="does not carry the row limit 300"):
        query_payload(QUERY, vizier)


# --- fetching through the real astroquery path ----------------------------------------------


def test_fetch_writes_the_answer_and_its_provenance(vizier, tmp_path):
    catalog = fetch(vizier, tmp_path)

    assert catalog.origin == "fetched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gaia_dr2_hr.csv", "gaia_dr2_hr.json"]
    [request] = vizier.requests
    assert request["path"] == "/viz-bin/votable" and request["body"] == query_payload(QUERY)
    expected = pd.read_csv(SNAPSHOT).iloc[:300]
    assert list(catalog.frame.columns) == ["Lum", "BP-RP", "Teff"]
    np.testing.assert_allclose(catalog.frame.to_numpy(), expected.to_numpy(), rtol=1e-6)

    record = json.loads((tmp_path / "gaia_dr2_hr.json").read_text())
    assert record["sha256"] == sha256_file(tmp_path / "gaia_dr2_hr.csv") == catalog.sha256
    assert record["rows"] == 300 and record["query"] == QUERY.to_dict()
    assert {n: c["unit"] for n, c in record["columns"].items()} == {
        "Lum": "Lsun",
        "BP-RP": "mag",
        "Teff": "K",
    }
    assert record["columns"]["Teff"]["description"] == "? Effective temperature (teff_val)"
    assert record["columns"]["Lum"]["ucd"] == "phys.luminosity"
    assert record["source"]["server"] == vizier.server
    assert record["source"]["request"] == query_payload(QUERY)
    assert datetime.fromisoformat(record["retrieved_utc"]).utcoffset().total_seconds() == 0
    assert set(record["versions"]) >= {"astroquery", "astropy", "stellarnet"}
    assert record["validation"]["nan"] == {"Lum": 0, "BP-RP": 0, "Teff": 0}
    assert record["validation"]["fewer_rows_than_limit"] is False


def test_fetch_reuses_a_valid_cache_and_refresh_downloads_again(vizier, tmp_path):
    first = fetch(vizier, tmp_path)
    again = fetch(vizier, tmp_path)
    assert again.origin == "cache" and again.sha256 == first.sha256
    assert len(vizier.requests) == 1
    refreshed = fetch(vizier, tmp_path, refresh=True)
    assert refreshed.origin == "fetched" and len(vizier.requests) == 2


def test_cache_for_another_query_is_fetched_again_and_flagged_on_load(vizier, tmp_path, caplog):
    fetch(vizier, tmp_path, query=dataclasses.replace(QUERY, row_limit=100))
    with caplog.at_level(logging.WARNING, logger="stellarnet"):
        loaded = load_catalog(QUERY, tmp_path, offline=True)
    assert len(loaded.frame) == 100
    assert "was fetched for the query" in caplog.text and "--refresh" in caplog.text
    refetched = fetch(vizier, tmp_path)
    assert refetched.origin == "fetched" and len(refetched.frame) == 300


def test_short_result_is_logged_and_recorded(vizier, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="stellarnet"):
        catalog = fetch(vizier, tmp_path, query=GAIA_DR2_HR)  # asks 10000, the stand-in has 500
    assert len(catalog.frame) == SERVED_ROWS
    assert "returned 500 rows, fewer than the row limit 10000" in caplog.text
    assert catalog.provenance["validation"]["fewer_rows_than_limit"] is True


def test_nans_are_counted_and_recorded(vizier, tmp_path, caplog):
    vizier.fault = "nan:BP-RP"
    with caplog.at_level(logging.WARNING, logger="stellarnet"):
        catalog = fetch(vizier, tmp_path)
    assert catalog.frame["BP-RP"].isna().sum() == 30
    assert catalog.provenance["validation"]["nan"] == {"Lum": 0, "BP-RP": 30, "Teff": 0}
    assert "NaN counts" in caplog.text


def test_astroquerys_http_cache_is_bypassed(vizier, tmp_path, astropy_cache):
    # astroquery pickles a response before checking it, so an empty or error answer would be
    # served again from its cache; a fetch after the server recovers must reach the server.
    from astroquery import cache_conf

    with cache_conf.set_temp("cache_active", True):
        vizier.fault = "empty"
        with pytest.raises(FetchError, match="returned no rows"):
            fetch(vizier, tmp_path / "cache")
        vizier.fault = None
        catalog = fetch(vizier, tmp_path / "cache")
    assert len(catalog.frame) == 300 and len(vizier.requests) == 2
    assert not list(astropy_cache.rglob("*.pickle"))


def test_load_catalog_online_fetches_once_then_uses_the_cache(vizier, tmp_path):
    assert load_catalog(QUERY, tmp_path, server=vizier.server).origin == "fetched"
    assert load_catalog(QUERY, tmp_path, server=vizier.server).origin == "cache"
    assert len(vizier.requests) == 1


def test_offline_load_never_touches_the_network(vizier, tmp_path):
    snapshot = load_catalog(QUERY, tmp_path, offline=True, server=vizier.server)
    assert snapshot.origin == "snapshot" and snapshot.path == SNAPSHOT
    fetch(vizier, tmp_path)
    assert load_catalog(QUERY, tmp_path, offline=True).origin == "cache"
    assert len(vizier.requests) == 1  # only the explicit fetch


# --- faults: a clear error or the snapshot, never a half-written cache ---------------------

SERVER_FAULTS = {
    "connection refused": (
        "refused",
        r"could not connect to VizieR at 127\.0\.0\.1:\d+: "
        "Connection refused",
    ),
    "timeout": ("hang", r"did not answer within 0\.5 s"),
    "HTTP 500": ("http500", r"answered HTTP 500 Internal Server Error"),
    "malformed XML": ("malformed", r"answered with a VOTable that cannot be read"),
    "not a VOTable": ("html", r"did not answer with a VOTable"),
    "missing column": ("drop:Teff", r"missing column\(s\) \['Teff'\].*Nothing was cached"),
    "empty result": ("empty", r"returned no rows for I/345/gaia2"),
    "untrusted certificate": ("untrusted", r"secure connection to VizieR .* certificate verify"),
}


def arrange(fault: str, vizier, refused_server, monkeypatch) -> str:
    """Make the next fetch meet ``fault``; return the server to ask."""
    if fault == "refused":
        return refused_server
    if fault == "untrusted":
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # requests falls back to certifi's CAs
    else:
        vizier.fault = fault
    return vizier.server


@pytest.mark.filterwarnings("ignore:VOTABLE parsing raised exception")  # astroquery's, malformed
@pytest.mark.parametrize("fault, message", SERVER_FAULTS.values(), ids=SERVER_FAULTS)
def test_server_fault_is_a_clear_error_and_keeps_the_cache(
    fault, message, vizier, refused_server, monkeypatch, tmp_path
):
    fetch(vizier, tmp_path)
    before = folder_bytes(tmp_path)
    server = arrange(fault, vizier, refused_server, monkeypatch)
    with pytest.raises(FetchError, match=message):
        fetch_catalog(
            QUERY, tmp_path, refresh=True, server=server, timeout=0.5 if fault == "hang" else 5
        )
    assert folder_bytes(tmp_path) == before


@pytest.mark.filterwarnings("ignore:VOTABLE parsing raised exception")  # astroquery's, malformed
@pytest.mark.parametrize("fault, message", SERVER_FAULTS.values(), ids=SERVER_FAULTS)
def test_server_fault_falls_back_to_the_snapshot_with_a_warning(
    fault, message, vizier, refused_server, monkeypatch, tmp_path, caplog
):
    server = arrange(fault, vizier, refused_server, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="stellarnet"):
        catalog = load_catalog(
            QUERY, tmp_path, server=server, timeout=0.5 if fault == "hang" else 5
        )
    assert catalog.origin == "snapshot" and catalog.path == SNAPSHOT
    [warning] = [r.getMessage() for r in caplog.records if "shipped snapshot" in r.getMessage()]
    assert str(SNAPSHOT) in warning and "stellarnet fetch" in warning
    assert folder_bytes(tmp_path) == {}


def test_server_that_ignores_the_filters_is_refused(vizier, tmp_path):
    query = dataclasses.replace(QUERY, column_filters={"Lum": "> 1", "Teff": "> 0"})
    vizier.fault = "ignore_filters"
    with pytest.raises(FetchError, match=r"break the query filters.*'Lum': \d+"):
        fetch(vizier, tmp_path, query=query)
    assert folder_bytes(tmp_path) == {}
    vizier.fault = None
    assert (fetch(vizier, tmp_path, query=query).frame["Lum"] > 1).all()


def test_fetch_without_a_snapshot_raises_instead_of_falling_back(refused_server, tmp_path):
    query = dataclasses.replace(QUERY, snapshot=None)
    with pytest.raises(FetchError, match="Connection refused"):
        load_catalog(query, tmp_path, server=refused_server)


def _truncate_csv(csv: Path) -> None:
    data = csv.read_bytes()
    csv.write_bytes(data[: len(data) // 2])


CACHE_FAULTS = {
    "CSV truncated mid-file": (_truncate_csv, r"does not match its provenance"),
    "provenance missing": (
        lambda csv: csv.with_suffix(".json").unlink(),
        r"has no provenance file",
    ),
    "provenance corrupt": (
        lambda csv: csv.with_suffix(".json").write_text('{"sha256": "ab'),
        r"is corrupt",
    ),
    "provenance without checksum": (
        lambda csv: csv.with_suffix(".json").write_text("{}"),
        r"has no 'sha256' entry",
    ),
}


@pytest.mark.parametrize("damage, message", CACHE_FAULTS.values(), ids=CACHE_FAULTS)
def test_damaged_cache_is_refused_not_used_nor_replaced(damage, message, vizier, tmp_path):
    fetch(vizier, tmp_path)
    csv = tmp_path / "gaia_dr2_hr.csv"
    damage(csv)
    damaged = folder_bytes(tmp_path)
    for attempt in (
        lambda: load_catalog(QUERY, tmp_path, server=vizier.server),
        lambda: load_catalog(QUERY, tmp_path, offline=True),
        lambda: fetch(vizier, tmp_path),
    ):
        with pytest.raises(CatalogError, match=message) as caught:
            attempt()
        assert "gaia_dr2_hr.csv" in str(caught.value) and "gaia_dr2_hr.json" in str(caught.value)
        assert "stellarnet fetch --refresh" in str(caught.value)
    assert folder_bytes(tmp_path) == damaged and len(vizier.requests) == 1
    repaired = fetch(vizier, tmp_path, refresh=True)
    assert repaired.sha256 == sha256_file(csv) and len(repaired.frame) == 300


def test_cache_folder_that_refuses_new_files_is_a_clear_error(vizier, tmp_path, monkeypatch):
    # Tests run as root, for whom chmod does not make a folder read-only: make creating a
    # file in the cache folder fail with EACCES, as it would in a read-only folder.
    fetch(vizier, tmp_path)
    before = folder_bytes(tmp_path)
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == tmp_path:
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(
        CatalogError,
        match=r"cannot write the catalog cache .*Permission denied"
        r".*--cache-dir",
    ):
        fetch(vizier, tmp_path, refresh=True)
    assert folder_bytes(tmp_path) == before


def test_cache_folder_that_cannot_exist_is_a_clear_error_not_a_fallback(vizier, tmp_path):
    (tmp_path / "not-a-folder").write_text("a file where the cache folder's parent should be")
    cache_dir = tmp_path / "not-a-folder" / "catalogs"
    with pytest.raises(CatalogError, match=r"cannot write the catalog cache") as caught:
        load_catalog(QUERY, cache_dir, server=vizier.server)
    assert not isinstance(caught.value, FetchError)  # a local problem: no silent snapshot


def test_interrupted_write_leaves_the_previous_cache(vizier, tmp_path, monkeypatch):
    fetch(vizier, tmp_path)
    before = folder_bytes(tmp_path)

    def interrupted(record):
        raise KeyboardInterrupt  # after the new CSV is written, before its JSON

    monkeypatch.setattr(vizier_module, "json_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch(vizier, tmp_path, refresh=True)
    assert folder_bytes(tmp_path) == before


# --- the command ---------------------------------------------------------------------------


def test_cli_fetch_prints_a_summary(vizier, tmp_path, capsys, keep_cli_logging):
    status = main(
        [
            "fetch",
            "--server",
            vizier.server,
            "--cache-dir",
            str(tmp_path),
            "--rows",
            "200",
            "--timeout",
            "5",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "gaia_dr2_hr: 200 rows fetched from VizieR I/345/gaia2" in out
    assert f"wrote {tmp_path / 'gaia_dr2_hr.csv'}" in out
    frame = pd.read_csv(tmp_path / "gaia_dr2_hr.csv")
    teff = next(line for line in out.splitlines() if line.startswith("Teff"))
    assert teff.split()[1:4] == ["K", f"{frame['Teff'].min():.6g}", f"{frame['Teff'].max():.6g}"]


def test_cli_fetch_offline_reports_what_would_be_loaded(vizier, tmp_path, capsys, keep_cli_logging):
    assert main(["fetch", "--offline", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"would load the snapshot {SNAPSHOT}" in out and "2242 rows" in out
    assert vizier.requests == [] and folder_bytes(tmp_path) == {}


def test_cli_fetch_failure_exits_with_the_message(
    refused_server, tmp_path, capsys, keep_cli_logging
):
    status = main(["fetch", "--server", refused_server, "--cache-dir", str(tmp_path)])
    assert status == 1
    assert "error: could not connect to VizieR" in capsys.readouterr().err
    assert folder_bytes(tmp_path) == {}


def test_cli_fetch_rejects_an_unknown_query_and_refresh_with_offline(capsys, keep_cli_logging):
    assert main(["fetch", "--query", "nope", "--offline"]) == 1
    assert "unknown catalog query 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["fetch", "--offline", "--refresh"])
    assert caught.value.code == 2


def test_cli_help_imports_no_astroquery():
    code = (
        "import sys; from stellarnet.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('astroquery', 'astropy', 'pandas', 'tensorflow') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert result.stdout.strip() == "[]"


# --- the real VizieR (needs internet; pytest --remote-data) -------------------------------


@pytest.mark.remote_data
def test_real_vizier_fetch_of_the_assignments_query(tmp_path):
    catalog = fetch_catalog(GAIA_DR2_HR, tmp_path, timeout=120)
    frame = catalog.frame
    assert catalog.origin == "fetched" and len(frame) == GAIA_DR2_HR.row_limit
    assert (frame["Lum"] > 0).all() and (frame["Teff"] > 0).all()
    assert catalog.provenance["columns"]["Teff"]["unit"] == "K"
    assert catalog.provenance["source"]["request"] == ASSIGNMENT_PAYLOAD
    assert load_catalog(GAIA_DR2_HR, tmp_path, offline=True).sha256 == catalog.sha256
