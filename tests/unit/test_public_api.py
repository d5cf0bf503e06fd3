"""The package's public names: every re-exported name resolves, and nothing else is exported."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

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


def test_dir_shows_every_exported_name():
    assert set(edgecompress.__all__) <= set(dir(edgecompress))


@pytest.mark.parametrize("name", ["deploy", "export", "validate_model", "load_model", "inspect"])
def test_the_one_call_functions_document_args_returns_and_an_example(name):
    doc = getattr(edgecompress, name).__doc__ or ""
    for section in ("Args:", "Returns:", "Example:"):
        assert section in doc, f"{name} docstring lacks {section}"


def test_resolving_deploy_loads_no_heavy_library():
    code = ("import sys, edgecompress; edgecompress.deploy; edgecompress.DeployResult; "
            "heavy = [m for m in ('tensorflow', 'keras', 'onnx2tf', 'tf_keras', 'tensorflow_model_optimization') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(edgecompress.__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_deploy_result_is_frozen_and_reports_every_target():
    from edgecompress.pipeline.deploying import DeployResult, TargetResult

    target = TargetResult(target="esp32-s3", verdict="accelerated", answered_by="tflm", exit_code=0,
                          latency_ms=0.7, latency_evidence="model-estimate", latency_notes=("fitted",), check={})
    result = DeployResult(output=Path("m.tflite"), source_size_bytes=1000, int8_size_bytes=100, accuracy=0.9,
                          float_accuracy=0.91, agreement=0.98, targets=(target,), export={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.accuracy = 1.0  # type: ignore[misc]
    assert "target esp32-s3: accelerated (answered by tflm); latency 0.700 ms (model-estimate)" in result.report()
    assert result.to_dict()["targets"][0]["latency_notes"] == ["fitted"]
