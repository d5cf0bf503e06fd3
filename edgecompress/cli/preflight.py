"""Every argument checked before any work: target names, input files and recipe names, in milliseconds.

A mistyped target or a missing file must not cost the user TensorFlow's start-up and a conversion before it is
found. ``preflight`` reads only the file system and the shipped data (profiles, recipes); it imports no
TensorFlow. The stages still check their own inputs: this is the early copy of the checks a user hits most.
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from edgecompress.cli.options import OPTIONS
from edgecompress.errors import EdgeCompressError, InvalidModelError, ProfileError, RecipeError
from edgecompress.profile import list_targets, unknown_target_message

# option keys by what their value must be
_TFLITE = {"tflite", "bench_tflite", "int8_tflite", "float_model"}
_MODEL = {"source_model", "keras_model", "reference"}
_DATA = {"export_calibration", "check_calibration", "fix_calibration", "eval", "eval_data", "train_data", "val"}
_TARGET = {"export_target", "validate_target"}
_TARGET_OR_ALL = {"check_target", "bench_target"}
_RECIPE = {"demo_recipe", "compress_recipe"}
# the commands whose work starts TensorFlow (the CLI starts it quietly once these checks pass)
TENSORFLOW_COMMANDS = frozenset({"export", "demo", "validate", "compress"})
_TFLITE_IDENTIFIER = b"TFL3"


def _dest(key: str) -> str:
    option = OPTIONS[key]
    return option.settings.get("dest") or option.flags[0].lstrip("-").replace("-", "_")


def _is_callable_spec(value: str) -> bool:
    # the dataset loader's rule for 'module:function' (edgecompress.load.dataset.load_data)
    return ":" in value and not value.startswith(("/", ".")) and "/" not in value.split(":", 1)[0]


def _check_tflite(command: str, value: str) -> None:
    path = Path(value)
    if not path.exists():
        raise InvalidModelError(f"{path}: expected a .tflite file. Received: no such file. Check the path.")
    if not path.is_file():
        # a directory, a device, a FIFO: the reader names what it is (and never reads /dev/zero forever)
        return
    with path.open("rb") as handle:
        head = handle.read(8)
    # a damaged .tflite is the stage's to judge (check gives it an "unsupported" verdict); another kind of file
    # (.keras, .onnx, ...) is the wrong input, said before any work
    if head[4:8] != _TFLITE_IDENTIFIER and path.suffix.lower() != ".tflite":
        what = f"a {path.suffix} model" if path.suffix else "a file without the TFLite identifier"
        raise InvalidModelError(f"{path}: {command} takes a .tflite. Received: {what}. Run `edgecompress export "
                                f"{path} --calibration DATA` first and pass the .tflite it writes.")


def _check_recipe(value: str) -> None:
    from edgecompress.compress.recipe import shipped_recipes

    names = sorted(shipped_recipes())
    if Path(value).is_file() or value in names:
        return
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    hint = f"Did you mean {close[0]!r}? " if close else ""
    raise RecipeError(f"{value}: expected a recipe YAML file or a shipped recipe ({', '.join(names)}). Received: "
                      f"no such file or name. {hint}Check the path or pass one of the shipped names.")


def preflight(args: argparse.Namespace, options: tuple[str, ...]) -> None:
    """Check the arguments of one command before it runs; raise the first problem as one clear error.

    Args:
        args: the parsed namespace.
        options: the command's option keys (``Command.options``).

    Raises:
        EdgeCompressError: a missing input file, a non-.tflite where a .tflite is needed, an unknown target or
            recipe name (with a "did you mean" when one is close).

    Example:
        >>> preflight(argparse.Namespace(target="esp32s3"), ("bench_target",))  # doctest: +SKIP
        Traceback (most recent call last):
        ProfileError: expected a target profile name ... did you mean 'esp32-s3'? ...
    """
    command = getattr(args, "command", "") or ""
    for key in options:
        value = getattr(args, _dest(key), None)
        if value is None or value == "":
            continue
        value = str(value)
        if key in _TFLITE:
            _check_tflite(command, value)
        elif key in _MODEL and not Path(value).exists():
            raise InvalidModelError(f"{value}: no such file or directory. Check the model path.")
        elif key in _DATA and not Path(value).exists() and not _is_callable_spec(value):
            raise EdgeCompressError(f"{value}: no such file or directory. Pass an .npz file, an image folder or "
                                    "'module:function'.")
        elif key in _TARGET_OR_ALL and value != "all" and value not in list_targets():
            raise ProfileError(unknown_target_message(value))
        elif key in _TARGET and value not in list_targets():
            raise ProfileError(unknown_target_message(value))
        elif key in _RECIPE:
            _check_recipe(value)
