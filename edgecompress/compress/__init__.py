"""The compression stage: pruning, clustering, quantization-aware training, distillation and recipes.

Each module imports Keras when imported (its wrappers must be registered for ``.keras`` loading), so this
package imports nothing until asked. ``register_serializables()`` imports every module that defines
wrappers; call it before ``keras.saving.load_model`` on a compressed model that is still wrapped.
"""

from __future__ import annotations

import importlib


def register_serializables() -> None:
    """Import the modules whose Keras layers a compressed ``.keras`` file may contain.

    Example:
        >>> register_serializables()  # doctest: +SKIP
    """
    for name in ("prune", "cluster", "quantizers", "qat", "distill"):
        importlib.import_module(f"edgecompress.compress.{name}")
