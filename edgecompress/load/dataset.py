"""Representative and evaluation data: ``.npz`` files, image folders, ``module:function`` callables, arrays.

Every source becomes a ``Dataset``: one float32 array per model input (keyed by input name) with the batch axis
first, and optional integer labels. Data is checked against what the model expects (shape, finiteness, size)
and every problem is one sentence naming the file, what was expected and how to fix it.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import CalibrationError
from edgecompress.samples import MIN_CALIBRATION_SAMPLES, RECOMMENDED_CALIBRATION_SAMPLES, Dataset
from edgecompress.yaml_input import read_user_yaml

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
PREPROCESS_FILE = "preprocess.yaml"
MAX_IMAGE_SIDE = 4096
# the float32 arrays of a whole image folder, checked before any image is decoded
MAX_IMAGE_DATA_BYTES = 4 << 30
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.25


def digits_dataset() -> tuple[Dataset, Dataset]:
    """scikit-learn's handwritten digits as 8x8x1 float32 images in [0, 1], split 75/25 with a fixed seed.

    Returns:
        ``(train, test)`` datasets with labels; the split never changes between runs.

    Example:
        >>> train, test = digits_dataset()
        >>> train.first.shape[1:]
        (8, 8, 1)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=y)
    return (Dataset({"input": x_train}, y_train, "sklearn digits (train split)"),
            Dataset({"input": x_test}, y_test, "sklearn digits (test split)"))


def shipped_calibration(name: str = "digits") -> Path:
    """Path of a calibration set shipped inside the package (``calibration/<name>/``)."""
    from importlib import resources

    path = Path(str(resources.files("edgecompress") / "data" / "calibration" / name))
    if not path.exists():
        raise CalibrationError(f"calibration/{name}: no such shipped calibration set. Available: "
                               f"{', '.join(available_calibration_sets()) or 'none'}.")
    return path


def available_calibration_sets() -> list[str]:
    from importlib import resources

    root = Path(str(resources.files("edgecompress") / "data" / "calibration"))
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def load_data(
    spec: str | Path | np.ndarray | Mapping[str, np.ndarray] | Callable[[], Iterable[Any]] | Dataset,
    *,
    input_names: Sequence[str] | None = None,
    input_shapes: Sequence[Sequence[int | None]] | None = None,
    preprocess: Mapping[str, Any] | None = None,
    purpose: str = "calibration",
) -> Dataset:
    """Load samples from any supported source and check them against the model's inputs.

    Args:
        spec: an ``.npz`` path (array ``x`` and optional ``y``, or one array per input name), a folder of
            images (preprocessing from ``preprocess`` or a ``preprocess.yaml`` beside them), a
            ``"module:function"`` string returning an iterable of samples (arrays, dicts or ``(x, y)`` pairs),
            an array, a dict of arrays, or a ``Dataset``.
        input_names: the model's input names, in order; the first is used for a single array.
        input_shapes: the model's input shapes without the batch axis (``None`` for unknown dimensions).
        preprocess: image preprocessing: ``size`` [H, W], ``channels`` (1 or 3), ``channel_order`` ("rgb" or
            "bgr"), ``scale``, ``mean``, ``std`` (applied as ``(pixel * scale - mean) / std``).
        purpose: "calibration" or "evaluation", for messages.

    Returns:
        A checked ``Dataset``.

    Example:
        >>> ds = load_data(np.zeros((20, 8, 8, 1), np.float32), input_names=["input"],
        ...                input_shapes=[(8, 8, 1)])
        >>> ds.first.shape
        (20, 8, 8, 1)
    """
    names = list(input_names) if input_names else None
    if isinstance(spec, Dataset):
        dataset = spec
    elif isinstance(spec, np.ndarray):
        dataset = Dataset({(names or ["input"])[0]: spec}, None, "<array>")
    elif isinstance(spec, Mapping):
        dataset = _from_mapping(dict(spec), names, "<dict>")
    elif callable(spec):
        dataset = _from_iterable(spec(), names, getattr(spec, "__name__", "<callable>"))
    else:
        dataset = _from_path_or_callable_spec(str(spec), names, input_shapes, preprocess)
    _check(dataset, names, input_shapes, purpose)
    return dataset


def _from_path_or_callable_spec(spec: str, names: list[str] | None,
                                input_shapes: Sequence[Sequence[int | None]] | None,
                                preprocess: Mapping[str, Any] | None) -> Dataset:
    path = Path(spec)
    if path.exists():
        if path.is_dir():
            return _from_image_folder(path, names, input_shapes, preprocess)
        if path.suffix.lower() in (".npz", ".npy"):
            return _from_numpy_file(path, names)
        raise CalibrationError(f"{path}: expected an .npz file, a folder of images or 'module:function'. "
                               f"Received: a {path.suffix or 'suffix-less'} file. Convert the data to .npz "
                               "with an array 'x' (and optional 'y').")
    if ":" in spec and not spec.startswith(("/", ".")) and "/" not in spec.split(":", 1)[0]:
        module_name, func_name = spec.split(":", 1)
        try:
            module = importlib.import_module(module_name)
            func = getattr(module, func_name)
        except (ImportError, AttributeError) as exc:
            raise CalibrationError(f"{spec}: could not import the data function ({exc}). Check the module is "
                                   "on PYTHONPATH and the function name is right.") from exc
        try:
            samples = func()
        except Exception as exc:  # the user's function failed: report it as bad input
            raise CalibrationError(f"{spec}: the data function raised {type(exc).__name__}: {exc}") from exc
        return _from_iterable(samples, names, spec)
    raise CalibrationError(f"{spec}: no such file or directory. Pass an .npz file, an image folder or "
                           "'module:function'.")


def _from_numpy_file(path: Path, names: list[str] | None) -> Dataset:
    import zipfile

    from edgecompress.load.zipguard import declared_expansion, is_zip_bomb

    if zipfile.is_zipfile(path) and is_zip_bomb(path):
        declared, size = declared_expansion(path)
        raise CalibrationError(f"{path}: the .npz declares {declared} bytes when unpacked from {size} bytes "
                               "(a zip bomb?). Refusing to read it.")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises many types for corrupt files
        raise CalibrationError(f"{path}: not a readable numpy file ({type(exc).__name__}: {exc}). "
                               "Save the data with numpy.savez.") from exc
    if isinstance(loaded, np.ndarray):
        return Dataset({(names or ["input"])[0]: loaded}, None, str(path))
    with loaded:
        try:
            arrays = {key: loaded[key] for key in loaded.files}
        except Exception as exc:
            raise CalibrationError(f"{path}: an array in the .npz could not be read ({exc}). "
                                   "Save the data again with numpy.savez.") from exc
    return _from_mapping(arrays, names, str(path))


def _from_mapping(arrays: dict[str, Any], names: list[str] | None, source: str) -> Dataset:
    labels = arrays.pop("y", None)
    if "x" in arrays and len(arrays) == 1:
        x = {(names or ["input"])[0]: arrays["x"]}
    elif names and all(n in arrays for n in names):
        x = {n: arrays[n] for n in names}
    elif names and len(names) == 1 and len(arrays) == 1:
        x = {names[0]: next(iter(arrays.values()))}
    elif not names and arrays:
        x = arrays
    else:
        expected = ", ".join(names or ["x"])
        raise CalibrationError(f"{source}: expected an array 'x' or one array per model input ({expected}). "
                               f"Received arrays: {', '.join(sorted(arrays)) or 'none'}. "
                               "Rename the arrays to the model's input names.")
    for key, value in x.items():
        if not isinstance(value, np.ndarray) or value.dtype == object:
            raise CalibrationError(f"{source}: array '{key}' must be numeric. Received: "
                                   f"{type(value).__name__}. Save a numeric numpy array.")
    y = None
    if labels is not None:
        y = np.asarray(labels)
        if y.ndim == 2 and y.shape[1] > 1:
            y = y.argmax(axis=1)
        y = y.reshape(-1)
        if not np.issubdtype(y.dtype, np.integer):
            if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise CalibrationError(f"{source}: expected integer class labels in 'y'. Received: dtype "
                                       f"{y.dtype}. Store labels as integers (or one-hot rows).")
    return Dataset({k: np.asarray(v) for k, v in x.items()}, y, source)


def _from_iterable(samples: Iterable[Any], names: list[str] | None, source: str) -> Dataset:
    xs: list[Any] = []
    ys: list[Any] = []
    try:
        for item in samples:
            if isinstance(item, tuple) and len(item) == 2:
                xs.append(item[0])
                ys.append(item[1])
            else:
                xs.append(item)
    except TypeError as exc:
        raise CalibrationError(f"{source}: expected an iterable of samples. Received: "
                               f"{type(samples).__name__}. Return a list or generator of arrays.") from exc
    if not xs:
        raise CalibrationError(f"{source}: the data function returned no samples. Return at least "
                               f"{MIN_CALIBRATION_SAMPLES} samples.")
    if isinstance(xs[0], Mapping):
        keys = list(xs[0])
        x = {k: np.stack([np.asarray(s[k]) for s in xs]) for k in keys}
    else:
        x = {(names or ["input"])[0]: np.stack([np.asarray(s) for s in xs])}
    y = np.asarray(ys).reshape(-1).astype(np.int64) if ys and len(ys) == len(xs) else None
    return _from_mapping({**x, **({"y": y} if y is not None else {})}, names, source)


def _from_image_folder(folder: Path, names: list[str] | None,
                       input_shapes: Sequence[Sequence[int | None]] | None,
                       preprocess: Mapping[str, Any] | None) -> Dataset:
    spec = dict(preprocess or {})
    spec_file = folder / PREPROCESS_FILE
    if not preprocess and spec_file.exists():
        spec = read_user_yaml(spec_file, CalibrationError, "preprocessing spec") or {}
        if not isinstance(spec, dict):
            raise CalibrationError(f"{spec_file}: expected a mapping of preprocessing keys (size, channels, "
                                   "scale, mean, std). Received: " + type(spec).__name__ + ".")
    allowed = {"size", "channels", "channel_order", "scale", "mean", "std", "labels"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise CalibrationError(f"{spec_file if spec_file.exists() else folder}: unknown preprocessing "
                               f"key(s) {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed))}.")
    where = spec_file if spec_file.exists() and not preprocess else folder
    shape = tuple(input_shapes[0]) if input_shapes else None
    size = spec.get("size") or (list(shape[:2]) if shape and len(shape) == 3 and None not in shape[:2] else None)
    if size is None:
        raise CalibrationError(f"{folder}: the image size is unknown. Add 'size: [H, W]' to "
                               f"{PREPROCESS_FILE} or pass --image-size HxW.")
    size = _image_size(size, where)
    channels = _whole_number(spec.get("channels") or (shape[2] if shape and len(shape) == 3 and shape[2] else 3),
                             "channels", where)
    if channels not in (1, 3):
        raise CalibrationError(f"{folder}: expected channels 1 or 3. Received: {channels}.")
    order = spec.get("channel_order", "rgb")
    if not isinstance(order, str) or order.lower() not in ("rgb", "bgr"):
        raise CalibrationError(f"{where}: expected channel_order 'rgb' or 'bgr'. Received: {order!r}.")
    for key in ("scale", "mean", "std"):
        if key in spec:
            _numbers(spec[key], key, where, channels)
    if "std" in spec and np.any(np.asarray(spec["std"], np.float64) == 0):
        raise CalibrationError(f"{where}: std must not be 0 (it divides every pixel). Received: {spec['std']!r}.")
    labels_spec = spec.get("labels")
    if labels_spec is not None and (not isinstance(labels_spec, list)
                                    or not all(isinstance(v, str) for v in labels_spec)):
        raise CalibrationError(f"{where}: expected labels as a list of class folder names. "
                               f"Received: {labels_spec!r}.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise CalibrationError(f"{folder}: no PNG/JPEG images found. Put the images in the folder (class "
                               "subfolders give labels).")
    needed = len(files) * size[0] * size[1] * channels * 4
    if needed > MAX_IMAGE_DATA_BYTES:
        raise CalibrationError(f"{folder}: {len(files)} images at {size[0]}x{size[1]}x{channels} need "
                               f"{needed / 2**30:.1f} GiB as float32, more than the {MAX_IMAGE_DATA_BYTES >> 30} GiB "
                               "edgecompress reads. Use fewer images or a smaller size.")
    import warnings as _warnings

    from PIL import Image, UnidentifiedImageError

    scale = float(spec.get("scale", 1.0 / 255.0))
    mean = np.asarray(spec.get("mean", 0.0), np.float32)
    std = np.asarray(spec.get("std", 1.0), np.float32)
    class_dirs = sorted({p.parent.name for p in files if p.parent != folder})
    label_of = {name: i for i, name in enumerate(spec.get("labels") or class_dirs)}
    images, labels = [], []
    for path in files:
        try:
            with _warnings.catch_warnings():
                # PIL only warns between 1x and 2x its pixel limit: a bomb either way
                _warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    img = img.convert("L" if channels == 1 else "RGB").resize((int(size[1]), int(size[0])))
                    arr = np.asarray(img, np.float32)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise CalibrationError(f"{path}: the image declares more pixels than Pillow's safety limit "
                                   f"({Image.MAX_IMAGE_PIXELS}): a decompression bomb? Remove it or shrink it.") from exc
        except (UnidentifiedImageError, OSError) as exc:
            raise CalibrationError(f"{path}: not a readable image ({exc}). Remove or replace it.") from exc
        if channels == 1:
            arr = arr[..., None]
        elif spec.get("channel_order", "rgb").lower() == "bgr":
            arr = arr[..., ::-1]
        images.append((arr * scale - mean) / std)
        if path.parent != folder and path.parent.name in label_of:
            labels.append(label_of[path.parent.name])
    y = np.asarray(labels, np.int64) if len(labels) == len(images) and labels else None
    return Dataset({(names or ["input"])[0]: np.stack(images).astype(np.float32)}, y, str(folder))


def _image_size(size: Any, where: Path) -> tuple[int, int]:
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise CalibrationError(f"{where}: expected size as [H, W] (two whole numbers). Received: {size!r}.")
    height, width = (_whole_number(v, "size", where) for v in size)
    if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
        raise CalibrationError(f"{where}: expected an image size between 1x1 and {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}. "
                               f"Received: {height}x{width}.")
    return height, width


def _whole_number(value: Any, key: str, where: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer)) or float(value) != int(value):
        raise CalibrationError(f"{where}: expected {key} as a whole number. Received: {value!r}.")
    return int(value)


def _numbers(value: Any, key: str, where: Path, channels: int) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    if (not values or len(values) not in (1, channels)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values)):
        raise CalibrationError(f"{where}: expected {key} as a finite number or a list of {channels}. "
                               f"Received: {value!r}.")


def _check(dataset: Dataset, names: list[str] | None,
           input_shapes: Sequence[Sequence[int | None]] | None, purpose: str) -> None:
    source = dataset.source
    if len(dataset) == 0:
        raise CalibrationError(f"{source}: the {purpose} data is empty. Provide at least "
                               f"{MIN_CALIBRATION_SAMPLES} samples.")
    counts = {k: v.shape[0] for k, v in dataset.x.items()}
    if len(set(counts.values())) > 1:
        raise CalibrationError(f"{source}: every input needs the same number of samples. Received: {counts}.")
    for i, (key, arr) in enumerate(list(dataset.x.items())):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
                or arr.dtype == np.bool_):
            raise CalibrationError(f"{source}: input '{key}' has dtype {arr.dtype}; expected numbers. "
                                   "Store float32 arrays.")
        arr = arr.astype(np.float32, copy=False)
        dataset.x[key] = arr
        if not np.all(np.isfinite(arr)):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise CalibrationError(f"{source}: input '{key}' contains {bad} NaN/Inf values. Clean the data "
                                   "before calibrating.")
        expected = _expected_shape(input_shapes, names, key, i)
        if expected is not None:
            got = tuple(arr.shape[1:])
            if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got, strict=False)):
                shown = "(" + ", ".join("?" if e is None else str(e) for e in expected) + ")"
                hint = _shape_hint(got, expected)
                raise CalibrationError(f"{source}: expected samples of shape {shown} for input '{key}'. "
                                       f"Received: shape={got}. {hint}")
    if dataset.y is not None and dataset.y.shape[0] != len(dataset):
        raise CalibrationError(f"{source}: {dataset.y.shape[0]} labels for {len(dataset)} samples. "
                               "Give one label per sample.")
    if purpose == "calibration":
        if len(dataset) < MIN_CALIBRATION_SAMPLES:
            raise CalibrationError(f"{source}: {len(dataset)} calibration samples is too few to choose "
                                   f"activation ranges; expected at least {MIN_CALIBRATION_SAMPLES} "
                                   f"(ideally {RECOMMENDED_CALIBRATION_SAMPLES}+). Add samples.")
        if len(dataset) < RECOMMENDED_CALIBRATION_SAMPLES:
            warnings.warn(f"{source}: only {len(dataset)} calibration samples; "
                          f"{RECOMMENDED_CALIBRATION_SAMPLES}+ give more stable int8 ranges.",
                          stacklevel=3)


def _expected_shape(input_shapes: Sequence[Sequence[int | None]] | None, names: list[str] | None,
                    key: str, position: int) -> tuple[int | None, ...] | None:
    if not input_shapes:
        return None
    if names and key in names:
        return tuple(input_shapes[names.index(key)])
    if position < len(input_shapes):
        return tuple(input_shapes[position])
    return None


def _shape_hint(got: tuple[int, ...], expected: tuple[int | None, ...]) -> str:
    if len(got) + 1 == len(expected) and expected[-1] == 1:
        return "Add the channel axis (x[..., None])."
    if len(got) == len(expected) and len(got) == 3 and got[0] == expected[-1]:
        return "The data looks channels-first (NCHW); transpose it to NHWC."
    return "Resize or reshape the data to the model's input shape."


def input_range_warning(calibration: Dataset, expected_range: tuple[float, float] | None) -> str | None:
    """A warning when the calibration values do not look like the values the model will see.

    Flags a span more than 10x wider or narrower than expected (e.g. [0, 255] against [0, 1]) and ranges that
    barely overlap (less than half of the narrower one is shared, e.g. [-1, 1] against [0, 1] passes, [-1, 0]
    against [0, 1] does not).

    Args:
        calibration: the calibration data (its first input is checked).
        expected_range: ``(min, max)`` the model expects, e.g. measured on the evaluation data; None skips the check.

    Returns:
        The warning sentence, or None.

    Example:
        >>> ds = Dataset({"input": np.full((2, 3), 255.0, np.float32)}, None, "calib.npz")
        >>> input_range_warning(ds, (0.0, 1.0)) is not None
        True
    """
    if expected_range is None:
        return None
    lo, hi = float(calibration.first.min()), float(calibration.first.max())
    e_lo, e_hi = float(expected_range[0]), float(expected_range[1])
    span, e_span = hi - lo, e_hi - e_lo
    overlap = min(hi, e_hi) - max(lo, e_lo)
    mismatch = ((e_span > 0 and span > 10 * e_span) or (span > 0 and e_span > 10 * span)
                or (min(span, e_span) > 0 and overlap < 0.5 * min(span, e_span)))
    if mismatch:
        return (f"{calibration.source}: calibration values span [{lo:g}, {hi:g}] but the model expects about "
                f"[{e_lo:g}, {e_hi:g}]; check the scaling (e.g. divide by 255) so calibration matches real inputs.")
    return None
