"""The exception hierarchy edgecompress raises for problems a user can fix.

Every error is one sentence for a person: what was expected, what was received, and the remedy. The CLI
prints it as one line and exits with the error's ``exit_code``; any other exception is a bug (exit 1).
"""

from __future__ import annotations


class EdgeCompressError(Exception):
    """Base class for user-facing errors (bad input, missing tools, unsupported models)."""

    exit_code = 2


class LoadError(EdgeCompressError):
    """A model file could not be loaded (missing, malformed, unsupported format, unsafe)."""


class CalibrationError(EdgeCompressError):
    """Calibration or evaluation data is missing, malformed or does not match the model."""


class ConversionError(EdgeCompressError):
    """The model could not be converted to the requested TFLite form."""


class InvalidModelError(EdgeCompressError):
    """A file is not a valid TFLite flatbuffer."""


class ProfileError(EdgeCompressError):
    """A target profile is unknown or invalid."""


class ToolchainError(EdgeCompressError):
    """An external tool (Vela, TFLite Micro, ssh, adb, ...) is missing or failed."""


class RecipeError(EdgeCompressError):
    """A compression recipe is malformed."""


class RemoteError(EdgeCompressError):
    """A remote device could not be reached, timed out or returned garbage."""


class OutputError(EdgeCompressError):
    """An output file could not be written (disk full, permissions)."""
