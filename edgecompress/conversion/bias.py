"""Bias correction: remove the mean output shift that int8 per-channel weight rounding causes in Conv/Dense."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgecompress.capture import captured_output
from edgecompress.conversion.activations import _batches, _input_arrays
from edgecompress.conversion.fake_quant import fake_quantized_model
from edgecompress.conversion.points import _WEIGHT_LAYERS, _functional, _graph


def quantize_weights_per_channel(kernel: np.ndarray, reduce_axes: tuple[int, ...]) -> np.ndarray:
    """Simulate TFLite's int8 weight quantization in float: symmetric, per channel, levels -127..127.

    Args:
        kernel: the float weights.
        reduce_axes: the axes one channel's scale is computed over (all but the channel axes).

    Returns:
        The de-quantized weights (same shape).

    Example:
        >>> w = np.array([[0.5, -1.0], [0.25, 0.1]])
        >>> bool(np.allclose(quantize_weights_per_channel(w, (0,)), w, atol=0.01))
        True
    """
    scale = np.max(np.abs(kernel), axis=reduce_axes, keepdims=True) / 127.0
    safe = np.where(scale > 0, scale, 1.0)
    return np.where(scale > 0, np.clip(np.round(kernel / safe), -127, 127) * safe, 0.0)


def _weighted_layers(fn: Any) -> list[tuple[Any, Any, Any | None]]:
    """``(node, layer, batch_norm)`` for every Conv/Dense layer whose output shift can be corrected."""
    nodes, consumers, calls = _graph(fn)
    found = []
    for node in nodes:
        layer = node.operation
        cls = type(layer).__name__
        if cls not in _WEIGHT_LAYERS or calls[layer.name] > 1 or getattr(layer, "groups", 1) != 1:
            continue
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            continue
        users = consumers.get(layer.name, [])
        bn = users[0] if len(users) == 1 and type(users[0]).__name__ == "BatchNormalization" else None
        if bn is not None and (calls[bn.name] > 1 or bn.axis not in (-1, len(node.outputs[0].shape) - 1)):
            bn = None
        found.append((node, layer, bn))
    return found


def _output_shift(layer: Any, mean_input: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Mean change of the layer's output per channel when its kernel changes by ``delta`` (it is linear)."""
    from keras import ops

    cls = type(layer).__name__
    x = mean_input[None].astype(np.float32)
    if cls == "Dense":
        out = x @ delta
    elif cls == "DepthwiseConv2D":
        out = ops.convert_to_numpy(ops.depthwise_conv(x, delta.astype(np.float32), strides=layer.strides,
                                                      padding=layer.padding, dilation_rate=layer.dilation_rate))
    else:
        out = ops.convert_to_numpy(ops.conv(x, delta.astype(np.float32), strides=layer.strides,
                                            padding=layer.padding, dilation_rate=layer.dilation_rate))
    return np.asarray(out, np.float64).reshape(-1, out.shape[-1]).mean(axis=0)


def bias_corrections(model: Any, calibration: Any, *, max_samples: int | None = None
                     ) -> tuple[dict[str, list[np.ndarray]], dict[str, Any]]:
    """Correct each Conv/Dense layer's bias for the mean output shift its int8 weights introduce.

    The shift ``E[W_q x] - E[W x]`` per output channel is measured on the calibration data with float
    activations and the weights quantized as the converter will (per-channel symmetric). It is subtracted
    from the layer's bias, or, for a bias-free convolution followed by BatchNormalization, added to the
    normalization's moving mean (per-channel quantization commutes with the folding, so the shift is the same).

    Args:
        model: a Keras 3 model or ``LoadedModel``.
        calibration: a ``Dataset``, an array or a dict of arrays keyed by input name.
        max_samples: use at most this many samples.

    Returns:
        ``(weight_updates, summary)``: full weight lists for ``fake_quantized_model(..., weight_updates=...)``
        and a JSON-ready summary (layers corrected, skipped, largest shift).

    Example:
        >>> updates, summary = bias_corrections(model, calibration)  # doctest: +SKIP
        >>> summary["layers"]  # doctest: +SKIP
        4
    """
    import keras

    fn = _functional(model)
    names, arrays = _input_arrays(fn, calibration)
    count = len(next(iter(arrays.values())))
    count = min(count, max_samples) if max_samples is not None else count
    targets = _weighted_layers(fn)
    skipped = [layer.name for _, layer, bn in targets if not layer.use_bias and bn is None]
    targets = [(node, layer, bn) for node, layer, bn in targets if layer.use_bias or bn is not None]
    if not targets:
        return {}, {"layers": 0, "skipped": skipped, "max_abs_shift": 0.0}
    watched = [node.arguments.keras_tensors[0] for node, _, _ in targets]
    watcher = keras.Model(fn.inputs, watched)
    sums = [np.zeros(t.shape[1:], np.float64) for t in watched]
    with captured_output():
        for start, stop in _batches(count, []):
            batch = [arrays[name][start:stop] for name in names]
            outs = watcher.predict_on_batch(batch if len(batch) > 1 else batch[0])
            outs = outs if isinstance(outs, list | tuple) else [outs]
            for total, out in zip(sums, outs, strict=True):
                total += np.asarray(out, np.float64).sum(axis=0)
    updates: dict[str, list[np.ndarray]] = {}
    largest = 0.0
    for (_, layer, bn), total in zip(targets, sums, strict=True):
        kernel = np.asarray(layer.kernel.numpy(), np.float64)
        reduce_axes = (0, 1) if type(layer).__name__ == "DepthwiseConv2D" else tuple(range(kernel.ndim - 1))
        delta = quantize_weights_per_channel(kernel, reduce_axes) - kernel
        shift = _output_shift(layer, total / count, delta)
        largest = max(largest, float(np.max(np.abs(shift))))
        if layer.use_bias:
            weights = layer.get_weights()
            index = next(i for i, w in enumerate(layer.weights) if w is layer.bias)
            weights[index] = (weights[index] - shift).astype(weights[index].dtype)
            updates[layer.name] = weights
        else:
            weights = bn.get_weights()
            index = next(i for i, w in enumerate(bn.weights) if w is bn.moving_mean)
            weights[index] = (weights[index] + shift).astype(weights[index].dtype)
            updates[bn.name] = weights
    return updates, {"layers": len(updates), "skipped": skipped, "max_abs_shift": largest}


def bias_corrected_model(model: Any, weight_updates: dict[str, list[np.ndarray]]) -> Any:
    """A copy of ``model`` with ``weight_updates`` applied (other layers shared, the original untouched)."""
    return fake_quantized_model(model, {}, weight_updates)
