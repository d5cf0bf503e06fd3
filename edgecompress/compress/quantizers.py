"""The quantization-aware training parts: per-layer configs, the weight and activation fake-quantizers, and the
layers that carry them (``QuantizeAnnotate``, ``QuantizeWrapper``, ``ActivationQuantizer``).

``edgecompress.compress.qat.quantize_model`` places them on a model. This module imports Keras when imported,
so its layers are registered (under the ``edgecompress`` package) before a QAT ``.keras`` file loads.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from edgecompress.errors import ConversionError
from edgecompress.graph import call_with_weights

_PACKAGE = "edgecompress"
EMA_DECAY = 0.99
_FIXED_RANGES = {"softmax": (0.0, 255.0 / 256.0), "sigmoid": (0.0, 255.0 / 256.0), "tanh": (-1.0, 127.0 / 128.0)}
# Layers whose int8 kernels keep the input's scale (or only move data): no quantizer of their own.
PASS_THROUGH = ("InputLayer", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
                "Flatten", "Reshape", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                "GaussianNoise", "GaussianDropout", "AlphaDropout", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
                "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "RepeatVector", "Identity",
                "Permute", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "ActivityRegularization",
                "StochasticDepth", "Concatenate")
# Weightless layers whose output gets its own quantizer.
OUTPUT_QUANTIZED = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "ReLU", "LeakyReLU", "ELU",
                    "Activation", "Softmax", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
                    "GlobalAveragePooling3D", "AveragePooling3D", "BatchNormalization", "LayerNormalization",
                    "GroupNormalization", "UnitNormalization", "Rescaling", "Normalization", "Resizing",
                    "UpSampling3D", "MultiHeadAttention", "GroupQueryAttention")
# Layers with weights: weight attribute -> per-channel axis (None: per tensor). Per channel only where the
# converter maps the axis onto the flatbuffer's output-channel axis (CONV_2D, DEPTHWISE_CONV_2D); the 1-D and
# transposed variants are reshaped around the 2-D kernels, so they stay per tensor.
WEIGHTED = {"Dense": {"kernel": None}, "Conv1D": {"kernel": None}, "Conv3D": {"kernel": None},
            "Conv1DTranspose": {"kernel": None}, "Conv2DTranspose": {"kernel": None},
            "Conv3DTranspose": {"kernel": None}, "DepthwiseConv1D": {"kernel": None},
            "SeparableConv1D": {"depthwise_kernel": None, "pointwise_kernel": None},
            "EinsumDense": {"kernel": None}, "Embedding": {"embeddings": None}, "PReLU": {"alpha": None},
            "LayerScale": {"gamma": None}}
# Layers that convert to an operator without an int8 kernel: QAT trains them, but conversion keeps that operator
# float, so ``int8_refusals`` names them before anyone converts. CONV_3D and CONV_3D_TRANSPOSE are registered for
# float32 only (tensorflow/lite/kernels/conv3d.cc); the TF 2.21 converter lowers LayerNormalization's mean
# subtraction to NEG, which has no int8 kernel (measured: tests/integration/test_qat_architectures.py).
NO_INT8_KERNEL = {"Conv3D": "CONV_3D", "Conv3DTranspose": "CONV_3D_TRANSPOSE", "LayerNormalization": "NEG"}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantizeConfig:
    """How one layer is quantized: which weights (and per which axis), and its output.

    Args:
        weights: weight attribute name -> per-channel axis of that weight, or None for per-tensor.
            Weights are symmetric int8 with zero point 0.
        quantize_output: give the layer's output its own moving-average fake-quant.
        output_range: a fixed ``(min, max)`` for the output instead of a tracked one.

    Example:
        >>> config = QuantizeConfig(weights={"kernel": None}, quantize_output=True)
        >>> config.get_config()["weights"]
        {'kernel': None}
    """

    def __init__(self, weights: dict[str, int | None] | None = None, quantize_output: bool = True,
                 output_range: tuple[float, float] | list[float] | None = None) -> None:
        self.weights = dict(weights or {})
        self.quantize_output = bool(quantize_output)
        self.output_range = tuple(output_range) if output_range is not None else None

    def get_config(self) -> dict[str, Any]:
        return {"weights": self.weights, "quantize_output": self.quantize_output,
                "output_range": list(self.output_range) if self.output_range else None}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QuantizeConfig:
        return cls(**config)


def _activation_name(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", "custom")


def default_config(layer: Any) -> QuantizeConfig | None:
    """Return the built-in ``QuantizeConfig`` for a Keras layer, or None for pass-through layers.

    Raises:
        ConversionError: the layer is not a known Keras layer; annotate it with ``quantize_annotate_layer``.
    """
    kind = type(layer).__name__
    if kind in PASS_THROUGH:
        return None
    if kind == "Conv2D":
        return QuantizeConfig({"kernel": -1})
    if kind == "DepthwiseConv2D":
        return QuantizeConfig({"kernel": -2 if layer.depth_multiplier == 1 else None})
    if kind == "SeparableConv2D":
        return QuantizeConfig({"depthwise_kernel": -2 if layer.depth_multiplier == 1 else None,
                               "pointwise_kernel": -1})
    if kind in WEIGHTED:
        return QuantizeConfig(dict(WEIGHTED[kind]))
    if kind == "Softmax" or (kind == "Activation" and _activation_name(layer) in _FIXED_RANGES):
        name = "softmax" if kind == "Softmax" else _activation_name(layer)
        return QuantizeConfig(output_range=_FIXED_RANGES[name])
    if kind in OUTPUT_QUANTIZED:
        return QuantizeConfig()
    raise ConversionError(
        f"layer '{layer.name}' ({kind}): expected a Keras layer with a known int8 mapping. Received: a layer "
        "quantize_model does not know. Wrap it with quantize_annotate_layer(layer, QuantizeConfig(...)) "
        "to say which weights and outputs to quantize.")


def int8_refusals(model: Any) -> list[dict[str, str]]:
    """The layers of ``model`` whose TFLite operator has no int8 kernel: ``{"layer", "kind", "op", "reason"}``.

    Example:
        >>> int8_refusals(model)  # doctest: +SKIP
        [{'layer': 'conv3d', 'kind': 'Conv3D', 'op': 'CONV_3D', 'reason': '...'}]
    """
    found = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        kind = type(inner).__name__
        if kind in NO_INT8_KERNEL:
            found.append({"layer": inner.name, "kind": kind, "op": NO_INT8_KERNEL[kind],
                          "reason": f"{kind} converts to {NO_INT8_KERNEL[kind]}, which has no int8 TFLite kernel"})
    return found


def _track(x: Any, min_var: Any, max_var: Any, ready: Any, training: bool) -> tuple[Any, Any]:
    """Return the range to quantize ``x`` with, updating the moving average when training."""
    if not training:
        return min_var, max_var
    batch_min = ops.minimum(ops.min(x), 0.0)
    batch_max = ops.maximum(ops.max(x), 0.0)
    new_min = ops.where(ready > 0, min_var * EMA_DECAY + batch_min * (1 - EMA_DECAY), batch_min)
    new_max = ops.where(ready > 0, max_var * EMA_DECAY + batch_max * (1 - EMA_DECAY), batch_max)
    min_var.assign(new_min)
    max_var.assign(new_max)
    ready.assign(ops.ones_like(ready))
    return new_min, new_max


def _fake_quant(x: Any, low: Any, high: Any) -> Any:
    # An all-zero tensor would give a zero scale; keep the range at least one LSB of 1e-6 wide.
    high = ops.maximum(high, low + 1e-6)
    return keras.quantizers.fake_quant_with_min_max_vars(x, low, high, num_bits=8, narrow_range=False)


def quantize_weight(weight: Any, axis: int | None) -> Any:
    """Symmetric narrow-range int8 fake quantization of a weight, per tensor or along ``axis``."""
    rank = len(weight.shape)
    if axis is None:
        bound = ops.max(ops.abs(weight))
    else:
        axis = axis % rank
        bound = ops.max(ops.abs(weight), axis=[i for i in range(rank) if i != axis])
    # A fully pruned channel has no range of its own; a tiny scale would make its int32 bias
    # (scale = input scale * weight scale) overflow, so give it a unit range (its weights stay 0).
    bound = ops.where(bound > 0, ops.maximum(bound, 1e-6), 1.0)
    return keras.quantizers.fake_quant_with_min_max_vars(weight, -bound, bound, num_bits=8, narrow_range=True,
                                                         axis=axis)


class _RangeMixin:
    def _add_range(self: Any, prefix: str) -> tuple[Any, Any, Any]:
        low = self.add_weight(name=f"{prefix}_min", shape=(), initializer=keras.initializers.Constant(-6.0),
                              trainable=False)
        high = self.add_weight(name=f"{prefix}_max", shape=(), initializer=keras.initializers.Constant(6.0),
                               trainable=False)
        ready = self.add_weight(name=f"{prefix}_ready", shape=(), initializer="zeros", trainable=False)
        return low, high, ready


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ActivationQuantizer(_RangeMixin, keras.layers.Layer):
    """Fake-quantizes a tensor with a moving-average range (a model input, or a Concatenate group).

    One instance called on several tensors gives them one shared scale: the Concatenate inputs and output
    (and the pass-through layers around them) use this, as the int8 CONCATENATION kernel requires.

    Example:
        >>> x = ActivationQuantizer()(keras.Input((8, 8, 1)))  # doctest: +SKIP
    """

    def build(self, input_shape: Any = None) -> None:
        self.range_min, self.range_max, self.range_ready = self._add_range("activation")
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        low, high = _track(inputs, self.range_min, self.range_max, self.range_ready, bool(training))
        return _fake_quant(inputs, low, high)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantizeAnnotate(keras.layers.Wrapper):
    """Marks a layer with the ``QuantizeConfig`` that ``quantize_model`` must use; computes the layer unchanged.

    Example:
        >>> layer = quantize_annotate_layer(MyLayer(), QuantizeConfig(weights={"w": None}))  # doctest: +SKIP
    """

    def __init__(self, layer: Any, quantize_config: QuantizeConfig | dict, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"quantize_annotate_{layer.name}")
        super().__init__(layer, **kwargs)
        self.quantize_config = (quantize_config if isinstance(quantize_config, QuantizeConfig)
                                else keras.saving.deserialize_keras_object(quantize_config))

    def build(self, input_shape: Any = None) -> None:
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return self.layer(inputs, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["quantize_config"] = keras.saving.serialize_keras_object(self.quantize_config)
        return config


def quantize_annotate_layer(layer: Any, quantize_config: QuantizeConfig | None = None) -> Any:
    """Annotate ``layer`` (typically a custom layer) with how ``quantize_model`` must quantize it.

    Args:
        layer: any Keras layer.
        quantize_config: the layer's ``QuantizeConfig``; None uses the built-in one for Keras layers.

    Returns:
        A ``QuantizeAnnotate`` wrapper to use in place of the layer when building the model.

    Example:
        >>> scaled = quantize_annotate_layer(ScaleLayer(), QuantizeConfig(weights={"scale": None}))  # doctest: +SKIP
    """
    return QuantizeAnnotate(layer, quantize_config if quantize_config is not None else default_config(layer))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantizeWrapper(_RangeMixin, keras.layers.Wrapper):
    """Runs a layer with fake-quantized weights and output (optionally with a folded BatchNormalization).

    Args:
        layer: the layer to quantize.
        quantize_config: its ``QuantizeConfig``.
        batch_norm: a BatchNormalization folded into this layer's kernel and bias (Conv2D, DepthwiseConv2D, Dense,
            SeparableConv2D's pointwise kernel).
        activation: an activation split out of the layer (e.g. softmax), computed after the layer's own
            quantizer; the layer itself then runs with a linear activation.
        preserve: ``"sparsity"`` and/or ``"clusters"``: keep the kernel's zeros / shared values.

    Example:
        >>> QuantizeWrapper(keras.layers.Dense(10), QuantizeConfig({"kernel": None}))  # doctest: +SKIP
    """

    def __init__(self, layer: Any, quantize_config: QuantizeConfig | dict, batch_norm: Any = None,
                 activation: str | None = None, preserve: Any = (),
                 **kwargs: Any) -> None:
        kwargs.setdefault("name", f"quant_{layer.name}")
        super().__init__(layer, **kwargs)
        self.quantize_config = (quantize_config if isinstance(quantize_config, QuantizeConfig)
                                else keras.saving.deserialize_keras_object(quantize_config))
        if isinstance(batch_norm, dict):
            batch_norm = keras.saving.deserialize_keras_object(batch_norm)
        self.batch_norm = batch_norm
        self.split_activation = activation
        self.preserve = tuple(preserve)

    def build(self, input_shape: Any = None) -> None:
        if not self.layer.built:
            self.layer.build(input_shape)
        if self.batch_norm is not None and not self.batch_norm.built:
            self.batch_norm.build(self.layer.compute_output_shape(input_shape))
        kernel = getattr(self.layer, "kernel", None) if self.preserve else None
        if "sparsity" in self.preserve and kernel is not None:
            self.keep = self.add_weight(name="keep", shape=kernel.shape, initializer="ones", trainable=False)
        if "clusters" in self.preserve and kernel is not None:
            self.centroids = self.add_weight(name="centroids", shape=(int(np.prod(kernel.shape)),),
                                             initializer="zeros", trainable=True)
            self.centroid_count = self.add_weight(name="centroid_count", shape=(), dtype="int32",
                                                  initializer="zeros", trainable=False)
            self.assignment = self.add_weight(name="assignment", shape=kernel.shape, dtype="int32",
                                              initializer="zeros", trainable=False)
        if self.split_activation is not None or type(self.layer).__name__ == "BatchNormalization":
            self.pre_min, self.pre_max, self.pre_ready = self._add_range("pre_activation")
        if self.quantize_config.quantize_output:
            self.out_min, self.out_max, self.out_ready = self._add_range("output")
        self.built = True

    def capture_preserved(self) -> None:
        """Record the current kernel's zeros and shared values as the ones QAT must keep."""
        kernel = ops.convert_to_numpy(self.layer.kernel)
        if "sparsity" in self.preserve:
            self.keep.assign((kernel != 0).astype(np.float32))
        if "clusters" in self.preserve:
            values, inverse = np.unique(kernel, return_inverse=True)
            table = np.zeros(self.centroids.shape, np.float32)
            table[: values.size] = values
            self.centroids.assign(table)
            self.centroid_count.assign(values.size)
            self.assignment.assign(inverse.reshape(kernel.shape).astype(np.int32))

    def _kernel_value(self) -> Any:
        kernel = self.layer.kernel
        value = kernel
        if "clusters" in self.preserve:
            value = ops.take(self.centroids, self.assignment)
        if "sparsity" in self.preserve:
            value = value * self.keep
        return value

    def _folded(self, kernel: Any) -> tuple[Any, Any]:
        bn = self.batch_norm
        depthwise = type(self.layer).__name__ == "DepthwiseConv2D"
        channels = kernel.shape[-2] * kernel.shape[-1] if depthwise else kernel.shape[-1]
        gamma = bn.gamma if bn.scale else ops.ones((channels,))
        beta = bn.beta if bn.center else ops.zeros((channels,))
        factor = gamma / ops.sqrt(bn.moving_variance + bn.epsilon)
        bias = self.layer.bias if self.layer.use_bias else ops.zeros((channels,))
        folded_bias = beta + (bias - bn.moving_mean) * factor
        if depthwise:
            factor = ops.reshape(factor, kernel.shape[-2:])
        return kernel * factor, folded_bias

    def _standalone_batch_norm(self, inputs: Any, training: bool) -> Any:
        # The converter lowers an unfolded BatchNormalization to MUL + ADD with constant operands; simulate
        # both int8 operators and both constants so the Keras model rounds where the flatbuffer does.
        bn = self.layer
        channels = inputs.shape[bn.axis]
        gamma = bn.gamma if bn.scale else ops.ones((channels,))
        beta = bn.beta if bn.center else ops.zeros((channels,))
        factor = gamma / ops.sqrt(bn.moving_variance + bn.epsilon)
        offset = beta - bn.moving_mean * factor
        scaled = inputs * _fake_quant(factor, ops.minimum(ops.min(factor), 0.0), ops.maximum(ops.max(factor), 0.0))
        low, high = _track(scaled, self.pre_min, self.pre_max, self.pre_ready, training)
        scaled = _fake_quant(scaled, low, high)
        shifted = scaled + _fake_quant(offset, ops.minimum(ops.min(offset), 0.0), ops.maximum(ops.max(offset), 0.0))
        return self._quantize_output(shifted, training)

    def call(self, inputs: Any, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        # Extra positional arguments: MultiHeadAttention(query, value) takes two tensors.
        training = bool(training)
        if type(self.layer).__name__ == "BatchNormalization":
            return self._standalone_batch_norm(inputs, training)
        substitutes = []
        extra_bias = None
        for name, axis in self.quantize_config.weights.items():
            variable = getattr(self.layer, name)
            value = self._kernel_value() if name == "kernel" else variable
            # A separable convolution's BatchNormalization folds into its pointwise (last) kernel.
            if name in ("kernel", "pointwise_kernel") and self.batch_norm is not None:
                value, folded_bias = self._folded(value)
                if self.layer.use_bias:
                    substitutes.append((self.layer.bias, folded_bias))
                else:
                    extra_bias = folded_bias
            substitutes.append((variable, quantize_weight(value, axis)))
        outputs = call_with_weights(self.layer, substitutes, inputs, *args, **kwargs)
        if extra_bias is not None:
            outputs = outputs + extra_bias
        if self.split_activation is not None:
            low, high = _track(outputs, self.pre_min, self.pre_max, self.pre_ready, training)
            outputs = keras.activations.get(self.split_activation)(_fake_quant(outputs, low, high))
        return self._quantize_output(outputs, training)

    def _quantize_output(self, outputs: Any, training: bool) -> Any:
        config = self.quantize_config
        if not config.quantize_output:
            return outputs
        if config.output_range is not None:
            return _fake_quant(outputs, *config.output_range)
        low, high = _track(outputs, self.out_min, self.out_max, self.out_ready, training)
        return _fake_quant(outputs, low, high)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "quantize_config": keras.saving.serialize_keras_object(self.quantize_config),
            "batch_norm": (keras.saving.serialize_keras_object(self.batch_norm)
                           if self.batch_norm is not None else None),
            "activation": self.split_activation,
            "preserve": list(self.preserve),
        })
        return config
