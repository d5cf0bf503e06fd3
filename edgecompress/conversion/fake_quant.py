"""Freezing ranges into the graph: frozen fake-quant nodes after the inputs and layer outputs.

The converter then emits exactly those scales (``edgecompress.conversion.ptq.scale_check`` verifies it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgecompress.conversion.points import _functional


def _frozen_fake_quant_class() -> type:
    """The Keras layer (defined lazily: Keras is a heavy import) that fake-quantizes with a fixed range."""
    global _FROZEN_FAKE_QUANT
    if _FROZEN_FAKE_QUANT is not None:
        return _FROZEN_FAKE_QUANT
    import keras

    @keras.saving.register_keras_serializable(package="edgecompress")
    class FrozenFakeQuant(keras.layers.Layer):
        """Fake-quantize to int8 over a fixed ``[min_value, max_value]``: the converter emits exactly that range."""

        def __init__(self, min_value: float, max_value: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.min_value = float(min_value)
            self.max_value = float(max_value)

        def call(self, inputs: Any) -> Any:
            return keras.quantizers.fake_quant_with_min_max_vars(inputs, self.min_value, self.max_value,
                                                                 num_bits=8)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "min_value": self.min_value, "max_value": self.max_value}

    _FROZEN_FAKE_QUANT = FrozenFakeQuant
    return FrozenFakeQuant


_FROZEN_FAKE_QUANT: type | None = None


def fake_quantized_model(model: Any, ranges: dict[str, tuple[float, float]],
                         weight_updates: dict[str, list[np.ndarray]] | None = None) -> Any:
    """A copy of ``model`` with a frozen fake-quant node after every input/layer output named in ``ranges``.

    Layers are shared with ``model`` (no weights are copied) except those in ``weight_updates``, which are
    fresh copies carrying the given weights (the original model is never modified).

    Args:
        model: a Keras 3 model or ``LoadedModel``.
        ranges: ``{input or layer name: (min, max)}``.
        weight_updates: ``{layer name: full weight list}`` (e.g. bias-corrected biases).

    Returns:
        A functional Keras model.

    Example:
        >>> fq = fake_quantized_model(model, {"input": (0.0, 1.0), "conv1": (0.0, 4.0)})  # doctest: +SKIP
    """
    import keras

    fn = _functional(model)
    fake_quant = _frozen_fake_quant_class()
    updates = weight_updates or {}
    copies: dict[str, Any] = {}
    quantized_inputs: dict[int, Any] = {}

    def clone(layer: Any) -> Any:
        if layer.name not in updates:
            return layer
        copies[layer.name] = layer.__class__.from_config(layer.get_config())
        return copies[layer.name]

    def quantize_input(tensor: Any) -> Any:
        if not isinstance(tensor, keras.KerasTensor):
            return tensor
        history = getattr(tensor, "_keras_history", None)
        layer = history.operation if history is not None else None
        if type(layer).__name__ != "InputLayer" or layer.name not in ranges:
            return tensor
        if id(tensor) not in quantized_inputs:
            lo, hi = ranges[layer.name]
            quantized_inputs[id(tensor)] = fake_quant(lo, hi, name=f"{layer.name}_fake_quant")(tensor)
        return quantized_inputs[id(tensor)]

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        args = keras.tree.map_structure(quantize_input, args)
        kwargs = keras.tree.map_structure(quantize_input, kwargs)
        out = layer(*args, **kwargs)
        if layer.name in ranges:
            lo, hi = ranges[layer.name]
            out = fake_quant(lo, hi, name=f"{layer.name}_fake_quant")(out)
        return out

    result = keras.models.clone_model(fn, clone_function=clone, call_function=call)
    for name, layer in copies.items():
        layer.set_weights(updates[name])
    return result
