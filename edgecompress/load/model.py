"""One entry point from a path to a model: Keras 3 ``.keras``, legacy ``.h5``, SavedModel, or ONNX.

Loading a user's model is a security boundary: Keras ``safe_mode`` stays on (Lambda layers and unknown Python
code are refused) unless the caller passes ``safe_mode=False`` (the CLI's ``--unsafe-load``).
ONNX files go through onnx2tf in a subprocess (it seeds global RNGs, calls ``sys.exit`` on errors and would
download sample images): the subprocess is handed our calibration data instead of any download.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import LoadError
from edgecompress.load.guard import (
    read_h5_config,
    refuse_code_in_keras_config,
    refuse_non_regular_files,
    refuse_side_effect_ops,
)
from edgecompress.load.zipguard import declared_expansion, is_zip_bomb, undeclared_weight_problem

KERAS_SUFFIXES = (".keras",)
H5_SUFFIXES = (".h5", ".hdf5")
ONNX_SUFFIXES = (".onnx",)
ONNX_TIMEOUT_S = 900


@dataclasses.dataclass
class LoadedModel:
    """A model ready for compression or conversion.

    Args:
        path: the file or directory it came from.
        source_format: "keras", "h5", "savedmodel" or "onnx".
        model: a Keras 3 model (SavedModel and ONNX sources are wrapped in a ``TFSMLayer``).
        input_names: model input names, in order.
        input_shapes: input shapes without the batch axis.
        output_names: model output names, in order.
        notes: what the loader did that a user should know (e.g. a layout transpose for ONNX).
    """

    path: Path
    source_format: str
    model: Any
    input_names: list[str]
    input_shapes: list[tuple[int | None, ...]]
    output_names: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.source_format, "inputs": dict(zip(
            self.input_names, [list(s) for s in self.input_shapes], strict=True)),
            "outputs": self.output_names, "notes": self.notes}


def detect_format(path: Path) -> str:
    """The model format of ``path``, from its suffix or directory layout."""
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return "savedmodel"
        raise LoadError(f"{path}: a directory that is not a SavedModel (no saved_model.pb). Pass a .keras, "
                        ".h5 or .onnx file, or a SavedModel directory.")
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return "keras"
    if suffix in H5_SUFFIXES:
        return "h5"
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    raise LoadError(f"{path}: unsupported model format '{suffix or 'no suffix'}'. Expected a .keras, .h5 or "
                    ".onnx file or a SavedModel directory.")


def load_model(path: str | os.PathLike[str], *, safe_mode: bool = True, calibration: Any = None) -> LoadedModel:
    """Load a model from any supported format into a Keras 3 model.

    Args:
        path: a ``.keras`` or ``.h5`` file, a SavedModel directory, or an ``.onnx`` file.
        safe_mode: keep Keras safe mode on (refuses Lambda layers and arbitrary code). Turn off only for
            models you trust.
        calibration: for ONNX models, sample inputs (a ``Dataset`` or array, NHWC or the ONNX layout) that
            onnx2tf uses for its own checks instead of downloading images.

    Returns:
        A ``LoadedModel``.

    Example:
        >>> loaded = load_model("model.keras")  # doctest: +SKIP
        >>> loaded.input_shapes  # doctest: +SKIP
        [(8, 8, 1)]
    """
    path = Path(path)
    if not path.exists():
        raise LoadError(f"{path}: no such file or directory. Check the model path.")
    fmt = detect_format(path)
    if fmt == "keras":
        model = _load_keras_file(path, safe_mode)
        return _describe(path, fmt, model)
    if fmt == "h5":
        model = _load_h5(path, safe_mode)
        return _describe(path, fmt, model)
    if fmt == "savedmodel":
        return _describe(path, fmt, _wrap_saved_model(path, safe_mode=safe_mode))
    return _load_onnx(path, calibration)


def _keras():
    # models saved mid-compression name our wrapper layers in their config: the pipeline registers them
    # (edgecompress.pipeline.loading) before it calls load_model
    import keras

    return keras


def _load_keras_file(path: Path, safe_mode: bool) -> Any:
    if not zipfile.is_zipfile(path):
        raise LoadError(f"{path}: not a valid .keras file (a .keras file is a zip archive). Re-save the model "
                        "with model.save('model.keras').")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        bomb = is_zip_bomb(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoadError(f"{path}: the .keras archive is corrupt ({exc}). Re-save the model.") from exc
    if "config.json" not in names:
        raise LoadError(f"{path}: not a Keras 3 model archive (no config.json inside). Re-save the model "
                        "with Keras 3's model.save('model.keras').")
    if bomb:
        declared, size = declared_expansion(path)
        raise LoadError(f"{path}: the archive declares {declared} bytes when unpacked, far more than its "
                        f"{size} bytes justify (a zip bomb?). Refusing to load it.")
    _refuse_undeclared_weights(path, [name for name in names if name.endswith(".h5")])
    keras = _keras()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as exc:  # Keras raises ValueError/TypeError/OSError/KeyError for bad archives
        raise _keras_load_error(path, exc, safe_mode) from exc


def _load_h5(path: Path, safe_mode: bool) -> Any:
    config = read_h5_config(path)
    if safe_mode:
        refuse_code_in_keras_config(path, config)
    _refuse_undeclared_weights(path, [])
    keras = _keras()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as exc:
        raise _keras_load_error(path, exc, safe_mode) from exc


def _refuse_undeclared_weights(path: Path, members: list[str]) -> None:
    """Refuse weights that declare more data than the file stores, before Keras (via h5py) allocates it.

    Args:
        path: the ``.keras`` archive (``members`` are its HDF5 files) or, with no members, a legacy ``.h5``.
        members: the archive's ``.h5`` member names.
    """
    import h5py

    problem = None
    try:
        if members:
            with zipfile.ZipFile(path) as archive:
                for member in members:
                    with archive.open(member) as raw, h5py.File(raw, "r") as h5:
                        problem = undeclared_weight_problem(h5)
                    if problem:
                        problem = f"{member}: {problem}"
                        break
        else:
            with h5py.File(path, "r") as h5:
                problem = undeclared_weight_problem(h5)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise LoadError(f"{path}: the model's HDF5 weights are unreadable ({str(exc)[:200]}). Re-save the "
                        "model.") from exc
    if problem:
        raise LoadError(f"{path}: expected weights that the file actually stores. Received: {problem}. The file "
                        "is damaged or crafted; refusing to load it. Re-save the model from its source.")


def _keras_load_error(path: Path, exc: Exception, safe_mode: bool) -> LoadError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = str(exc).lower()
    if safe_mode and ("safe_mode" in lowered or "lambda" in lowered):
        return LoadError(f"{path}: the model contains a Lambda layer or other Python code, which Keras safe "
                         "mode refuses to load because it could run arbitrary code. If you trust this file, "
                         "pass --unsafe-load.")
    if "unknown layer" in lowered or "could not locate" in lowered or "custom_objects" in lowered:
        return LoadError(f"{path}: the model uses a custom layer or object Keras does not know ({text}). "
                         "Register it with @keras.saving.register_keras_serializable and import its module "
                         "first.")
    return LoadError(f"{path}: Keras could not load the model ({type(exc).__name__}: {text}).")


def _wrap_saved_model(path: Path, *, safe_mode: bool = True) -> Any:
    refuse_non_regular_files(path)
    if safe_mode:
        refuse_side_effect_ops(path)
    keras = _keras()
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TF raises many types for corrupt SavedModels
        raise LoadError(f"{path}: TensorFlow could not load the SavedModel ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}). Check the directory is complete.") from exc
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" not in signatures:
        raise LoadError(f"{path}: the SavedModel has no 'serving_default' signature. Export it with a "
                        "serving signature (tf.saved_model.save(model, path, signatures=...)).")
    fn = signatures["serving_default"]
    _, kwargs = fn.structured_input_signature
    specs = sorted(kwargs.items())
    if not specs:
        raise LoadError(f"{path}: the serving signature takes no named inputs; edgecompress needs named "
                        "tensor inputs.")
    outputs = fn.structured_outputs
    output_keys = sorted(outputs) if isinstance(outputs, dict) else None
    layer = _signature_layer_class()(str(path), call_endpoint="serving_default", name="saved_model")
    inputs = {}
    for name, spec in specs:
        shape = tuple(spec.shape.as_list()[1:])
        if spec.dtype != tf.float32:
            raise LoadError(f"{path}: input '{name}' has dtype {spec.dtype.name}; full-int8 export needs float32 "
                            "inputs. Re-export the model with float32 inputs.")
        batch = spec.shape.as_list()[0]
        inputs[name] = keras.Input(batch_shape=(batch, *shape), name=name)
    result = layer(inputs)
    if isinstance(result, dict):
        result = [result[k] for k in (output_keys or sorted(result))]
        result = result[0] if len(result) == 1 else result
    model = keras.Model(list(inputs.values()), result, name=path.stem or "saved_model")
    return model


_SIGNATURE_LAYER: Any = None


def _signature_layer_class() -> Any:
    """A ``TFSMLayer`` that calls the serving signature with keyword inputs (signatures take no positionals)."""
    global _SIGNATURE_LAYER
    if _SIGNATURE_LAYER is None:
        keras = _keras()

        class SignatureLayer(keras.layers.TFSMLayer):
            def call(self, inputs: Any, training: bool = False, **kwargs: Any) -> Any:
                return self._reloaded_obj.signatures[self.call_endpoint](**inputs)

        _SIGNATURE_LAYER = SignatureLayer
    return _SIGNATURE_LAYER


def _describe(path: Path, fmt: str, model: Any, notes: list[str] | None = None) -> LoadedModel:
    names = [t.name.split(":")[0] for t in model.inputs]
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    outputs = [t.name.split(":")[0] for t in model.outputs]
    if getattr(model, "input_names", None):
        names = list(model.input_names)
    return LoadedModel(path, fmt, model, names, shapes, outputs, notes or [])


def _load_onnx(path: Path, calibration: Any) -> LoadedModel:
    try:
        import onnx
    except ImportError as exc:
        raise LoadError(f"{path}: ONNX support is not installed. Install it with "
                        "pip install 'edgecompress[onnx]'.") from exc
    _check_onnx_file(path, onnx)
    workdir = Path(tempfile.mkdtemp(prefix="edgecompress-onnx-"))
    # the SavedModel is read into memory when wrapped; the directory only needs to outlive this process
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    saved_model = workdir / "saved_model"
    sample_path = workdir / "samples.npz"
    arrays = _onnx_samples(calibration)
    np.savez(sample_path, **arrays)
    # the worker runs in its own working directory: hand it absolute paths (a relative model.onnx failed there)
    cmd = [sys.executable, "-m", "edgecompress.load.onnx_worker", str(Path(path).resolve()), str(saved_model),
           str(sample_path)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=ONNX_TIMEOUT_S, env=env, check=False,
                              cwd=workdir)
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"{path}: onnx2tf did not finish within {ONNX_TIMEOUT_S} s. The model may be too large "
                        "or use an operator onnx2tf loops on.") from exc
    if proc.returncode != 0:
        tail = _last_meaningful_line(proc.stderr + "\n" + proc.stdout)
        raise LoadError(f"{path}: onnx2tf could not convert the model ({tail}). Simplify the model "
                        "(onnxsim) or export it with static input shapes.")
    note = "converted from ONNX with onnx2tf (inputs are NHWC: channels last)"
    return _describe(path, "onnx", _wrap_saved_model(saved_model), [note])


def _check_onnx_file(path: Path, onnx: Any) -> None:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise LoadError(f"{path}: not a valid ONNX file ({type(exc).__name__}). Re-export the model.") from exc
    root = path.parent.resolve()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            target = (root / location).resolve()
            if not target.is_relative_to(root):
                raise LoadError(f"{path}: initializer '{tensor.name}' points at external data outside the "
                                f"model's directory ({location}). Refusing to read it.")
            if not target.exists():
                raise LoadError(f"{path}: initializer '{tensor.name}' needs external data file {location}, "
                                "which is missing. Keep it beside the .onnx file.")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise LoadError(f"{path}: the ONNX model is invalid ({str(exc).splitlines()[0]}). Re-export it.") from exc


def _onnx_samples(calibration: Any) -> dict[str, np.ndarray]:
    if calibration is None:
        return {}
    x = getattr(calibration, "x", None)
    if x is None:
        x = {"input": np.asarray(calibration)}
    return {name: np.asarray(arr[:20], np.float32) for name, arr in x.items()}


def _last_meaningful_line(text: str) -> str:
    import re

    clean = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip() for ln in clean.splitlines() if ln.strip() and not ln.startswith(("I0000", "W0000"))]
    for line in reversed(lines):
        if "error" in line.lower():
            return line[:300]
    return lines[-1][:300] if lines else "no output"
