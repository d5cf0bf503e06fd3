"""The samples that cross every stage: arrays keyed by model input name, optional labels, where they came from.

``load.dataset`` reads files into a ``Dataset``; convert, validate and the runtimes consume it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgecompress.errors import CalibrationError

MIN_CALIBRATION_SAMPLES = 10
RECOMMENDED_CALIBRATION_SAMPLES = 100


@dataclasses.dataclass
class Dataset:
    """Samples for calibration or evaluation.

    Args:
        x: one float32 array per model input, keyed by input name, batch axis first.
        y: integer class labels (one per sample), or None.
        source: where the data came from, for messages and reports.

    Example:
        >>> ds = Dataset({"image": np.zeros((4, 8, 8, 1), np.float32)}, np.arange(4), "zeros")
        >>> len(ds)
        4
    """

    x: dict[str, np.ndarray]
    y: np.ndarray | None = None
    source: str = "<memory>"

    def __len__(self) -> int:
        return int(next(iter(self.x.values())).shape[0]) if self.x else 0

    @property
    def first(self) -> np.ndarray:
        """The array of the first (often only) input."""
        return next(iter(self.x.values()))

    def sample(self, i: int) -> dict[str, np.ndarray]:
        """One sample, each input with a batch axis of 1."""
        return {name: arr[i : i + 1] for name, arr in self.x.items()}

    def take(self, n: int) -> Dataset:
        """The first ``n`` samples."""
        return Dataset({k: v[:n] for k, v in self.x.items()}, None if self.y is None else self.y[:n], self.source)

    def subset(self, indices: np.ndarray) -> Dataset:
        """The samples at ``indices``."""
        return Dataset({k: v[indices] for k, v in self.x.items()},
                       None if self.y is None else self.y[indices], self.source)

    def shuffled(self, seed: int) -> Dataset:
        """The samples in a seeded random order."""
        return self.subset(np.random.default_rng(seed).permutation(len(self)))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "samples": len(self), "labels": self.y is not None,
                "inputs": {k: list(v.shape[1:]) for k, v in self.x.items()}}


def as_dataset(data: Any, source: str = "<memory>") -> Dataset:
    """``data`` as a ``Dataset`` without reading files: a ``Dataset``, arrays keyed by input name, or one array.

    Files, folders and callables are read (and checked) by ``edgecompress.load.dataset.load_data``.

    Example:
        >>> len(as_dataset(np.zeros((3, 4), np.float32)))
        3
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, np.ndarray):
        return Dataset({"input": data}, None, source)
    if isinstance(data, dict):
        return Dataset({str(k): np.asarray(v) for k, v in data.items()}, None, source)
    raise TypeError(f"expected a Dataset, a dict of arrays or an array. Received: {type(data).__name__}; read "
                    "files with edgecompress.load_data first.")


def match_inputs(input_details: list[dict[str, Any]], inputs: Any) -> list[Any]:
    """Order ``inputs`` (an array, or arrays keyed by input name) as the interpreter's ``input_details``.

    A key matches an input whose tensor name equals it, extends it (``serving_default_<key>:0``) or contains it:
    the converter decorates TFLite tensor names, so the match is lenient. Keras input names are not decorated:
    ``arrays_by_input_name`` matches those exactly.

    Raises:
        ValueError: an input has no array.
    """
    if not isinstance(inputs, Mapping):
        return [inputs]
    if len(input_details) == 1 and len(inputs) == 1:
        return [next(iter(inputs.values()))]
    ordered = []
    for detail in input_details:
        name = detail["name"]
        match = next((v for k, v in inputs.items() if k == name or name.startswith(f"serving_default_{k}")
                      or name.split(":")[0] == k), None)
        if match is None:
            match = next((v for k, v in inputs.items() if k in name), None)
        if match is None:
            raise ValueError(f"no input data for model input '{name}' (given: {', '.join(inputs)})")
        ordered.append(match)
    return ordered


def arrays_by_input_name(calibration: Any, names: list[str]) -> dict[str, np.ndarray]:
    """``calibration`` as one float32 array per Keras model input, keyed exactly by the names in ``names``.

    A single array (or a single-input ``Dataset``/dict, whatever its key) feeds a single-input model.

    Args:
        calibration: a ``Dataset``, a dict of arrays keyed by input name, or one array.
        names: the model's input names, in order.

    Returns:
        ``{name: float32 array}`` in the order of ``names``.

    Raises:
        CalibrationError: a model input has no array (every missing one is named).

    Example:
        >>> list(arrays_by_input_name(np.zeros((3, 4)), ["image"]))
        ['image']
    """
    x = getattr(calibration, "x", None)
    if x is None:
        if isinstance(calibration, dict):
            x = calibration
        else:
            x = {names[0]: np.asarray(calibration)}
    if len(names) == 1 and len(x) == 1:
        return {names[0]: np.asarray(next(iter(x.values())), np.float32)}
    missing = [n for n in names if n not in x]
    if missing:
        raise CalibrationError(f"calibration data: no samples for model input(s) {', '.join(missing)}. "
                               f"Received arrays: {', '.join(x)}. Key the arrays by input name.")
    return {n: np.asarray(x[n], np.float32) for n in names}
