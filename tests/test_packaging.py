"""stellarnet as an installed package: the wheel carries the built-in experiments and the
shipped catalogs, and an installed stellarnet works from any folder, writing its results and
caches there (never into the installed package).

The end-to-end test builds a wheel without build isolation (offline: the dev environment's
setuptools), installs it with ``--no-deps`` into a fresh virtual environment that sees the dev
environment's libraries through a ``.pth`` file, and runs the ``stellarnet`` command from an
empty folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from stellarnet.cli import main
from stellarnet.data import registry
from stellarnet.data.loading import load_catalog_file
from stellarnet.data.registry import (
    GAIA_DR2_HR,
    SHIPPED_CATALOG_DIR,
    recorded_catalog,
    shipped_catalog,
    where_catalog_is,
)
from stellarnet.files import sha256_file
from stellarnet.runs.config import load_experiment
from stellarnet.runs.lookup import BUILTIN_EXPERIMENT_DIR, available_experiments, experiment_path

ROOT = Path(__file__).resolve().parents[1]
BUILT_IN = sorted(path.name for path in (ROOT / "experiments").glob("*.toml"))
SHIPPED = sorted(
    path.name
    for path in (ROOT / "catalogs").glob("*.csv")
    if path.stem != GAIA_DR2_HR.name  # a VizieR cache fetched into the source tree
)
SNAPSHOT = SHIPPED_CATALOG_DIR / str(GAIA_DR2_HR.snapshot)


# --- where things are found (the installed package in this environment) --------------------


def test_shipped_catalogs_and_experiments_are_package_resources():
    catalogs = resources.files("stellarnet.catalogs")
    experiments = resources.files("stellarnet.experiments")
    for name in SHIPPED:
        assert catalogs.joinpath(name).is_file(), name
        assert catalogs.joinpath(name).with_suffix(".json").is_file(), name
    assert sorted(p.name for p in BUILTIN_EXPERIMENT_DIR.glob("*.toml")) == BUILT_IN
    assert experiments.joinpath("hr_relation.toml").is_file()


def test_a_local_experiment_shadows_the_built_in_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert experiment_path("hr_relation") == BUILTIN_EXPERIMENT_DIR / "hr_relation.toml"
    local = tmp_path / "experiments"
    local.mkdir()
    text = (BUILTIN_EXPERIMENT_DIR / "hr_relation.toml").read_text()
    (local / "hr_relation.toml").write_text(text.replace("epochs = 10", "epochs = 2"))
    (local / "mine.toml").write_text(text.replace('name = "hr_relation"', 'name = "mine"'))

    assert experiment_path("hr_relation") == Path("experiments/hr_relation.toml")
    assert load_experiment("hr_relation").training.epochs == 2
    assert available_experiments() == sorted({Path(n).stem for n in BUILT_IN} | {"mine"})
    assert main(["list"]) == 0
    lines = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert lines["hr_relation"] == "./experiments (shadows the built-in one)"
    assert lines["mine"] == "./experiments"
    assert lines["galaxy_sizes"] == "built-in"


def test_a_copied_built_in_config_finds_its_shipped_catalog(tmp_path, monkeypatch):
    """``[catalog] path = "../catalogs/hst_jwst_sizes.csv"`` in a copy under ./experiments
    names a file the working directory does not have: the shipped one is used."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").mkdir()
    shutil.copy(BUILTIN_EXPERIMENT_DIR / "galaxy_sizes.toml", tmp_path / "experiments/gs.toml")
    config = load_experiment("gs")
    assert not config.catalog_path.exists()
    catalog = load_catalog_file(config.catalog_path, ["HST_reff"])
    assert catalog.path == SHIPPED_CATALOG_DIR / "hst_jwst_sizes.csv"
    assert where_catalog_is(catalog.path) == "shipped"


def test_run_json_catalog_paths_resolve(tmp_path, monkeypatch):
    """Relative paths are relative to the project folder (the working directory); an old
    run.json's ``catalogs/<snapshot>.csv`` of the source tree finds the shipped snapshot,
    but only if the checksum is the recorded one."""
    monkeypatch.setattr(registry, "PROJECT_ROOT", tmp_path)
    sha = sha256_file(SNAPSHOT)
    old = f"catalogs/{SNAPSHOT.name}"
    assert recorded_catalog(old, sha) == SNAPSHOT
    assert recorded_catalog(old, "0" * 64) == tmp_path / old
    assert recorded_catalog(str(SNAPSHOT), sha) == SNAPSHOT
    assert recorded_catalog(f"/gone/site-packages/stellarnet/catalogs/{SNAPSHOT.name}", sha) == (
        SNAPSHOT
    )
    (tmp_path / "catalogs").mkdir()
    mine = tmp_path / old
    mine.write_text("Lum,Teff\n1,5000\n")
    assert recorded_catalog(old, sha) == mine  # the file that is there, checked later
    assert shipped_catalog("nothing.csv") is None


# --- the wheel, installed into a fresh environment -------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (so no build/ folder lands in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", f"{GAIA_DR2_HR.name}.*")
    for folder in ("stellarnet", "catalogs", "experiments"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    done = _run([*build, "-w", str(work / "dist"), str(source)], cwd=work)
    assert done.returncode == 0, "building the wheel failed (pip install -e '.[dev]' gives " + (
        f"setuptools>=77):\n{done.stdout}\n{done.stderr}"
    )
    (built,) = (work / "dist").glob("stellarnet-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its bin folder."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python)]
    done = _run([*pip, "install", "--no-deps", "--no-index", "-q", str(wheel)])
    assert done.returncode == 0, done.stderr
    # the libraries (TensorFlow, pandas, ...) come from this environment, without its
    # editable stellarnet: .pth files in a folder named by a .pth line are not read
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    Path(site.stdout.strip(), "dev_libraries.pth").write_text(sysconfig.get_paths()["purelib"])
    return venv / "bin"


def test_the_wheel_carries_experiments_and_catalogs(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        assert "License-Expression: BSD-3-Clause" in archive.read(metadata).decode()
    for name in BUILT_IN:
        assert f"stellarnet/experiments/{name}" in names
    for name in SHIPPED:
        assert f"stellarnet/catalogs/{name}" in names
        assert f"stellarnet/catalogs/{Path(name).stem}.json" in names
    assert "stellarnet/data/registry.py" in names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


@pytest.mark.slow
def test_installed_stellarnet_runs_from_an_empty_folder(installed, tmp_path):
    package = _run(
        [
            str(installed / "python"),
            "-c",
            "import stellarnet, importlib.resources as r; "
            "print(stellarnet.__file__); print(r.files('stellarnet.catalogs'))",
        ],
        cwd=tmp_path,
    ).stdout.split()
    venv = installed.parent.resolve()
    assert all(Path(path).resolve().is_relative_to(venv) for path in package), package
    shipped = Path(package[1])
    before = sorted(shipped.iterdir())

    work = tmp_path / "project"
    work.mkdir()
    stellarnet = str(installed / "stellarnet")
    run = _run([stellarnet, "experiment", "hr_relation", "--lr", "0.3", "--epochs", "5"], work)
    assert run.returncode == 0, run.stderr
    folder = work / "results" / "hr_relation" / "lr=0.3,epochs=5"
    record = json.loads((folder / "run.json").read_text())
    assert record["catalog_origin"] == "snapshot"
    assert Path(record["catalog_path"]) == shipped / str(GAIA_DR2_HR.snapshot)

    figures = _run([stellarnet, "figures", "hr_relation"], work)
    assert figures.returncode == 0, figures.stderr
    for name in ("loss.png", "parameters.png", "hr.png", "report.md"):
        assert (folder / name).is_file(), name
    assert sorted(shipped.iterdir()) == before  # nothing written into the installed package
    assert sorted(p.name for p in work.iterdir()) == ["results"]

    listing = _run([stellarnet, "list"], work)
    assert listing.returncode == 0, listing.stderr
    lines = dict(line.split(maxsplit=1) for line in listing.stdout.splitlines())
    assert lines == {Path(name).stem: "built-in" for name in BUILT_IN}


@pytest.mark.slow
def test_installed_stellarnet_prefers_a_local_experiment(installed, tmp_path):
    (tmp_path / "experiments").mkdir()
    text = (BUILTIN_EXPERIMENT_DIR / "hr_relation.toml").read_text()
    (tmp_path / "experiments" / "hr_relation.toml").write_text(
        text.replace("epochs = 10", "epochs = 2")
    )
    stellarnet = str(installed / "stellarnet")
    listing = _run([stellarnet, "list"], tmp_path)
    assert "hr_relation                  ./experiments (shadows the built-in one)" in (
        listing.stdout.splitlines()
    ), listing.stdout
    run = _run([stellarnet, "experiment", "hr_relation"], tmp_path)
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "results/hr_relation/lr=0.1/run.json").read_text())
    assert record["config"]["training"]["epochs"] == 2
    assert Path(record["config"]["config_file"]) == Path("experiments/hr_relation.toml")


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` without this session's PYTHONPATH (the checkout must not be seen)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_installed_stellarnet_runs_a_study_in_the_fused_loop(installed, tmp_path):
    """The fused loop from a wheel: numba compiles it in the installed package (or its user
    cache) and the study's members equal what the checkout computes."""
    stellarnet = str(installed / "stellarnet")
    args = ["study", "hr_relation", "--lr", "0.1", "0.3", "--seeds", "2", "--epochs", "5"]
    run = _run([stellarnet, *args, "--hidden", "4"], tmp_path)
    assert run.returncode == 0, run.stderr
    (folder,) = (tmp_path / "results" / "hr_relation").iterdir()
    assert json.loads((folder / "run.json").read_text())["engines"] == {"4": "fused"}
    here = _run([sys.executable, "-m", "stellarnet.cli", *args, "--hidden", "4", "--results",
                 str(tmp_path / "here")], ROOT)  # fmt: skip
    assert here.returncode == 0, here.stderr
    (mine,) = (tmp_path / "here" / "hr_relation").iterdir()
    assert (folder / "summary.csv").read_text() == (mine / "summary.csv").read_text()
