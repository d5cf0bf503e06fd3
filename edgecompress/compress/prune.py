"""Magnitude pruning for Keras 3: wrappers, schedules, a training callback and ``strip_pruning``.

``prune_low_magnitude`` wraps each prunable layer (Conv1D, Conv2D, DepthwiseConv2D, Conv2DTranspose, Dense)
in ``PruneLowMagnitude``, which multiplies the kernel by a binary mask on every call. ``UpdatePruningStep``
advances each wrapper's step at every training batch and, when the schedule says so, recomputes the mask
from the magnitudes of the surviving weights (a pruned weight stays pruned). ``strip_pruning`` returns a
plain model whose kernels hold the zeros, ready for conversion.

Mask updates run eagerly in the callback (NumPy), not in the training graph: the schedule decides
*when*, the mask decides *which*, and the sparsity reached is exact (``round(sparsity * n)`` zeros,
counted in blocks or m-of-n groups when those are asked for).

This module imports Keras when it is imported: its wrapper must be registered before a pruned ``.keras``
file loads. Import it only where pruning is used (the CLI does so inside the ``compress`` command).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from edgecompress.errors import RecipeError
from edgecompress.graph import call_with_weights, flat_layers, is_kernel_layer, map_layers

_PACKAGE = "edgecompress"


class PruningSchedule:
    """When to prune and to which sparsity; subclasses implement ``sparsity_at(step)`` and ``get_config``."""

    begin_step: int
    end_step: int
    frequency: int

    def should_prune(self, step: int) -> bool:
        """Return True if the mask is recomputed at training step ``step`` (0-based batch count)."""
        if step < self.begin_step or (self.end_step >= 0 and step > self.end_step):
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step

    def sparsity_at(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PruningSchedule:
        return cls(**config)

    def _check_steps(self) -> None:
        if self.begin_step < 0 or self.frequency < 1:
            raise RecipeError(
                f"{type(self).__name__}: expected begin_step >= 0 and frequency >= 1. Received: "
                f"begin_step={self.begin_step}, frequency={self.frequency}. Use non-negative step counts.")
        if self.end_step != -1 and self.end_step < self.begin_step:
            raise RecipeError(
                f"{type(self).__name__}: expected end_step >= begin_step (or -1 for no end). Received: "
                f"begin_step={self.begin_step}, end_step={self.end_step}. Swap or fix the steps.")


def _check_fraction(owner: str, name: str, value: float) -> float:
    if not (isinstance(value, int | float) and 0.0 <= float(value) < 1.0):
        raise RecipeError(f"{owner}: expected {name} in [0, 1). Received: {name}={value!r}. "
                          "Give the fraction of weights to zero, e.g. 0.75.")
    return float(value)


class ConstantSparsity(PruningSchedule):
    """Prune to ``target_sparsity`` at ``begin_step`` and every ``frequency`` steps until ``end_step``.

    Args:
        target_sparsity: fraction of weights set to zero, in [0, 1).
        begin_step: first training step (batch) at which the mask is computed.
        end_step: last step at which it is recomputed; -1 means until training ends.
        frequency: steps between mask updates.

    Example:
        >>> ConstantSparsity(0.5, begin_step=0).sparsity_at(10)
        0.5
    """

    def __init__(self, target_sparsity: float, begin_step: int = 0, end_step: int = -1,
                 frequency: int = 100) -> None:
        self.target_sparsity = _check_fraction("ConstantSparsity", "target_sparsity", target_sparsity)
        self.begin_step, self.end_step, self.frequency = int(begin_step), int(end_step), int(frequency)
        self._check_steps()

    def sparsity_at(self, step: int) -> float:
        return self.target_sparsity if step >= self.begin_step else 0.0

    def get_config(self) -> dict[str, Any]:
        return {"target_sparsity": self.target_sparsity, "begin_step": self.begin_step,
                "end_step": self.end_step, "frequency": self.frequency}


class PolynomialDecay(PruningSchedule):
    """Raise sparsity from ``initial_sparsity`` to ``final_sparsity`` between two steps (Zhu & Gupta 2017).

    ``s(t) = final + (initial - final) * (1 - (t - begin) / (end - begin)) ** power``; the final
    sparsity is reached exactly at ``end_step`` (the mask is always recomputed there).

    Args:
        initial_sparsity: sparsity at ``begin_step``, in [0, 1).
        final_sparsity: sparsity at and after ``end_step``, in [0, 1).
        begin_step: first step of the ramp.
        end_step: last step of the ramp (required, > begin_step).
        power: exponent of the ramp (3 prunes fast early and gently late).
        frequency: steps between mask updates.

    Example:
        >>> PolynomialDecay(0.0, 0.75, begin_step=0, end_step=100).sparsity_at(100)
        0.75
    """

    def __init__(self, initial_sparsity: float, final_sparsity: float, begin_step: int, end_step: int,
                 power: float = 3, frequency: int = 100) -> None:
        self.initial_sparsity = _check_fraction("PolynomialDecay", "initial_sparsity", initial_sparsity)
        self.final_sparsity = _check_fraction("PolynomialDecay", "final_sparsity", final_sparsity)
        self.begin_step, self.end_step, self.frequency = int(begin_step), int(end_step), int(frequency)
        self.power = float(power)
        self._check_steps()
        if self.end_step <= self.begin_step:
            raise RecipeError(
                f"PolynomialDecay: expected end_step > begin_step. Received: begin_step={self.begin_step}, "
                f"end_step={self.end_step}. Set end_step to the step where final_sparsity must be reached.")

    def sparsity_at(self, step: int) -> float:
        if step < self.begin_step:
            return 0.0
        progress = min(1.0, (step - self.begin_step) / (self.end_step - self.begin_step))
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1.0 - progress) ** self.power

    def get_config(self) -> dict[str, Any]:
        return {"initial_sparsity": self.initial_sparsity, "final_sparsity": self.final_sparsity,
                "begin_step": self.begin_step, "end_step": self.end_step, "power": self.power,
                "frequency": self.frequency}


SCHEDULES: dict[str, type[PruningSchedule]] = {"ConstantSparsity": ConstantSparsity,
                                               "PolynomialDecay": PolynomialDecay}


def _schedule_to_config(schedule: PruningSchedule) -> dict[str, Any]:
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def _schedule_from_config(config: dict[str, Any]) -> PruningSchedule:
    return SCHEDULES[config["class_name"]].from_config(config["config"])


def compute_mask(kernel: np.ndarray, sparsity: float, *, block_size: tuple[int, int] | None = None,
                 m_by_n: tuple[int, int] | None = None) -> np.ndarray:
    """Return a 0/1 mask of ``kernel``'s shape that zeros its smallest-magnitude weights.

    The kernel is viewed as a 2-D matrix ``(outputs, inputs)`` in the order the int8 flatbuffer stores it
    (output channel first, then kernel rows, columns and input channels). Unstructured: exactly
    ``round(sparsity * size)`` zeros. ``block_size=(r, c)``: blocks of that matrix ranked by mean magnitude,
    ``round(sparsity * blocks)`` blocks zeroed. ``m_by_n=(m, n)``: in each run of ``n`` consecutive inputs of
    one output, the ``n - m`` smallest are zeroed (``sparsity`` is ignored; it is ``1 - m / n``).

    Args:
        kernel: the layer's kernel (last axis = output channels).
        sparsity: fraction to zero, in [0, 1).
        block_size: optional block shape over the (outputs, inputs) matrix.
        m_by_n: optional (m, n) structured pattern, e.g. (2, 4).

    Returns:
        A float32 array of zeros and ones shaped like ``kernel``.

    Example:
        >>> compute_mask(np.array([[1.0, -3.0], [0.5, 2.0]]), 0.5).tolist()
        [[0.0, 1.0], [0.0, 1.0]]
    """
    magnitude = np.abs(np.asarray(kernel, dtype=np.float64))
    matrix = np.moveaxis(magnitude, -1, 0).reshape(magnitude.shape[-1], -1)
    if m_by_n is not None:
        m, n = m_by_n
        groups = matrix.reshape(matrix.shape[0], -1, n)
        order = np.argsort(-groups, axis=-1, kind="stable")
        keep = np.zeros_like(groups)
        np.put_along_axis(keep, order[..., :m], 1.0, axis=-1)
        mask_matrix = keep.reshape(matrix.shape)
    elif block_size is not None:
        rows, cols = block_size
        blocks = matrix.reshape(matrix.shape[0] // rows, rows, matrix.shape[1] // cols, cols).mean(axis=(1, 3))
        keep_blocks = _unstructured(blocks, sparsity)
        mask_matrix = np.repeat(np.repeat(keep_blocks, rows, axis=0), cols, axis=1)
    else:
        mask_matrix = _unstructured(matrix, sparsity)
    moved = mask_matrix.reshape(np.moveaxis(magnitude, -1, 0).shape)
    return np.moveaxis(moved, 0, -1).astype(np.float32)


def _unstructured(values: np.ndarray, sparsity: float) -> np.ndarray:
    flat = values.ravel()
    n_zero = int(round(sparsity * flat.size))
    keep = np.ones(flat.size)
    keep[np.argsort(flat, kind="stable")[:n_zero]] = 0.0
    return keep.reshape(values.shape)


def _check_structure(layer: Any, block_size: tuple[int, int] | None, m_by_n: tuple[int, int] | None) -> None:
    shape = tuple(layer.kernel.shape)
    outputs, inputs = shape[-1], math.prod(shape[:-1])
    if m_by_n is not None:
        m, n = m_by_n
        if not (0 < m < n) or inputs % n:
            raise RecipeError(
                f"{layer.name}: expected m_by_n=(m, n) with 0 < m < n and n dividing the {inputs} inputs per "
                f"output of kernel {shape}. Received: m_by_n={m_by_n}. Use (2, 4) on layers with a multiple "
                "of 4 inputs, or skip this layer.")
    if block_size is not None:
        rows, cols = block_size
        if rows < 1 or cols < 1 or outputs % rows or inputs % cols:
            raise RecipeError(
                f"{layer.name}: expected block_size=(rows, cols) dividing the ({outputs}, {inputs}) "
                f"output-by-input matrix of kernel {shape}. Received: block_size={block_size}. "
                "Choose a block that divides it, or skip this layer.")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PruneLowMagnitude(keras.layers.Wrapper):
    """Wraps a layer whose kernel is multiplied by a binary mask that ``UpdatePruningStep`` updates.

    Args:
        layer: a built Conv1D, Conv2D, DepthwiseConv2D, Conv2DTranspose or Dense layer.
        schedule: the ``PruningSchedule`` (or its serialized dict).
        block_size: optional block structure, see ``compute_mask``.
        m_by_n: optional m-of-n structure, see ``compute_mask``.

    Example:
        >>> wrapped = PruneLowMagnitude(keras.layers.Dense(4), ConstantSparsity(0.5))  # doctest: +SKIP
    """

    def __init__(self, layer: Any, schedule: PruningSchedule | dict, block_size: Any = None,
                 m_by_n: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        self.schedule = schedule if isinstance(schedule, PruningSchedule) else _schedule_from_config(schedule)
        self.block_size = tuple(block_size) if block_size is not None else None
        self.m_by_n = tuple(m_by_n) if m_by_n is not None else None

    def build(self, input_shape: Any = None) -> None:
        super().build(input_shape)
        kernel = self.layer.kernel
        self.mask = self.add_weight(name="mask", shape=kernel.shape, initializer="ones", trainable=False)
        self.pruning_step = self.add_weight(name="pruning_step", shape=(), initializer="zeros",
                                            dtype="int64", trainable=False)
        self.built = True

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        kernel = self.layer.kernel
        return call_with_weights(self.layer, [(kernel, kernel * self.mask)], inputs, *args, **kwargs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    def update_mask(self, step: int) -> bool:
        """Recompute the mask if the schedule prunes at ``step``; return True if it did."""
        if not self.schedule.should_prune(step):
            return False
        mask = compute_mask(self.pruned_kernel(), self.schedule.sparsity_at(step),
                            block_size=self.block_size, m_by_n=self.m_by_n)
        self.mask.assign(mask * keras.ops.convert_to_numpy(self.mask))
        return True

    def pruned_kernel(self) -> np.ndarray:
        """Return the kernel with the mask applied, as NumPy."""
        return keras.ops.convert_to_numpy(self.layer.kernel) * keras.ops.convert_to_numpy(self.mask)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"schedule": _schedule_to_config(self.schedule),
                       "block_size": list(self.block_size) if self.block_size else None,
                       "m_by_n": list(self.m_by_n) if self.m_by_n else None})
        return config


def _skipped(layers: list[Any], skip: tuple[str, ...] | list[str]) -> set[str]:
    names: set[str] = set()
    for entry in skip:
        if entry == "first" and layers:
            names.add(layers[0].name)
        elif entry == "last" and layers:
            names.add(layers[-1].name)
        else:
            names.add(entry)
    return names


def prune_low_magnitude(model: Any, schedule: PruningSchedule, *, block_size: tuple[int, int] | None = None,
                        m_by_n: tuple[int, int] | None = None,
                        skip: tuple[str, ...] | list[str] = ("first", "last")) -> Any:
    """Return a copy of ``model`` whose prunable layers are wrapped for magnitude pruning.

    Train the result with ``UpdatePruningStep()`` in the callbacks, then call ``strip_pruning``.

    Args:
        model: a built Sequential or functional Keras model.
        schedule: a ``ConstantSparsity`` or ``PolynomialDecay``.
        block_size: prune ``(rows, cols)`` blocks of the output-by-input kernel matrix instead of weights.
        m_by_n: structured pattern, e.g. ``(2, 4)``: keep ``m`` of every ``n`` consecutive inputs.
        skip: prunable layers left dense: ``"first"``, ``"last"`` (the first/last prunable layer, which are
            usually small and sensitive) and/or layer names. ``()`` prunes every prunable layer.

    Returns:
        A new model; the input model is not modified.

    Example:
        >>> pruned = prune_low_magnitude(model, PolynomialDecay(0.0, 0.75, 0, 200, frequency=20))  # doctest: +SKIP
        >>> pruned.fit(x, y, epochs=3, callbacks=[UpdatePruningStep()])  # doctest: +SKIP
        >>> plain = strip_pruning(pruned)  # doctest: +SKIP
    """
    if block_size is not None and m_by_n is not None:
        raise RecipeError(f"prune_low_magnitude: expected either block_size or m_by_n. Received both: "
                          f"block_size={block_size}, m_by_n={m_by_n}. Choose one structure.")
    if not isinstance(schedule, PruningSchedule):
        raise RecipeError(f"prune_low_magnitude: expected a ConstantSparsity or PolynomialDecay schedule. "
                          f"Received: {type(schedule).__name__}. Build one from edgecompress.compress.prune.")
    prunable = [layer for layer in flat_layers(model) if is_kernel_layer(layer)]
    skipped = _skipped(prunable, skip)
    unknown = skipped - {layer.name for layer in prunable}
    if unknown:
        raise RecipeError(f"prune_low_magnitude: expected skip entries 'first', 'last' or names of prunable "
                          f"layers. Received unknown names {sorted(unknown)}; prunable layers are "
                          f"{[layer.name for layer in prunable]}.")
    for layer in prunable:
        if layer.name not in skipped:
            _check_structure(layer, block_size, m_by_n)

    def replace(layer: Any) -> Any:
        if is_kernel_layer(layer) and layer.name not in skipped:
            return PruneLowMagnitude(layer, schedule, block_size=block_size, m_by_n=m_by_n)
        return None

    return map_layers(model, replace)


def pruning_wrappers(model: Any) -> list[Any]:
    """Return the ``PruneLowMagnitude`` wrappers of ``model`` (descending into nested models)."""
    return [layer for layer in flat_layers(model) if isinstance(layer, PruneLowMagnitude)]


class UpdatePruningStep(keras.callbacks.Callback):
    """Advances every pruning wrapper's step at each training batch and updates masks on schedule.

    Example:
        >>> pruned.fit(x, y, epochs=2, callbacks=[UpdatePruningStep()])  # doctest: +SKIP
    """

    def on_train_begin(self, logs: Any = None) -> None:
        self._wrappers = pruning_wrappers(self.model)
        if not self._wrappers:
            raise RecipeError("UpdatePruningStep: expected a model from prune_low_magnitude. Received: a "
                              "model without pruning wrappers. Wrap it with prune_low_magnitude first.")

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        for wrapper in self._wrappers:
            wrapper.update_mask(int(wrapper.pruning_step.numpy()))

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        for wrapper in self._wrappers:
            wrapper.pruning_step.assign(wrapper.pruning_step + 1)


def strip_pruning(model: Any) -> Any:
    """Return a plain Keras model with each pruning wrapper replaced by its layer, zeros in the kernel.

    Args:
        model: a model from ``prune_low_magnitude`` (trained or not).

    Returns:
        A model of plain Keras layers; its kernels hold exactly the pruned zeros.

    Example:
        >>> plain = strip_pruning(pruned)  # doctest: +SKIP
    """
    def replace(layer: Any) -> Any:
        if isinstance(layer, PruneLowMagnitude):
            layer.layer.kernel.assign(layer.pruned_kernel())
            return layer.layer
        return None

    return map_layers(model, replace)


def kernel_sparsity(model: Any) -> dict[str, float]:
    """Return the fraction of exact zeros in each prunable kernel of a (stripped or wrapped) model."""
    result: dict[str, float] = {}
    for layer in flat_layers(model):
        if isinstance(layer, PruneLowMagnitude):
            kernel = layer.pruned_kernel()
            result[layer.layer.name] = float(np.mean(kernel == 0))
        elif is_kernel_layer(layer):
            result[layer.name] = float(np.mean(keras.ops.convert_to_numpy(layer.kernel) == 0))
    return result
