"""The package's public names: every re-exported name resolves, and nothing else is exported."""

from __future__ import annotations

import importlib

import pytest

import edgecompress


@pytest.mark.parametrize("name", sorted(edgecompress._EXPORTS))
def test_every_exported_name_exists_in_its_module(name):
    module = importlib.import_module(edgecompress._EXPORTS[name])
    assert hasattr(module, name)


@pytest.mark.parametrize("name", sorted(edgecompress._EXPORTS))
def test_every_exported_name_is_the_package_attribute(name):
    """No subpackage shares a public name: importing one would bind the attribute to the package (the stage that
    converts is ``edgecompress.conversion`` so that ``edgecompress.convert`` stays the function)."""
    module = importlib.import_module(edgecompress._EXPORTS[name])
    for package in ("conversion", "load", "check", "validate", "report", "pipeline", "compress"):
        importlib.import_module(f"edgecompress.{package}")
    assert getattr(edgecompress, name) is getattr(module, name)


def test_all_lists_exactly_the_exports_and_the_version():
    assert edgecompress.__all__ == sorted(edgecompress._EXPORTS) + ["__version__"]


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        edgecompress.nope  # noqa: B018
