"""edgecompress: compress Keras/ONNX models, export calibrated full-int8 TFLite, validate them per target.

The public API is re-exported here and nothing else happens at import: TensorFlow and the other heavy
libraries load only when a function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "EdgeCompressError": "edgecompress.errors",
    "LoadError": "edgecompress.errors",
    "CalibrationError": "edgecompress.errors",
    "ConversionError": "edgecompress.errors",
    "InvalidModelError": "edgecompress.errors",
    "ProfileError": "edgecompress.errors",
    "ToolchainError": "edgecompress.errors",
    "load_model": "edgecompress.pipeline.loading",
    "load_data": "edgecompress.load.dataset",
    "Dataset": "edgecompress.samples",
    "convert": "edgecompress.conversion.converter",
    "calibrate_and_convert": "edgecompress.conversion.ptq",
    "CalibrationReport": "edgecompress.conversion.ptq",
    "ConversionResult": "edgecompress.conversion.converter",
    "inspect": "edgecompress.tflite",
    "read_model": "edgecompress.tflite",
    "evaluate": "edgecompress.pipeline.loading",
    "export": "edgecompress.pipeline",
    "deploy": "edgecompress.pipeline.deploying",
    "DeployResult": "edgecompress.pipeline.deploying",
    "TargetResult": "edgecompress.pipeline.deploying",
    "validate_model": "edgecompress.pipeline",
    "layer_errors": "edgecompress.validate.layers",
    "Report": "edgecompress.report.html",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecompress' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    # the exports resolve lazily through __getattr__, so they are not module globals until first used
    return sorted(set(globals()) | set(__all__))
