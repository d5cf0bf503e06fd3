"""The package's public names: every re-exported name resolves, and nothing else is exported."""

from __future__ import annotations

import importlib

import pytest

import edgecompress

# ``edgecompress.convert`` is both a public function and the subpackage ``edgecompress/convert/``: once the
# subpackage is imported, the import system binds the attribute to the package and ``__getattr__`` is never asked.
SHADOWED_BY_A_SUBPACKAGE = {"convert"}


@pytest.mark.parametrize("name", sorted(edgecompress._EXPORTS))
def test_every_exported_name_exists_in_its_module(name):
    module = importlib.import_module(edgecompress._EXPORTS[name])
    assert hasattr(module, name)


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason="a subpackage of the same name shadows it"))
    if name in SHADOWED_BY_A_SUBPACKAGE else name
    for name in sorted(edgecompress._EXPORTS)])
def test_every_exported_name_is_the_package_attribute(name):
    module = importlib.import_module(edgecompress._EXPORTS[name])
    assert getattr(edgecompress, name) is getattr(module, name)


def test_all_lists_exactly_the_exports_and_the_version():
    assert edgecompress.__all__ == sorted(edgecompress._EXPORTS) + ["__version__"]


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        edgecompress.nope  # noqa: B018
