"""The README's commands, CI, the Dockerfile and pyproject agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_first_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_readme_first_block_installs_runs_demo_then_tests():
    lines = readme_first_block()
    commands = [ln for ln in lines if not ln.startswith(("python3.11 -m venv", "python -m venv"))]
    assert len(commands) == 2
    assert commands[0] == 'pip install -e ".[all]" && edgecompress demo'
    assert commands[1].startswith("pytest")


def test_ci_installs_the_way_the_readme_says_and_runs_its_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[all]"' in ci
    assert "edgecompress demo" in ci
    assert re.search(r"^pytest\b", ci, re.M)


def test_dockerfile_installs_this_package_with_extras_that_exist():
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", docker, re.M)
    match = re.search(r'pip install "\.\[([a-z,]+)\]"', docker)
    assert match, "the Dockerfile must pip install the package itself"
    extras = set(match.group(1).split(","))
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert extras <= declared
    assert re.search(r'^ENTRYPOINT \["edgecompress"\]', docker, re.M)
    readme = (ROOT / "README.md").read_text()
    for extra in extras:
        assert f"`{extra}`" in readme


def test_package_data_includes_profiles_and_calibration_sets():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["edgecompress"]
    assert any(p.startswith("data/targets/") for p in patterns)
    assert any(p.startswith("data/calibration/") for p in patterns)
    assert (ROOT / "targets").resolve() == (ROOT / "edgecompress" / "data" / "targets").resolve()
    assert (ROOT / "calibration").resolve() == (ROOT / "edgecompress" / "data" / "calibration").resolve()
