"""Refuse zip archives (``.keras`` models, ``.npz`` data) whose declared unpacked size is a zip bomb's.

Real models and arrays compress poorly (weights look random), so an archive that claims to unpack to more than
``MAX_RATIO`` times its own size and more than ``MIN_SUSPICIOUS_BYTES`` is refused before anything is inflated.

The same holds one level down, inside the HDF5 weights (``model.weights.h5`` in a ``.keras``, or a legacy
``.h5``): a dataset can declare a shape it never stores (HDF5 allocates late and returns the fill value), and
reading it makes h5py allocate the whole declared array. ``undeclared_weight_problem`` compares every dataset's
declared bytes with the bytes it stores before Keras reads one.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

MAX_RATIO = 100
MIN_SUSPICIOUS_BYTES = 256 << 20
# a TFLite flatbuffer cannot exceed 2 GiB, so weights beyond that can never become an edge model
MAX_WEIGHT_BYTES = 2 << 30
# HDF5 metadata (headers, B-trees) in a dataset's storage figure: a dataset may store this much less than declared
_STORAGE_SLACK = 4096


def declared_expansion(path: Path) -> tuple[int, int]:
    """``(declared unpacked bytes, bytes on disk)`` of a zip archive, read from its directory only."""
    with zipfile.ZipFile(path) as archive:
        declared = sum(info.file_size for info in archive.infolist())
    return declared, path.stat().st_size


def is_zip_bomb(path: Path) -> bool:
    """True when the archive declares far more unpacked data than its size can honestly hold."""
    declared, size = declared_expansion(path)
    return declared > MIN_SUSPICIOUS_BYTES and declared > MAX_RATIO * max(size, 1)


def undeclared_weight_problem(h5: Any) -> str | None:
    """Why an open ``h5py.File`` of weights must not be read, or None.

    A dataset is refused when it declares more bytes than it stores (more than ``MAX_RATIO`` times more for a
    compressed one), when it keeps its data outside the file (external or virtual storage could read any local
    file), or when all datasets together declare more than ``MAX_WEIGHT_BYTES``.

    Example:
        >>> import h5py, io  # doctest: +SKIP
        >>> undeclared_weight_problem(h5py.File(io.BytesIO(data), "r"))  # doctest: +SKIP
        'dataset layers/dense/vars/0 declares 1600000000 bytes (shape (20000, 20000), float32) but stores 0'
    """
    import h5py

    datasets: list[tuple[str, Any]] = []
    h5.visititems(lambda name, item: datasets.append((name, item)) if isinstance(item, h5py.Dataset) else None)
    total = 0
    for name, dataset in datasets:
        declared = int(dataset.size or 0) * dataset.dtype.itemsize
        total += declared
        if dataset.external or dataset.is_virtual:
            return f"dataset {name} keeps its data outside the file (external or virtual HDF5 storage)"
        stored = dataset.id.get_storage_size()
        allowed = stored * MAX_RATIO if dataset.compression else stored + _STORAGE_SLACK
        if declared > allowed:
            return (f"dataset {name} declares {declared} bytes (shape {dataset.shape}, {dataset.dtype}) but stores "
                    f"{stored}")
    if total > MAX_WEIGHT_BYTES:
        return f"its weights declare {total} bytes in all, more than the {MAX_WEIGHT_BYTES} an edge model can hold"
    return None
