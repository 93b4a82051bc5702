"""The package's layers: data flows one way, and no module grows past a readable size.

base modules < data < train < results < viz < runs < cli: a module imports only from its own
layer or lower ones (read from the source, imports inside functions included).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stellarnet"
LAYERS = {"data": 1, "train": 2, "results": 3, "viz": 4, "runs": 5, "cli": 6, "__main__": 6}
"""Layer of each subpackage or top-level module; any other top-level module is base (0)."""
MAX_MODULE_LINES = 400


def layer_of(module: str) -> int:
    """``stellarnet.train.loop`` -> 2."""
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    return ".".join(("stellarnet", *path.relative_to(PACKAGE).with_suffix("").parts))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    own = layer_of(module_name(path))
    higher = sorted(
        name for name in imports(path) if name.startswith("stellarnet.") and layer_of(name) > own
    )
    assert not higher, f"{module_name(path)} (layer {own}) imports {higher}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "viz").rglob("*.py")), ids=lambda p: p.name)
def test_figures_never_import_tensorflow(path):
    heavy = {name for name in imports(path) if name.split(".")[0] in ("tensorflow", "keras")}
    assert not heavy


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_readable(path):
    lines = len(path.read_text().splitlines())
    assert path.name == "cli.py" or lines <= MAX_MODULE_LINES, f"{lines} lines"
