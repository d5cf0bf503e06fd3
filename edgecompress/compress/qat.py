"""Quantization-aware training for Keras 3, built on ``keras.quantizers.fake_quant_with_min_max_vars``.

``quantize_model`` rebuilds a model so that its float maths carries the rounding an int8 TFLite model will
do, and so that the TFLite converter reads every scale from the fake-quant nodes:

- weights: symmetric int8 (narrow range, zero point 0); per output channel for Conv2D and DepthwiseConv2D,
  per tensor for Dense, Conv1D and Conv2DTranspose (the converter rejects per-channel FULLY_CONNECTED weights);
- activations: asymmetric per tensor, ranges tracked by an exponential moving average while training;
- Conv/Dense -> BatchNormalization is folded into the kernel and bias (BN statistics are frozen during QAT,
  the usual choice when fine-tuning a trained model); BatchNormalization anywhere else stays a layer whose
  output is quantized (the converter turns it into MUL + ADD);
- a ReLU/ReLU6 that the int8 kernels fuse into the preceding Conv/Dense/Add shares one quantizer with it;
- the inputs of a Concatenate share one range (the int8 CONCATENATION kernel needs equal scales, otherwise the
  converter inserts requantize operators);
- softmax and sigmoid outputs use the fixed scale 1/256 the int8 kernels produce.

``preserve=("sparsity",)`` keeps a pruned model's zeros through QAT (the zeros become a mask);
``preserve=("clusters",)`` keeps a clustered kernel's shared values (they become trainable centroids and
each weight keeps its centroid index).

The quantizers and wrapper layers live in ``edgecompress.compress.quantizers``; importing this module
imports that one, so its layers are registered before a QAT ``.keras`` file loads.
"""

from __future__ import annotations

from typing import Any

import keras

from edgecompress.compress.quantizers import (
    _FIXED_RANGES,
    PASS_THROUGH,
    ActivationQuantizer,
    QuantizeAnnotate,
    QuantizeConfig,
    QuantizeWrapper,
    _activation_name,
    default_config,
)
from edgecompress.errors import ConversionError
from edgecompress.graph import copy_model, inline_nested

_FUSABLE_ACTIVATIONS = ("linear", "relu", "relu6")
_FUSING_PRODUCERS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "Conv1D", "Conv2DTranspose", "Add")
_FOLDABLE = ("Conv2D", "DepthwiseConv2D", "Dense", "SeparableConv2D")
# Single-input layers that keep the scale: a Concatenate's shared range extends through them.
_SAME_SCALE = tuple(kind for kind in PASS_THROUGH if kind not in ("InputLayer", "Concatenate"))
# Keras ops (called on symbolic tensors inside a functional model) that only move data.
_OP_SAME_SCALE = ("Reshape", "Transpose", "ExpandDims", "Squeeze", "GetItem", "Concatenate", "Flatten")


def _is_float(tensor: Any) -> bool:
    return hasattr(tensor, "dtype") and "float" in str(tensor.dtype)


def _is_fusable_activation(layer: Any) -> bool:
    kind = type(layer).__name__
    if kind == "ReLU":
        return (layer.max_value in (None, 6.0) and not layer.negative_slope and not layer.threshold)
    return kind == "Activation" and _activation_name(layer) in ("relu", "relu6")


def _functional(model: Any) -> Any:
    if isinstance(model, keras.Sequential) or not hasattr(model, "_nodes_by_depth"):
        try:
            return keras.Model(model.inputs, model.outputs, name=model.name)
        except (AttributeError, ValueError) as exc:
            raise ConversionError(f"model '{model.name}': expected a Sequential or functional model with "
                                  "defined inputs. Received: a model without an input signature. Give it a "
                                  "keras.Input before quantize_model.") from exc
    return model


class _Plan:
    """Which layers fold which BatchNormalization, which tensors share a range, whose output needs a quantizer."""

    def __init__(self, model: Any) -> None:
        self.nodes = [node for nodes in model._nodes_by_depth.values() for node in nodes
                      if node.operation is not None and not node.is_input]
        self.consumers: dict[int, list[Any]] = {}
        for node in self.nodes:
            for tensor in node.input_tensors:
                self.consumers.setdefault(id(tensor), []).append(node.operation)
        self.fold: dict[int, Any] = {}
        self.folded: set[int] = set()
        self.node_outputs: dict[int, list[Any]] = {}
        self.effective_output: dict[int, list[Any]] = {}
        for node in self.nodes:
            layer = node.operation
            if isinstance(layer, keras.Model):
                raise ConversionError(
                    f"layer '{layer.name}' is a nested model that could not be inlined: expected a flat model. "
                    "Received: a model inside the model. Rebuild it flat (call the inner layers directly).")
            self.node_outputs.setdefault(id(layer), node.outputs)
            self.effective_output.setdefault(id(layer), node.outputs)
            if type(layer).__name__ == "BatchNormalization":
                self._try_fold(node)
        self.group_of: dict[int, int] = self._concat_groups()

    def _try_fold(self, node: Any) -> None:
        bn = node.operation
        (tensor,) = node.input_tensors
        producer = tensor._keras_history.operation
        ok = (type(producer).__name__ in _FOLDABLE and _activation_name(producer) == "linear"
              and len(self.consumers.get(id(tensor), [])) == 1 and len(producer._inbound_nodes) == 1
              and len(bn._inbound_nodes) == 1 and bn.axis in (-1, len(tensor.shape) - 1))
        if ok:
            self.fold[id(producer)] = bn
            self.folded.add(id(bn))
            self.effective_output[id(producer)] = node.outputs

    def _concat_groups(self) -> dict[int, int]:
        parent: dict[int, int] = {}

        def find(key: int) -> int:
            while parent.setdefault(key, key) != key:
                key = parent[key]
            return key

        def union(a: int, b: int) -> None:
            parent[find(a)] = find(b)

        for node in self.nodes:
            if type(node.operation).__name__ == "Concatenate":
                for tensor in node.input_tensors:
                    union(id(tensor), id(node.outputs[0]))
        changed = True
        while changed:
            changed = False
            for node in self.nodes:
                if type(node.operation).__name__ not in _SAME_SCALE or len(node.input_tensors) != 1:
                    continue
                inside, outside = id(node.input_tensors[0]), id(node.outputs[0])
                if (inside in parent or outside in parent) and find(inside) != find(outside):
                    union(inside, outside)
                    changed = True
        return {key: find(key) for key in parent}

    def needs_output_quantizer(self, layer: Any) -> bool:
        outputs = self.effective_output.get(id(layer), [])
        if any(id(tensor) in self.group_of for tensor in outputs):
            return False
        consumers = [c for tensor in outputs for c in self.consumers.get(id(tensor), [])]
        if not consumers:
            return True
        fuses = (type(layer).__name__ in _FUSING_PRODUCERS and _activation_name(layer) == "linear")
        return not (fuses and all(_is_fusable_activation(c) for c in consumers))


def quantize_model(model: Any, *, preserve: tuple[str, ...] | list[str] = ()) -> Any:
    """Return a quantization-aware copy of ``model`` (train it briefly, then convert it to int8).

    Args:
        model: a built Sequential or functional Keras model (custom layers annotated with
            ``quantize_annotate_layer``); nested models (a backbone inside a head) are inlined, so the result is
            one flat model.
        preserve: ``"sparsity"`` keeps the kernels' zeros (for pruned models), ``"clusters"`` keeps their
            shared values (for clustered models); both may be given.

    Returns:
        A functional model with ``QuantizeWrapper`` layers; the input model is not modified.

    Example:
        >>> qat = quantize_model(model)  # doctest: +SKIP
        >>> qat.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # doctest: +SKIP
        >>> qat.fit(x, y, epochs=2)  # doctest: +SKIP
    """
    unknown = set(preserve) - {"sparsity", "clusters"}
    if unknown:
        raise ConversionError(f"quantize_model: expected preserve entries 'sparsity' and/or 'clusters'. "
                              f"Received: {sorted(unknown)}. Remove them.")
    source = _functional(inline_nested(copy_model(model)))
    plan = _Plan(source)
    wrappers: dict[int, Any] = {}

    def wrapper_for(layer: Any) -> Any:
        if id(layer) in wrappers:
            return wrappers[id(layer)]
        inner, config = layer, None
        if isinstance(layer, QuantizeAnnotate):
            inner, config = layer.layer, layer.quantize_config
        else:
            config = default_config(layer)
        if config is None:
            wrappers[id(layer)] = layer
            return layer
        split = None
        activation = _activation_name(inner)
        if config.weights and activation not in _FUSABLE_ACTIVATIONS:
            split = keras.activations.serialize(inner.activation)
            inner.activation = keras.activations.get("linear")
            if activation in _FIXED_RANGES and config.output_range is None:
                config = QuantizeConfig(config.weights, config.quantize_output, _FIXED_RANGES[activation])
        if not plan.needs_output_quantizer(layer) and config.output_range is None:
            config = QuantizeConfig(config.weights, quantize_output=False)
        keep = tuple(preserve) if "kernel" in config.weights else ()
        wrapper = QuantizeWrapper(inner, config, batch_norm=plan.fold.get(id(layer)), activation=split,
                                  preserve=keep)
        wrappers[id(layer)] = wrapper
        return wrapper

    shared: dict[int, Any] = {}

    def share(original: Any, tensor: Any) -> Any:
        group = plan.group_of.get(id(original))
        if group is None:
            return None
        if group not in shared:
            shared[group] = ActivationQuantizer(name=f"concat_range_{len(shared)}")
        return shared[group](tensor)

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(layer, keras.layers.Layer):
            return operation(layer, *args, **kwargs)
        outputs = args[0] if id(layer) in plan.folded else wrapper_for(layer)(*args, **kwargs)
        originals = plan.node_outputs[id(layer)]
        if len(originals) == 1:
            grouped = share(originals[0], outputs)
            return outputs if grouped is None else grouped
        return outputs

    def operation(op: Any, *args: Any, **kwargs: Any) -> Any:
        # A Keras op called on symbolic tensors (``x + 3.0`` in MobileNetV3's hard_sigmoid): the converter
        # lowers it to one int8 operator whose output scale the QAT graph must give it.
        outputs = op(*args, **kwargs)
        originals = plan.node_outputs[id(op)]
        if len(originals) != 1 or not _is_float(outputs):
            return outputs
        grouped = share(originals[0], outputs)
        if grouped is not None:
            return grouped
        if type(op).__name__ in _OP_SAME_SCALE or not plan.needs_output_quantizer(op):
            return outputs
        return ActivationQuantizer(name=f"quant_{op.name}")(outputs)

    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name) for t in source.inputs]
    # Integer inputs (token ids into an Embedding) are indices, not values to quantize.
    quantized = [(share(original, t) or ActivationQuantizer(name=f"quantize_{t.name}")(t)) if _is_float(t) else t
                 for original, t in zip(source.inputs, inputs, strict=True)]
    outputs = source._run_through_graph(quantized, operation_fn=lambda op: op, call_fn=call)
    qat = keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=f"{model.name}_qat")
    for wrapper in wrappers.values():
        if isinstance(wrapper, QuantizeWrapper) and wrapper.preserve:
            wrapper.capture_preserved()
    return qat


def quantize_wrappers(model: Any) -> list[Any]:
    """Return the ``QuantizeWrapper`` layers of a QAT model."""
    return [layer for layer in model.layers if isinstance(layer, QuantizeWrapper)]
