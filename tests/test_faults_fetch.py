"""Issue 20, the fetch's share: nothing lost, nothing written where it should not be.

Each fault or bad input here is refused with a message that names the problem and its fix,
and every test checks the bytes of the files that must not change: a refused VizieR answer
never replaces a good cache, ``--timeout`` bounds an answer that trickles in, a damaged cache
is never overwritten without ``--refresh``, a user's own catalog gets advice that fits it,
and a ``--server`` that is not a host name is refused before anything happens.

The VizieR stand-in and its fixtures are those of ``tests/test_fetch.py`` (no network),
imported here: hence the file-wide F811 exemption (a test argument named like a fixture).
"""

# ruff: noqa: F811

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from stellarnet.cli import main
from stellarnet.data import registry
from stellarnet.data.loading import load_catalog, load_catalog_file
from stellarnet.data.registry import CatalogQuery
from stellarnet.data.vizier import check_server, fetch_catalog
from stellarnet.errors import CatalogError, ConfigError, FetchError
from stellarnet.files import sha256_file
from tests.test_fetch import (  # noqa: F401 (fixtures)
    QUERY,
    SNAPSHOT,
    _no_network,
    astropy_cache,
    ca,
    fetch,
    folder_bytes,
    keep_cli_logging,
    standin,
    vizier,
)
from tests.vizier_standin import TRICKLE_LIMIT

CSV = "gaia_dr2_hr.csv"
JSON = "gaia_dr2_hr.json"


@pytest.fixture
def good_cache(vizier, tmp_path):
    """A good cache of QUERY (300 rows) in tmp_path/cache; returns (folder, its bytes)."""
    folder = tmp_path / "cache"
    fetch(vizier, folder)
    vizier.requests.clear()
    return folder, folder_bytes(folder)


def cli_fetch(vizier, folder, *extra):
    return main(
        [
            "fetch",
            "--server",
            vizier.server,
            "--cache-dir",
            str(folder),
            "--rows",
            "300",
            "--timeout",
            "5",
            *extra,
        ]
    )


# --- 3. unusable answers are refused before anything is written ---------------------------

UNUSABLE = {
    "Teff null in every row": ("null:Teff", r"column\(s\) \['Teff'\] are null in all 300 rows"),
    "Lum null in every row": ("null:Lum", r"column\(s\) \['Lum'\] are null in all 300 rows"),
    "BP-RP null in every row": ("null:BP-RP", r"\['BP-RP'\] are null in all 300 rows"),
    "no row without a null": ("no_complete_row", r"none of the 300 rows is usable"),
    "one row more than asked": ("extra_rows:301", r"has 301 rows, more than the 300 asked"),
}


@pytest.mark.parametrize("fault, message", UNUSABLE.values(), ids=UNUSABLE)
def test_unusable_answer_is_refused_and_writes_nothing(fault, message, vizier, tmp_path):
    vizier.fault = fault
    with pytest.raises(FetchError, match=message) as caught:
        fetch(vizier, tmp_path)
    assert "Nothing was cached; an existing cache is left as it was" in str(caught.value)
    assert folder_bytes(tmp_path) == {}


@pytest.mark.parametrize("fault, message", UNUSABLE.values(), ids=UNUSABLE)
def test_unusable_answer_never_replaces_a_good_cache(fault, message, vizier, good_cache):
    folder, before = good_cache
    vizier.fault = fault
    with pytest.raises(FetchError, match=message):
        fetch(vizier, folder, refresh=True)
    assert folder_bytes(folder) == before and len(vizier.requests) == 1


def test_unusable_answer_for_another_row_limit_keeps_the_old_cache(vizier, good_cache):
    # a cache for --rows 300 is fetched again (no --refresh needed) for --rows 200: refused
    folder, before = good_cache
    vizier.fault = "null:Teff"
    with pytest.raises(FetchError, match=r"\['Teff'\] are null in all 200 rows"):
        fetch(vizier, folder, query=dataclasses.replace(QUERY, row_limit=200))
    assert folder_bytes(folder) == before


def test_two_hundred_thousand_rows_for_300_asked_are_refused(vizier, good_cache):
    folder, before = good_cache
    vizier.fault = "extra_rows:200000"
    with pytest.raises(FetchError, match=r"has 200000 rows, more than the 300 asked"):
        fetch(vizier, folder, refresh=True, timeout=30)
    assert folder_bytes(folder) == before


def test_cli_refuses_an_all_null_column_with_exit_1(vizier, good_cache, capsys, keep_cli_logging):
    folder, before = good_cache
    vizier.fault = "null:Teff"
    assert cli_fetch(vizier, folder, "--refresh") == 1
    err = capsys.readouterr().err
    assert "['Teff'] are null in all 300 rows" in err and "Nothing was cached" in err
    assert folder_bytes(folder) == before


def test_provenance_counts_the_rows_the_dataset_step_will_drop(vizier, tmp_path):
    vizier.fault = "nan:Teff"  # partly null: usable, kept as VizieR sent it, and counted
    catalog = fetch(vizier, tmp_path)
    validation = json.loads((tmp_path / JSON).read_text())["validation"]
    assert validation["rows"] == 300 and len(catalog.frame) == 300
    assert validation["rows_with_null"] == 30 and validation["usable_rows"] == 270
    assert validation["rows_breaking_filters"] == 0
    assert validation["nan"] == {"Lum": 0, "BP-RP": 0, "Teff": 30}


def test_good_answer_records_every_row_usable(vizier, tmp_path):
    fetch(vizier, tmp_path)
    validation = json.loads((tmp_path / JSON).read_text())["validation"]
    assert (validation["rows_with_null"], validation["usable_rows"]) == (0, 300)


# --- 6. --timeout bounds the whole answer ---------------------------------------------------

SLOW = {
    "body at 2 bytes/s": "trickle",
    "status line at 2 bytes/s": "trickle_head",
    "no first byte": "hang",
}


@pytest.mark.parametrize("fault", SLOW.values(), ids=SLOW)
def test_timeout_bounds_the_whole_answer(fault, vizier, good_cache):
    folder, before = good_cache
    vizier.fault = fault
    start = time.monotonic()
    with pytest.raises(FetchError, match=r"did not answer within 1 s .*whole answer") as caught:
        fetch(vizier, folder, refresh=True, timeout=1)
    took = time.monotonic() - start
    assert 0.9 < took < 2.5 < TRICKLE_LIMIT, f"took {took:.1f} s"
    assert "nothing was cached" in str(caught.value)
    assert folder_bytes(folder) == before


def test_timeout_bounds_a_server_that_never_speaks(vizier, tmp_path):
    # TCP connects (the listen backlog accepts it), the TLS handshake never gets an answer
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        start = time.monotonic()
        with pytest.raises(FetchError, match=r"did not answer within 1 s"):
            fetch_catalog(QUERY, tmp_path, server=f"127.0.0.1:{silent.getsockname()[1]}", timeout=1)
        assert time.monotonic() - start < 2.5
    assert folder_bytes(tmp_path) == {}


def test_cli_timeout_bounds_a_trickle(vizier, good_cache, capsys, keep_cli_logging):
    folder, before = good_cache
    vizier.fault = "trickle"
    start = time.monotonic()
    status = main(
        ["fetch", "--server", vizier.server, "--cache-dir", str(folder), "--rows", "300"]
        + ["--timeout", "1", "--refresh"]
    )
    assert status == 1 and time.monotonic() - start < 2.5
    assert "did not answer within 1 s" in capsys.readouterr().err
    assert folder_bytes(folder) == before


def test_a_prompt_answer_within_the_timeout_is_unchanged(vizier, tmp_path):
    catalog = fetch(vizier, tmp_path, timeout=2)
    assert catalog.origin == "fetched" and len(catalog.frame) == 300


# --- 10. advice that fits where the file came from -----------------------------------------


def edit_one_digit(path: Path) -> None:
    """Change one digit of the last row (same size, another sha256)."""
    text = path.read_text()
    head, last = text.rstrip("\n").rsplit("\n", 1)
    i = next(i for i, c in enumerate(last) if c.isdigit())
    path.write_text(f"{head}\n{last[:i]}{(int(last[i]) + 1) % 10}{last[i + 1 :]}\n")


@pytest.fixture
def own_catalog(tmp_path):
    """The user's own catalog with a provenance JSON the user wrote (not stellarnet fetch)."""
    csv = tmp_path / "my_gaia_pull.csv"
    pd.DataFrame({"Lum": [0.5, 1.0, 2.0], "Teff": [4000.0, 5800.0, 7000.0]}).to_csv(
        csv, index=False
    )
    record = {"sha256": sha256_file(csv), "description": "my own Gaia pull"}
    csv.with_suffix(".json").write_text(json.dumps(record))
    return csv


def test_own_file_sha_mismatch_never_advises_fetch_or_delete(own_catalog):
    edit_one_digit(own_catalog)
    before = folder_bytes(own_catalog.parent)
    with pytest.raises(CatalogError, match="does not match its provenance") as caught:
        load_catalog_file(own_catalog, ["Lum", "Teff"])
    message = str(caught.value)
    assert f"{own_catalog} is your file" in message
    assert "correct the 'sha256'" in message and sha256_file(own_catalog) in message
    assert "fetch" not in message and "delete" not in message
    assert folder_bytes(own_catalog.parent) == before


def test_own_file_with_a_corrupt_provenance_is_told_to_fix_or_move_it(own_catalog):
    own_catalog.with_suffix(".json").write_text("{not json")
    before = folder_bytes(own_catalog.parent)
    with pytest.raises(CatalogError, match="is corrupt") as caught:
        load_catalog_file(own_catalog, ["Lum", "Teff"])
    message = str(caught.value)
    assert "fix " in message and "move it away" in message
    assert "fetch" not in message and "delete" not in message
    assert folder_bytes(own_catalog.parent) == before


def test_copy_of_a_vizier_cache_is_told_to_refetch_into_its_folder(vizier, good_cache, tmp_path):
    folder, _ = good_cache
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    edit_one_digit(copy / CSV)
    before = folder_bytes(copy)
    with pytest.raises(CatalogError, match="does not match its provenance") as caught:
        load_catalog_file(copy / CSV, ["Lum", "Teff"])
    assert f"stellarnet fetch --refresh --rows 300 --cache-dir {copy}" in str(caught.value)
    assert folder_bytes(copy) == before


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A copy of the shipped folder standing in for the installed one (the real one is
    never touched); returns its snapshot CSV."""
    shipped = tmp_path / "installed"
    shipped.mkdir()
    for path in (SNAPSHOT, SNAPSHOT.with_suffix(".json")):
        shutil.copyfile(path, shipped / path.name)
    monkeypatch.setattr(registry, "SHIPPED_CATALOG_DIR", shipped)
    return shipped / SNAPSHOT.name


def test_changed_shipped_catalog_is_told_to_reinstall(shipped_copy):
    edit_one_digit(shipped_copy)
    before = folder_bytes(shipped_copy.parent)
    with pytest.raises(CatalogError, match="does not match its provenance") as caught:
        load_catalog_file(shipped_copy, ["Lum", "Teff"])
    message = str(caught.value)
    assert "shipped with stellarnet" in message and "pip install --force-reinstall" in message
    assert "fetch" not in message and "delete" not in message
    assert folder_bytes(shipped_copy.parent) == before


def test_changed_snapshot_fallback_is_told_to_reinstall(shipped_copy, tmp_path):
    edit_one_digit(shipped_copy)
    query = CatalogQuery("I/345/gaia2", ["Lum", "Teff"], name="none", snapshot=str(shipped_copy))
    with pytest.raises(CatalogError, match="pip install --force-reinstall") as caught:
        load_catalog(query, tmp_path / "empty", offline=True)
    assert "fetch --refresh" not in str(caught.value)


BAD_CSV = {
    "header only": ("Lum,BP-RP,Teff\n", r"has no rows: only the header \['Lum', 'BP-RP', 'Teff'\]"),
    "empty file": ("", r"is empty: no header, no rows"),
    "Teff twice": (
        "Lum,Teff,BP-RP,Teff\n1.0,5000,0.8,6000\n",
        r"names column\(s\) \['Teff'\] more than once \(at header positions \{'Teff': \[2, 4\]\}",
    ),
    "Lum and Teff twice": (
        "Lum,Lum,Teff,Teff\n1,2,5000,6000\n",
        r"names column\(s\) \['Lum', 'Teff'\] more than once",
    ),
}


@pytest.mark.parametrize("text, message", BAD_CSV.values(), ids=BAD_CSV)
def test_bad_catalog_file_is_refused_naming_file_and_problem(text, message, tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(text)
    with pytest.raises(CatalogError, match=message) as caught:
        load_catalog_file(path, ["Lum", "Teff"])
    assert str(path) in str(caught.value) and "not numeric" not in str(caught.value)
    assert path.read_text() == text


def test_repeated_column_the_run_does_not_use_is_only_logged(tmp_path, caplog):
    path = tmp_path / "mine.csv"
    path.write_text("Lum,Teff,note,note\n1.0,5000,a,b\n")
    with caplog.at_level(logging.WARNING, logger="stellarnet"):
        catalog = load_catalog_file(path, ["Lum", "Teff"])
    assert catalog.frame["Teff"].tolist() == [5000]
    assert "['note'] appear more than once" in caplog.text


def test_cli_experiment_on_a_header_only_catalog_says_it_has_no_rows(
    tmp_path, capsys, keep_cli_logging
):
    path = tmp_path / "mine.csv"
    path.write_text("Lum,BP-RP,Teff\n")
    status = main(
        ["experiment", "hr_relation", "--catalog", str(path), "--results", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert status == 1 and f"{path} has no rows" in err and "not numeric" not in err
    assert path.read_text() == "Lum,BP-RP,Teff\n"


# --- 10. --server must be a host name ------------------------------------------------------

BAD_SERVERS = {
    "https URL": ("https://vizier.cds.unistra.fr", r"not a URL.*--server vizier\.cds\.unistra\.fr"),
    "URL with a path": (
        "http://vizier.cfa.harvard.edu/viz-bin/votable",
        r"not a URL.*--server vizier\.cfa\.harvard\.edu",
    ),
    "host with a path": ("vizier.cds.unistra.fr/viz-bin", r"not a URL or path"),
    "empty": ("", r"is empty"),
    "blank": ("  ", r"is empty"),
    "space inside": ("vizier cds", r"is not a host name"),
    "port out of range": ("vizier.cds.unistra.fr:70000", r"is not a host name"),
}


@pytest.mark.parametrize("server, message", BAD_SERVERS.values(), ids=BAD_SERVERS)
def test_server_that_is_not_a_host_name_is_refused_before_anything(
    server, message, vizier, good_cache
):
    folder, before = good_cache
    for attempt in (
        lambda: fetch_catalog(QUERY, folder, server=server, timeout=5),
        lambda: fetch_catalog(QUERY, folder, server=server, refresh=True, timeout=5),
        lambda: load_catalog(QUERY, folder / "elsewhere", server=server),  # no silent fallback
    ):
        with pytest.raises(ConfigError, match=message):
            attempt()
    assert vizier.requests == [] and folder_bytes(folder) == before
    assert not (folder / "elsewhere").exists()


def test_cli_refuses_a_url_as_server(vizier, good_cache, capsys, keep_cli_logging):
    folder, before = good_cache
    status = main(
        ["fetch", "--server", "https://vizier.cds.unistra.fr", "--cache-dir", str(folder)]
    )
    assert status == 1
    assert "must be a host name, not a URL" in capsys.readouterr().err
    assert vizier.requests == [] and folder_bytes(folder) == before


@pytest.mark.parametrize(
    "server",
    ["vizier.cds.unistra.fr", "vizier.cfa.harvard.edu", "127.0.0.1:8443", "[::1]:8443", None],
)
def test_host_names_are_accepted_as_they_are(server):
    assert check_server(server) == server


# --- a damaged cache: a clear error, and nothing overwritten without --refresh --------------


def _truncate(folder: Path) -> None:
    data = (folder / CSV).read_bytes()
    (folder / CSV).write_bytes(data[: len(data) // 3])


DAMAGE = {
    "CSV truncated": (_truncate, r"does not match its provenance"),
    "CSV edited (same size)": (lambda f: edit_one_digit(f / CSV), r"does not match its provenance"),
    "JSON not JSON": (lambda f: (f / JSON).write_text("<html>oops</html>"), r"is corrupt"),
    "JSON empty": (lambda f: (f / JSON).write_text(""), r"is corrupt"),
    "JSON not UTF-8": (lambda f: (f / JSON).write_bytes(b"\xff\xfe\x00garbage"), r"is corrupt"),
    "JSON a list": (lambda f: (f / JSON).write_text("[1, 2]"), r"has no 'sha256' entry"),
    "JSON a folder": (
        lambda f: ((f / JSON).unlink(), (f / JSON).mkdir()),
        r"cannot be read",
    ),
}


@pytest.mark.parametrize("damage, message", DAMAGE.values(), ids=DAMAGE)
def test_damaged_cache_names_the_file_and_the_fix_and_is_left_alone(
    damage, message, vizier, good_cache
):
    folder, _ = good_cache
    damage(folder)
    damaged = folder_bytes_or_dirs(folder)
    fix = f"stellarnet fetch --refresh --rows 300 --cache-dir {folder}"
    for attempt in (
        lambda: fetch(vizier, folder),
        lambda: load_catalog(QUERY, folder, server=vizier.server, timeout=5),
        lambda: load_catalog(QUERY, folder, offline=True),
    ):
        with pytest.raises(CatalogError, match=message) as caught:
            attempt()
        assert str(folder / CSV) in str(caught.value) and fix in str(caught.value)
    assert folder_bytes_or_dirs(folder) == damaged and vizier.requests == []


def test_cli_fetch_over_a_damaged_cache_exits_1_and_keeps_it(
    vizier, good_cache, capsys, keep_cli_logging
):
    folder, _ = good_cache
    _truncate(folder)
    damaged = folder_bytes(folder)
    assert cli_fetch(vizier, folder) == 1
    err = capsys.readouterr().err
    assert "does not match its provenance" in err and "stellarnet fetch --refresh" in err
    assert folder_bytes(folder) == damaged and vizier.requests == []
    assert cli_fetch(vizier, folder, "--refresh") == 0  # the fix the message gives works
    assert len(pd.read_csv(folder / CSV)) == 300


def test_cache_that_matches_its_checksum_but_has_no_rows_gets_the_fix(vizier, good_cache):
    folder, _ = good_cache
    (folder / CSV).write_text("Lum,BP-RP,Teff\n")
    record = json.loads((folder / JSON).read_text())
    record["sha256"] = sha256_file(folder / CSV)
    (folder / JSON).write_text(json.dumps(record))
    damaged = folder_bytes(folder)
    with pytest.raises(CatalogError, match=r"has no rows.*stellarnet fetch --refresh"):
        load_catalog(QUERY, folder, offline=True)
    assert folder_bytes(folder) == damaged


def folder_bytes_or_dirs(folder: Path) -> dict[str, bytes | None]:
    """Like folder_bytes, with None for a sub-folder."""
    return {p.name: None if p.is_dir() else p.read_bytes() for p in sorted(folder.iterdir())}
