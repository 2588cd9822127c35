"""No import goes upward: the library's layers, checked on every import statement of every module."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tpsep"

# bottom to top; a module may import from its own layer and the layers below
LAYERS = [
    {"tpsep", "tpsep.audio", "tpsep.spectral", "tpsep.masks", "tpsep.metrics", "tpsep.data"},
    {"tpsep.models", "tpsep.losses"},
    {"tpsep.train", "tpsep.devices", "tpsep.reporting", "tpsep.checkpoints", "tpsep.recipes",
     "tpsep.separate", "tpsep.evaluation", "tpsep.diagnose", "tpsep.doctor"},
    {"tpsep.widgets", "tpsep.exercises", "tpsep.course", "tpsep.cli", "tpsep.__main__"},
]


def layer_of(module: str) -> int:
    """The layer of ``tpsep.x.y``: that of its longest listed prefix."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        for level, members in enumerate(LAYERS):
            if name in members:
                return level
    raise KeyError(f"{module} is in no layer of tests/test_layers.py: add it where it belongs")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, name: str | None = None):
    """Every tpsep module that ``path`` (the module ``name``) imports, at the top or inside a function."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from tpsep import data" imports the module tpsep.data
            targets = [f"{base}.{alias.name}" if base == "tpsep" else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "tpsep" or target.startswith("tpsep."):
                yield target, node.lineno


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_no_import_goes_upward(path):
    own = layer_of(module_name(path))
    upward = [f"line {line}: {target} (layer {layer_of(target)})" for target, line in imported_modules(path)
              if layer_of(target) > own]
    assert not upward, f"{module_name(path)} (layer {own}) imports upward: {upward}"


def test_the_checker_sees_an_upward_import(tmp_path):
    fake = tmp_path / "probe.py"
    fake.write_text("def f():\n    from tpsep.train import fit\n")
    assert [t for t, _ in imported_modules(fake, "tpsep.models.probe")] == ["tpsep.train"]
    assert layer_of("tpsep.train") > layer_of("tpsep.models.probe")
