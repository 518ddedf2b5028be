"""The architecture holds: each package imports only the packages above it (README, Architecture).

Parsed from the source (``ast``), lazy imports inside functions included, so a shortcut from a
low layer to a high one fails here rather than as an import cycle later.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "precond"

# Top to bottom: a package may import only the ones listed before it.
LAYERS = ["validation", "distributed", "linalg", "loop", "curvature", "glm", "preconditioners",
          "optim", "stochastic", "composite", "diagnostics", "advise", "sklearn", "problems",
          "experiments", "cli"]


def _imported_packages(path: pathlib.Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(ROOT).parts) - 1  # folders below precond/
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            elif node.level > depth:  # relative import that climbs to precond/
                names = ["precond." + (node.module or "")]
            else:
                continue  # within the same package
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "precond" and len(parts) > 1 and parts[1] != package:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_package_imports_only_layers_above_it(package):
    path = ROOT / package
    files = sorted(path.rglob("*.py")) if path.is_dir() else [ROOT / f"{package}.py"]
    allowed = set(LAYERS[: LAYERS.index(package)])
    for f in files:
        bad = _imported_packages(f, package) - allowed
        assert not bad, f"{f.relative_to(ROOT.parent)} imports {sorted(bad)}, below {package}"


def test_every_package_has_a_layer():
    packages = {p.stem for p in ROOT.iterdir()
                if (p.is_dir() and (p / "__init__.py").exists())
                or (p.suffix == ".py" and not p.stem.startswith("_"))}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


def test_importing_precond_leaves_x64_alone():
    """The library never switches float64 on at import: the caller's dtype is respected."""
    import subprocess
    import sys

    code = ("import jax, importlib\n"
            f"for p in {LAYERS!r}: importlib.import_module('precond.' + p)\n"
            "print(jax.config.jax_enable_x64)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**__import__("os").environ, "JAX_ENABLE_X64": "0"})
    assert out.stdout.strip() == "False"
