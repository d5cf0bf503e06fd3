"""The layers contract in pyproject.toml holds: checked by the real import-linter, as CI runs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> list[str]:
    script = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(script).exists():
        pytest.skip("import-linter is not installed (the dev extra installs it)")
    return [script]


def test_the_import_contract_is_kept():
    proc = subprocess.run(_lint_imports(), cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"Contracts: [1-9]\d* kept, 0 broken", proc.stdout), proc.stdout[-2000:]


def test_a_stage_importing_another_breaks_the_contract(tmp_path):
    """The contract can fail: a copy of the package where conversion imports validate is reported broken."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "edgecompress", copy / "edgecompress", ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "edgecompress" / "conversion" / "upward.py").write_text("import edgecompress.validate.evaluate\n")
    proc = subprocess.run(_lint_imports(), cwd=copy, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(copy)})
    assert proc.returncode != 0
    assert "edgecompress.conversion is not allowed to import edgecompress.validate" in proc.stdout
