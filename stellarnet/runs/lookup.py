"""Where experiment configs are found: ``experiments/NAME.toml`` of the working directory
first, then the configs shipped with stellarnet."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

EXPERIMENT_DIR = Path("experiments")
"""Local experiment configs: ``experiments/`` of the working directory, looked up first."""
BUILTIN_EXPERIMENT_DIR = Path(str(resources.files("stellarnet.experiments")))
"""The experiment configs shipped with stellarnet (``experiments/`` of the source tree)."""


def experiment_path(name_or_path: str | Path) -> Path:
    """``"hr_relation"`` -> ``experiments/hr_relation.toml`` of the working directory if it
    exists, else the built-in one; a path to a .toml is kept. An unknown name gives the
    (missing) local path."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        return path
    return experiment_sources().get(str(name_or_path), EXPERIMENT_DIR / f"{name_or_path}.toml")


def experiment_sources() -> dict[str, Path]:
    """Each experiment name and its config file, by name: a config in ``experiments/`` of the
    working directory shadows a built-in one of the same name."""
    found = {path.stem: path for path in BUILTIN_EXPERIMENT_DIR.glob("*.toml")}
    found.update((path.stem, path) for path in EXPERIMENT_DIR.glob("*.toml"))
    return dict(sorted(found.items()))


def is_builtin(path: Path) -> bool:
    """Whether the config file ``path`` is one shipped with stellarnet."""
    return path.resolve().parent == BUILTIN_EXPERIMENT_DIR.resolve()


def available_experiments() -> list[str]:
    """Names of the experiments: local ``experiments/`` and built-in ones."""
    return list(experiment_sources())
