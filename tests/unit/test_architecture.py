"""The data flows one way: stages never import the pipeline or the CLI, and the package imports nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "edgecompress"
WIRING = {"cli", "pipeline", "__main__"}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_stage_imports_the_pipeline_or_the_cli():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.stem in WIRING:
            continue
        for name in imported_modules(path):
            if name in ("edgecompress.pipeline", "edgecompress.cli"):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_importing_the_package_loads_no_heavy_library():
    code = ("import sys, edgecompress, edgecompress.cli, edgecompress.errors; "
            "heavy = [m for m in ('tensorflow', 'keras', 'onnx2tf', 'tf_keras', 'tensorflow_model_optimization') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
